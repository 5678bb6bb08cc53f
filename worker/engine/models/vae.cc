// AutoencoderKL's decoder: post_quant_conv, conv_in, mid block (resnet,
// single-head attention with group norm and residual, resnet), up blocks, head.
#include "worker/engine/models/vae.h"

#include <cmath>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "io/error.h"
#include "worker/engine/core/device.h"
#include "worker/engine/core/nn.h"
#include "worker/engine/core/profile_scope.h"
#include "worker/engine/models/unet_blocks.h"
#include "worker/engine/models/unet_config.h"

namespace diffsearch::engine {

VaeConfig VaeConfig::from_json(const nlohmann::json& json, const std::string& source) {
  ConfigReader r(json, source);
  VaeConfig c;
  c.source = source;
  r.require_value("act_fn", "silu", {"silu", "swish"});
  c.latent_channels = r.integer("latent_channels");
  c.out_channels = r.integer("out_channels");
  c.block_out_channels = r.integers("block_out_channels");
  if (c.block_out_channels.empty()) r.fail("block_out_channels", "at least one entry", "[]");
  c.layers_per_block = r.integer("layers_per_block");
  if (c.layers_per_block < 0) {
    r.fail("layers_per_block", "a non-negative integer", std::to_string(c.layers_per_block));
  }
  c.norm_num_groups = r.integer("norm_num_groups", 32);
  for (int64_t ch : c.block_out_channels) {
    if (ch <= 0 || ch % c.norm_num_groups != 0) {
      r.fail("norm_num_groups", "a divisor of every block_out_channels entry",
             std::to_string(c.norm_num_groups) + " (channels " + std::to_string(ch) + ")");
    }
  }
  const std::vector<std::string> up = r.strings("up_block_types");
  for (const auto& t : up) {
    if (t != "UpDecoderBlock2D") {
      r.fail("up_block_types", "'UpDecoderBlock2D'", "'" + t + "'",
             "this block type is not implemented");
    }
  }
  if (up.size() != c.block_out_channels.size()) {
    r.fail("up_block_types",
           std::to_string(c.block_out_channels.size()) + " entries (one per block_out_channels)",
           std::to_string(up.size()));
  }
  // Needed: a wrong default would decode every image wrongly without a sign.
  c.scaling_factor = r.number("scaling_factor");
  if (!(c.scaling_factor > 0)) r.fail("scaling_factor", "a positive number", std::to_string(c.scaling_factor));
  if (r.has("latents_mean") && r.has("latents_std")) {
    c.latents_mean = r.numbers("latents_mean");
    c.latents_std = r.numbers("latents_std");
    if (static_cast<int64_t>(c.latents_mean.size()) != c.latent_channels ||
        static_cast<int64_t>(c.latents_std.size()) != c.latent_channels) {
      r.fail("latents_mean", std::to_string(c.latent_channels) + " values each in latents_mean and latents_std",
             std::to_string(c.latents_mean.size()) + " and " + std::to_string(c.latents_std.size()));
    }
  }
  c.use_post_quant_conv = r.boolean("use_post_quant_conv", true);
  c.mid_block_add_attention = r.boolean("mid_block_add_attention", true);
  return c;
}

namespace {

// diffusers' Attention as the VAE mid block builds it: one head over all
// channels, GroupNorm first, biased projections, residual connection.
struct VaeAttention {
  GroupNorm group_norm;
  Linear to_q, to_k, to_v, to_out;

  static VaeAttention load(Weights& w, const std::string& prefix, int64_t channels,
                           int64_t groups) {
    VaeAttention a;
    a.group_norm = GroupNorm::load(w, prefix + ".group_norm", groups, channels, 1e-6);
    a.to_q = Linear::load(w, prefix + ".to_q", channels, channels);
    a.to_k = Linear::load(w, prefix + ".to_k", channels, channels);
    a.to_v = Linear::load(w, prefix + ".to_v", channels, channels);
    a.to_out = Linear::load(w, prefix + ".to_out.0", channels, channels);
    return a;
  }

