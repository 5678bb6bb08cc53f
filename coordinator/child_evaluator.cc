// The worker's child process: starting it (posix_spawn of this executable,
// without the MPI environment), the length-prefixed CBOR messages over a
// socket pair, deadlines, reaping and naming how a child ended, and the
// child's own serving loop.
#include "coordinator/child_evaluator.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <thread>

#include "coordinator/evaluators.h"
#include "coordinator/run_support.h"
#include "coordinator/search.h"
#include "io/log/log.h"

extern char** environ;

namespace diffsearch::coordinator {
namespace {

constexpr int kChildFd = 3;                          // the socket's number in the child
constexpr uint32_t kMaxMessage = 1u << 30;           // a corrupt length, not a unit
constexpr double kReapWaitS = 5;                     // after EOF or a fault report, before SIGKILL

double steady_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool write_all(int fd, const uint8_t* data, std::size_t size) {
  while (size > 0) {
    // MSG_NOSIGNAL: a dead child is an error here, not SIGPIPE for the rank.
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool send_message(int fd, const nlohmann::json& message) {
  const std::vector<uint8_t> body = nlohmann::json::to_cbor(message);
  const uint32_t size = static_cast<uint32_t>(body.size());
  uint8_t header[4] = {static_cast<uint8_t>(size), static_cast<uint8_t>(size >> 8), static_cast<uint8_t>(size >> 16),
                       static_cast<uint8_t>(size >> 24)};
  return write_all(fd, header, 4) && write_all(fd, body.data(), body.size());
}

enum class ReadStatus { ok, closed, timeout };

// Reads exactly `size` bytes by `deadline` (steady seconds; infinity: none).
ReadStatus read_exact(int fd, uint8_t* data, std::size_t size, double deadline) {
  while (size > 0) {
    int timeout_ms = -1;
    if (std::isfinite(deadline)) {
      const double left = deadline - steady_s();
      if (left <= 0) return ReadStatus::timeout;
      timeout_ms = static_cast<int>(std::min(left * 1000.0 + 1, 1e9));
    }
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return ReadStatus::closed;
    if (ready == 0) continue;  // the deadline check above decides
    const ssize_t n = ::recv(fd, data, size, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return ReadStatus::closed;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return ReadStatus::ok;
}

ReadStatus read_message(int fd, double deadline, nlohmann::json& out) {
  uint8_t header[4];
  ReadStatus s = read_exact(fd, header, 4, deadline);
  if (s != ReadStatus::ok) return s;
  const uint32_t size = header[0] | (uint32_t{header[1]} << 8) | (uint32_t{header[2]} << 16) | (uint32_t{header[3]} << 24);
  if (size > kMaxMessage) return ReadStatus::closed;
  std::vector<uint8_t> body(size);
  s = read_exact(fd, body.data(), size, deadline);
  if (s != ReadStatus::ok) return s;
  out = nlohmann::json::from_cbor(body, true, false);
  return out.is_discarded() || !out.is_object() ? ReadStatus::closed : ReadStatus::ok;
}

const char* signal_abbrev(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGKILL: return "SIGKILL";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGPIPE: return "SIGPIPE";
    default: return nullptr;
  }
}

std::string self_executable() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "/proc/self/exe";
  buf[n] = '\0';
  return buf;
}

// The child must not take itself for an MPI rank: no launcher variables.
bool mpi_variable(const char* entry) {
  for (const char* prefix : {"OMPI_", "PMIX_", "PMI_", "OPAL_", "ORTE_", "PRTE_", "HYDRA_", "MPI_LOCALRANKID=",
                             "MPI_LOCALNRANKS=", "DIFFSEARCH_CHILD_GENERATION="}) {
    if (std::strncmp(entry, prefix, std::strlen(prefix)) == 0) return true;
  }
  return false;
}

nlohmann::json error_message(FailureKind kind, const std::string& message) {
  return {{"t", "error"}, {"kind", failure_kind_name(kind)}, {"message", message}};
}

nlohmann::json run_to_json(const worker::RunMeasurement& r) {
  return {{"batch_times_s", r.batch_times_s}, {"total_s", r.total_s}, {"macs", r.macs},
          {"peak_bytes", r.peak_bytes}, {"clip", r.clip}, {"clip_mean", r.clip_mean}};
}

worker::RunMeasurement run_from_json(const nlohmann::json& j) {
  worker::RunMeasurement r;
  r.batch_times_s = j.at("batch_times_s").get<std::vector<double>>();
  r.total_s = j.at("total_s").get<double>();
  r.macs = j.at("macs").get<int64_t>();
  r.peak_bytes = j.at("peak_bytes").get<int64_t>();
  r.clip = j.at("clip").get<std::vector<double>>();
  r.clip_mean = j.at("clip_mean").get<double>();
  return r;
}

}  // namespace

nlohmann::json unit_to_json(const worker::MeasurementUnit& u) {
  nlohmann::json setting = nlohmann::json::array();
  for (const auto& m : u.setting) setting.push_back({{"m", partition::method_slug(m.method)}, {"p", m.params}});
  return {{"unit_key", u.unit_key}, {"model", static_cast<int>(u.model)}, {"model_dir", u.model_dir},
          {"clip_dir", u.clip_dir}, {"sampler", static_cast<int>(u.sampler)}, {"steps", u.steps},
          {"height", u.height}, {"width", u.width}, {"prompts", u.prompts}, {"first_prompt", u.first_prompt},
          {"seed", u.seed}, {"batch_size", u.batch_size}, {"guidance", u.guidance}, {"setting", setting},
          {"dtype", u.dtype}, {"device", u.device}};
}

worker::MeasurementUnit unit_from_json(const nlohmann::json& j) {
  worker::MeasurementUnit u;
  u.unit_key = j.at("unit_key").get<std::string>();
  u.model = static_cast<partition::Model>(j.at("model").get<int>());
  u.model_dir = j.at("model_dir").get<std::string>();
  u.clip_dir = j.at("clip_dir").get<std::string>();
  u.sampler = static_cast<partition::SamplerKind>(j.at("sampler").get<int>());
  u.steps = j.at("steps").get<int>();
  u.height = j.at("height").get<int>();
  u.width = j.at("width").get<int>();
  u.prompts = j.at("prompts").get<std::vector<std::string>>();
  u.first_prompt = j.at("first_prompt").get<int>();
  u.seed = j.at("seed").get<uint64_t>();
  u.batch_size = j.at("batch_size").get<int>();
  u.guidance = j.at("guidance").get<double>();
  for (const auto& m : j.at("setting")) {
    const auto method = partition::find_method(m.at("m").get<std::string>());
    DIFFSEARCH_ASSERT(method.has_value());  // both ends are this executable
    u.setting.push_back({*method, m.at("p")});
  }
  u.dtype = j.at("dtype").get<std::string>();
  u.device = j.at("device").get<std::string>();
  return u;
}

// Every field of worker::EvaluationRecord: one added there must be added here.
nlohmann::json record_to_json(const worker::EvaluationRecord& r) {
  return {{"base", run_to_json(r.base)}, {"acc", run_to_json(r.acc)}, {"speedup", r.speedup},
          {"speedup_macs", r.speedup_macs}, {"score_loss", r.score_loss}, {"psnr", r.psnr}, {"ssim", r.ssim},
          {"psnr_mean", r.psnr_mean}, {"ssim_mean", r.ssim_mean}, {"device_name", r.device_name},
          {"simulated_seconds", r.simulated_seconds}, {"batch_size", r.batch_size}};
}

worker::EvaluationRecord record_from_json(const nlohmann::json& j) {
  worker::EvaluationRecord r;
  r.base = run_from_json(j.at("base"));
  r.acc = run_from_json(j.at("acc"));
  r.speedup = j.at("speedup").get<double>();
  r.speedup_macs = j.at("speedup_macs").get<double>();
  r.score_loss = j.at("score_loss").get<double>();
  r.psnr = j.at("psnr").get<std::vector<double>>();
  r.ssim = j.at("ssim").get<std::vector<double>>();
  r.psnr_mean = j.at("psnr_mean").get<double>();
  r.ssim_mean = j.at("ssim_mean").get<double>();
  r.device_name = j.at("device_name").get<std::string>();
  r.simulated_seconds = j.at("simulated_seconds").get<double>();
  r.batch_size = j.at("batch_size").get<int>();
  return r;
}

std::string describe_exit_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = signal_abbrev(sig);
    return "killed by signal " + std::to_string(sig) + " (" + (abbrev ? abbrev : strsignal(sig)) + ")" +
           (WCOREDUMP(status) ? ", core dumped" : "");
  }
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  return "ended with wait status " + std::to_string(status);
}

ChildProcessEvaluator::ChildProcessEvaluator(ChildOptions options) : options_(std::move(options)) {
  if (options_.command.empty()) options_.command = {self_executable(), "worker-child"};
}

ChildProcessEvaluator::~ChildProcessEvaluator() { stop_child(false); }

std::string ChildProcessEvaluator::reap() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  hello_ = false;
  if (pid_ < 0) return "gone";
  int status = 0;
  const double give_up = steady_s() + kReapWaitS;
  pid_t r = 0;
  while ((r = ::waitpid(pid_, &status, WNOHANG)) == 0 && steady_s() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (r == 0) {  // closed its socket yet lives on: it is no use any more
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  return r < 0 ? "gone (not our child any more)" : describe_exit_status(status);
}

void ChildProcessEvaluator::stop_child(bool kill_now) {
  if (pid_ < 0) return;
  if (kill_now) ::kill(pid_, SIGKILL);
  reap();  // closing the socket asks a healthy child to exit
}

bool ChildProcessEvaluator::start_child(std::string* failure, FailureKind* kind) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    *failure = std::string("cannot create a socket pair: ") + std::strerror(errno);
    *kind = FailureKind::transient;
    return false;
  }
  if (sv[1] == kChildFd) {  // dup2 onto itself would keep close-on-exec
    const int moved = ::fcntl(sv[1], F_DUPFD_CLOEXEC, kChildFd + 1);
    ::close(sv[1]);
    sv[1] = moved;
  }
  ++generation_;
  std::vector<std::string> args = options_.command;
  for (const std::string& a : {std::string("--evaluator"), options_.evaluator, std::string("--rank"),
                               std::to_string(options_.rank), std::string("--device"), options_.device,
                               std::string("--fd"), std::to_string(kChildFd), std::string("--parent"),
                               std::to_string(::getpid())}) {
    args.push_back(a);
  }
  if (!options_.log_level.empty()) {
    args.push_back("--log-level");
    args.push_back(options_.log_level);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    if (!mpi_variable(*e)) env_strings.emplace_back(*e);
  }
  env_strings.push_back("DIFFSEARCH_CHILD_GENERATION=" + std::to_string(generation_));
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sv[1], kChildFd);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Only the socket: the rank's MPI and file descriptors stay its own.
  posix_spawn_file_actions_addclosefrom_np(&actions, kChildFd + 1);
