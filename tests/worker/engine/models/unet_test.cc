// UNet2DCondition against the fixtures' unet.out for the three tiny models,
// its hook points, its MAC count, and the model folders it must refuse.
#include "worker/engine/models/unet.h"

#include <gtest/gtest.h>

#include <iostream>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "io/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "tests/support/engine/pipeline_fixtures.h"
#include "tests/support/test_support.h"
#include "worker/engine/core/nn.h"

namespace fs = std::filesystem;
using namespace diffsearch;
using namespace diffsearch::engine;
using diffsearch::engine::testing::model_dir;
using diffsearch::engine::testing::reference_tensor;
using diffsearch::engine::testing::rel_err;
using diffsearch::testing::expect_contains;

namespace {

struct Inputs {
  at::Tensor sample, timestep;
  UNetConditioning cond;
};

Inputs fixture_inputs(const std::string& model) {
  Inputs in;
  in.sample = reference_tensor(model, "unet.in.sample");
  in.timestep = reference_tensor(model, "unet.in.timestep");
  in.cond.encoder_hidden_states = reference_tensor(model, "unet.in.encoder_hidden_states");
  if (model == "tiny-sdxl") {
    in.cond.text_embeds = reference_tensor(model, "unet.in.text_embeds");
    in.cond.time_ids = reference_tensor(model, "unet.in.time_ids");
  }
  return in;
}

std::unique_ptr<UNet2DCondition> load_unet(const std::string& model, at::ScalarType dtype) {
  RunOptions options;
  options.dtype = dtype;
  return UNet2DCondition::load(io::DiffusersFolder(model_dir(model)), options);
}

class UNetFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(UNetFixture, MatchesReferenceFloat64) {
  const std::string model = GetParam();
  auto unet = load_unet(model, at::kDouble);
  Inputs in = fixture_inputs(model);
  at::Tensor out = unet->forward(in.sample, in.timestep, in.cond);
  EXPECT_EQ(out.scalar_type(), at::kDouble);
  ASSERT_EQ(out.sizes(), in.sample.sizes());
  const double err = rel_err(out, reference_tensor(model, "unet.out"));
  std::cout << model << " float64 unet.out relative error " << err << "\n";
  EXPECT_LT(err, 1e-6);
}

TEST_P(UNetFixture, MatchesReferenceFloat32) {
  const std::string model = GetParam();
  auto unet = load_unet(model, at::kFloat);
  Inputs in = fixture_inputs(model);
  at::Tensor out = unet->forward(in.sample, in.timestep, in.cond);
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  const double err = rel_err(out, reference_tensor(model, "unet.out"));
  std::cout << model << " float32 unet.out relative error " << err << "\n";
  EXPECT_LT(err, 1e-4);
}

// The UNet on CUDA in `dtype` against the float64 reference: its relative error.
double cuda_error(const std::string& model, at::ScalarType dtype) {
  RunOptions options;
  options.dtype = dtype;
  options.device = c10::Device(c10::kCUDA, 0);
  auto unet = UNet2DCondition::load(io::DiffusersFolder(model_dir(model)), options);
  Inputs in = fixture_inputs(model);
  at::Tensor out = unet->forward(in.sample, in.timestep, in.cond);
  EXPECT_TRUE(out.is_cuda());
  EXPECT_TRUE(out.is_contiguous()) << "NCHW out whatever the layout inside";
  EXPECT_EQ(out.scalar_type(), dtype);
  const double err = rel_err(out, reference_tensor(model, "unet.out"));
  std::cout << model << " cuda " << c10::toString(dtype) << " unet.out relative error " << err << "\n";
  return err;
}

// On CUDA the activations are NHWC and GroupNorm is the engine's own
// (nn.cc): in float64 they must still equal the reference.
TEST_P(UNetFixture, MatchesReferenceCudaFloat64) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "libtorch has no CUDA device";
  EXPECT_LT(cuda_error(GetParam(), at::kDouble), 1e-6);
}

