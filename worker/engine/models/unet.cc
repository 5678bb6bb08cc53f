// The UNet forward: time embedding (and SDXL's text_time embedding), down
// blocks, mid block, up blocks with skips, output head; hooks at every level.
#include "worker/engine/models/unet.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "io/error.h"
#include "io/log/log.h"
#include "worker/engine/core/device.h"
#include "worker/engine/core/nn.h"
#include "worker/engine/core/profile_scope.h"
#include "worker/engine/models/unet_blocks.h"

namespace diffsearch::engine {
namespace {

// Sinusoidal embedding as diffusers computes it: always in float32 (its
// Timesteps module ignores the model dtype), cast by the caller.
at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                              double freq_shift) {
  const int64_t half = dim / 2;
  auto f32 = at::TensorOptions().dtype(at::kFloat).device(timesteps.device());
  at::Tensor exponent = at::arange(0, half, f32) * (-std::log(10000.0));
  exponent = exponent / (static_cast<double>(half) - freq_shift);
  at::Tensor args = timesteps.to(at::kFloat).unsqueeze(1) * exponent.exp().unsqueeze(0);
  at::Tensor emb = flip_sin_to_cos ? at::cat({args.cos(), args.sin()}, -1)
                                   : at::cat({args.sin(), args.cos()}, -1);
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1, 0, 0}, 0);
  return emb;
}

// Profiler names of the blocks (string literals outlive the scopes).
const char* block_name(UNetPart part, int i) {
  static const char* const down[] = {"down.0", "down.1", "down.2", "down.3"};
  static const char* const up[] = {"up.0", "up.1", "up.2", "up.3"};
  if (part == UNetPart::mid) return "mid";
  if (i < 0 || i > 3) return part == UNetPart::down ? "down" : "up";
  return part == UNetPart::down ? down[i] : up[i];
}

// A whole block or one layer, run through the hooks (reuse or compute+report).
template <class Compute>
at::Tensor hooked(UNetHooks* hooks, const UNetLocation& where, Compute&& compute) {
  if (hooks == nullptr) return compute();
  LayerOutput out;
  if (hooks->reuse_layer(where, out)) return out.hidden;
  out.hidden = compute();
  hooks->layer_computed(where, out);
  return out.hidden;
}

struct DownBlock {
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2D> attentions;  // empty for DownBlock2D
  bool has_downsampler = false;
  Downsample2D downsampler;
};

struct MidBlock {
  std::vector<ResnetBlock2D> resnets;  // one more than attentions
  std::vector<Transformer2D> attentions;
};

struct UpBlock {
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2D> attentions;  // empty for UpBlock2D
  bool has_upsampler = false;
  Upsample2D upsampler;
};

}  // namespace

struct UNet2DCondition::Impl {
  UNetConfig config;
  RunOptions options;
  Conv2d conv_in;
  Linear time_linear_1, time_linear_2;
  Linear add_linear_1, add_linear_2;  // text_time only
  std::vector<DownBlock> down;
  MidBlock mid;
  std::vector<UpBlock> up;
  GroupNorm conv_norm_out;
  Conv2d conv_out;
  std::mutex split_mutex;  // prepare_input_share

  // Per-forward state shared by every block.
  struct Step {
    at::Tensor temb_act;  // SiLU(time embedding), what every resnet projects
    at::Tensor context;   // encoder hidden states
    UNetHooks* hooks;
  };

  at::Tensor time_mlp(const at::Tensor& timesteps) const {
    const int64_t c0 = config.block_out_channels[0];
    at::Tensor t_emb = timestep_embedding(timesteps, c0, config.flip_sin_to_cos, config.freq_shift)
                           .to(options.dtype);
    return time_linear_2(at::silu(time_linear_1(t_emb)));
  }

  LayerOutput run_down(int i, const at::Tensor& x, const Step& s) const;
  at::Tensor run_mid(const at::Tensor& x, const Step& s) const;
  at::Tensor run_up(int j, const at::Tensor& x, std::vector<at::Tensor> skips,
                    const std::vector<int64_t>& upsample_size, const Step& s) const;
};

