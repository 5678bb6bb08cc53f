// `diffsearch synth-model`: a diffusers model folder with random weights, tiny
// or full-size, for tests and GPU benchmarks without downloads.
#include "cli/command.h"
#include "io/error.h"
#include "worker/engine/models/synth_model.h"

namespace {

struct SynthArgs {
  diffsearch::engine::SynthModelOptions options;
  std::string out;
};

DIFFSEARCH_COMMAND("synth-model", "Write a diffusers model folder with random weights", [](CLI::App& sub) {
  auto args = std::make_shared<SynthArgs>();
  sub.add_option("--like", args->options.like, "Architecture: sd15, sd21 or sdxl")
      ->required()
      ->check(CLI::IsMember({"sd15", "sd21", "sdxl"}));
  sub.add_option("--out", args->out, "Folder to create (absent or empty)")->required();
  sub.add_flag("--full-size", args->options.full_size,
               "The real architecture's sizes (SD1.5 860M UNet...) instead of the tiny one");
  sub.add_option("--dtype", args->options.dtype, "Weights on disk: fp32, fp16 or bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  sub.add_option("--seed", args->options.seed, "Seed of the random weights")->capture_default_str();
  sub.footer("Example:\n  diffsearch synth-model --like sd15 --full-size --dtype fp16 --out /tmp/sd15-random");
  return [args]() {
    diffsearch::engine::synth_model_write(args->options, args->out);
    return diffsearch::exit_code::ok;
  };
});

}  // namespace
