// A named region for the PyTorch profiler (bench_engine --profile): kernels
// launched inside it are attributed to it in the trace. Costs one check of a
// thread-local flag when no profiler is running; records nothing while a
// CUDA graph is captured.
#pragma once

#include <ATen/record_function.h>

namespace diffsearch::engine {

class ProfileScope {
 public:
  // `name` must outlive the scope (a string literal).
  explicit ProfileScope(const char* name) : guard_(at::RecordScope::USER_SCOPE) {
    if (guard_.isActive()) guard_.before(name, c10::ArrayRef<const c10::IValue>{});
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  at::RecordFunction guard_;
};

}  // namespace diffsearch::engine