UNet2DCondition::UNet2DCondition() : impl_(std::make_unique<Impl>()) {}
UNet2DCondition::~UNet2DCondition() = default;

std::unique_ptr<UNet2DCondition> UNet2DCondition::load(const io::DiffusersFolder& folder,
                                                       const RunOptions& options) {
  const std::string source = folder.component_dir("unet") + "/config.json";
  UNetConfig config = UNetConfig::from_json(folder.component_config("unet"), source);
  const bool half = options.dtype == at::kHalf || options.dtype == at::kBFloat16;
  return load(config, folder.component_weights("unet", /*prefer_fp16=*/half), options);
}

std::unique_ptr<UNet2DCondition> UNet2DCondition::load(const UNetConfig& config,
                                                       io::WeightSet weight_set,
                                                       const RunOptions& options) {
  Weights w(std::move(weight_set), options);
  return load(config, w);
}

std::unique_ptr<UNet2DCondition> UNet2DCondition::load(const UNetConfig& config, Weights& w) {
  const RunOptions& options = w.options();
  std::unique_ptr<UNet2DCondition> unet(new UNet2DCondition());
  Impl& m = *unet->impl_;
  m.config = config;
  m.options = options;
  
  const UNetConfig& c = config;
  const auto& ch = c.block_out_channels;
  const int n = c.num_down_blocks();
  const int64_t groups = c.norm_num_groups;
  const double eps = c.norm_eps;
  const int64_t temb = c.time_embed_dim;

  m.conv_in = Conv2d::load(w, "conv_in", c.in_channels, ch[0], c.conv_in_kernel, 1,
                           (c.conv_in_kernel - 1) / 2);
  m.time_linear_1 = Linear::load(w, "time_embedding.linear_1", ch[0], temb);
  m.time_linear_2 = Linear::load(w, "time_embedding.linear_2", temb, temb);
  if (c.text_time()) {
    m.add_linear_1 =
        Linear::load(w, "add_embedding.linear_1", c.projection_class_embeddings_input_dim, temb);
    m.add_linear_2 = Linear::load(w, "add_embedding.linear_2", temb, temb);
  }

  int64_t out_ch = ch[0];
  for (int i = 0; i < n; ++i) {
    const int64_t in_ch = out_ch;
    out_ch = ch[i];
    const std::string p = "down_blocks." + std::to_string(i);
    DownBlock b;
    for (int64_t j = 0; j < c.layers_per_block[i]; ++j) {
      const std::string pj = "." + std::to_string(j);
      b.resnets.push_back(ResnetBlock2D::load(w, p + ".resnets" + pj, j == 0 ? in_ch : out_ch,
                                              out_ch, temb, groups, eps));
      if (c.down_has_attention(i)) {
        b.attentions.push_back(Transformer2D::load(
            w, p + ".attentions" + pj, out_ch, c.attention_heads[i], c.cross_attention_dim[i],
            c.down_transformer_layers[i][j], groups, c.use_linear_projection, c.upcast_attention));
      }
    }
    if (i + 1 < n) {
      b.has_downsampler = true;
      b.downsampler = Downsample2D::load(w, p + ".downsamplers.0", out_ch, c.downsample_padding);
    }
    m.down.push_back(std::move(b));
  }

  const int64_t mid_ch = ch.back();
  const double mid_scale = c.mid_block_scale_factor;
  m.mid.resnets.push_back(
      ResnetBlock2D::load(w, "mid_block.resnets.0", mid_ch, mid_ch, temb, groups, eps, mid_scale));
  m.mid.attentions.push_back(Transformer2D::load(
      w, "mid_block.attentions.0", mid_ch, c.attention_heads.back(), c.cross_attention_dim.back(),
      c.mid_transformer_layers, groups, c.use_linear_projection, c.upcast_attention));
  m.mid.resnets.push_back(
      ResnetBlock2D::load(w, "mid_block.resnets.1", mid_ch, mid_ch, temb, groups, eps, mid_scale));

  out_ch = c.up_out_channels(0);
  for (int j = 0; j < n; ++j) {
    const int64_t prev_ch = out_ch;
    out_ch = c.up_out_channels(j);
    const int64_t skip_in_ch = c.up_out_channels(std::min(j + 1, n - 1));
    const int64_t layers = c.up_layers(j);
    const std::string p = "up_blocks." + std::to_string(j);
    UpBlock b;
    for (int64_t k = 0; k < layers; ++k) {
      const int64_t res_skip = k == layers - 1 ? skip_in_ch : out_ch;
      const int64_t res_in = k == 0 ? prev_ch : out_ch;
      const std::string pk = "." + std::to_string(k);
      b.resnets.push_back(
          ResnetBlock2D::load(w, p + ".resnets" + pk, res_in + res_skip, out_ch, temb, groups, eps));
      if (c.up_has_attention(j)) {
        b.attentions.push_back(Transformer2D::load(
            w, p + ".attentions" + pk, out_ch, c.up_heads(j), c.up_cross_attention_dim(j),
            c.up_transformer_layers[j][k], groups, c.use_linear_projection, c.upcast_attention));
      }
    }
    if (j + 1 < n) {
      b.has_upsampler = true;
      b.upsampler = Upsample2D::load(w, p + ".upsamplers.0", out_ch);
    }
    m.up.push_back(std::move(b));
  }

  m.conv_norm_out = GroupNorm::load(w, "conv_norm_out", groups, ch[0], eps);
  m.conv_out = Conv2d::load(w, "conv_out", ch[0], c.out_channels, c.conv_out_kernel, 1,
                            (c.conv_out_kernel - 1) / 2);
  if (channels_last_enabled(options.device)) m.conv_out.pad_output_channels(8);

  const auto unused = w.unused();
  if (!unused.empty()) {
    log::warn(w.description() + ": " + std::to_string(unused.size()) +
              " weights not used by the architecture in " + c.source + " (first: '" +
              unused.front() + "')");
  }
  return unet;
}

