// Tests of the task language: the five original sentences, aliases, bad
// sentences, canonical printing, keys, JSON and task files.
#include "partition/task.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "io/error.h"

namespace diffsearch::partition {
namespace {

const char* kSentences[5] = {
    "Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by DeepCache "
    "with 3.04x speedup and precision loss not exceeding 0.02",
    "Generate a SD1.5 pipeline using the DPM-Solver++ sampler with 50 steps, accelerated by "
    "DeepCache with 3.05x speedup and precision loss not exceeding 0.02",
    "Generate a SD1.5 pipeline using the UniPCMultistepScheduler sampler with 50 steps, "
    "accelerated by DeepCache with 3.04x speedup and precision loss not exceeding 0.02",
    "Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by ToMe with "
    "1.3x speedup and precision loss not exceeding 0.02",
    "Generate a SD1.5 pipeline using the DPM-Solver++ with 20 steps, accelerated by T-Gate with "
    "1.44x speedup and precision loss not exceeding 0.02",
};

void expect_task(const Task& t, SamplerKind sampler, int steps, Method method, double speedup) {
  EXPECT_EQ(t.model, Model::SD15);
  EXPECT_EQ(t.sampler, sampler);
  EXPECT_EQ(t.steps, steps);
  EXPECT_EQ(t.methods, std::vector<Method>{method});
  ASSERT_TRUE(t.speedup.has_value());
  EXPECT_EQ(*t.speedup, speedup);  // exactly the double the text names
  EXPECT_EQ(t.max_score_loss, 0.02);
  EXPECT_FALSE(t.latency_s.has_value());
  EXPECT_FALSE(t.platform.has_value());
  EXPECT_EQ(t.category(), 4);
}

TEST(TaskParse, FiveOriginalSentences) {
  expect_task(parse_task(kSentences[0]), SamplerKind::DDIM, 50, Method::DeepCache, 3.04);
  expect_task(parse_task(kSentences[1]), SamplerKind::DPMSolverPP, 50, Method::DeepCache, 3.05);
  expect_task(parse_task(kSentences[2]), SamplerKind::UniPC, 50, Method::DeepCache, 3.04);
  expect_task(parse_task(kSentences[3]), SamplerKind::DDIM, 50, Method::ToMe, 1.3);
  expect_task(parse_task(kSentences[4]), SamplerKind::DPMSolverPP, 20, Method::TGate, 1.44);
  EXPECT_EQ(task_key(parse_task(kSentences[0])), "sd15/ddim/50/deepcache/x3.04/loss0.02");
  EXPECT_EQ(task_key(parse_task(kSentences[1])), "sd15/dpmsolver++/50/deepcache/x3.05/loss0.02");
  EXPECT_EQ(task_key(parse_task(kSentences[2])), "sd15/unipc/50/deepcache/x3.04/loss0.02");
  EXPECT_EQ(task_key(parse_task(kSentences[3])), "sd15/ddim/50/tome/x1.3/loss0.02");
  EXPECT_EQ(task_key(parse_task(kSentences[4])), "sd15/dpmsolver++/20/tgate/x1.44/loss0.02");
}

TEST(TaskParse, CanonicalSentencesOfTheOriginalsAreTheOriginals) {
  // Four of the five are already canonical; the fifth lacks the word "sampler".
  for (int i = 0; i < 4; ++i) EXPECT_EQ(format_task(parse_task(kSentences[i])), kSentences[i]);
  EXPECT_EQ(format_task(parse_task(kSentences[4])),
            "Generate a SD1.5 pipeline using the DPM-Solver++ sampler with 20 steps, accelerated "
            "by T-Gate with 1.44x speedup and precision loss not exceeding 0.02");
}

TEST(TaskParse, Aliases) {
  const std::string tail = " pipeline using the DDIM sampler with 50 steps";
  for (const char* m : {"SD1.5", "sd15", "Stable Diffusion 1.5", "SD 1.5", "stable-diffusion-v1-5",
                        "runwayml/stable-diffusion-v1-5"}) {
    EXPECT_EQ(parse_task(std::string("Generate a ") + m + tail).model, Model::SD15) << m;
  }
  for (const char* m :
       {"SD2.1", "sd21", "SD 2.1", "Stable Diffusion 2.1", "stable-diffusion-2-1"}) {
    EXPECT_EQ(parse_task(std::string("Generate a ") + m + tail).model, Model::SD21) << m;
  }
  for (const char* m : {"SDXL", "sdxl", "stable-diffusion-xl", "Stable Diffusion XL",
                        "stabilityai/stable-diffusion-xl-base-1.0"}) {
    EXPECT_EQ(parse_task(std::string("Generate a ") + m + tail).model, Model::SDXL) << m;
  }
  const std::string head = "Generate a SD1.5 pipeline using the ";
  const std::vector<std::pair<const char*, SamplerKind>> samplers = {
      {"DDIM", SamplerKind::DDIM},
      {"ddim", SamplerKind::DDIM},
      {"DDIMScheduler", SamplerKind::DDIM},
      {"DPM-Solver++", SamplerKind::DPMSolverPP},
      {"DPMSolverMultistep", SamplerKind::DPMSolverPP},
      {"DPMSolverMultistepScheduler", SamplerKind::DPMSolverPP},
      {"dpmsolver++", SamplerKind::DPMSolverPP},
      {"UniPC", SamplerKind::UniPC},
      {"unipc", SamplerKind::UniPC},
      {"UniPCMultistepScheduler", SamplerKind::UniPC},
  };
  for (const auto& [name, kind] : samplers) {
    EXPECT_EQ(parse_task(head + name + " sampler with 20 steps").sampler, kind) << name;
    // The word "sampler" may be missing.
    EXPECT_EQ(parse_task(head + name + " with 20 steps").sampler, kind) << name;
  }
  const std::string mhead =
      "Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by ";
  const std::vector<std::pair<const char*, Method>> methods = {
      {"DeepCache", Method::DeepCache}, {"deepcache", Method::DeepCache}, {"T-Gate", Method::TGate},
      {"TGATE", Method::TGate},         {"tgate", Method::TGate},         {"ToMe", Method::ToMe},
      {"tome", Method::ToMe},           {"TOME", Method::ToMe},
  };
  for (const auto& [name, method] : methods) {
    EXPECT_EQ(parse_task(mhead + name).methods, std::vector<Method>{method}) << name;
  }
}

TEST(TaskParse, CombinationsInAnyOrderBecomeCanonical) {
  const std::string head =
      "Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by ";
  const std::vector<Method> all = {Method::DeepCache, Method::TGate, Method::ToMe};
  EXPECT_EQ(parse_task(head + "ToMe, T-Gate, and DeepCache").methods, all);
  EXPECT_EQ(parse_task(head + "DeepCache, T-Gate and ToMe").methods, all);
  EXPECT_EQ(parse_task(head + "DeepCache+TGATE+tome").methods, all);
  EXPECT_EQ(parse_task(head + "ToMe and DeepCache with 2x speedup").methods,
            (std::vector<Method>{Method::DeepCache, Method::ToMe}));
}

TEST(TaskParse, GoalsAndLoss) {
  const std::string head =
      "Generate a SDXL pipeline using the DDIM sampler with 50 steps, accelerated by DeepCache";
  Task t = parse_task(head + " with precision loss not exceeding 5%");
  EXPECT_FALSE(t.speedup.has_value());
  EXPECT_EQ(t.max_score_loss, 0.05);
  EXPECT_EQ(t.category(), 2);
  EXPECT_EQ(task_key(t), "sdxl/ddim/50/deepcache/max/loss0.05");

  t = parse_task(head +
                 " with 1.5s latency on \"NVIDIA H200\" and precision loss not exceeding 0.03");
  EXPECT_EQ(t.latency_s, 1.5);
  EXPECT_EQ(t.platform, std::string("NVIDIA H200"));
  EXPECT_EQ(t.max_score_loss, 0.03);
  EXPECT_EQ(t.category(), 5);
  EXPECT_EQ(task_key(t), "sdxl/ddim/50/deepcache/lat1.5s@NVIDIA_H200/loss0.03");

  // Unquoted platform and milliseconds.
  t = parse_task(
      head + " with 800ms latency on NVIDIA H100 80GB HBM3 and precision loss not exceeding 0.02.");
  EXPECT_EQ(t.latency_s, 0.8);
  EXPECT_EQ(t.platform, std::string("NVIDIA H100 80GB HBM3"));

  // Other wordings of the same goals.
  t = parse_task(head + " with 3.04x speedup, precision loss not exceeding 0.01");
  EXPECT_EQ(t.speedup, 3.04);
  EXPECT_EQ(t.max_score_loss, 0.01);
  t = parse_task(head + " with a 2 x speedup and a precision loss of at most 3%");
  EXPECT_EQ(t.speedup, 2.0);
  EXPECT_EQ(t.max_score_loss, 0.03);
  t = parse_task(head + " with speedup of 2.5x and score loss below 0.04.");
  EXPECT_EQ(t.speedup, 2.5);
  EXPECT_EQ(t.max_score_loss, 0.04);
  t = parse_task(head + " within 2 s on \"NVIDIA H200\"");
  EXPECT_EQ(t.latency_s, 2.0);

  t = parse_task("Generate a SD2.1 pipeline using the UniPC sampler with 25 steps");
  EXPECT_EQ(t.category(), 1);
  EXPECT_EQ(task_key(t), "sd21/unipc/25/basic");
  EXPECT_EQ(format_task(t),
            "Generate a SD2.1 pipeline using the UniPCMultistepScheduler sampler with 25 steps");
}

TEST(TaskParse, PlatformKeysAreDistinct) {
  EXPECT_NE(platform_key("A B"), platform_key("A_B"));
  EXPECT_EQ(platform_key("NVIDIA H100 80GB HBM3"), "NVIDIA_H100_80GB_HBM3");
  EXPECT_EQ(platform_key("a/b"), "a%2Fb");
}

struct Bad {
  std::string sentence;
  std::string word;  // the message must name it
};

TEST(TaskParse, BadSentencesNameTheOffendingWord) {
  const std::string ok = "Generate a SD1.5 pipeline using the DDIM sampler with 50 steps";
  const std::string acc = ok + ", accelerated by DeepCache";
  const std::vector<Bad> bad = {
      {"Generate a SD9 pipeline using the DDIM sampler with 50 steps", "\"SD9\""},
      {"Generate a SD1.5 pipeline using the Euler sampler with 50 steps", "\"Euler\""},
      {"Generate a SD1.5 pipeline using the DDIM sampler with 0 steps", "\"0\""},
      {"Generate a SD1.5 pipeline using the DDIM sampler with -5 steps", "\"-5\""},
      {"Generate a SD1.5 pipeline using the DDIM sampler with 100000 steps", "\"100000\""},
      {"Generate a SD1.5 pipeline using the DDIM sampler with 99999999999999999999 steps",
       "\"99999999999999999999\""},
      {"Generate a SD1.5 pipeline using the DDIM sampler with 2.5 steps", "\"2.5\""},
      {acc + " with 1x speedup", "\"1x\""},
      {acc + " with 1.0x speedup", "\"1.0x\""},
      {acc + " with 0.5x speedup", "\"0.5x\""},
      {acc + " with -3x speedup", "\"-3x\""},
      {acc + " with abcx speedup", "\"abcx\""},
      {acc + " with nanx speedup", "\"nanx\""},
      {acc + " with infx speedup", "\"infx\""},
      {acc + " with 2x speedup and precision loss not exceeding 1.5", "\"1.5\""},
      {acc + " with 2x speedup and precision loss not exceeding 0", "\"0\""},
      {acc + " with 2x speedup and precision loss not exceeding 1", "\"1\""},
      {acc + " with 2x speedup and precision loss not exceeding -0.1", "\"-0.1\""},
      {acc + " with 2x speedup and precision loss not exceeding lots", "\"lots\""},
      {"", "empty"},
      {"   \t ", "empty"},
      {acc + " with 2x speedup and precision loss not exceeding 0.02 please", "\"please\""},
      {ok + " banana", "\"banana\""},
      {ok + ", accelerated by Foo", "\"Foo\""},
      {ok + ", accelerated by DeepCache and DeepCache", "\"DeepCache\""},
      {ok + ", accelerated by DeepCache with 2x speedup and 3x speedup", "\"3x\""},
      {ok + " with 2x speedup", "\"2x\""},  // a speedup needs a method
      {ok + " with precision loss not exceeding 0.02", "\"0.02\""},
      {acc + " with 2x speedup with 1s latency on \"NVIDIA H200\"", "latency"},
      {acc + " with 1s latency on \"NVIDIA H200", "unclosed"},
      {acc + " with -1s latency on \"NVIDIA H200\"", "\"-1s\""},
      {acc + " with 1 latency on \"NVIDIA H200\"", "\"latency\""},
      {"Generate a pipeline using the DDIM sampler with 50 steps", "\"pipeline\""},
      {"Generate a SD1.5 pipeline using the DDIM sampler", "end of the sentence"},
      {"Generate a SD1.5 pipeline using the DDIM sampler with 50", "end of the sentence"},
      {"Generate a SD1.5 pipeline with 50 steps", "\"50\""},
  };
  for (const auto& b : bad) {
    try {
      parse_task(b.sentence);
      ADD_FAILURE() << "accepted: " << b.sentence;
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(b.word), std::string::npos) << "message: " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "multi-line message: " << msg;
    }
  }
}

TEST(TaskParse, NeverCrashesOnPrefixesOrWordSoup) {
  // Every prefix of a full sentence, and random word sequences from the
  // grammar's vocabulary, parse or throw InputError; nothing else.
  const std::string full = std::string(kSentences[0]);
  for (size_t n = 0; n <= full.size(); ++n) {
    try {
      parse_task(full.substr(0, n));
    } catch (const InputError&) {
    }
  }
  const std::vector<std::string> vocab = {
      "Generate",  "a",      "SD1.5",  "SDXL",    "pipeline", "using",       "the",  "DDIM",
      "sampler",   "with",   "50",     "steps",   ",",        "accelerated", "by",   "DeepCache",
      "and",       "ToMe",   "T-Gate", "3x",      "speedup",  "precision",   "loss", "not",
      "exceeding", "0.02",   "1.5s",   "latency", "on",       "\"GPU\"",     "+",    "x",
      ".",         "within", "\"",     "-",       "1e400",    "0x10"};
  std::mt19937 rng(1234);
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    const int len = static_cast<int>(rng() % 24);
    for (int k = 0; k < len; ++k) s += vocab[rng() % vocab.size()] + " ";
    try {
      const Task t = parse_task(s);
      EXPECT_EQ(parse_task(format_task(t)), t) << s;
    } catch (const InputError&) {
    }
  }
}

