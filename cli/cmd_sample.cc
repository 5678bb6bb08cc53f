// `diffsearch sample`: one text-to-image run of a diffusers model folder,
// saving the final latents and/or the image.
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "cli/command.h"
#include "io/error.h"
#include "io/log/log.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "worker/engine/accel/accel.h"
#include "worker/engine/core/device.h"
#include "worker/engine/pipeline/pipeline.h"

namespace diffsearch::cli {
namespace {

struct SampleArgs {
  std::string model;
  std::string prompt;
  std::string negative_prompt;
  bool no_negative_prompt = false;
  std::string sampler;
  int64_t steps = 0;
  double guidance = 7.5;
  int64_t height = 0;
  int64_t width = 0;
  uint64_t seed = 0;
  std::string latents;
  std::string dtype = "float32";
  std::string device = "cpu";
  std::vector<std::string> accel;
  std::string save_latents;
  std::string output;
};

at::Tensor read_latents(const std::string& path) {
  auto file = io::SafetensorsFile::open(path);
  if (!file->contains("latents")) {
    std::string names;
    for (const auto& n : file->names()) names += (names.empty() ? "" : ", ") + n;
    throw InputError(path + ": no tensor named 'latents' (found: " +
                     (names.empty() ? std::string("none") : names) +
                     "); save the starting latents under that name");
  }
  const io::TensorView& view = file->tensor("latents");
  if (view.dtype != io::DType::F64 && view.dtype != io::DType::F32 &&
      view.dtype != io::DType::F16 && view.dtype != io::DType::BF16) {
    throw InputError(path + ": tensor 'latents' has dtype " + io::dtype_name(view.dtype) +
                     ", expected a float dtype (F64, F32, F16 or BF16)");
  }
  if (view.shape.size() != 4) {
    throw InputError(path + ": tensor 'latents' has shape " + engine::shape_string(view.shape) +
                     ", expected [batch, channels, height/8, width/8]");
  }
  return engine::tensor_copy(view);
}

void check_size_flag(const char* flag, int64_t value) {
  // Every Stable Diffusion VAE downsamples by 8; the pipeline checks the
  // model's own factor again after loading.
  if (value != 0 && (value < 0 || value % 8 != 0)) {
    throw InputError(std::string(flag) + " " + std::to_string(value) +
                     " is not a positive multiple of 8 (latents are 1/8 of the image); use " +
                     std::to_string(std::max<int64_t>(8, (value + 4) / 8 * 8)));
  }
}

int run_sample(const SampleArgs& a) {
  // Specs are checked before the model loads (all but cache_branch_id's
  // upper bound, which waits for the UNet).
  std::vector<engine::AccelSpec> accel_specs;
  for (const auto& spec : a.accel) {
    accel_specs.push_back(engine::parse_accel_spec(spec));
    engine::complete_accel_params(accel_specs.back(), a.steps);
  }
  check_size_flag("--height", a.height);
  check_size_flag("--width", a.width);
  const engine::RunOptions options = engine::parse_run_options(a.dtype, a.device);

  engine::SampleRequest request;
  request.prompts = {a.prompt};
  // A negative prompt, "" by default: diffusers' negative_prompt="", which
  // the reference runs use (SDXL then encodes "" rather than zeroing). With
  // --no-negative-prompt none at all (negative_prompt=None), as the
  // evaluator measures: SD encodes "", SDXL conditions on zeros.
  if (!a.no_negative_prompt) request.negative_prompts = {a.negative_prompt};
  request.sampler = engine::parse_sampler_kind(a.sampler);
  request.steps = a.steps;
  request.guidance_scale = a.guidance;
  request.height = a.height;
  request.width = a.width;
  request.seed = a.seed;
  if (!a.latents.empty()) {
    request.latents = read_latents(a.latents);
    if (request.latents.size(0) != 1) {
      throw InputError(a.latents + ": tensor 'latents' has batch " +
                       std::to_string(request.latents.size(0)) + ", expected 1 (one prompt)");
    }
    // The image size follows the latents unless given.
    if (request.height == 0) request.height = request.latents.size(2) * 8;
    if (request.width == 0) request.width = request.latents.size(3) * 8;
  }

  const auto t0 = std::chrono::steady_clock::now();
  auto pipeline = engine::Pipeline::load(a.model, options);
  const auto t1 = std::chrono::steady_clock::now();
  log::info("loaded " + a.model + " (" + engine::model_family_name(pipeline->family()) + ", " +
            a.dtype + " on " + a.device + ") in " +
            std::to_string(std::chrono::duration<double>(t1 - t0).count()) + " s");
  auto accel = engine::Acceleration::create(accel_specs, pipeline->unet(), a.steps, a.seed);
  request.unet_hooks = accel->unet_hooks();
  request.policies = accel->step_policies();
  engine::SampleResult result = pipeline->sample(request);
  engine::device_synchronize(options);
  const auto t2 = std::chrono::steady_clock::now();
  log::info("sampled " + std::to_string(a.steps) + " " + a.sampler + " steps in " +
            std::to_string(std::chrono::duration<double>(t2 - t1).count()) + " s");

  if (!a.save_latents.empty()) {
    io::write_safetensors(a.save_latents,
                          {engine::tensor_to_data("latents", result.latents.to(at::kCPU))},
                          {{"model", a.model},
                           {"prompt", a.prompt},
                           {"sampler", a.sampler},
                           {"steps", std::to_string(a.steps)},
                           {"seed", a.latents.empty() ? std::to_string(a.seed) : a.latents}});
    log::info("wrote final latents to " + a.save_latents);
  }
  if (!a.output.empty()) {
    at::Tensor pixels = engine::images_to_uint8(pipeline->decode(result.latents));
    io::write_png(a.output, pixels.data_ptr<uint8_t>(), pixels.size(1), pixels.size(2),
                  static_cast<int>(pixels.size(3)));
    log::info("wrote " + a.output);
  }
  return exit_code::ok;
}

Runner setup_sample(CLI::App& sub) {
  auto a = std::make_shared<SampleArgs>();
  sub.add_option("--model", a->model, "Diffusers model folder (SD1.5, SD2.1 or SDXL)")
      ->required()
      ->type_name("DIR");
  sub.add_option("--prompt", a->prompt, "Text prompt")->required()->type_name("TEXT");
  auto negative = sub.add_option("--negative-prompt", a->negative_prompt,
                                 "Negative prompt (default empty, encoded as diffusers' negative_prompt=\"\")")
                      ->type_name("TEXT");
  sub.add_flag("--no-negative-prompt", a->no_negative_prompt,
               "No negative prompt at all (diffusers' negative_prompt=None: SD encodes \"\", SDXL "
               "conditions on zeros), as diffsearch evaluate and search measure")
      ->excludes(negative);
  sub.add_option("--sampler", a->sampler, "ddim, dpmsolver++ or unipc")
      ->required()
      ->check(CLI::IsMember({"ddim", "dpmsolver++", "unipc"}));
  sub.add_option("--steps", a->steps, "Denoising steps")->required()->check(CLI::Range(1, 1000));
  sub.add_option("--guidance", a->guidance, "Classifier-free guidance scale (CFG when > 1)")
      ->capture_default_str();
  sub.add_option("--height", a->height,
                 "Image height in pixels, a multiple of 8 (default: the UNet's sample_size * 8)")
      ->type_name("H");
  sub.add_option("--width", a->width, "Image width in pixels, a multiple of 8")->type_name("W");
  auto* seed = sub.add_option("--seed", a->seed,
                              "Seed of the starting noise (torch.randn with "
                              "torch.Generator().manual_seed(S) on the CPU)")
                   ->capture_default_str()
                   ->type_name("S");
  auto* latents = sub.add_option("--latents", a->latents,
                                 "Starting latents: a safetensors file with a float tensor "
                                 "named 'latents' [1, 4, H/8, W/8]")
                      ->type_name("FILE");
  seed->excludes(latents);
  sub.add_option("--dtype", a->dtype, "float32 or float64 (CPU), float16 or bfloat16 (CUDA)")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "float64", "float16", "bfloat16"}));
  sub.add_option("--device", a->device, "cpu, cuda or cuda:I")->capture_default_str();
  sub.add_option("--accel", a->accel,
                 "Acceleration METHOD[:KEY=VALUE,...], repeatable to combine: "
                 "deepcache:cache_interval=3,cache_branch_id=0 | tome:ratio=0.5,use_rand=false | "
                 "tgate:gate_step=10 (keys not given take the reference's defaults)")
      ->type_name("SPEC");
  sub.add_option("--save-latents", a->save_latents,
                 "Write the final latents (before the VAE) as tensor 'latents'")
      ->type_name("FILE");
  sub.add_option("-o,--output", a->output, "Write the decoded image as PNG")
      ->type_name("IMAGE.png");
  sub.footer(
      "Example:\n"
      "  diffsearch sample --model tests/data/fixtures/models/tiny-sd15 \\\n"
      "    --prompt \"a photo of an astronaut riding a horse on mars\" \\\n"
      "    --sampler ddim --steps 20 --seed 0 --dtype float64 -o astronaut.png");
  return [a]() { return run_sample(*a); };
}

DIFFSEARCH_COMMAND("sample", "Generate one image with a diffusers model folder", setup_sample);

}  // namespace
}  // namespace diffsearch::cli
