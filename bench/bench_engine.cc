// Engine benchmark: one model, one sampler, batch 1 with CFG (--batch B: B
// images a run, times reported per image too, with the share of the GPU's
// fp16 matrix rate the MACs imply, --peak-tflops); the baseline and
// each acceleration timed in the same process, interleaved round by round so
// clock and thermal drift hit every variant alike. Prints a table and writes
// JSON (speedups are ratios of medians measured in this one run). On CUDA each
// run is a replay of the sample captured as a CUDA graph (SampleRunner);
// --eager-too adds every variant run eagerly to the same rounds, --breakdown
// times an eager run phase by phase, --decode-only N times the VAE alone,
// --profile DIR writes one eager run of each variant as a PyTorch profiler
// trace (DIR/NAME.json; scripts/trace_summary.py sums its kernels by region).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/torch.h>

#include "io/error.h"
#include "worker/engine/accel/accel.h"
#include "worker/engine/core/device.h"
#include "worker/engine/core/nn.h"
#include "worker/engine/pipeline/pipeline.h"
#include "worker/engine/pipeline/sample_runner.h"
#include "worker/engine/models/vae.h"

using namespace diffsearch;

namespace {

struct Variant {
  std::string name;
  std::vector<std::string> specs;
  std::vector<double> times_s;
  int64_t macs = 0;
  int64_t peak_bytes = 0;
  // --breakdown: per round, the phases and every step (UNet + sampler), each
  // timed between device synchronisations.
  std::vector<nlohmann::json> breakdowns;
  bool eager = false;  // --eager-too: eager libtorch instead of CUDA graphs
};

// Times each sampling step from its plan to the sampler's new latents.
class StepTimer : public engine::StepPolicy {
 public:
  explicit StepTimer(const engine::RunOptions& options) : options_(options) {}
  void plan_step(const engine::StepInfo&, engine::StepPlan&) override {
    engine::device_synchronize(options_);
    t0_ = std::chrono::steady_clock::now();
  }
  void end_step(const engine::StepInfo&, const at::Tensor&) override {
    engine::device_synchronize(options_);
    steps_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  }
  std::vector<double> steps_s;

