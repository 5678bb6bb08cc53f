// Writing diffusers model folders with random weights (tiny, or the real
// architectures' sizes) for tests and GPU benchmarks without downloads.
#pragma once

#include <cstdint>
#include <string>

namespace diffsearch::engine {

struct SynthModelOptions {
  std::string like = "sd15";  // sd15, sd21 or sdxl
  bool full_size = false;     // the real architecture instead of the tiny one
  std::string dtype = "fp32"; // fp32, fp16 or bf16 weights on disk
  uint64_t seed = 0;
  std::string data_dir;       // the project's data/ (configs and CLIP BPE files)
};

// Writes `out_dir` (created; must be empty or absent) as save_pretrained
// would: model_index.json, scheduler/, tokenizer(s)/, text_encoder(s)/, unet/,
// vae/ (encoder and decoder). The weights are enumerated by building the
// engine's own models with synthesizing Weights, so every name and shape is
// one the engine (and diffusers) loads.
void synth_model_write(const SynthModelOptions& options, const std::string& out_dir);

// The project's data folder: $DIFFSEARCH_DATA_DIR, else the source tree's data/.
std::string default_data_dir();

}  // namespace diffsearch::engine