LayerOutput UNet2DCondition::Impl::run_down(int i, const at::Tensor& x, const Step& s) const {
  const DownBlock& b = down[i];
  ProfileScope scope(block_name(UNetPart::down, i));
  UNetHooks* hooks = s.hooks;
  const UNetLocation where{UNetPart::down, i, UNetModule::block, 0};
  LayerOutput out;
  if (hooks && hooks->reuse_layer(where, out)) return out;
  at::Tensor h = x;
  for (std::size_t j = 0; j < b.resnets.size(); ++j) {
    const int layer = static_cast<int>(j);
    h = hooked(hooks, {UNetPart::down, i, UNetModule::resnet, layer},
               [&] { return b.resnets[j](h, s.temb_act); });
    if (!b.attentions.empty()) {
      const UNetLocation at_where{UNetPart::down, i, UNetModule::attention, layer};
      h = hooked(hooks, at_where, [&] { return b.attentions[j].forward(h, s.context, hooks, at_where); });
    }
    out.skips.push_back(h);
  }
  if (b.has_downsampler) {
    h = hooked(hooks, {UNetPart::down, i, UNetModule::downsampler, 0},
               [&] { return b.downsampler(h); });
    out.skips.push_back(h);
  }
  out.hidden = h;
  if (hooks) hooks->layer_computed(where, out);
  return out;
}

at::Tensor UNet2DCondition::Impl::run_mid(const at::Tensor& x, const Step& s) const {
  ProfileScope scope("mid");
  UNetHooks* hooks = s.hooks;
  return hooked(hooks, {UNetPart::mid, 0, UNetModule::block, 0}, [&] {
    at::Tensor h = hooked(hooks, {UNetPart::mid, 0, UNetModule::resnet, 0},
                          [&] { return mid.resnets[0](x, s.temb_act); });
    for (std::size_t k = 0; k < mid.attentions.size(); ++k) {
      const int layer = static_cast<int>(k);
      const UNetLocation at_where{UNetPart::mid, 0, UNetModule::attention, layer};
      h = hooked(hooks, at_where, [&] { return mid.attentions[k].forward(h, s.context, hooks, at_where); });
      h = hooked(hooks, {UNetPart::mid, 0, UNetModule::resnet, layer + 1},
                 [&] { return mid.resnets[k + 1](h, s.temb_act); });
    }
    return h;
  });
}