 private:
  engine::RunOptions options_;
  std::chrono::steady_clock::time_point t0_;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string model, out_json = "bench_engine.json", dtype = "float16", device = "cuda";
    std::string sampler = "ddim";
    int steps = 50, rounds = 5, size = 0, batch = 1;
    // The dense fp16 matrix rate the work is measured against: 790 TFLOP/s
    // is what large fp16/bf16 matrix products reach on an H200 (H100 SXM
    // alike); the datasheet's 989 is not reached by any library.
    double peak_tflops = 790;
    bool breakdown = false, eager_too = false;
    int decode_only = 0;  // --decode-only N: time N VAE decodes, nothing else
    std::string profile_dir;
    std::vector<Variant> variants = {{"baseline", {}, {}, 0, 0, {}, false}};
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw InputError(a + " needs a value");
        return argv[++i];
      };
      if (a == "--model") model = next();
      else if (a == "--steps") steps = std::stoi(next());
      else if (a == "--rounds") rounds = std::stoi(next());
      else if (a == "--size") size = std::stoi(next());
      else if (a == "--batch") batch = std::stoi(next());
      else if (a == "--peak-tflops") peak_tflops = std::stod(next());
      else if (a == "--dtype") dtype = next();
      else if (a == "--device") device = next();
      else if (a == "--sampler") sampler = next();
      else if (a == "--json") out_json = next();
      else if (a == "--breakdown") breakdown = true;
      else if (a == "--eager-too") eager_too = true;
      else if (a == "--decode-only") decode_only = std::stoi(next());
      else if (a == "--profile") profile_dir = next();
      else if (a == "--variant") {
        // NAME=SPEC[;SPEC...]
        std::string v = next();
        const auto eq = v.find('=');
        if (eq == std::string::npos) throw InputError("--variant NAME=SPEC[;SPEC]");
        Variant var{v.substr(0, eq), {}, {}, 0, 0, {}, false};
        std::string rest = v.substr(eq + 1);
        std::size_t start = 0;
        while (start <= rest.size()) {
          std::size_t end = rest.find(';', start);
          if (end == std::string::npos) end = rest.size();
          var.specs.push_back(rest.substr(start, end - start));
          start = end + 1;
        }
        variants.push_back(var);
      } else {
        throw InputError("unknown argument " + a);
      }
    }
    if (model.empty()) throw InputError("--model DIR is required");
    if (batch < 1 || batch > 1024) throw InputError("--batch " + std::to_string(batch) + ": expected 1 to 1024");
    if (!profile_dir.empty()) {  // checked before minutes of warm-up, not after
      std::error_code made;
      std::filesystem::create_directories(profile_dir, made);
      if (made || !std::filesystem::is_directory(profile_dir)) {
        throw InputError("--profile " + profile_dir + ": cannot create that folder (" + made.message() + ")");
      }
    }
    if (eager_too) {
      // Every variant also eagerly, in the same rounds: graphs against eager
      // libtorch measured in one run.
      const std::size_t n = variants.size();
      for (std::size_t i = 0; i < n; ++i) {
        Variant e = variants[i];
        e.name += "/eager";
        e.eager = true;
        variants.push_back(e);
      }
    }
    const engine::RunOptions options = engine::parse_run_options(dtype, device);
    torch::NoGradGuard no_grad;
    const auto load0 = std::chrono::steady_clock::now();
    auto pipeline = engine::Pipeline::load(model, options);
    engine::device_synchronize(options);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load0).count();
    const int64_t h = size > 0 ? size : pipeline->default_height();
    const int64_t w = size > 0 ? size : pipeline->default_width();
    if (decode_only > 0) {
      // The VAE decoder alone, each decode between device synchronisations.
      const at::Tensor latents =
          pipeline->seeded_latents(1, h, w, 0) * pipeline->vae().scaling_factor();
      std::vector<double> times;
      for (int i = 0; i < decode_only + 2; ++i) {
        engine::device_synchronize(options);
        const auto t0 = std::chrono::steady_clock::now();
        pipeline->decode(latents);
        engine::device_synchronize(options);
        if (i >= 2) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf("VAE decode %lldx%lld: median %.3f ms, best %.3f ms over %d\n",
                  static_cast<long long>(h), static_cast<long long>(w), 1e3 * median(times),
                  1e3 * *std::min_element(times.begin(), times.end()), decode_only);
      return 0;
    }
    // Whole samples as CUDA graphs (DIFFSEARCH_CUDA_GRAPHS=0: eager), one
    // graph kept per variant; the eager runner for --eager-too.
    engine::SampleRunner runner(*pipeline, engine::cuda_graphs_enabled(options), variants.size());
    engine::SampleRunner eager_runner(*pipeline, false);

    auto run_once = [&](Variant& v, bool measure) {
      engine::SampleRequest request;
      // Distinct prompts, so nothing about a batch is shared by accident.
      static const char* kPrompts[] = {"a photograph of an astronaut riding a horse", "a red bicycle leaning on a wall",
                                       "a bowl of ramen on a wooden table", "a lighthouse in a storm at night",
                                       "a cat sleeping on a pile of books", "an old map of a coastal city",
                                       "a field of sunflowers under a blue sky", "a robot painting a portrait"};
      request.prompts.clear();
      for (int i = 0; i < batch; ++i) request.prompts.push_back(kPrompts[i % 8]);
      request.sampler = engine::parse_sampler_kind(sampler);
      request.steps = steps;
      request.height = h;
      request.width = w;
      request.seed = 0;
      std::vector<engine::AccelSpec> specs;
      for (const auto& s : v.specs) specs.push_back(engine::parse_accel_spec(s));
      engine::macs::reset();
      engine::reset_peak_memory(options);
      engine::device_synchronize(options);
      const auto t0 = std::chrono::steady_clock::now();
      auto since = [&](std::chrono::steady_clock::time_point from) {
        engine::device_synchronize(options);
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count();
      };
      if (breakdown) {
        // The same work as sample() + decode(), eagerly, phase by phase.
        std::unique_ptr<engine::Acceleration> acc;
        if (!specs.empty()) {
          acc = engine::Acceleration::create(specs, pipeline->unet(), steps, 0);
          request.policies = acc->step_policies();
          request.unet_hooks = acc->unet_hooks();
        }
        StepTimer timer(options);
        std::vector<engine::StepPolicy*> policies = request.policies;
        policies.push_back(&timer);
        auto ta = std::chrono::steady_clock::now();
        const auto e = pipeline->encode_prompts(request.prompts, std::vector<std::string>(batch, ""), h, w);
        const double encode_s = since(ta);
        ta = std::chrono::steady_clock::now();
        at::Tensor latents = pipeline->seeded_latents(batch, h, w, 0);
        const double latents_s = since(ta);
        auto sampler_ptr = pipeline->make_sampler(request.sampler);
        ta = std::chrono::steady_clock::now();
        latents = pipeline->denoise(e, latents, *sampler_ptr, steps, request.guidance_scale, policies,
                                    request.unet_hooks);
        const double denoise_s = since(ta);
        ta = std::chrono::steady_clock::now();
        at::Tensor images = pipeline->decode(latents);
        const double decode_s = since(ta);
        if (measure) {
          v.breakdowns.push_back({{"encode_s", encode_s}, {"latents_s", latents_s},
                                  {"denoise_s", denoise_s}, {"decode_s", decode_s},
                                  {"steps_s", timer.steps_s}});
        }
      } else {
        (v.eager ? eager_runner : runner).run(request, specs, 0);
      }
      const double t = since(t0);
      if (measure) {
        v.times_s.push_back(t);
        v.macs = engine::macs::total();
        v.peak_bytes = std::max(v.peak_bytes, engine::peak_memory_bytes(options));
      }
    };
    // Warm-up: every variant twice (cuDNN autotuning, allocator, GPU clocks).
    for (int w = 0; w < 2; ++w) {
      for (auto& v : variants) run_once(v, false);
    }
    if (!profile_dir.empty()) {
      // One eager run of each variant under Kineto (CPU ops, regions, kernels).
      namespace prof = torch::profiler::impl;
      const prof::ProfilerConfig config(prof::ProfilerState::KINETO);
      std::set<prof::ActivityType> activities = {prof::ActivityType::CPU};
      if (options.device.is_cuda()) activities.insert(prof::ActivityType::CUDA);
      for (auto& v : variants) {
        if (v.eager) continue;
        const bool was_eager = v.eager;
        v.eager = true;
        torch::autograd::profiler::prepareProfiler(config, activities);
        torch::autograd::profiler::enableProfiler(config, activities);
        run_once(v, false);
        engine::device_synchronize(options);
        auto result = torch::autograd::profiler::disableProfiler();
        std::string file = v.name;
        std::replace(file.begin(), file.end(), '/', '_');
        result->save(profile_dir + "/" + file + ".json");
        v.eager = was_eager;
        std::printf("profile: %s/%s.json\n", profile_dir.c_str(), file.c_str());
      }
      return 0;
    }
    for (int r = 0; r < rounds; ++r) {
      for (auto& v : variants) run_once(v, true);
    }
    const double base = median(variants[0].times_s);
    nlohmann::json out = {{"device", engine::device_name(options)}, {"model", model},
                          {"dtype", dtype}, {"steps", steps}, {"sampler", sampler},
                          {"height", h}, {"width", w}, {"rounds", rounds}, {"load_s", load_s},
                          {"batch", batch}, {"peak_tflops", peak_tflops},
                          {"variants", nlohmann::json::array()}};
    out["cuda_graphs"] = runner.uses_graphs();
    std::printf("%s, %s %lldx%lld, %s %d steps, batch %d with CFG, %d rounds (median), %s\n",
                engine::device_name(options).c_str(), dtype.c_str(), static_cast<long long>(h),
                static_cast<long long>(w), sampler.c_str(), steps, batch, rounds,
                breakdown ? "eager, phase by phase"
                          : (runner.uses_graphs() ? "CUDA graphs (/eager: without)" : "eager"));
    const double base_min = *std::min_element(variants[0].times_s.begin(), variants[0].times_s.end());
    std::printf("%-20s %9s %9s %9s %9s %11s %9s %10s %8s\n", "variant", "median_s", "speedup", "min_s",
                "speedup", "GMACs", "peak_GiB", "s/image", "of_peak");
    for (const auto& v : variants) {
      const double t = median(v.times_s);
      const double tmin = *std::min_element(v.times_s.begin(), v.times_s.end());
      // 2 FLOPs a MAC, over the run's median time, against the matrix rate.
      const double of_peak = 2.0 * static_cast<double>(v.macs) / t / (peak_tflops * 1e12);
      std::printf("%-20s %9.4f %8.2fx %9.4f %8.2fx %11.1f %9.2f %10.4f %7.1f%%\n", v.name.c_str(), t, base / t, tmin,
                  base_min / tmin, v.macs / 1e9, v.peak_bytes / 1073741824.0, t / batch, 100.0 * of_peak);
      out["variants"].push_back({{"name", v.name}, {"specs", v.specs}, {"times_s", v.times_s},
                                 {"median_s", t}, {"speedup", base / t}, {"per_image_s", t / batch},
                                 {"share_of_peak", of_peak},
                                 {"min_s", *std::min_element(v.times_s.begin(), v.times_s.end())}, {"macs", v.macs},
                                 {"peak_bytes", v.peak_bytes}, {"breakdowns", v.breakdowns},
                                 {"eager", v.eager || !runner.uses_graphs() || breakdown}});
      if (!v.breakdowns.empty()) {
        // Median over rounds of each phase; steps split at half the slowest.
        auto med = [&](const char* k) {
          std::vector<double> xs;
          for (const auto& b : v.breakdowns) xs.push_back(b[k].get<double>());
          return median(xs);
        };
        std::vector<double> all;
        for (const auto& b : v.breakdowns) {
          for (double x : b["steps_s"]) all.push_back(x);
        }
        const double cut = *std::max_element(all.begin(), all.end()) / 2;
        std::vector<double> heavy, light;
        for (double x : all) (x >= cut ? heavy : light).push_back(x);
        std::printf("  encode %.2f ms, latents %.2f ms, denoise %.2f ms, decode %.2f ms; steps: %zu "
                    "heavy median %.3f ms, %zu light median %.3f ms (per round)\n",
                    1e3 * med("encode_s"), 1e3 * med("latents_s"), 1e3 * med("denoise_s"),
                    1e3 * med("decode_s"), heavy.size() / v.breakdowns.size(), 1e3 * median(heavy),
                    light.size() / v.breakdowns.size(), light.empty() ? 0.0 : 1e3 * median(light));
      }
    }
    std::ofstream(out_json) << out.dump(2) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
