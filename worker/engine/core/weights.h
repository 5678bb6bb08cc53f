// Loading a component's weights into tensors by name, with shape checks, in
// the run's dtype and on its device (no second full-precision copy).
#pragma once

#include <set>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "io/diffusers_folder.h"
#include "io/safetensors.h"

namespace diffsearch::engine {

// Where and in what precision a model runs.
struct RunOptions {
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
};

// A view of a safetensors tensor as a CPU tensor of its stored dtype, without
// copying (valid while the file is open).
at::Tensor tensor_from_view(const io::TensorView& view);
// A copy of a safetensors tensor as an owned CPU tensor of its stored dtype.
at::Tensor tensor_copy(const io::TensorView& view);
// Converts a CPU tensor to safetensors bytes (F64, F32, F16, BF16, I64, I32, U8, BOOL).
io::TensorData tensor_to_data(const std::string& name, const at::Tensor& tensor);

class Weights {
 public:
  Weights(io::WeightSet set, RunOptions options);
  // Weights that invent what the model asks for: seeded random tensors of the
  // requested shapes (scaled by fan-in; norms 1, biases 0), remembered in
  // request order so synth-model can write them out as a checkpoint. Models
  // must decide their structure from config.json, never from contains().
  static Weights synthesize(uint64_t seed, RunOptions options);
  bool synthesizing() const { return synthesize_; }
  const std::vector<std::pair<std::string, at::Tensor>>& synthesized() const { return synthesized_; }

  // The weight `name` converted to the run dtype and device. Throws InputError
  // naming the file, the weight, the expected and the found shape.
  at::Tensor get(const std::string& name, const std::vector<int64_t>& shape);
  // Same, with no shape check (for shapes the config does not fix).
  at::Tensor get(const std::string& name);
  bool contains(const std::string& name) const { return set_.contains(name); }
  const RunOptions& options() const { return options_; }
  const std::string& description() const { return set_.description(); }
  // Names in the file that were never asked for (a checkpoint for another
  // architecture usually shows up here).
  std::vector<std::string> unused() const;

 private:
  io::WeightSet set_;
  RunOptions options_;
  std::set<std::string> used_;
  bool synthesize_ = false;
  uint64_t seed_ = 0;
  std::vector<std::pair<std::string, at::Tensor>> synthesized_;
};

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace diffsearch::engine