at::Tensor UNet2DCondition::Impl::run_up(int j, const at::Tensor& x, std::vector<at::Tensor> skips,
                                         const std::vector<int64_t>& upsample_size,
                                         const Step& s) const {
  const UpBlock& b = up[j];
  ProfileScope scope(block_name(UNetPart::up, j));
  UNetHooks* hooks = s.hooks;
  return hooked(hooks, {UNetPart::up, j, UNetModule::block, 0}, [&] {
    at::Tensor h = x;
    for (std::size_t k = 0; k < b.resnets.size(); ++k) {
      const int layer = static_cast<int>(k);
      // Skips are consumed last first, the concatenation belongs to the resnet
      // (so a reused resnet skips it too).
      const at::Tensor skip = skips.back();
      skips.pop_back();
      const UNetLocation res_where{UNetPart::up, j, UNetModule::resnet, layer};
      h = hooked(hooks, res_where, [&] {
        ResnetInputShare* share = hooks ? hooks->resnet_input_share(res_where) : nullptr;
        if (share != nullptr && b.resnets[k].input_split != nullptr &&
            b.resnets[k].input_split->h_channels == h.size(1)) {
          return b.resnets[k].forward_split(h, skip, s.temb_act, *share);
        }
        return b.resnets[k](at::cat({h, skip}, 1), s.temb_act);
      });
      if (!b.attentions.empty()) {
        const UNetLocation at_where{UNetPart::up, j, UNetModule::attention, layer};
        h = hooked(hooks, at_where, [&] { return b.attentions[k].forward(h, s.context, hooks, at_where); });
      }
    }
    if (b.has_upsampler) {
      h = hooked(hooks, {UNetPart::up, j, UNetModule::upsampler, 0},
                 [&] { return b.upsampler(h, upsample_size); });
    }
    return h;
  });
}

