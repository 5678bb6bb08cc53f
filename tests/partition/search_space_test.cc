// Tests of the method search spaces: documented defaults per architecture,
// the product for combinations, canonical setting text and --space overrides.
#include "partition/search_space.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "io/error.h"

namespace diffsearch::partition {
namespace {

std::vector<std::int64_t> ints(const std::vector<nlohmann::json>& values) {
  std::vector<std::int64_t> out;
  for (const auto& v : values) out.push_back(v.get<std::int64_t>());
  return out;
}

TEST(SearchSpace, DeepCacheDefaultsFollowTheDownBlocks) {
  const auto sd15 = default_params(Method::DeepCache, Model::SD15, 50);
  EXPECT_EQ(ints(sd15.at("cache_interval")),
            (std::vector<std::int64_t>{2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(sd15.at("cache_branch_id").size(), 12u);
  EXPECT_EQ(sd15.at("cache_branch_id").back(), 11);
  const auto sdxl = default_params(Method::DeepCache, Model::SDXL, 50);
  EXPECT_EQ(sdxl.at("cache_branch_id").size(), 9u);
  EXPECT_EQ(sdxl.at("cache_branch_id").back(), 8);
  EXPECT_EQ(count_settings(Model::SD15, 50, {Method::DeepCache}), 108u);
  EXPECT_EQ(count_settings(Model::SD21, 50, {Method::DeepCache}), 108u);
  EXPECT_EQ(count_settings(Model::SDXL, 50, {Method::DeepCache}), 81u);
}

TEST(SearchSpace, ToMeDefaults) {
  const auto sd15 = default_params(Method::ToMe, Model::SD15, 50);
  ASSERT_EQ(sd15.at("ratio").size(), 7u);
  for (int k = 1; k <= 7; ++k) EXPECT_EQ(sd15.at("ratio")[k - 1].get<double>(), k / 10.0);
  EXPECT_EQ(ints(sd15.at("max_downsample")), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(ints(default_params(Method::ToMe, Model::SDXL, 50).at("max_downsample")),
            (std::vector<std::int64_t>{2, 4}));
  EXPECT_EQ(ints(sd15.at("sx")), std::vector<std::int64_t>{2});
  EXPECT_EQ(ints(sd15.at("sy")), std::vector<std::int64_t>{2});
  EXPECT_EQ(sd15.at("use_rand"), std::vector<nlohmann::json>{false});
  EXPECT_EQ(count_settings(Model::SDXL, 20, {Method::ToMe}), 14u);
}

TEST(SearchSpace, TGateGateStepsAreTenthsOfTheSteps) {
  EXPECT_EQ(ints(default_params(Method::TGate, Model::SD15, 50).at("gate_step")),
            (std::vector<std::int64_t>{5, 10, 15, 20, 25, 30, 35, 40, 45}));
  EXPECT_EQ(ints(default_params(Method::TGate, Model::SD15, 25).at("gate_step")),
            (std::vector<std::int64_t>{3, 5, 8, 10, 13, 15, 18, 20, 23}));
  EXPECT_EQ(ints(default_params(Method::TGate, Model::SD15, 20).at("gate_step")),
            (std::vector<std::int64_t>{2, 4, 6, 8, 10, 12, 14, 16, 18}));
  // Few steps: the tenths collide and are kept once, never below 1.
  EXPECT_EQ(ints(default_params(Method::TGate, Model::SD15, 4).at("gate_step")),
            (std::vector<std::int64_t>{1, 2, 3, 4}));
  const auto p = default_params(Method::TGate, Model::SDXL, 50);
  EXPECT_EQ(ints(p.at("sp_interval")), (std::vector<std::int64_t>{1, 3, 5}));
  EXPECT_EQ(ints(p.at("warm_up")), (std::vector<std::int64_t>{0, 2}));
  EXPECT_EQ(ints(p.at("fi_interval")), (std::vector<std::int64_t>{1}));
  EXPECT_EQ(count_settings(Model::SDXL, 50, {Method::TGate}), 54u);
}

TEST(SearchSpace, CombinationIsTheProductAndEnumerationIsDeterministic) {
  const std::vector<Method> all = {Method::DeepCache, Method::TGate, Method::ToMe};
  EXPECT_EQ(count_settings(Model::SD15, 50, all), 108u * 54u * 14u);
  const auto a = enumerate_settings(Model::SDXL, 20, {Method::DeepCache, Method::ToMe});
  const auto b = enumerate_settings(Model::SDXL, 20, {Method::DeepCache, Method::ToMe});
  ASSERT_EQ(a.size(), 81u * 14u);
  std::set<std::string> keys;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(setting_key(a[i]), setting_key(b[i]));
    ASSERT_EQ(a[i].size(), 2u);
    EXPECT_EQ(a[i][0].method, Method::DeepCache);
    EXPECT_EQ(a[i][1].method, Method::ToMe);
    keys.insert(setting_key(a[i]));
  }
  EXPECT_EQ(keys.size(), a.size());
  // First method slowest, first parameter slowest.
  EXPECT_EQ(setting_key(a.front()),
            R"({"deepcache":{"cache_branch_id":0,"cache_interval":2},)"
            R"("tome":{"max_downsample":2,"ratio":0.1,"sx":2,"sy":2,"use_rand":false}})");
  EXPECT_EQ(setting_key(a[1]),
            R"({"deepcache":{"cache_branch_id":0,"cache_interval":2},)"
            R"("tome":{"max_downsample":4,"ratio":0.1,"sx":2,"sy":2,"use_rand":false}})");
  EXPECT_EQ(setting_key(a.back()),
            R"({"deepcache":{"cache_branch_id":8,"cache_interval":10},)"
            R"("tome":{"max_downsample":4,"ratio":0.7,"sx":2,"sy":2,"use_rand":false}})");
  EXPECT_EQ(setting_key({}), "{}");
}

TEST(SearchSpace, SettingKeyIsCanonical) {
  // The same setting written with other types or key order has one key.
  const auto s1 =
      setting_from_json(nlohmann::json::parse(
                            R"({"tome": {"ratio": 0.3, "max_downsample": 2.0, "use_rand": false},
          "DeepCache": {"cache_interval": 3, "cache_branch_id": 0}})"),
                        "test");
  const auto s2 =
      setting_from_json(nlohmann::json::parse(
                            R"({"deepcache": {"cache_branch_id": 0.0, "cache_interval": 3},
          "tome": {"use_rand": false, "max_downsample": 2, "ratio": 0.3}})"),
                        "test");
  EXPECT_EQ(setting_key(s1), setting_key(s2));
  EXPECT_EQ(setting_key(s1), R"({"deepcache":{"cache_branch_id":0,"cache_interval":3},)"
                             R"("tome":{"max_downsample":2,"ratio":0.3,"use_rand":false}})");
  EXPECT_EQ(setting_from_json(nlohmann::json::parse(setting_key(s1)), "test"), s1);
  EXPECT_THROW(setting_from_json(nlohmann::json::parse(R"({"tome": {"ratio": 1.0}})"), "t"),
               InputError);
  EXPECT_THROW(setting_from_json(nlohmann::json::parse(R"({"tome": {"speed": 1}})"), "t"),
               InputError);
}

TEST(SearchSpace, OverridesReplaceParametersPerMethodAndModel) {
  const auto config = space_config_from_json(nlohmann::json::parse(R"({
    "_comment": "a small space",
    "deepcache": {"cache_interval": [3, 5]},
    "TGATE": {"gate_step_fraction": [0.5], "sp_interval": [5]},
    "SDXL": {"deepcache": {"cache_branch_id": [0, 1, 2]}}
  })"),
                                             "space.json");
  EXPECT_EQ(count_settings(Model::SD15, 50, {Method::DeepCache}, config), 2u * 12u);
  EXPECT_EQ(count_settings(Model::SDXL, 50, {Method::DeepCache}, config), 2u * 3u);
  const auto tgate = resolve_method_space(Model::SD21, 25, config).at(Method::TGate);
  EXPECT_EQ(ints(tgate.at("gate_step")), std::vector<std::int64_t>{13});
  EXPECT_EQ(ints(tgate.at("sp_interval")), std::vector<std::int64_t>{5});
  EXPECT_EQ(ints(tgate.at("warm_up")), (std::vector<std::int64_t>{0, 2}));  // default kept
  EXPECT_EQ(count_settings(Model::SD21, 25, {Method::TGate}, config), 2u);
  // Untouched methods keep their defaults.
  EXPECT_EQ(count_settings(Model::SD15, 50, {Method::ToMe}, config), 14u);
}

TEST(SearchSpace, OverrideErrorsNameFileAndField) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"deepcash": {"cache_interval": [3]}})", "\"deepcash\""},
      {R"({"deepcache": {"interval": [3]}})", "deepcache.interval"},
      {R"({"deepcache": {"cache_interval": []}})", "deepcache.cache_interval"},
      {R"({"deepcache": {"cache_interval": 3}})", "deepcache.cache_interval"},
      {R"({"deepcache": {"cache_interval": [0]}})", "deepcache.cache_interval[0]"},
      {R"({"deepcache": {"cache_interval": [2.5]}})", "deepcache.cache_interval[0]"},
      {R"({"tome": {"ratio": [0.5, 1.0]}})", "tome.ratio[1]"},
      {R"({"tome": {"use_rand": [0]}})", "tome.use_rand[0]"},
      {R"({"tome": {"ratio": ["a"]}})", "tome.ratio[0]"},
      {R"({"tgate": {"gate_step": [5], "gate_step_fraction": [0.5]}})", "tgate"},
      {R"({"tgate": {"gate_step_fraction": [0]}})", "tgate.gate_step_fraction"},
      {R"({"SDXL": {"tome": {"sx": [0]}}})", "SDXL.tome.sx[0]"},
      {R"({"SDXL": [1]})", "SDXL"},
      {R"([1])", "expected a JSON object"},
  };
  for (const auto& [text, field] : bad) {
    try {
      space_config_from_json(nlohmann::json::parse(text), "space.json");
      ADD_FAILURE() << "accepted " << text;
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("space.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(field), std::string::npos) << msg;
    }
  }
}