TEST(TaskFormat, RoundTripsHandMadeTasks) {
  std::vector<Task> tasks;
  Task t;
  t.model = Model::SDXL;
  t.sampler = SamplerKind::UniPC;
  t.steps = 7;
  tasks.push_back(t);
  t.latency_s = 0.125;
  t.platform = "NVIDIA GeForce RTX 4090";
  tasks.push_back(t);
  t.methods = {Method::TGate, Method::ToMe};
  t.max_score_loss = 0.1 + 0.2;  // needs all 17 digits
  tasks.push_back(t);
  t.latency_s.reset();
  t.platform.reset();
  t.speedup = 1.0000001;
  tasks.push_back(t);
  t.speedup.reset();
  tasks.push_back(t);
  for (const auto& task : tasks) {
    EXPECT_EQ(parse_task(format_task(task)), task) << format_task(task);
  }
}

TEST(TaskFormat, NumbersPrintLikePython) {
  EXPECT_EQ(format_number(2.0), "2.0");
  EXPECT_EQ(format_number(3.04), "3.04");
  EXPECT_EQ(format_number(1.2), "1.2");
  EXPECT_EQ(format_number(0.02), "0.02");
  EXPECT_EQ(format_number(100.0), "100.0");
  EXPECT_EQ(format_number(1234.5), "1234.5");
  EXPECT_EQ(format_number(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(format_number(0.0001), "0.0001");
  EXPECT_EQ(format_number(0.00001), "1e-05");
  EXPECT_EQ(format_number(1e16), "1e+16");
  EXPECT_EQ(format_number(1.5e16), "1.5e+16");
  EXPECT_EQ(format_number(123456789012345.0), "123456789012345.0");
  EXPECT_EQ(format_number(-2.5), "-2.5");
  EXPECT_EQ(format_number(0.0), "0.0");
}

TEST(TaskJson, HasExactlyTheIssuesFields) {
  const auto j = task_to_json(parse_task(kSentences[4]));
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys,
            (std::vector<std::string>{"category", "key", "latency_s", "max_score_loss", "methods",
                                      "model", "platform", "sampler", "speedup", "steps"}));
  EXPECT_EQ(j["key"], "sd15/dpmsolver++/20/tgate/x1.44/loss0.02");
  EXPECT_EQ(j["model"], "SD1.5");
  EXPECT_EQ(j["sampler"], "DPM-Solver++");
  EXPECT_EQ(j["steps"], 20);
  EXPECT_TRUE(j["steps"].is_number_integer());
  EXPECT_EQ(j["methods"], nlohmann::json::array({"T-Gate"}));
  EXPECT_EQ(j["speedup"], 1.44);
  EXPECT_EQ(j["max_score_loss"], 0.02);
  EXPECT_TRUE(j["latency_s"].is_null());
  EXPECT_TRUE(j["platform"].is_null());
  EXPECT_EQ(j["category"], 4);
  const auto basic = task_to_json(parse_task("Generate a SDXL pipeline using DDIM with 20 steps"));
  EXPECT_EQ(basic["methods"], nlohmann::json::array());
  EXPECT_TRUE(basic["speedup"].is_null());
  EXPECT_EQ(basic["category"], 1);
}

TEST(TaskNames, NamesAndSlugs) {
  EXPECT_EQ(model_name(Model::SD21), "SD2.1");
  EXPECT_EQ(model_slug(Model::SDXL), "sdxl");
  EXPECT_EQ(sampler_name(SamplerKind::UniPC), "UniPC");
  EXPECT_EQ(sampler_slug(SamplerKind::DPMSolverPP), "dpmsolver++");
  EXPECT_EQ(method_name(Method::TGate), "T-Gate");
  EXPECT_EQ(method_slug(Method::TGate), "tgate");
  for (Model m : all_models()) EXPECT_EQ(parse_model(model_name(m)), m);
  for (Model m : all_models()) EXPECT_EQ(parse_model(model_slug(m)), m);
  for (SamplerKind s : all_samplers()) EXPECT_EQ(parse_sampler(sampler_slug(s)), s);
  for (SamplerKind s : all_samplers()) EXPECT_EQ(parse_sampler(sampler_name(s)), s);
  for (Method m : all_methods()) EXPECT_EQ(parse_method(method_slug(m)), m);
  EXPECT_THROW(parse_sampler("euler"), InputError);
}

class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    path_ = (std::filesystem::temp_directory_path() /
             ("diffsearch_task_test_" + std::to_string(::getpid()) + "_" +
              std::to_string(counter_++) + ".txt"))
                .string();
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

TEST(TaskFile, SkipsCommentsAndBlankLines) {
  TempFile f(std::string("# the five tasks\n\n") + kSentences[0] + "\n  # indented comment\n" +
             kSentences[4] + "\r\n\n");
  const auto tasks = read_tasks_file(f.path());
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0], parse_task(kSentences[0]));
  EXPECT_EQ(tasks[1], parse_task(kSentences[4]));
}

