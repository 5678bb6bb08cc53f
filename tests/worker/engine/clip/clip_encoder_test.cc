// The config fields both CLIP towers share: read once, checked once, with
// messages that name the file, the field and the tower.
#include "worker/engine/clip/clip_encoder.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/error.h"

using diffsearch::InputError;
using diffsearch::engine::ClipEncoderShape;

namespace {
nlohmann::json good() {
  return {{"hidden_size", 16}, {"intermediate_size", 32}, {"num_attention_heads", 4},
          {"num_hidden_layers", 2}, {"hidden_act", "gelu"}, {"layer_norm_eps", 1e-6}};
}
std::string message(const nlohmann::json& j, const std::string& tower) {
  try {
    ClipEncoderShape::from_json(j, "cfg.json", tower);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(ClipEncoderShape, ReadsTheSharedFieldsWithDefaults) {
  ClipEncoderShape s = ClipEncoderShape::from_json(good(), "cfg.json", "text");
  EXPECT_EQ(s.hidden_size, 16);
  EXPECT_EQ(s.num_hidden_layers, 2);
  EXPECT_EQ(s.hidden_act, "gelu");
  EXPECT_DOUBLE_EQ(s.layer_norm_eps, 1e-6);
  nlohmann::json j = good();
  j.erase("hidden_act");
  j.erase("layer_norm_eps");
  s = ClipEncoderShape::from_json(j, "cfg.json", "text");
  EXPECT_EQ(s.hidden_act, "quick_gelu");
  EXPECT_DOUBLE_EQ(s.layer_norm_eps, 1e-5);
}

TEST(ClipEncoderShape, BadFieldsNameFileFieldAndTower) {
  nlohmann::json j = good();
  j.erase("num_hidden_layers");
  EXPECT_NE(message(j, "vision").find("cfg.json: field 'num_hidden_layers' is missing"), std::string::npos);
  EXPECT_NE(message(j, "vision").find("CLIP vision config"), std::string::npos);
  j = good();
  j["hidden_size"] = -3;
  EXPECT_NE(message(j, "text").find("'hidden_size' must be a positive integer"), std::string::npos);
  j = good();
  j["hidden_act"] = "relu";
  EXPECT_NE(message(j, "text").find("'relu'"), std::string::npos);
  j = good();
  j["num_attention_heads"] = 3;
  EXPECT_NE(message(j, "text").find("not divisible"), std::string::npos);
  EXPECT_NE(message(nlohmann::json::array(), "text").find("expected a JSON object"), std::string::npos);
}