TEST(SearchSpace, ModelAndStepsDependentRangesAreChecked) {
  const auto branches = space_config_from_json(
      nlohmann::json::parse(R"({"deepcache": {"cache_branch_id": [0, 11]}})"), "space.json");
  EXPECT_EQ(count_settings(Model::SD15, 50, {Method::DeepCache}, branches), 9u * 2u);
  try {
    resolve_method_space(Model::SDXL, 50, branches);
    FAIL() << "branch 11 accepted for SDXL";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("space.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("deepcache.cache_branch_id"), std::string::npos) << msg;
    EXPECT_NE(msg.find("SDXL"), std::string::npos) << msg;
  }
  const auto gate = space_config_from_json(
      nlohmann::json::parse(R"({"tgate": {"gate_step": [10, 40]}})"), "space.json");
  EXPECT_NO_THROW(resolve_method_space(Model::SD15, 50, gate));
  try {
    resolve_method_space(Model::SD15, 20, gate);
    FAIL() << "gate_step 40 accepted for 20 steps";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tgate.gate_step"), std::string::npos) << e.what();
  }
}

TEST(SearchSpace, ReadsFiles) {
  const auto path = (std::filesystem::temp_directory_path() /
                     ("diffsearch_space_test_" + std::to_string(::getpid()) + ".json"))
                        .string();
  std::ofstream(path) << R"({"tome": {"ratio": [0.5]}})";
  const auto config = read_space_file(path);
  EXPECT_EQ(config.source, path);
  EXPECT_EQ(count_settings(Model::SD15, 50, {Method::ToMe}, config), 2u);
  std::ofstream(path) << R"({"tome": )";
  try {
    read_space_file(path);
    ADD_FAILURE() << "accepted broken JSON";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
  EXPECT_THROW(read_space_file("/nonexistent/space.json"), InputError);
}

// Floats in their shortest round-trip form, as the task language writes them.
TEST(SearchSpace, AccelArgsWriteTheSettingAsAccelSpecs) {
  const Setting s = {{Method::DeepCache, {{"cache_branch_id", 0}, {"cache_interval", 3}}},
                     {Method::ToMe, {{"ratio", 0.3}, {"use_rand", false}}}};
  EXPECT_EQ(accel_args(s), (std::vector<std::string>{"deepcache:cache_branch_id=0,cache_interval=3",
                                                     "tome:ratio=0.3,use_rand=false"}));
}

}  // namespace
}  // namespace diffsearch::partition