// The GPU twin: fp16 weights and activations on CUDA against the float64 reference.
TEST_P(UNetFixture, MatchesReferenceCudaFloat16) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "libtorch has no CUDA device";
  EXPECT_LT(cuda_error(GetParam(), at::kHalf), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(TinyModels, UNetFixture,
                         ::testing::Values("tiny-sd15", "tiny-sd21", "tiny-sdxl"),
                         [](const auto& info) { return info.param.substr(5); });

TEST(UNet, ConfigQuirksResolved) {
  auto sd21 = load_unet("tiny-sd21", at::kFloat);
  const UNetConfig& c = sd21->config();
  EXPECT_EQ(c.attention_heads, (std::vector<int64_t>{1, 2, 2, 2}));  // attention_head_dim
  EXPECT_TRUE(c.use_linear_projection);
  EXPECT_TRUE(c.upcast_attention);
  EXPECT_EQ(sd21->num_down_blocks(), 4);
  EXPECT_EQ(sd21->num_up_blocks(), 4);
  EXPECT_EQ(sd21->num_attentions(UNetPart::down, 3), 0);
  EXPECT_EQ(sd21->num_resnets(UNetPart::up, 0), 3);
  EXPECT_FALSE(sd21->has_downsampler(3));
  EXPECT_FALSE(sd21->has_upsampler(3));

  auto sdxl = load_unet("tiny-sdxl", at::kFloat);
  EXPECT_EQ(sdxl->config().addition_embed_type, "text_time");
  EXPECT_EQ(sdxl->num_transformer_blocks(UNetPart::down, 2, 1), 2);
  EXPECT_EQ(sdxl->num_transformer_blocks(UNetPart::up, 0, 2), 2);  // reversed per block
  EXPECT_EQ(sdxl->num_transformer_blocks(UNetPart::mid, 0, 0), 2);
  EXPECT_EQ(sdxl->num_attentions(UNetPart::up, 2), 0);
}

TEST(UNet, OddLatentSizesFollowTheSkips) {
  auto unet = load_unet("tiny-sd15", at::kFloat);
  Inputs in = fixture_inputs("tiny-sd15");
  at::Tensor sample = torch::randn({2, 4, 13, 11}, torch::kFloat);
  at::Tensor out = unet->forward(sample, in.timestep, in.cond);
  EXPECT_EQ(out.sizes(), sample.sizes());
}

TEST(UNet, ScalarTimestepAndInputChecks) {
  auto unet = load_unet("tiny-sd15", at::kDouble);
  Inputs in = fixture_inputs("tiny-sd15");
  // A scalar timestep is broadcast over the batch.
  at::Tensor both = unet->forward(in.sample, torch::tensor(981.0, torch::kDouble), in.cond);
  at::Tensor first = unet->forward(in.sample.slice(0, 0, 1), torch::tensor({981.0}),
                                   {in.cond.encoder_hidden_states.slice(0, 0, 1), {}, {}, {}});
  EXPECT_LT(rel_err(both.slice(0, 0, 1), first), 1e-12);

  UNetConditioning wrong{torch::zeros({2, 77, 24}, torch::kDouble), {}, {}, {}};
  EXPECT_THROW(unet->forward(in.sample, in.timestep, wrong), InputError);
  EXPECT_THROW(unet->forward(torch::zeros({2, 3, 16, 16}), in.timestep, in.cond), InputError);

  // A row of time_embeddings() stands in for the timestep MLP; [D] or [B, D].
  const at::Tensor table = unet->time_embeddings(torch::tensor({981, 501}, torch::kLong));
  ASSERT_EQ(table.sizes().vec(), (std::vector<int64_t>{2, unet->config().time_embed_dim}));
  Inputs given = in;
  given.cond.time_embedding = table.select(0, 0);
  at::Tensor from_table = unet->forward(in.sample, torch::tensor(981.0, torch::kDouble), given.cond);
  EXPECT_LT(rel_err(from_table, both), 1e-12);
  given.cond.time_embedding = table.select(0, 1).expand({2, -1});
  EXPECT_GT(rel_err(unet->forward(in.sample, torch::tensor(981.0, torch::kDouble), given.cond), both),
            1e-6) << "the embedding given, not the timestep, is used";
  given.cond.time_embedding = table;  // [2, D] for a batch of 2: fine
  EXPECT_NO_THROW(unet->forward(in.sample, in.timestep, given.cond));
  given.cond.time_embedding = torch::zeros({3, unet->config().time_embed_dim}, torch::kDouble);
  EXPECT_THROW(unet->forward(in.sample, in.timestep, given.cond), InputError);
  EXPECT_THROW(unet->time_embeddings(torch::zeros({2, 2}, torch::kLong)), InputError);

  auto sdxl = load_unet("tiny-sdxl", at::kDouble);
  Inputs x = fixture_inputs("tiny-sdxl");
  x.cond.time_ids = at::Tensor();
  try {
    sdxl->forward(x.sample, x.timestep, x.cond);
    FAIL() << "missing time_ids accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("text_time"), std::string::npos) << e.what();
  }
}

// Every weight is a linear or conv used at least once per sample and at most
// once per latent pixel, so MACs lie between these bounds (plus attention).
TEST(UNet, CountsMultiplyAccumulates) {
  auto unet = load_unet("tiny-sd15", at::kFloat);
  Inputs in = fixture_inputs("tiny-sd15");
  macs::reset();
  unet->forward(in.sample, in.timestep, in.cond);
  const int64_t two = macs::total();
  macs::reset();
  unet->forward(in.sample.slice(0, 0, 1), in.timestep.slice(0, 0, 1),
                {in.cond.encoder_hidden_states.slice(0, 0, 1), {}, {}, {}});
  const int64_t one = macs::total();
  EXPECT_GT(one, 0);
  EXPECT_EQ(two, 2 * one);

  auto file = io::SafetensorsFile::open(model_dir("tiny-sd15") +
                                        "/unet/diffusion_pytorch_model.safetensors");
  int64_t params = 0;
  for (const auto& name : file->names()) {
    const auto& view = file->tensor(name);
    if (view.shape.size() >= 2) params += view.numel();
  }
  const int64_t pixels = 16 * 16;
  // Attention scores and weighted sums: at most 2 * N * max(N, 77) * C per
  // attention layer, 2 attention layers in each of 16 transformer blocks.
  const int64_t attention = 16 * 2 * 2 * pixels * pixels * 32;
  EXPECT_GT(one, params);
  EXPECT_LT(one, params * pixels + attention);
}

// ---- hooks ----------------------------------------------------------------

std::string key(const UNetLocation& w) {
  static const char* parts[] = {"down", "mid", "up"};
  static const char* modules[] = {"block", "resnet", "attention", "downsampler", "upsampler"};
  return std::string(parts[static_cast<int>(w.part)]) + "." + std::to_string(w.block) + "." +
         modules[static_cast<int>(w.module)] + "." + std::to_string(w.layer);
}

std::string key(const AttentionLocation& a) {
  return key(a.transformer.attention) + ".t" + std::to_string(a.transformer.transformer) +
         (a.kind == AttentionKind::self ? ".self" : ".cross");
}

// Records every location, caches every output, and reuses those that
// `reuse` selects.
struct CachingHooks : UNetHooks {
  std::map<std::string, LayerOutput> layers;
  std::map<std::string, at::Tensor> attentions;
  std::vector<std::string> visited;
  std::function<bool(const UNetLocation&)> reuse;
  std::function<bool(const AttentionLocation&)> reuse_attn;
  std::function<bool(const UNetLocation&)> share_input;  // resnets given `share`
  ResnetInputShare share;
  int forwards = 0, transformers = 0, merges = 0, unmerges = 0, attention_calls = 0;
  bool tokens_match_size = true;

  void begin_forward(const UNetForwardInfo& info) override {
    ++forwards;
    EXPECT_EQ(info.height, 16);
    EXPECT_EQ(info.timesteps.size(0), info.batch);
  }
  bool reuse_layer(const UNetLocation& w, LayerOutput& out) override {
    visited.push_back(key(w));
    if (reuse && reuse(w) && layers.count(key(w))) {
      out = layers[key(w)];
      return true;
    }
    return false;
  }
  void layer_computed(const UNetLocation& w, const LayerOutput& out) override {
    layers[key(w)] = out;
  }
  ResnetInputShare* resnet_input_share(const UNetLocation& w) override {
    return share_input && share_input(w) ? &share : nullptr;
  }
  void transformer_begin(const TransformerLocation&, const at::Tensor& x, int64_t h,
                         int64_t w) override {
    ++transformers;
    tokens_match_size = tokens_match_size && x.size(1) == h * w;
  }
  at::Tensor merge_tokens(const TransformerLocation&, TokenStage, const at::Tensor& x) override {
    ++merges;
    return x;
  }
  at::Tensor unmerge_tokens(const TransformerLocation&, TokenStage, const at::Tensor& x) override {
    ++unmerges;
    return x;
  }
  bool reuse_attention(const AttentionLocation& a, at::Tensor& out) override {
    ++attention_calls;
    if (reuse_attn && reuse_attn(a) && attentions.count(key(a))) {
      out = attentions[key(a)];
      return true;
    }
    return false;
  }
  void attention_computed(const AttentionLocation& a, const at::Tensor& out) override {
    attentions[key(a)] = out;
  }
};

int count_prefix(const std::vector<std::string>& v, const std::string& prefix) {
  int n = 0;
  for (const auto& s : v) n += s.rfind(prefix, 0) == 0;
  return n;
}

TEST(UNetHooks, NoOpHooksChangeNothingAndSeeEveryLocation) {
  auto unet = load_unet("tiny-sd15", at::kDouble);
  Inputs in = fixture_inputs("tiny-sd15");
  at::Tensor plain = unet->forward(in.sample, in.timestep, in.cond);
  CachingHooks hooks;
  at::Tensor hooked = unet->forward(in.sample, in.timestep, in.cond, &hooks);
  EXPECT_TRUE(torch::equal(plain, hooked));
  EXPECT_EQ(hooks.forwards, 1);
  // SD1.5 layout: 4 down blocks (3 with attention), mid, 4 up blocks (3 with attention).
  EXPECT_EQ(count_prefix(hooks.visited, "down.0.block"), 1);
  int resnets = 0, attentions = 0, samplers = 0, blocks = 0;
  for (const auto& k : hooks.visited) {
    resnets += k.find(".resnet.") != std::string::npos;
    attentions += k.find(".attention.") != std::string::npos;
    samplers += k.find("sampler") != std::string::npos;
    blocks += k.find(".block.") != std::string::npos;
  }
  EXPECT_EQ(blocks, 4 + 1 + 4);
  EXPECT_EQ(resnets, 8 + 2 + 12);
  EXPECT_EQ(attentions, 6 + 1 + 9);
  EXPECT_EQ(samplers, 3 + 3);
  EXPECT_EQ(hooks.transformers, 16);
  EXPECT_EQ(hooks.merges, 48);
  EXPECT_EQ(hooks.unmerges, 48);
  EXPECT_EQ(hooks.attention_calls, 32);
  EXPECT_TRUE(hooks.tokens_match_size);
  EXPECT_EQ(hooks.layers.at("down.1.block.0").skips.size(), 3u);
  EXPECT_EQ(hooks.layers.at("down.3.block.0").skips.size(), 2u);
}

// DeepCache-style reuse (branch 0): everything but conv_in, the last
// resnet/attention pair of the last up block and conv_out comes from the
// cache; with the same inputs the output must not change, the skipped modules
// must not run, and far fewer MACs are counted.
TEST(UNetHooks, ReusedBlocksAreNotExecuted) {
  auto unet = load_unet("tiny-sd15", at::kDouble);
  Inputs in = fixture_inputs("tiny-sd15");
  CachingHooks hooks;
  macs::reset();
  at::Tensor full = unet->forward(in.sample, in.timestep, in.cond, &hooks);
  const int64_t full_macs = macs::total();

  const int last_up = unet->num_up_blocks() - 1;
  hooks.reuse = [&](const UNetLocation& w) {
    if (w.part == UNetPart::mid) return true;
    if (w.part == UNetPart::down) return true;
    if (w.block < last_up) return true;
    // In the last up block only the final resnet/attention pair runs.
    return w.module != UNetModule::block && w.layer < unet->num_resnets(UNetPart::up, last_up) - 1;
  };
  hooks.visited.clear();
  macs::reset();
  at::Tensor partial = unet->forward(in.sample, in.timestep, in.cond, &hooks);
  const int64_t partial_macs = macs::total();
  EXPECT_LT(rel_err(partial, full), 1e-12);
  EXPECT_LT(partial_macs, full_macs / 4);
  EXPECT_EQ(count_prefix(hooks.visited, "down.0.resnet"), 0);
  EXPECT_EQ(count_prefix(hooks.visited, "down.1.resnet"), 0);
  EXPECT_EQ(count_prefix(hooks.visited, "mid.0.resnet"), 0);
  EXPECT_EQ(count_prefix(hooks.visited, "up.0.resnet"), 0);
  EXPECT_EQ(count_prefix(hooks.visited, "up.3.resnet"), 3);  // asked; two reused
  EXPECT_EQ(count_prefix(hooks.visited, "up.3.block"), 1);

  // With different inputs the reused parts keep their cached values, so the
  // output differs from a full forward on those inputs.
  at::Tensor other_t = torch::tensor({501.0, 101.0}, torch::kDouble);
  at::Tensor reused = unet->forward(in.sample, other_t, in.cond, &hooks);
  at::Tensor fresh = unet->forward(in.sample, other_t, in.cond);
  EXPECT_GT(rel_err(reused, fresh), 1e-6);
}

// The first resnet a DeepCache partial step computes gets the kept h of
// cat(h, skip): h's share of its norm, conv1 and shortcut is computed on the
// full step and reused. Same result (a sum of parts' convolutions), fewer MACs.
TEST(UNetHooks, ResnetInputShareKeepsTheResult) {
  auto unet = load_unet("tiny-sd15", at::kDouble);
  Inputs in = fixture_inputs("tiny-sd15");
  const int last_up = unet->num_up_blocks() - 1;
  const int last_layer = unet->num_resnets(UNetPart::up, last_up) - 1;
  const UNetLocation input_resnet{UNetPart::up, last_up, UNetModule::resnet, last_layer};
  EXPECT_FALSE(unet->prepare_input_share({UNetPart::mid, 0, UNetModule::resnet, 0}));
  EXPECT_FALSE(unet->prepare_input_share({UNetPart::up, last_up, UNetModule::attention, 0}));
  ASSERT_TRUE(unet->prepare_input_share(input_resnet));
  ASSERT_TRUE(unet->prepare_input_share(input_resnet)) << "made once, then found";

  const at::Tensor plain = unet->forward(in.sample, in.timestep, in.cond);
  CachingHooks hooks;
  const auto is_input_resnet = [&](const UNetLocation& w) {
    return w.part == input_resnet.part && w.block == input_resnet.block &&
           w.module == input_resnet.module && w.layer == input_resnet.layer;
  };
  hooks.share_input = is_input_resnet;
  // Full step: the share is filled, the result is the whole resnet's.
  at::Tensor full = unet->forward(in.sample, in.timestep, in.cond, &hooks);
  ASSERT_TRUE(hooks.share.filled());
  EXPECT_LT(rel_err(full, plain), 1e-12);

  hooks.reuse = [&](const UNetLocation& w) {
    if (w.part != UNetPart::up || w.block < last_up) return true;
    return w.module != UNetModule::block && w.layer < last_layer;
  };
  const at::Tensor kept_conv1 = hooks.share.conv1;
  macs::reset();
  at::Tensor shared = unet->forward(in.sample, in.timestep, in.cond, &hooks);
  const int64_t shared_macs = macs::total();
  EXPECT_TRUE(hooks.share.conv1.is_same(kept_conv1)) << "reused, not recomputed";
  EXPECT_LT(rel_err(shared, plain), 1e-12);

  // The same partial step with the resnet whole: same output, more MACs.
  hooks.share_input = nullptr;
  macs::reset();
  at::Tensor whole = unet->forward(in.sample, in.timestep, in.cond, &hooks);
  EXPECT_LT(shared_macs, macs::total());
  EXPECT_LT(rel_err(shared, whole), 1e-12);

  // Another timestep: h stays the kept one, the skip and time embedding are
  // new; the share gives what the whole resnet gives on those inputs.
  at::Tensor other_t = torch::tensor({501.0, 101.0}, torch::kDouble);
  at::Tensor other_sample = in.sample * 0.5 + 0.1;
  at::Tensor other_whole = unet->forward(other_sample, other_t, in.cond, &hooks);
  hooks.share_input = is_input_resnet;
  at::Tensor other_shared = unet->forward(other_sample, other_t, in.cond, &hooks);
  EXPECT_LT(rel_err(other_shared, other_whole), 1e-12);
  EXPECT_GT(rel_err(other_shared, shared), 1e-6);
}

TEST(UNetHooks, CachedAttentionIsReused) {
  auto unet = load_unet("tiny-sd15", at::kDouble);
  Inputs in = fixture_inputs("tiny-sd15");
  CachingHooks hooks;
  macs::reset();
  at::Tensor full = unet->forward(in.sample, in.timestep, in.cond, &hooks);
  const int64_t full_macs = macs::total();
  hooks.reuse_attn = [](const AttentionLocation& a) { return a.kind == AttentionKind::cross; };
  macs::reset();
  at::Tensor again = unet->forward(in.sample, in.timestep, in.cond, &hooks);
  EXPECT_LT(rel_err(again, full), 1e-12);
  EXPECT_LT(macs::total(), full_macs);
}

// Dropping every second token before self-attention and duplicating after:
// fewer MACs, a different output, and the shapes line up.
struct HalvingHooks : UNetHooks {
  at::Tensor merge_tokens(const TransformerLocation&, TokenStage stage, const at::Tensor& x) override {
    return stage == TokenStage::self_attention ? x.slice(1, 0, x.size(1), 2) : x;
  }
  at::Tensor unmerge_tokens(const TransformerLocation&, TokenStage stage, const at::Tensor& x) override {
    return stage == TokenStage::self_attention ? x.repeat_interleave(2, 1) : x;
  }
};

TEST(UNetHooks, TokenMergingChangesTheWork) {
  auto unet = load_unet("tiny-sd15", at::kDouble);
  Inputs in = fixture_inputs("tiny-sd15");
  macs::reset();
  at::Tensor full = unet->forward(in.sample, in.timestep, in.cond);
  const int64_t full_macs = macs::total();
  HalvingHooks hooks;
  macs::reset();
  at::Tensor merged = unet->forward(in.sample, in.timestep, in.cond, &hooks);
  EXPECT_LT(macs::total(), full_macs);
  EXPECT_EQ(merged.sizes(), full.sizes());
  EXPECT_GT(rel_err(merged, full), 1e-6);
}

// ---- bad model folders ----------------------------------------------------

fs::path copy_model(const std::string& model, const std::string& name) {
  fs::path dir = fs::temp_directory_path() /
                 ("diffsearch_unet_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir / "unet");
  fs::copy_file(model_dir(model) + "/model_index.json", dir / "model_index.json");
  fs::copy_file(model_dir(model) + "/unet/config.json", dir / "unet" / "config.json");
  fs::copy_file(model_dir(model) + "/unet/diffusion_pytorch_model.safetensors",
                dir / "unet" / "diffusion_pytorch_model.safetensors");
  return dir;
}

// Rewrites the weights, letting `edit` change or drop (return false) tensors.
void rewrite_weights(const fs::path& dir, const std::function<bool(io::TensorData&)>& edit) {
  const std::string path = (dir / "unet" / "diffusion_pytorch_model.safetensors").string();
  std::vector<io::TensorData> tensors;
  {
    auto file = io::SafetensorsFile::open(path);
    for (const auto& name : file->names()) {
      const auto& v = file->tensor(name);
      io::TensorData t{name, v.dtype, v.shape, std::vector<std::uint8_t>(v.data, v.data + v.nbytes)};
      if (edit(t)) tensors.push_back(std::move(t));
    }
  }
  io::write_safetensors(path, tensors);
}

void rewrite_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  const fs::path path = dir / "unet" / "config.json";
  nlohmann::json j = io::read_json_file(path.string());
  edit(j);
  std::ofstream(path) << j.dump(2);
}

std::string load_error(const fs::path& dir) {
  try {
    UNet2DCondition::load(io::DiffusersFolder(dir.string()), RunOptions{});
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(UNetBadInput, WeightOfTheWrongShape) {
  fs::path dir = copy_model("tiny-sd15", "wrong_shape");
  rewrite_weights(dir, [](io::TensorData& t) {
    if (t.name == "down_blocks.0.resnets.0.conv1.weight") t.shape = {16, 16, 9, 1};
    return true;
  });
  expect_contains(load_error(dir), {"diffusion_pytorch_model.safetensors",
                                    "down_blocks.0.resnets.0.conv1.weight", "[16, 16, 9, 1]",
                                    "[16, 16, 3, 3]"});
}

TEST(UNetBadInput, MissingWeight) {
  fs::path dir = copy_model("tiny-sdxl", "missing_weight");
  rewrite_weights(dir, [](io::TensorData& t) {
    return t.name != "mid_block.attentions.0.transformer_blocks.1.attn2.to_k.weight";
  });
  expect_contains(load_error(dir), {"diffusion_pytorch_model.safetensors",
                                    "mid_block.attentions.0.transformer_blocks.1.attn2.to_k.weight"});
}

TEST(UNetBadInput, ConfigWithoutANeededField) {
  fs::path dir = copy_model("tiny-sd15", "missing_field");
  rewrite_config(dir, [](nlohmann::json& j) { j.erase("block_out_channels"); });
  expect_contains(load_error(dir), {"unet/config.json", "'block_out_channels'", "missing"});

  dir = copy_model("tiny-sdxl", "missing_time_dim");
  rewrite_config(dir, [](nlohmann::json& j) { j["addition_time_embed_dim"] = nullptr; });
  expect_contains(load_error(dir), {"unet/config.json", "'addition_time_embed_dim'"});
}

TEST(UNetBadInput, UnknownBlockType) {
  fs::path dir = copy_model("tiny-sd15", "unknown_block");
  rewrite_config(dir, [](nlohmann::json& j) { j["down_block_types"][1] = "SimpleCrossAttnDownBlock2D"; });
  expect_contains(load_error(dir), {"unet/config.json", "'down_block_types'",
                                    "SimpleCrossAttnDownBlock2D", "CrossAttnDownBlock2D"});

  dir = copy_model("tiny-sd15", "unknown_mid");
  rewrite_config(dir, [](nlohmann::json& j) { j["mid_block_type"] = "UNetMidBlock2DSimpleCrossAttn"; });
  expect_contains(load_error(dir), {"'mid_block_type'", "UNetMidBlock2DSimpleCrossAttn"});
}

TEST(UNetBadInput, InconsistentConfig) {
  fs::path dir = copy_model("tiny-sd15", "bad_heads");
  rewrite_config(dir, [](nlohmann::json& j) { j["attention_head_dim"] = {2, 2}; });
  expect_contains(load_error(dir), {"'attention_head_dim'", "4 integers"});

  dir = copy_model("tiny-sd15", "unsupported");
  rewrite_config(dir, [](nlohmann::json& j) { j["class_embed_type"] = "timestep"; });
  expect_contains(load_error(dir), {"'class_embed_type'", "timestep"});

  dir = copy_model("tiny-sd15", "bad_channels");
  rewrite_config(dir, [](nlohmann::json& j) { j["block_out_channels"][1] = 64; });
  // The config now disagrees with the weights: a shape error names the weight.
  expect_contains(load_error(dir), {"has shape", "config.json implies"});
}

}  // namespace