at::Tensor UNet2DCondition::forward(const at::Tensor& sample_in, const at::Tensor& timesteps_in,
                                    const UNetConditioning& cond, UNetHooks* hooks) const {
  const Impl& m = *impl_;
  const UNetConfig& c = m.config;
  const auto dtype = m.options.dtype;
  const auto device = m.options.device;

  if (!sample_in.defined() || sample_in.dim() != 4 || sample_in.size(1) != c.in_channels) {
    throw InputError("UNet input: expected latents [batch, " + std::to_string(c.in_channels) +
                     ", height, width] for " + c.source + ", found " +
                     (sample_in.defined() ? shape_string(sample_in.sizes().vec()) : "nothing"));
  }
  const int64_t batch = sample_in.size(0);
  const at::Tensor& ctx_in = cond.encoder_hidden_states;
  if (!ctx_in.defined() || ctx_in.dim() != 3 || ctx_in.size(0) != batch ||
      ctx_in.size(2) != c.cross_attention_dim.front()) {
    throw InputError("UNet input: expected encoder hidden states [" + std::to_string(batch) +
                     ", tokens, " + std::to_string(c.cross_attention_dim.front()) + "] for " +
                     c.source + ", found " +
                     (ctx_in.defined() ? shape_string(ctx_in.sizes().vec()) : "nothing") +
                     " (do the text encoder and the UNet come from the same model?)");
  }
  at::Tensor sample = sample_in.to(device, dtype);
  const bool nhwc = channels_last_enabled(device);
  if (nhwc) sample = sample.contiguous(at::MemoryFormat::ChannelsLast);
  Impl::Step s;
  s.context = ctx_in.to(device, dtype);
  s.hooks = hooks;

  at::Tensor timesteps = timesteps_in.to(device);
  if (timesteps.dim() == 0) timesteps = timesteps.reshape({1});
  if (timesteps.dim() != 1 || (timesteps.size(0) != 1 && timesteps.size(0) != batch)) {
    throw InputError("UNet input: expected timesteps [" + std::to_string(batch) +
                     "], [1] or a scalar, found " + shape_string(timesteps.sizes().vec()));
  }
  timesteps = timesteps.expand({batch});

  if (hooks) {
    UNetForwardInfo info;
    info.batch = batch;
    info.height = sample.size(2);
    info.width = sample.size(3);
    info.timesteps = timesteps;
    hooks->begin_forward(info);
  }

  // 1. time embedding (+ SDXL's pooled text and size/crop conditioning)
  auto embed_scope = std::make_unique<ProfileScope>("embed");
  at::Tensor emb;
  if (cond.time_embedding.defined()) {
    const at::Tensor& given = cond.time_embedding;
    const bool fits = (given.dim() == 1 && given.size(0) == c.time_embed_dim) ||
                      (given.dim() == 2 && (given.size(0) == 1 || given.size(0) == batch) &&
                       given.size(1) == c.time_embed_dim);
    if (!fits) {
      throw InputError("UNet input: expected a time embedding [" + std::to_string(c.time_embed_dim) +
                       "] or [" + std::to_string(batch) + ", " + std::to_string(c.time_embed_dim) +
                       "] (a row of time_embeddings()) for " + c.source + ", found " +
                       shape_string(given.sizes().vec()));
    }
    emb = given.to(device, dtype).reshape({-1, c.time_embed_dim}).expand({batch, -1});
  } else {
    emb = m.time_mlp(timesteps);
  }
  if (c.text_time()) {
    const int64_t text_dim = c.projection_class_embeddings_input_dim - 6 * c.addition_time_embed_dim;
    if (!cond.text_embeds.defined() || !cond.time_ids.defined() ||
        cond.text_embeds.dim() != 2 || cond.text_embeds.size(0) != batch ||
        cond.text_embeds.size(1) != text_dim || cond.time_ids.numel() != batch * 6) {
      throw InputError(
          "UNet input: " + c.source + " has addition_embed_type 'text_time', which needs pooled "
          "text embeddings [" + std::to_string(batch) + ", " + std::to_string(text_dim) +
          "] and time ids [" + std::to_string(batch) + ", 6]; found " +
          (cond.text_embeds.defined() ? shape_string(cond.text_embeds.sizes().vec()) : "nothing") +
          " and " + (cond.time_ids.defined() ? shape_string(cond.time_ids.sizes().vec()) : "nothing"));
    }
    at::Tensor time_embeds =
        timestep_embedding(cond.time_ids.to(device).flatten(), c.addition_time_embed_dim,
                           c.flip_sin_to_cos, c.freq_shift)
            .reshape({batch, -1});
    at::Tensor add = at::cat({cond.text_embeds.to(device, dtype), time_embeds.to(dtype)}, -1);
    emb = emb + m.add_linear_2(at::silu(m.add_linear_1(add)));
  }
  s.temb_act = at::silu(emb);
  embed_scope.reset();

  // 2. down
  at::Tensor h;
  {
    ProfileScope scope("conv_in");
    h = m.conv_in(sample);
  }
  std::vector<at::Tensor> skips{h};
  for (int i = 0; i < c.num_down_blocks(); ++i) {
    LayerOutput out = m.run_down(i, h, s);
    h = out.hidden;
    skips.insert(skips.end(), out.skips.begin(), out.skips.end());
  }

  // 3. mid
  h = m.run_mid(h, s);

  // 4. up. Sizes not divisible by 2^upsamplers make the upsamplers match the
  // skip they are concatenated with instead of doubling.
  const int64_t factor = int64_t{1} << (c.num_up_blocks() - 1);
  const bool forward_size = sample.size(2) % factor != 0 || sample.size(3) % factor != 0;
  for (int j = 0; j < c.num_up_blocks(); ++j) {
    const std::size_t count = m.up[j].resnets.size();
    DIFFSEARCH_ASSERT(skips.size() >= count);
    std::vector<at::Tensor> block_skips(skips.end() - count, skips.end());
    skips.resize(skips.size() - count);
    std::vector<int64_t> size;
    if (forward_size && j + 1 < c.num_up_blocks()) {
      size = {skips.back().size(2), skips.back().size(3)};
    }
    h = m.run_up(j, h, std::move(block_skips), size, s);
  }

  // 5. out
  ProfileScope scope("head");
  at::Tensor out = m.conv_out(m.conv_norm_out.silu(h));
  // Callers (samplers, policies, tests) get the usual NCHW tensor.
  return nhwc ? out.contiguous() : out;
}

