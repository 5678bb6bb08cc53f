// `diffsearch worker-child` (hidden): the child process a search worker
// starts under --isolate on (coordinator/child_evaluator.h). Not for users:
// it speaks a binary protocol on an inherited socket and never starts MPI.
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/engine_evaluator.h"
#include "coordinator/child_evaluator.h"

namespace diffsearch::cli {
namespace {

struct ChildArgs {
  std::string evaluator = "engine";
  int rank = 0;
  std::string device = "cpu";
  int fd = -1;
  long parent = 0;
};

Runner setup_worker_child(CLI::App& sub) {
  auto a = std::make_shared<ChildArgs>();
  sub.group("");  // hidden from --help
  sub.add_option("--evaluator", a->evaluator)->required();
  sub.add_option("--rank", a->rank)->required();
  sub.add_option("--device", a->device)->required();
  sub.add_option("--fd", a->fd)->required();
  sub.add_option("--parent", a->parent);
  return [a]() {
    register_engine_evaluator();
    return coordinator::serve_evaluator_child(a->evaluator, a->rank, a->device, a->fd,
                                              static_cast<pid_t>(a->parent));
  };
}

DIFFSEARCH_COMMAND("worker-child", "A search worker's child process (internal)", setup_worker_child);

}  // namespace
}  // namespace diffsearch::cli
