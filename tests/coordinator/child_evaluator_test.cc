// The worker child's parent side without the diffsearch executable: units and
// records survive the wire (NaN included), exit statuses are named, and
// children that die or hang while starting are bounded and killed. Children
// that die mid-unit are tested under mpirun (tests/cli/search_isolation_e2e_test.cc).
#include "coordinator/child_evaluator.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>

#include "io/error.h"

namespace diffsearch::coordinator {
namespace {

TEST(ChildEvaluatorTest, UnitAndRecordRoundTripTheWire) {
  worker::MeasurementUnit u;
  u.unit_key = "sd15/ddim/20/512px/deepcache+tome/{...}";
  u.model = partition::Model::SDXL;
  u.model_dir = "/models/sdxl";
  u.clip_dir = "/models/clip";
  u.sampler = partition::SamplerKind::UniPC;
  u.steps = 25;
  u.height = 768;
  u.width = 1024;
  u.prompts = {"a cat", "\"quoted\" \xc3\xa9"};
  u.first_prompt = 4;
  u.seed = 1234567890123ull;
  u.batch_size = 3;
  u.guidance = 5.5;
  u.setting = {{partition::Method::DeepCache, {{"cache_interval", 3}, {"cache_branch_id", 0}}},
               {partition::Method::ToMe, {{"ratio", 0.5}, {"use_rand", false}}}};
  u.dtype = "float16";
  u.device = "cuda:1";
  const auto back = unit_from_json(nlohmann::json::from_cbor(nlohmann::json::to_cbor(unit_to_json(u))));
  EXPECT_EQ(unit_to_json(back), unit_to_json(u));
  EXPECT_EQ(partition::setting_key(back.setting), partition::setting_key(u.setting));
  EXPECT_EQ(back.model, u.model);
  EXPECT_EQ(back.sampler, u.sampler);

  worker::EvaluationRecord r;
  r.base.batch_times_s = {0.5, 0.25};
  r.base.total_s = 0.75;
  r.base.macs = 123456789012345;
  r.base.peak_bytes = 1 << 30;
  r.base.clip = {30.5, 31.25};
  r.base.clip_mean = 30.875;
  r.acc = r.base;
  r.acc.total_s = 0.25;
  r.speedup = 3;
  r.speedup_macs = 2.5;
  r.score_loss = 0.01;
  r.psnr = {35, std::nan("")};
  r.ssim = {0.9, 0.8};
  r.psnr_mean = 35;
  r.ssim_mean = 0.85;
  r.device_name = "NVIDIA H200";
  const auto rb = record_from_json(nlohmann::json::from_cbor(nlohmann::json::to_cbor(record_to_json(r))));
  EXPECT_EQ(rb.base.batch_times_s, r.base.batch_times_s);
  EXPECT_EQ(rb.acc.total_s, 0.25);
  EXPECT_EQ(rb.base.macs, r.base.macs);
  EXPECT_EQ(rb.base.clip, r.base.clip);
  EXPECT_EQ(rb.speedup, 3);
  EXPECT_EQ(rb.speedup_macs, 2.5);
  EXPECT_EQ(rb.psnr[0], 35);
  EXPECT_TRUE(std::isnan(rb.psnr[1])) << "CBOR keeps NaN";
  EXPECT_TRUE(std::isnan(rb.simulated_seconds)) << "NaN: the search times the evaluation";
  EXPECT_EQ(rb.device_name, "NVIDIA H200");
}

TEST(ChildEvaluatorTest, ExitStatusesAreNamed) {
  EXPECT_EQ(describe_exit_status(SIGKILL), "killed by signal 9 (SIGKILL)");  // a wait status of a signal
  EXPECT_EQ(describe_exit_status(SIGSEGV), "killed by signal 11 (SIGSEGV)");
  EXPECT_EQ(describe_exit_status(3 << 8), "exited with code 3");
}

ChildOptions shell_child(const std::string& script) {
  ChildOptions o;
  o.evaluator = "fake";
  o.rank = 2;
  // The options appended to the command become the script's $0, $1, ...
  o.command = {"/bin/sh", "-c", script};
  o.load_deadline_s = 30;
  return o;
}

TEST(ChildEvaluatorTest, ChildrenThatCannotStartAreBoundedWithTheCause) {
  ChildProcessEvaluator exits(shell_child("exit 3"));
  auto reason = exits.ensure_child();
  ASSERT_TRUE(reason.has_value());
  EXPECT_NE(reason->find("failed to start 3 times in a row"), std::string::npos) << *reason;
  EXPECT_NE(reason->find("died while loading: exited with code 3"), std::string::npos) << *reason;
  EXPECT_EQ(exits.children_started(), 3);
  // Evaluating needs a child: a device fault, not a crash of the caller.
  try {
    exits.evaluate(worker::MeasurementUnit{});
    FAIL() << "no child, no record";
  } catch (const ClassifiedError& e) {
    EXPECT_EQ(e.kind(), FailureKind::device_fault);
  }

  ChildOptions segv = shell_child("kill -SEGV $$");
  segv.max_load_failures = 1;
  ChildProcessEvaluator crashes(segv);
  reason = crashes.ensure_child();
  ASSERT_TRUE(reason.has_value());
  EXPECT_NE(reason->find("killed by signal 11 (SIGSEGV)"), std::string::npos) << *reason;
  EXPECT_EQ(crashes.children_started(), 1);
  EXPECT_EQ(crashes.gpu_name("cuda:0"), "cuda:0") << "no hello: the device itself";
}

TEST(ChildEvaluatorTest, ChildHungWhileStartingIsKilled) {
  ChildOptions o = shell_child("exec sleep 60");
  o.load_deadline_s = 0.3;
  o.max_load_failures = 1;
  ChildProcessEvaluator hung(o);
  const auto start = std::chrono::steady_clock::now();
  const auto reason = hung.ensure_child();
  ASSERT_TRUE(reason.has_value());
  EXPECT_NE(reason->find("did not finish loading within 0.3s: killed"), std::string::npos) << *reason;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(hung.child_pid(), -1) << "reaped";
}

}  // namespace
}  // namespace diffsearch::coordinator
