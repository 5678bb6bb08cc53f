// What kind of failure an evaluation met: one taxonomy across the evaluation
// boundary (the evaluator, the worker's child process, the scheduler's retry
// rules, the results file's error_kind column, `diffsearch status`).
#pragma once

#include <exception>
#include <string>

#include "io/error.h"

namespace diffsearch {

enum class FailureKind {
  none,           // an ok row
  bad_input,      // the unit's input is wrong (InputError): never retried
  out_of_memory,  // the device ran out of memory: retried with a smaller batch
  device_fault,   // a dead worker child, a sticky CUDA error, a hang: retried on another worker
  transient,      // anything else: retried
};

// The device ran out of memory; the context is still usable.
class OutOfMemoryError : public Error {
 public:
  explicit OutOfMemoryError(const std::string& message) : Error(message) {}
};

// The device or the process measuring on it can no longer be trusted (a
// sticky CUDA error poisons the context): the worker replaces its child.
class DeviceFaultError : public Error {
 public:
  explicit DeviceFaultError(const std::string& message) : Error(message) {}
};

// A failure whose kind was decided elsewhere (a worker's child process).
class ClassifiedError : public Error {
 public:
  ClassifiedError(FailureKind kind, const std::string& message) : Error(message), kind_(kind) {}
  FailureKind kind() const { return kind_; }

 private:
  FailureKind kind_;
};

// "bad_input", "out_of_memory", "device_fault", "transient"; "" for none.
const char* failure_kind_name(FailureKind kind);
// The inverse; an unknown name is transient (a newer file's kind retries).
FailureKind parse_failure_kind(const std::string& name);

// The kind of an exception an evaluation threw: by type where the thrower
// said (InputError, OutOfMemoryError, DeviceFaultError, ClassifiedError),
// else by the message of a library that throws one type for everything
// (libtorch: c10::Error; see failure_kind_of_message).
FailureKind classify_failure(const std::exception& e);
// Messages of foreign exceptions: CUDA's and cuBLAS's out-of-memory texts;
// sticky CUDA errors (illegal address, launch failure, device-side assert,
// ECC, a lost device); else transient.
FailureKind failure_kind_of_message(const std::string& message);

// Rows of files written before the error_kind column: what the retry rules
// of that version made of them (out of memory by its text, else transient).
std::string legacy_failure_kind(const std::string& status, const std::string& error);

}  // namespace diffsearch
