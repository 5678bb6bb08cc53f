// The search protocol's messages survive encoding, and bytes that are not a
// message are refused with a clear error rather than misread.
#include "coordinator/protocol.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace diffsearch::coordinator::protocol {
namespace {

TEST(Protocol, MessagesRoundTrip) {
  Work w;
  w.id = 42;
  w.space = 3;
  w.index = 1234567890123ull;
  w.baseline = 2;
  w.prompt_begin = 8;
  w.prompt_end = 16;
  w.attempt = 2;
  w.batch = 4;
  const auto back = std::get<Work>(decode(encode(w)));
  EXPECT_EQ(back.id, 42u);
  EXPECT_EQ(back.space, 3u);
  EXPECT_EQ(back.index, 1234567890123ull);
  EXPECT_EQ(back.prompt_begin, 8);
  EXPECT_EQ(back.prompt_end, 16);
  EXPECT_EQ(back.attempt, 2);
  EXPECT_EQ(back.batch, 4);

  Work baseline;
  baseline.space = partition::kNoSpace;
  EXPECT_EQ(std::get<Work>(decode(encode(baseline))).space, partition::kNoSpace);

  Result r;
  r.id = 7;
  r.out_of_memory = true;
  r.row.unit_key = "sd15/ddim/20/512px/deepcache/{}";
  r.row.prompt_begin = 4;
  r.row.prompt_end = 8;
  r.row.gpu_seconds = 1.5;
  r.row.error = std::string("bytes \0 and \xff", 13);
  const auto rb = std::get<Result>(decode(encode(r)));
  EXPECT_EQ(rb.id, 7u);
  EXPECT_TRUE(rb.out_of_memory);
  EXPECT_EQ(rb.row.unit_key, r.row.unit_key);
  EXPECT_EQ(rb.row.prompt_end, 8);
  EXPECT_EQ(rb.row.gpu_seconds, 1.5);

  const auto ready = std::get<Ready>(decode(encode(Ready{"node01", "cuda:1", "NVIDIA H200", "CUDA graphs"})));
  EXPECT_EQ(ready.gpu, "NVIDIA H200");
  EXPECT_EQ(std::get<Stop>(decode(encode(Stop{75}))).code, 75);
  const auto retire = std::get<Retire>(decode(encode(Retire{42, "its worker child failed to start 3 times", true})));
  EXPECT_EQ(retire.id, 42);
  EXPECT_EQ(retire.reason, "its worker child failed to start 3 times");
  EXPECT_TRUE(retire.bad_input);
}

TEST(Protocol, GarbageIsRefused) {
  EXPECT_THROW(decode({0xff, 0x00, 0x13}), std::runtime_error);
  EXPECT_THROW(decode(nlohmann::json::to_cbor(nlohmann::json{{"t", "launch"}})), std::runtime_error);
  EXPECT_THROW(decode(nlohmann::json::to_cbor(nlohmann::json{{"t", "work"}, {"id", 1}})), std::runtime_error);
}

TEST(Protocol, WorkOutsideThePlanIsRefused) {
  partition::Plan plan;
  plan.baselines.push_back({partition::Model::SD15, partition::SamplerKind::DDIM, 20, 512, std::nullopt, 1.0});
  Work w;
  w.space = 5;
  EXPECT_THROW(work_item(plan, w), std::runtime_error);
  w.space = partition::kNoSpace;
  w.prompt_end = 4;
  const WorkItem item = work_item(plan, w);
  EXPECT_EQ(item.work_key(), plan.baselines[0].key() + "/{}#0:4");
}

}  // namespace
}  // namespace diffsearch::coordinator::protocol
