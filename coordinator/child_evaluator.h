// Isolation (`--isolate on`, the CLI's default): a worker's evaluations run in
// a child process that the worker starts and watches, so a segfault in a
// kernel, a sticky CUDA error, the OOM killer or a hang costs one unit and a
// restart, not the MPI job. The child is the same executable exec'd afresh
// (`diffsearch worker-child`; forking an MPI process is unsafe) with the MPI
// environment removed; it makes the evaluator once (weights load once per
// child) and serves units over a socket pair, each message a 4-byte length
// and a CBOR map.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/failure.h"
#include "worker/evaluator.h"

namespace diffsearch::coordinator {

struct SearchOptions;

struct ChildOptions {
  std::string evaluator;  // the --evaluator spec the child makes
  int rank = 0;
  std::string device = "cpu";
  // A unit unanswered this long: the child is killed.
  double deadline_s = 3600;
  // A child's start (exec, the evaluator made, the device named) unanswered
  // this long: killed, a failed start. The engine loads weights with the
  // first unit, under deadline_s.
  double load_deadline_s = 120;
  // Consecutive failed starts before the worker gives up on its device.
  int max_load_failures = 3;
  // The child's command up to its options; default: this executable,
  // "worker-child".
  std::vector<std::string> command;
  std::string log_level;  // passed on as --log-level when set
};

class ChildProcessEvaluator : public worker::Evaluator {
 public:
  explicit ChildProcessEvaluator(ChildOptions options);
  ~ChildProcessEvaluator() override;
  ChildProcessEvaluator(const ChildProcessEvaluator&) = delete;
  ChildProcessEvaluator& operator=(const ChildProcessEvaluator&) = delete;

  // Starts a child unless one is running, retrying failed starts. Returns
  // nullopt once a child is ready, else why this worker gives up (after
  // max_load_failures consecutive failures). A start that fails with bad
  // input (a wrong --evaluator spec) throws InputError: no device would do
  // better.
  std::optional<std::string> ensure_child();

  // In the child. A failure is a ClassifiedError of the child's kind; a
  // child that dies, or gives no answer within the deadline (killed), is a
  // device_fault naming the signal or exit code, and the next call starts a
  // fresh child. So is an answer of kind device_fault: the child exits after
  // it (its CUDA context is poisoned).
  worker::EvaluationRecord evaluate(const worker::MeasurementUnit& unit) override;
  // What the child said when it started (its evaluator's answers for the
  // device); the device itself before any child has.
  std::string gpu_name(const std::string& device) override;
  std::string timing(const std::string& device) override;

  int children_started() const { return generation_; }
  pid_t child_pid() const { return pid_; }

 private:
  bool start_child(std::string* failure, FailureKind* kind);
  void stop_child(bool kill_now);
  // The child's end as a sentence ("killed by signal 11 (SIGSEGV)"), after
  // reaping it.
  std::string reap();

  ChildOptions options_;
  pid_t pid_ = -1;
  int fd_ = -1;
  int generation_ = 0;
  int load_failures_ = 0;  // consecutive
  std::string gave_up_;    // set once max_load_failures is reached: final
  std::string gpu_, timing_;
  bool hello_ = false;
};

// The evaluator a worker measures with: in a child process (options.isolate)
// or in this one. `rank` names the worker (0 for a one-process run).
std::unique_ptr<worker::Evaluator> make_worker_evaluator(const SearchOptions& options, int rank,
                                                         const std::string& device);
// For a child-process evaluator: ensure_child()'s answer; nullopt (ready)
// for an in-process one.
std::optional<std::string> worker_unavailable(worker::Evaluator& evaluator);

// The child's side (`diffsearch worker-child`): makes the evaluator, says
// hello on `fd`, and serves units until the socket closes. Returns the exit
// code.
int serve_evaluator_child(const std::string& spec, int rank, const std::string& device, int fd, pid_t parent);

// The wire forms of a unit and a record (CBOR keeps NaN).
nlohmann::json unit_to_json(const worker::MeasurementUnit& unit);
worker::MeasurementUnit unit_from_json(const nlohmann::json& j);
nlohmann::json record_to_json(const worker::EvaluationRecord& record);
worker::EvaluationRecord record_from_json(const nlohmann::json& j);

// "killed by signal 9 (SIGKILL)", "exited with code 3", from waitpid's status.
std::string describe_exit_status(int status);

}  // namespace diffsearch::coordinator
