// The failure taxonomy's names and the classification of exceptions.
#include "io/failure.h"

#include <new>

namespace diffsearch {
namespace {

bool contains(const std::string& text, const char* what) { return text.find(what) != std::string::npos; }

}  // namespace

const char* failure_kind_name(FailureKind kind) {
  switch (kind) {
    case FailureKind::none: return "";
    case FailureKind::bad_input: return "bad_input";
    case FailureKind::out_of_memory: return "out_of_memory";
    case FailureKind::device_fault: return "device_fault";
    case FailureKind::transient: return "transient";
  }
  return "transient";
}

FailureKind parse_failure_kind(const std::string& name) {
  if (name.empty()) return FailureKind::none;
  for (FailureKind k : {FailureKind::bad_input, FailureKind::out_of_memory, FailureKind::device_fault}) {
    if (name == failure_kind_name(k)) return k;
  }
  return FailureKind::transient;
}

FailureKind failure_kind_of_message(const std::string& m) {
  if (contains(m, "out of memory") || contains(m, "OutOfMemory") || contains(m, "CUBLAS_STATUS_ALLOC_FAILED")) {
    return FailureKind::out_of_memory;
  }
  // CUDA errors after which the context is unusable (every later call
  // returns the same error): the process must be replaced.
  for (const char* sticky : {"illegal memory access", "an illegal instruction", "unspecified launch failure",
                             "device-side assert", "misaligned address", "uncorrectable ECC error",
                             "CUDA error: unknown error", "cudaErrorIllegalAddress", "cudaErrorLaunchFailure",
                             "CUBLAS_STATUS_EXECUTION_FAILED", "CUDA driver error", "device has fallen off the bus",
                             "GPU is lost", "launch timed out"}) {
    if (contains(m, sticky)) return FailureKind::device_fault;
  }
  return FailureKind::transient;
}

FailureKind classify_failure(const std::exception& e) {
  if (const auto* c = dynamic_cast<const ClassifiedError*>(&e)) return c->kind();
  if (dynamic_cast<const InputError*>(&e)) return FailureKind::bad_input;
  if (dynamic_cast<const OutOfMemoryError*>(&e)) return FailureKind::out_of_memory;
  if (dynamic_cast<const DeviceFaultError*>(&e)) return FailureKind::device_fault;
  if (dynamic_cast<const std::bad_alloc*>(&e)) return FailureKind::out_of_memory;
  return failure_kind_of_message(e.what());
}

std::string legacy_failure_kind(const std::string& status, const std::string& error) {
  if (status == "ok") return "";
  return failure_kind_of_message(error) == FailureKind::out_of_memory ? "out_of_memory" : "transient";
}

}  // namespace diffsearch