  at::Tensor operator()(const at::Tensor& x) const {
    ProfileScope scope("vae_attention");
    const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor t = group_norm(x).reshape({b, c, h * w}).transpose(1, 2);  // [B, HW, C]
    at::Tensor o = to_out(multi_head_attention(to_q(t), to_k(t), to_v(t), 1, /*upcast=*/false));
    return o.transpose(1, 2).reshape({b, c, h, w}) + x;
  }
};

struct DecoderUpBlock {
  std::vector<ResnetBlock2D> resnets;
  bool has_upsampler = false;
  Upsample2D upsampler;
};

}  // namespace

struct VaeDecoder::Impl {
  VaeConfig config;
  RunOptions options;
  Conv2d post_quant_conv;
  bool has_post_quant_conv = false;
  Conv2d conv_in;
  ResnetBlock2D mid_resnet_0, mid_resnet_1;
  bool has_mid_attention = false;
  VaeAttention mid_attention;
  std::vector<DecoderUpBlock> up;
  GroupNorm conv_norm_out;
  Conv2d conv_out;
  at::Tensor latents_mean, latents_std;  // [1, C, 1, 1] or undefined
};

VaeDecoder::VaeDecoder() : impl_(std::make_unique<Impl>()) {}
VaeDecoder::~VaeDecoder() = default;

std::unique_ptr<VaeDecoder> VaeDecoder::load(const io::DiffusersFolder& folder,
                                             const RunOptions& options) {
  const std::string source = folder.component_dir("vae") + "/config.json";
  VaeConfig config = VaeConfig::from_json(folder.component_config("vae"), source);
  const bool half = options.dtype == at::kHalf || options.dtype == at::kBFloat16;
  return load(config, folder.component_weights("vae", /*prefer_fp16=*/half), options);
}

std::unique_ptr<VaeDecoder> VaeDecoder::load(const VaeConfig& config, io::WeightSet weight_set,
                                             const RunOptions& options) {
  Weights w(std::move(weight_set), options);
  return load(config, w);
}

std::unique_ptr<VaeDecoder> VaeDecoder::load(const VaeConfig& config, Weights& w) {
  const RunOptions& options = w.options();
  std::unique_ptr<VaeDecoder> vae(new VaeDecoder());
  Impl& m = *vae->impl_;
  m.config = config;
  m.options = options;
  
  const auto& ch = config.block_out_channels;
  const int64_t groups = config.norm_num_groups;
  const double eps = 1e-6;  // the Decoder hard-codes it
  const int64_t lc = config.latent_channels;

  if (config.use_post_quant_conv) {
    m.has_post_quant_conv = true;
    m.post_quant_conv = Conv2d::load(w, "post_quant_conv", lc, lc, 1);
  }
  m.conv_in = Conv2d::load(w, "decoder.conv_in", lc, ch.back(), 3, 1, 1);
  m.mid_resnet_0 = ResnetBlock2D::load(w, "decoder.mid_block.resnets.0", ch.back(), ch.back(), 0, groups, eps);
  if (config.mid_block_add_attention) {
    m.has_mid_attention = true;
    m.mid_attention = VaeAttention::load(w, "decoder.mid_block.attentions.0", ch.back(), groups);
  }
  m.mid_resnet_1 = ResnetBlock2D::load(w, "decoder.mid_block.resnets.1", ch.back(), ch.back(), 0, groups, eps);

  const int n = static_cast<int>(ch.size());
  int64_t out_ch = ch.back();
  for (int i = 0; i < n; ++i) {
    const int64_t prev_ch = out_ch;
    out_ch = ch[n - 1 - i];
    const std::string p = "decoder.up_blocks." + std::to_string(i);
    DecoderUpBlock b;
    for (int64_t k = 0; k < config.layers_per_block + 1; ++k) {
      b.resnets.push_back(ResnetBlock2D::load(w, p + ".resnets." + std::to_string(k),
                                              k == 0 ? prev_ch : out_ch, out_ch, 0, groups, eps));
    }
    if (i + 1 < n) {
      b.has_upsampler = true;
      b.upsampler = Upsample2D::load(w, p + ".upsamplers.0", out_ch);
    }
    m.up.push_back(std::move(b));
  }
  m.conv_norm_out = GroupNorm::load(w, "decoder.conv_norm_out", groups, ch[0], eps);
  m.conv_out = Conv2d::load(w, "decoder.conv_out", ch[0], config.out_channels, 3, 1, 1);
  if (channels_last_enabled(w.options().device)) m.conv_out.pad_output_channels(8);

  if (!config.latents_mean.empty()) {
    auto f64 = at::TensorOptions().dtype(at::kDouble);
    m.latents_mean = torch::tensor(config.latents_mean, f64).reshape({1, lc, 1, 1}).to(options.device, options.dtype);
    m.latents_std = torch::tensor(config.latents_std, f64).reshape({1, lc, 1, 1}).to(options.device, options.dtype);
  }
  return vae;
}

at::Tensor VaeDecoder::decode(const at::Tensor& latents_in) const {
  const Impl& m = *impl_;
  const VaeConfig& c = m.config;
  if (!latents_in.defined() || latents_in.dim() != 4 || latents_in.size(1) != c.latent_channels) {
    throw InputError("VAE input: expected latents [batch, " + std::to_string(c.latent_channels) +
                     ", height, width] for " + c.source + ", found " +
                     (latents_in.defined() ? shape_string(latents_in.sizes().vec()) : "nothing"));
  }
  at::Tensor z = latents_in.to(m.options.device, m.options.dtype);
  // As the pipelines do before vae.decode.
  if (m.latents_mean.defined()) {
    z = z * m.latents_std / c.scaling_factor + m.latents_mean;
  } else {
    z = z / c.scaling_factor;
  }
  return decode_raw(z);
}

at::Tensor VaeDecoder::decode_raw(const at::Tensor& z_in) const {
  const Impl& m = *impl_;
  const VaeConfig& c = m.config;
  if (!z_in.defined() || z_in.dim() != 4 || z_in.size(1) != c.latent_channels) {
    throw InputError("VAE input: expected latents [batch, " + std::to_string(c.latent_channels) +
                     ", height, width] for " + c.source + ", found " +
                     (z_in.defined() ? shape_string(z_in.sizes().vec()) : "nothing"));
  }
  at::Tensor z = z_in.to(m.options.device, m.options.dtype);
  const bool nhwc = channels_last_enabled(m.options.device);
  if (nhwc) z = z.contiguous(at::MemoryFormat::ChannelsLast);
  if (m.has_post_quant_conv) z = m.post_quant_conv(z);

  at::Tensor h = m.conv_in(z);
  h = m.mid_resnet_0(h, at::Tensor());
  if (m.has_mid_attention) h = m.mid_attention(h);
  h = m.mid_resnet_1(h, at::Tensor());
  for (const auto& b : m.up) {
    for (const auto& r : b.resnets) h = r(h, at::Tensor());
    if (b.has_upsampler) h = b.upsampler(h);
  }
  at::Tensor images = m.conv_out(m.conv_norm_out.silu(h));
  return nhwc ? images.contiguous() : images;
}

double VaeDecoder::scaling_factor() const { return impl_->config.scaling_factor; }
const VaeConfig& VaeDecoder::config() const { return impl_->config; }

}  // namespace diffsearch::engine
