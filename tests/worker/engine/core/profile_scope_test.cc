// The engine's profiler regions (profile_scope.h): a whole sample, observed
// through RecordFunction's callbacks as the profiler observes it, opens the
// named regions scripts/trace_summary.py sums by, nested as the model is.
#include "worker/engine/core/profile_scope.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "tests/support/engine/pipeline_fixtures.h"
#include "worker/engine/accel/accel.h"
#include "worker/engine/pipeline/sample_runner.h"

namespace diffsearch::engine {
namespace {

// "parent>child" for every user region opened, and how deep regions nest.
thread_local std::vector<std::string> open_regions;
thread_local std::set<std::string> seen;

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  seen.insert((open_regions.empty() ? std::string() : open_regions.back()) + ">" + name);
  open_regions.push_back(name);
  return nullptr;
}

void on_exit(const at::RecordFunction&, at::ObserverContext*) { open_regions.pop_back(); }

TEST(ProfileScope, ASampleOpensTheRegionsTheSummaryNames) {
  const Pipeline& pipeline = testing::cached_pipeline("tiny-sd15", c10::kDouble);
  SampleRunner runner(pipeline, /*use_graphs=*/false);
  SampleRequest r;
  r.prompts = {"a red bicycle"};
  r.steps = 2;
  const std::vector<AccelSpec> specs = {parse_accel_spec("tome:ratio=0.5,use_rand=false")};

  seen.clear();
  open_regions.clear();
  const auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(on_enter, on_exit).scopes({at::RecordScope::USER_SCOPE}));
  runner.run(r, specs, 0);
  at::removeCallback(handle);
  EXPECT_TRUE(open_regions.empty()) << "every region closed";

  for (const char* edge : {">text_encode", ">unet", ">cfg", ">sampler", ">vae_decode", "unet>embed",
                           "unet>conv_in", "unet>down.0", "unet>mid", "unet>up.0", "unet>head",
                           "down.0>resnet", "down.0>transformer", "transformer>transformer_begin",
                           "transformer>attn1", "transformer>attn2", "transformer>ff", "attn1>sdpa",
                           "attn1>tome_merge", "attn1>tome_unmerge", "vae_decode>resnet",
                           "vae_decode>vae_attention"}) {
    EXPECT_TRUE(seen.count(edge)) << edge;
  }
  // Outside a profiler nothing is recorded: the callback is gone.
  seen.clear();
  runner.run(r, {}, 0);
  EXPECT_TRUE(seen.empty());
}

}  // namespace
}  // namespace diffsearch::engine
