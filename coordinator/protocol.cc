// Encoding the protocol's messages as CBOR maps with a type field, and moving
// them over MPI (probe, then receive exactly the probed size).
#include "coordinator/protocol.h"

#include <mpi.h>

#include <stdexcept>

namespace diffsearch::coordinator::protocol {
namespace {

constexpr int kTag = 7;

struct ToJson {
  nlohmann::json operator()(const Ready& m) const {
    return {{"t", "ready"}, {"host", m.host}, {"device", m.device}, {"gpu", m.gpu}, {"timing", m.timing}};
  }
  nlohmann::json operator()(const Work& m) const {
    return {{"t", "work"},
            {"id", m.id},
            {"space", m.space == partition::kNoSpace ? -1 : static_cast<int64_t>(m.space)},
            {"index", m.index},
            {"baseline", m.baseline},
            {"begin", m.prompt_begin},
            {"end", m.prompt_end},
            {"attempt", m.attempt},
            {"batch", m.batch}};
  }
  nlohmann::json operator()(const Result& m) const {
    return {{"t", "result"}, {"id", m.id}, {"oom", m.out_of_memory}, {"row", m.row.to_json()}};
  }
  nlohmann::json operator()(const Stop& m) const { return {{"t", "stop"}, {"code", m.code}}; }
  nlohmann::json operator()(const Retire& m) const {
    return {{"t", "retire"}, {"id", m.id}, {"reason", m.reason}, {"bad_input", m.bad_input}};
  }
};

Message from_bytes(const std::vector<uint8_t>& bytes) { return decode(bytes); }

}  // namespace

std::vector<uint8_t> encode(const Message& message) { return nlohmann::json::to_cbor(std::visit(ToJson{}, message)); }

Message decode(const std::vector<uint8_t>& bytes) {
  try {
    const nlohmann::json j = nlohmann::json::from_cbor(bytes);
    const std::string type = j.at("t").get<std::string>();
    if (type == "ready") {
      return Ready{j.at("host").get<std::string>(), j.at("device").get<std::string>(), j.at("gpu").get<std::string>(),
                   j.at("timing").get<std::string>()};
    }
    if (type == "work") {
      Work w;
      w.id = j.at("id").get<std::size_t>();
      const auto space = j.at("space").get<int64_t>();
      w.space = space < 0 ? partition::kNoSpace : static_cast<std::size_t>(space);
      w.index = j.at("index").get<uint64_t>();
      w.baseline = j.at("baseline").get<std::size_t>();
      w.prompt_begin = j.at("begin").get<int>();
      w.prompt_end = j.at("end").get<int>();
      w.attempt = j.at("attempt").get<int>();
      w.batch = j.at("batch").get<int>();
      return w;
    }
    if (type == "result") {
      return Result{j.at("id").get<std::size_t>(), j.at("oom").get<bool>(), io::EvaluationRow::from_json(j.at("row"))};
    }
    if (type == "stop") return Stop{j.at("code").get<int>()};
    if (type == "retire") {
      return Retire{j.at("id").get<long>(), j.at("reason").get<std::string>(), j.at("bad_input").get<bool>()};
    }
    throw std::runtime_error("unknown message type \"" + type + "\"");
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("malformed search protocol message: ") + e.what());
  }
}

WorkItem work_item(const partition::Plan& plan, const Work& work) {
  if (work.baseline >= plan.baselines.size() ||
      (work.space != partition::kNoSpace && (work.space >= plan.spaces.size() || work.index >= plan.spaces[work.space].size))) {
    throw std::runtime_error("a work message names an item outside the plan (space " + std::to_string(work.space) +
                             ", index " + std::to_string(work.index) + "): do all ranks run the same command?");
  }
  return make_work_item(plan, work.space, work.index, work.baseline, work.prompt_begin, work.prompt_end);
}

void send(const Message& message, int dest) {
  const auto bytes = encode(message);
  MPI_Send(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, dest, kTag, MPI_COMM_WORLD);
}

namespace {
Message receive_probed(const MPI_Status& probed, int* from) {
  int count = 0;
  MPI_Get_count(&probed, MPI_BYTE, &count);
  std::vector<uint8_t> bytes(static_cast<std::size_t>(count));
  MPI_Recv(bytes.data(), count, MPI_BYTE, probed.MPI_SOURCE, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  if (from) *from = probed.MPI_SOURCE;
  return from_bytes(bytes);
}
}  // namespace

Message receive(int source, int* from) {
  MPI_Status status;
  MPI_Probe(source, kTag, MPI_COMM_WORLD, &status);
  return receive_probed(status, from);
}

bool try_receive(Message& message, int& from) {
  int flag = 0;
  MPI_Status status;
  MPI_Iprobe(MPI_ANY_SOURCE, kTag, MPI_COMM_WORLD, &flag, &status);
  if (!flag) return false;
  message = receive_probed(status, &from);
  return true;
}

}  // namespace diffsearch::coordinator::protocol
