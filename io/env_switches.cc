#include "io/env_switches.h"

#include <cstdlib>

namespace diffsearch::io {

const std::vector<EnvSwitch>& env_switches() {
  static const std::vector<EnvSwitch> table = {
      {"DIFFSEARCH_CUDA_GRAPHS", "0|1",
       "0 runs every sample eagerly; by default a setting's samples after the first replay a CUDA graph"},
      {"DIFFSEARCH_CHANNELS_LAST", "0|1", "0 keeps NCHW activations on CUDA (default: NHWC)"},
      {"DIFFSEARCH_NORM_KERNELS", "0|1", "0 runs ATen's GroupNorm instead of the engine's CUDA kernel"},
      {"DIFFSEARCH_TOME_KERNELS", "0|1", "0 runs ToMe's matching on ATen instead of the engine's CUDA kernels"},
      {"DIFFSEARCH_GEGLU_KERNELS", "0|1",
       "1 runs GEGLU's GELU and product in one engine CUDA kernel (opt-in, not yet measured on a GPU); default: ATen"},
      {"DIFFSEARCH_SDPA", "flash|efficient|cudnn|math|default",
       "restricts fused attention to one kernel family (benchmarks); default: PyTorch chooses"},
      {"DIFFSEARCH_CUDA_MEMORY_FRACTION", "F",
       "caps each process at a share F in (0, 1] of its GPU's memory (to see batch halving on a large card)"},
      {"DIFFSEARCH_DATA_DIR", "DIR",
       "the folder synth-model copies configs and tokenizer files from; default: the source tree's data/"},
      {"DIFFSEARCH_FRONTIER_TRACE", "1",
       "set (to anything): the frontier strategy prints a line per space and round on stderr"},
  };
  return table;
}

std::string env_switches_help() {
  std::string out = "Environment switches (docs/architecture.md, \"Environment switches\"):\n";
  for (const EnvSwitch& s : env_switches()) {
    out += "  " + std::string(s.name) + "=" + s.values + "\n      " + s.meaning + "\n";
  }
  return out;
}

std::string env_switch_note(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return "";
  return std::string(" (") + name + "=" + value + " is set; diffsearch --help says what it changes)";
}

}  // namespace diffsearch::io
