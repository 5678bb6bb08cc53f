// Canonical keys read back into the tasks they name: every key of every
// grid, platforms with odd characters, and keys that are not canonical.
#include <gtest/gtest.h>

#include "io/error.h"
#include "partition/grid.h"
#include "partition/original_tasks.h"
#include "partition/task.h"

namespace diffsearch::partition {
namespace {

TEST(TaskKeyParse, EveryGridKeyRoundTrips) {
  for (int category = 1; category <= 5; ++category) {
    for (const auto& task : make_grid(category)) {
      const std::string key = task_key(task);
      const Task back = parse_task_key(key);
      EXPECT_EQ(back, task) << key;
      EXPECT_EQ(task_key(back), key);
    }
  }
}

TEST(TaskKeyParse, HandMadeTasks) {
  Task t;
  t.model = Model::SDXL;
  t.sampler = SamplerKind::UniPC;
  t.steps = 1000;
  t.methods = {Method::DeepCache, Method::TGate, Method::ToMe};
  t.max_score_loss = 1e-05;
  EXPECT_EQ(parse_task_key(task_key(t)), t) << task_key(t);
  t.latency_s = 0.25;
  t.platform = "Odd/GPU_name 100% (x)";
  EXPECT_EQ(parse_task_key(task_key(t)), t) << task_key(t);
  t.methods.clear();
  t.max_score_loss = kDefaultMaxScoreLoss;  // a basic task has no bound, its key none
  EXPECT_EQ(parse_task_key(task_key(t)), t) << task_key(t);
  t.latency_s.reset();
  t.platform.reset();
  t.speedup = 2.5;
  t.methods = {Method::ToMe};
  t.max_score_loss = 1e-05;
  EXPECT_EQ(parse_task_key("sdxl/unipc/1000/tome/x2.5/loss1e-05"), t);
}

TEST(TaskKeyParse, RefusesWhatIsNotACanonicalKey) {
  for (const char* key : {"", "sd15", "sd15/ddim/50", "sd99/ddim/50/basic", "sd15/euler/50/basic",
                          "sd15/ddim/fifty/basic", "sd15/ddim/50/fastcache/x2.0/loss0.02",
                          "sd15/ddim/50/deepcache/y2.0/loss0.02", "sd15/ddim/50/deepcache/x2/loss0.02",
                          "sd15/ddim/50/deepcache/loss0.02", "sd15/ddim/50/tome+deepcache/max/loss0.02",
                          "sd15/ddim/50/tome+tome/max/loss0.02",
                          "sd15/ddim/50/deepcache/max/loss0.02/extra", "sd15/ddim/50/basic/lat1.0s@",
                          "sd15/ddim/50/basic/lat1.0s@bad%zz", "SD1.5/ddim/50/basic"}) {
    try {
      parse_task_key(key);
      ADD_FAILURE() << "accepted " << key;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("\"") + key + "\""), std::string::npos) << e.what();
    }
  }
}

// The original code generator's five tasks: SD1.5, DeepCache on the three
// samplers at 50 steps, ToMe on DDIM, T-GATE on DPM-Solver++ at 20 steps.
TEST(OriginalTasks, AreTheOriginalGeneratorsFive) {
  std::vector<std::string> keys;
  for (const auto& t : original_tasks()) keys.push_back(task_key(t));
  EXPECT_EQ(keys, (std::vector<std::string>{"sd15/ddim/50/deepcache/x3.04/loss0.02",
                                            "sd15/dpmsolver++/50/deepcache/x3.05/loss0.02",
                                            "sd15/unipc/50/deepcache/x3.04/loss0.02", "sd15/ddim/50/tome/x1.3/loss0.02",
                                            "sd15/dpmsolver++/20/tgate/x1.44/loss0.02"}));
}

}  // namespace
}  // namespace diffsearch::partition
