// Whole samples (prompt encoding, the denoising loop with its policies, VAE
// decoding) as one unit of work: eager, or on CUDA captured once per shape
// and setting as a CUDA graph and replayed. Eager libtorch spends much of a
// step launching kernels, and the steps DeepCache shortens are launch-bound
// almost entirely; a replay launches the whole sample at once.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "worker/engine/accel/accel.h"
#include "worker/engine/pipeline/pipeline.h"

namespace diffsearch::engine {

struct SampleOutput {
  at::Tensor images;  // [B, 3, H, W] as Pipeline::decode returns them
  bool prompt_truncated = false;
  bool replayed = false;  // from a CUDA graph
};

class SampleRunner {
 public:
  // use_graphs: capture on CUDA (pass cuda_graphs_enabled(options)); ignored
  // on the CPU. At most `max_graphs` captured samples are kept, the least
  // recently used dropped first: each holds its own activation memory.
  SampleRunner(const Pipeline& pipeline, bool use_graphs, std::size_t max_graphs = 2);
  ~SampleRunner();
  SampleRunner(const SampleRunner&) = delete;
  SampleRunner& operator=(const SampleRunner&) = delete;

  // Samples and decodes `request` (its policies and unet_hooks must be empty)
  // under the accelerations `specs`, made as Acceleration::create(specs,
  // unet, steps, accel_seed) makes them. The first run of a shape and setting
  // is eager (it also warms cuDNN's autotuning and the allocator), then
  // captured and replayed once; later runs replay. Replays compute what the
  // eager run computes and count the same MACs into engine::macs. A capture
  // that fails (an operation CUDA graphs cannot hold) leaves that setting
  // eager, with a warning.
  SampleOutput run(const SampleRequest& request, const std::vector<AccelSpec>& specs,
                   uint64_t accel_seed);

  bool uses_graphs() const { return use_graphs_; }
  std::size_t graphs_held() const { return graphs_.size(); }
  // Frees every captured sample's memory (after an out-of-memory error, so a
  // smaller batch has the room).
  void drop_graphs();

 private:
  struct Graph;
  SampleOutput run_eager(const SampleRequest& request, const std::vector<AccelSpec>& specs,
                         uint64_t accel_seed) const;
  std::string graph_key(const SampleRequest& request, const std::vector<AccelSpec>& specs) const;
  std::unique_ptr<Graph> capture(const SampleRequest& request, const std::vector<AccelSpec>& specs,
                                 uint64_t accel_seed) const;

  const Pipeline& pipeline_;
  bool use_graphs_ = false;
  std::size_t max_graphs_ = 2;
  std::list<std::unique_ptr<Graph>> graphs_;  // most recently used first
  std::set<std::string> eager_only_;          // keys whose capture failed
};

}  // namespace diffsearch::engine