#endif
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  // posix_spawn, not fork(): no copy of an MPI process's address space and
  // registered memory, and nothing runs between the clone and the exec.
  const int rc = ::posix_spawn(&pid, args[0].c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(sv[1]);
  if (rc != 0) {
    ::close(sv[0]);
    *failure = "cannot start " + args[0] + ": " + std::strerror(rc);
    *kind = FailureKind::transient;
    return false;
  }
  pid_ = pid;
  fd_ = sv[0];
  nlohmann::json hello;
  const ReadStatus s = read_message(fd_, steady_s() + options_.load_deadline_s, hello);
  if (s == ReadStatus::ok && hello.value("t", "") == "hello") {
    gpu_ = hello.value("gpu", options_.device);
    timing_ = hello.value("timing", "");
    hello_ = true;
    log::debug("worker child " + std::to_string(generation_) + " (pid " + std::to_string(pid_) + ") ready");
    return true;
  }
  const std::string who = "worker child " + std::to_string(generation_) + " (pid " + std::to_string(pid_) + ")";
  if (s == ReadStatus::ok && hello.value("t", "") == "error") {
    *kind = parse_failure_kind(hello.value("kind", "transient"));
    *failure = hello.value("message", "");
    reap();
    return false;
  }
  *kind = FailureKind::device_fault;
  if (s == ReadStatus::timeout) {
    stop_child(true);
    *failure = who + " did not finish loading within " + format_duration(options_.load_deadline_s) + ": killed";
  } else {
    *failure = who + " died while loading: " + reap();
  }
  return false;
}

