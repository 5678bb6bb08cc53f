// The relative error the engine's tests hold tensors to.
#pragma once

#include <ATen/ATen.h>

namespace diffsearch::engine::testing {

// ||a - b|| / ||b||, computed in float64 on the CPU.
inline double rel_err(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.detach().to(at::kCPU, at::kDouble);
  const at::Tensor y = b.detach().to(at::kCPU, at::kDouble);
  return (x - y).norm().item<double>() / y.norm().item<double>();
}

}  // namespace diffsearch::engine::testing
