// The original code generator's five hard-coded tasks (docs/coming-from-diffbench.md).
#include "partition/original_tasks.h"

namespace diffsearch::partition {

const std::vector<std::string>& original_task_sentences() {
  static const std::vector<std::string> sentences = {
      "Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by DeepCache with 3.04x "
      "speedup and precision loss not exceeding 0.02",
      "Generate a SD1.5 pipeline using the DPM-Solver++ sampler with 50 steps, accelerated by DeepCache with "
      "3.05x speedup and precision loss not exceeding 0.02",
      "Generate a SD1.5 pipeline using the UniPCMultistepScheduler sampler with 50 steps, accelerated by "
      "DeepCache with 3.04x speedup and precision loss not exceeding 0.02",
      "Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by ToMe with 1.3x speedup and "
      "precision loss not exceeding 0.02",
      // Sic: the original omits "sampler" in this one.
      "Generate a SD1.5 pipeline using the DPM-Solver++ with 20 steps, accelerated by T-Gate with 1.44x speedup "
      "and precision loss not exceeding 0.02",
  };
  return sentences;
}

std::vector<Task> original_tasks() {
  std::vector<Task> tasks;
  for (const auto& s : original_task_sentences()) tasks.push_back(parse_task(s));
  return tasks;
}

}  // namespace diffsearch::partition