std::optional<std::string> ChildProcessEvaluator::ensure_child() {
  if (pid_ >= 0 && hello_) return std::nullopt;
  if (!gave_up_.empty()) return gave_up_;  // this device is done: no more starts
  stop_child(true);
  while (true) {
    std::string failure;
    FailureKind kind = FailureKind::transient;
    if (start_child(&failure, &kind)) {
      load_failures_ = 0;
      return std::nullopt;
    }
    // A wrong --evaluator spec fails on every device alike.
    if (kind == FailureKind::bad_input) throw InputError(failure);
    ++load_failures_;
    log::warn("rank " + std::to_string(options_.rank) + ": " + failure + " (" + std::to_string(load_failures_) +
              " of " + std::to_string(options_.max_load_failures) + " failed starts in a row)");
    if (load_failures_ >= options_.max_load_failures) {
      gave_up_ = "its worker child failed to start " + std::to_string(load_failures_) + " times in a row (last: " +
                 failure + ")";
      return gave_up_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100 * load_failures_));
  }
}

worker::EvaluationRecord ChildProcessEvaluator::evaluate(const worker::MeasurementUnit& unit) {
  if (auto reason = ensure_child()) throw ClassifiedError(FailureKind::device_fault, *reason);
  const std::string who = "worker child " + std::to_string(generation_) + " (pid " + std::to_string(pid_) +
                          ") of rank " + std::to_string(options_.rank);
  nlohmann::json answer;
  ReadStatus s = ReadStatus::closed;
  if (send_message(fd_, {{"t", "unit"}, {"unit", unit_to_json(unit)}})) {
    s = read_message(fd_, steady_s() + options_.deadline_s, answer);
  }
  if (s == ReadStatus::timeout) {
    stop_child(true);
    const std::string message = who + " gave no answer within the unit deadline (" +
                                format_duration(options_.deadline_s) + "): killed (SIGKILL) and replaced";
    log::warn(message);
    throw ClassifiedError(FailureKind::device_fault, message);
  }
  if (s == ReadStatus::closed) {
    const std::string message = who + " died during the unit: " + reap();
    log::warn(message + "; starting a fresh one");
    throw ClassifiedError(FailureKind::device_fault, message);
  }
  const std::string type = answer.value("t", "");
  if (type == "record") {
    try {
      return record_from_json(answer.at("record"));
    } catch (const nlohmann::json::exception& e) {
      stop_child(true);
      throw ClassifiedError(FailureKind::device_fault, who + " sent a malformed record: " + e.what());
    }
  }
  const FailureKind kind = parse_failure_kind(answer.value("kind", "transient"));
  const std::string message = answer.value("message", "the worker child sent \"" + type + "\"");
  if (kind == FailureKind::device_fault || type != "error") {
    // The child exits after a device fault: its context is poisoned.
    log::warn(who + " reported a device fault; replacing it: " + reap());
  }
  throw ClassifiedError(kind == FailureKind::none ? FailureKind::transient : kind, message);
}

