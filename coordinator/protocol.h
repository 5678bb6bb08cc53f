// The messages between rank 0 and the workers, typed: a worker says it is
// ready, asks nothing else; rank 0 sends work or stop; a worker returns each
// result, or retires when it cannot measure. CBOR on the wire (small, and binary-safe for error texts).
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "coordinator/work_item.h"
#include "io/result_store.h"

namespace diffsearch::coordinator::protocol {

struct Ready {  // worker -> rank 0, once
  std::string host, device, gpu, timing;
};
struct Work {  // rank 0 -> worker
  std::size_t id = 0;  // the scheduler's item, echoed in the result
  std::size_t space = partition::kNoSpace;
  uint64_t index = 0;
  std::size_t baseline = 0;
  int prompt_begin = 0, prompt_end = 0;
  int attempt = 1;
  int batch = 8;
};
struct Result {  // worker -> rank 0
  std::size_t id = 0;
  bool out_of_memory = false;
  io::EvaluationRow row;
};
struct Stop {  // rank 0 -> worker: the exit code the run ends with
  int code = 0;
};
// worker -> rank 0, instead of Ready or a Result: it cannot measure (its
// child failed to start too often) and asks for nothing more; it waits for
// Stop. `id`: the item it held, not attempted (-1: none). `bad_input`: the
// run's own input is wrong (an --evaluator spec no device can make).
struct Retire {
  long id = -1;
  std::string reason;
  bool bad_input = false;
};
using Message = std::variant<Ready, Work, Result, Stop, Retire>;

std::vector<uint8_t> encode(const Message& message);
// std::runtime_error for bytes that are not a message of this protocol.
Message decode(const std::vector<uint8_t>& bytes);

// The item a Work message names, rebuilt from the plan both sides share.
WorkItem work_item(const partition::Plan& plan, const Work& work);

// Over MPI_COMM_WORLD with the search's tag (MPI initialised by the caller).
void send(const Message& message, int dest);
// Blocks for the next message from `source` (MPI_ANY_SOURCE: anyone);
// `from` gets the sender.
Message receive(int source, int* from = nullptr);
// A message waiting from anyone, without blocking; false when none.
bool try_receive(Message& message, int& from);

}  // namespace diffsearch::coordinator::protocol