at::Tensor UNet2DCondition::time_embeddings(const at::Tensor& timesteps) const {
  if (!timesteps.defined() || timesteps.dim() != 1) {
    throw InputError("UNet time embeddings: expected timesteps [steps], found " +
                     (timesteps.defined() ? shape_string(timesteps.sizes().vec()) : "nothing"));
  }
  torch::NoGradGuard no_grad;
  ProfileScope scope("embed");
  return impl_->time_mlp(timesteps.to(impl_->options.device));
}

const UNetConfig& UNet2DCondition::config() const { return impl_->config; }
const RunOptions& UNet2DCondition::options() const { return impl_->options; }
int UNet2DCondition::num_down_blocks() const { return impl_->config.num_down_blocks(); }
int UNet2DCondition::num_up_blocks() const { return impl_->config.num_up_blocks(); }

int UNet2DCondition::num_resnets(UNetPart part, int block) const {
  switch (part) {
    case UNetPart::down: return static_cast<int>(impl_->down.at(block).resnets.size());
    case UNetPart::mid: return static_cast<int>(impl_->mid.resnets.size());
    case UNetPart::up: return static_cast<int>(impl_->up.at(block).resnets.size());
  }
  return 0;
}

int UNet2DCondition::num_attentions(UNetPart part, int block) const {
  switch (part) {
    case UNetPart::down: return static_cast<int>(impl_->down.at(block).attentions.size());
    case UNetPart::mid: return static_cast<int>(impl_->mid.attentions.size());
    case UNetPart::up: return static_cast<int>(impl_->up.at(block).attentions.size());
  }
  return 0;
}

int UNet2DCondition::num_transformer_blocks(UNetPart part, int block, int layer) const {
  const std::vector<Transformer2D>* list = nullptr;
  switch (part) {
    case UNetPart::down: list = &impl_->down.at(block).attentions; break;
    case UNetPart::mid: list = &impl_->mid.attentions; break;
    case UNetPart::up: list = &impl_->up.at(block).attentions; break;
  }
  return static_cast<int>(list->at(layer).blocks.size());
}

bool UNet2DCondition::prepare_input_share(const UNetLocation& where) const {
  if (where.part != UNetPart::up || where.module != UNetModule::resnet || where.block < 0 ||
      where.block >= num_up_blocks()) {
    return false;
  }
  UpBlock& b = impl_->up[where.block];
  if (where.layer < 0 || where.layer >= static_cast<int>(b.resnets.size())) return false;
  std::lock_guard<std::mutex> lock(impl_->split_mutex);
  ResnetBlock2D& r = b.resnets[where.layer];
  if (r.input_split != nullptr) return true;
  // h is the previous layer's output (or the block input): the block's
  // channels, or the previous up block's for its first resnet.
  const int64_t h_channels =
      where.layer == 0 ? impl_->config.up_out_channels(std::max(where.block - 1, 0))
                       : impl_->config.up_out_channels(where.block);
  torch::NoGradGuard no_grad;
  return r.split_input(h_channels);
}

bool UNet2DCondition::has_downsampler(int down_block) const {
  return impl_->down.at(down_block).has_downsampler;
}

bool UNet2DCondition::has_upsampler(int up_block) const {
  return impl_->up.at(up_block).has_upsampler;
}

}  // namespace diffsearch::engine