std::string ChildProcessEvaluator::gpu_name(const std::string& device) { return hello_ ? gpu_ : device; }

std::string ChildProcessEvaluator::timing(const std::string& device) { return hello_ ? timing_ : ""; }

std::unique_ptr<worker::Evaluator> make_worker_evaluator(const SearchOptions& options, int rank,
                                                         const std::string& device) {
  if (!options.isolate) return make_evaluator(options.evaluator, rank);
  ChildOptions c;
  c.evaluator = options.evaluator;
  c.rank = rank;
  c.device = device;
  c.deadline_s = options.unit_deadline_s;
  c.load_deadline_s = std::max(120.0, options.unit_deadline_s);
  c.log_level = log::level_name(log::level());
  return std::make_unique<ChildProcessEvaluator>(std::move(c));
}

std::optional<std::string> worker_unavailable(worker::Evaluator& evaluator) {
  auto* child = dynamic_cast<ChildProcessEvaluator*>(&evaluator);
  return child ? child->ensure_child() : std::nullopt;
}

int serve_evaluator_child(const std::string& spec, int rank, const std::string& device, int fd, pid_t parent) {
  // Dies with the worker (a kill -9 of the rank must not leave a GPU busy).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent > 0 && ::getppid() != parent) return exit_code::failed;
  // Stop signals are the worker's to handle: it lets the unit in flight end.
  for (int sig : {SIGINT, SIGTERM, SIGUSR1, SIGPIPE}) ::signal(sig, SIG_IGN);
  log::set_context("rank " + std::to_string(rank) + " child@" + host_name());
  std::unique_ptr<worker::Evaluator> evaluator;
  try {
    evaluator = make_evaluator(spec, rank);
    if (!send_message(fd, {{"t", "hello"}, {"gpu", evaluator->gpu_name(device)},
                           {"timing", evaluator->timing(device)}})) {
      return exit_code::failed;
    }
  } catch (const std::exception& e) {
    send_message(fd, error_message(classify_failure(e), e.what()));
    return exit_code::failed;
  }
  while (true) {
    nlohmann::json request;
    if (read_message(fd, std::numeric_limits<double>::infinity(), request) != ReadStatus::ok) return exit_code::ok;
    if (request.value("t", "") != "unit") continue;
    FailureKind kind = FailureKind::none;
    std::string message;
    try {
      const worker::EvaluationRecord record = evaluator->evaluate(unit_from_json(request.at("unit")));
      if (!send_message(fd, {{"t", "record"}, {"record", record_to_json(record)}})) return exit_code::failed;
      continue;
    } catch (const std::exception& e) {
      kind = classify_failure(e);
      message = e.what();
    }
    if (!send_message(fd, error_message(kind, message))) return exit_code::failed;
    if (kind == FailureKind::device_fault) {
      // A sticky CUDA error poisons the context; tearing it down may hang.
      std::fflush(stderr);
      std::_Exit(4);
    }
  }
}

}  // namespace diffsearch::coordinator
