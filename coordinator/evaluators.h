// Choosing the evaluator a search runs (`--evaluator engine|null|fake[:...]|
// synthetic[:...]|replay:FILE`): the engine's, registered by the executable,
// two that compute nothing, for the coordinator's tests and benchmarks, and
// two that simulate a GPU (coordinator/evaluator_synthetic.h, evaluator_replay.h).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/failure.h"
#include "worker/evaluator.h"

namespace diffsearch::coordinator {

// Returns instantly with a fixed record (speedup 1, no scores): throughput
// benchmarks of the dispatch loop.
class NullEvaluator : public worker::Evaluator {
 public:
  worker::EvaluationRecord evaluate(const worker::MeasurementUnit& unit) override;
};

// A deterministic stand-in for the engine: MACs, times and CLIP scores are
// functions of the unit (model folder name, sampler, steps, setting, samples,
// seed) alone, never of the rank or the batch size, so every process count
// gives the same answers. Options (spec "fake:fail_rank=1,fail_every=3,sleep_ms=2"):
//   fail_rank   evaluations on this rank throw for every fail_every-th unit
//               (by a hash of the unit), to test retries elsewhere;
//   fail_always units whose hash % fail_every == 0 throw on every rank
//               (recorded failed after the retries);
//   oom         failures are reported as out of memory (retried with a
//               smaller batch); fail_kind=bad_input|oom|device_fault|transient
//               says which kind of failure (io/failure.h) they are;
//   sleep_ms    sleep per evaluation;
//   hang_rank, hang_ms  the first evaluation on that rank sleeps hang_ms
//               (a worker past its deadline);
//   gpu, gpu_rank  the GPU name this worker reports (on rank gpu_rank only,
//               or on every rank without it), to test platform routing;
//   timing      how every worker says it times runs (the engine's
//               "CUDA graphs"), to test the run record;
//   segv_every, kill_every  the process segfaults / SIGKILLs itself on
//               every N-th unit it starts (a worker's child, under
//               --isolate on: what a crashing kernel or the OOM killer does);
//   exit_at_load_rank  the evaluator of that rank exits (code 3) as it is
//               made: every child of rank R dies while loading.
class FakeEvaluator : public worker::Evaluator {
 public:
  FakeEvaluator(const std::string& options, int rank);
  worker::EvaluationRecord evaluate(const worker::MeasurementUnit& unit) override;
  std::string gpu_name(const std::string& device) override;
  std::string timing(const std::string& device) override { return timing_; }

 private:
  int rank_;
  std::string gpu_;
  std::string timing_;
  int gpu_rank_ = -1;
  int fail_rank_ = -1;
  int fail_every_ = 3;
  bool fail_always_ = false;
  int sleep_ms_ = 0;
  int hang_rank_ = -1;
  int hang_ms_ = 0;
  bool hung_ = false;
  FailureKind fail_kind_ = FailureKind::transient;
  int segv_every_ = 0;
  int kill_every_ = 0;
  long started_ = 0;  // units this process started
};

// One "key=value" (or bare "key") of an evaluator's options ("a=1,b,c=x").
struct EvaluatorOption {
  std::string item;  // as written, for messages
  std::string key;
  std::string value;  // "" for a bare key
  bool has_value = false;
};
// The options after "kind:", split at commas; empty items are skipped.
std::vector<EvaluatorOption> split_evaluator_options(const std::string& options);

using EvaluatorFactory = std::function<std::unique_ptr<worker::Evaluator>()>;
// The executable registers the engine's factory here (cli/cmd_search.cc), so
// this library does not link libtorch.
void register_engine_evaluator(EvaluatorFactory factory);

// "engine", "null", "fake[:options]", "synthetic[:options]" or
// "replay:FILE.h5" (docs/evaluators.md); InputError for anything else.
std::unique_ptr<worker::Evaluator> make_evaluator(const std::string& spec, int rank);
// The kind part of a spec ("fake" for "fake:fail_rank=1").
std::string evaluator_kind(const std::string& spec);

// True when an evaluation's exception text means the device ran out of
// memory (failure_kind_of_message, io/failure.h).
bool is_out_of_memory(const std::string& message);

}  // namespace diffsearch::coordinator