TEST(TaskFile, BadLineNamesFileAndLine) {
  TempFile f(std::string(kSentences[0]) +
             "\n# comment\nGenerate a SD9 pipeline using DDIM with 5 steps\n");
  try {
    read_tasks_file(f.path());
    FAIL() << "accepted a bad file";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(f.path() + ":3:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"SD9\""), std::string::npos) << msg;
  }
  EXPECT_THROW(read_tasks_file("/nonexistent/tasks.txt"), InputError);
  TempFile empty("# nothing\n\n");
  EXPECT_THROW(read_tasks_file(empty.path()), InputError);
}

}  // namespace
}  // namespace diffsearch::partition

namespace diffsearch::partition {
namespace {

// Found by fuzz/task_fuzz.cc: a GPU name with bytes that are not UTF-8
// parsed, then made `diffsearch parse --json` (and every file that carries
// the task) fail inside the JSON library. Refused at parse time now.
TEST(TaskLanguage, GpuNamesMustBeUtf8Text) {
  const std::string base = "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, with 1.5s latency on ";
  for (const std::string name : {std::string("\"NVIDIA \xfd H200\""), std::string("\"caf\xc3\""),
                                 std::string("\"\xed\xa0\x80\""), std::string("\"a\x01" "b\"")}) {
    try {
      parse_task(base + name);
      ADD_FAILURE() << "accepted " << name;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("GPU name"), std::string::npos) << e.what();
    }
  }
  const Task ok = parse_task(base + "\"NVIDIA H200 \xc3\xa9\xe6\x9d\xb1\xf0\x9f\x9a\x80\"");
  EXPECT_EQ(*ok.platform, "NVIDIA H200 \xc3\xa9\xe6\x9d\xb1\xf0\x9f\x9a\x80");
  EXPECT_NO_THROW(task_to_json(ok).dump());
}

}  // namespace
}  // namespace diffsearch::partition
