// Weights by name: safetensors views wrapped without copying, then converted
// once to the run dtype and device.
#include "worker/engine/core/weights.h"

#include <cmath>
#include <cstring>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "io/error.h"

namespace diffsearch::engine {
namespace {

c10::ScalarType scalar_type(io::DType dtype) {
  switch (dtype) {
    case io::DType::F64: return c10::kDouble;
    case io::DType::F32: return c10::kFloat;
    case io::DType::F16: return c10::kHalf;
    case io::DType::BF16: return c10::kBFloat16;
    case io::DType::I64: return c10::kLong;
    case io::DType::I32: return c10::kInt;
    case io::DType::U8: return c10::kByte;
    case io::DType::BOOL: return c10::kBool;
  }
  DIFFSEARCH_ASSERT(false);
  return c10::kFloat;
}

io::DType io_dtype(c10::ScalarType type) {
  switch (type) {
    case c10::kDouble: return io::DType::F64;
    case c10::kFloat: return io::DType::F32;
    case c10::kHalf: return io::DType::F16;
    case c10::kBFloat16: return io::DType::BF16;
    case c10::kLong: return io::DType::I64;
    case c10::kInt: return io::DType::I32;
    case c10::kByte: return io::DType::U8;
    case c10::kBool: return io::DType::BOOL;
    default: break;
  }
  throw InputError(std::string("cannot store tensors of dtype ") + c10::toString(type) +
                   " in safetensors");
}

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

at::Tensor tensor_from_view(const io::TensorView& view) {
  // from_blob wants a mutable pointer; the mapping is read-only and nothing
  // writes through this tensor (every use converts or clones first).
  return torch::from_blob(const_cast<std::uint8_t*>(view.data), view.shape,
                          torch::TensorOptions().dtype(scalar_type(view.dtype)));
}

at::Tensor tensor_copy(const io::TensorView& view) { return tensor_from_view(view).clone(); }

io::TensorData tensor_to_data(const std::string& name, const at::Tensor& tensor) {
  at::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  io::TensorData data;
  data.name = name;
  data.dtype = io_dtype(t.scalar_type());
  data.shape = t.sizes().vec();
  data.bytes.resize(t.numel() * t.element_size());
  if (!data.bytes.empty()) std::memcpy(data.bytes.data(), t.data_ptr(), data.bytes.size());
  return data;
}

Weights::Weights(io::WeightSet set, RunOptions options)
    : set_(std::move(set)), options_(options) {}

Weights Weights::synthesize(uint64_t seed, RunOptions options) {
  Weights w(io::WeightSet("synthesized weights", {}), options);
  w.synthesize_ = true;
  w.seed_ = seed;
  return w;
}

at::Tensor Weights::get(const std::string& name, const std::vector<int64_t>& shape) {
  if (synthesize_) {
    DIFFSEARCH_ASSERT(!used_.count(name));
    used_.insert(name);
    // Each tensor gets its own stream (seed, index) so adding a weight does not
    // change the others.
    auto gen = at::detail::createCPUGenerator(seed_ * 1000003ull + synthesized_.size());
    at::Tensor t;
    const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (shape.size() == 1) {
      t = is_bias ? torch::zeros(shape, torch::kFloat) : torch::ones(shape, torch::kFloat);
    } else {
      int64_t fan_in = 1;
      for (std::size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
      t = at::normal(0.0, 1.0 / std::sqrt(static_cast<double>(fan_in)), shape, gen);
    }
    t = t.to(options_.device, options_.dtype);
    synthesized_.emplace_back(name, t);
    return t;
  }
  const io::TensorView& view = set_.tensor(name);
  if (view.shape != shape) {
    throw InputError(set_.description() + ": weight '" + name + "' has shape " +
                     shape_string(view.shape) + " but config.json implies " +
                     shape_string(shape) +
                     " (the weights and config.json come from different models)");
  }
  return get(name);
}

at::Tensor Weights::get(const std::string& name) {
  DIFFSEARCH_ASSERT(!synthesize_);  // synthesized weights need a shape
  const io::TensorView& view = set_.tensor(name);
  used_.insert(name);
  at::Tensor t = tensor_from_view(view);
  // One conversion straight to the target; .to() copies when the dtype or the
  // device changes, and a same-dtype CPU load must not alias the mapping.
  at::Tensor out = t.to(options_.device, options_.dtype, /*non_blocking=*/false, /*copy=*/true);
  return out;
}

std::vector<std::string> Weights::unused() const {
  std::vector<std::string> out;
  for (const auto& n : set_.names()) {
    if (!used_.count(n)) out.push_back(n);
  }
  return out;
}

}  // namespace diffsearch::engine
