// The SD / SDXL text-to-image pipelines as diffusers runs them: encode_prompt,
// prepare_latents, the denoising loop with classifier-free guidance, decode.
#include "worker/engine/pipeline/pipeline.h"

#include <algorithm>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "io/diffusers_folder.h"
#include "io/error.h"
#include "io/log/log.h"
#include "worker/engine/clip/clip_text.h"
#include "worker/engine/clip/clip_tokenizer.h"
#include "worker/engine/core/profile_scope.h"
#include "worker/engine/models/unet.h"
#include "worker/engine/models/vae.h"

namespace diffsearch::engine {

std::string model_family_name(ModelFamily family) {
  return family == ModelFamily::sdxl ? "sdxl" : "sd";
}

at::Tensor seeded_randn(const std::vector<int64_t>& shape, uint64_t seed) {
  // libtorch's CPU generator is PyTorch's (mt19937 seeded the same way, the
  // same Box-Muller batches), so this is the stream Python users get.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor images_to_uint8(const at::Tensor& images) {
  DIFFSEARCH_ASSERT(images.dim() == 4);
  // Denormalise in the images' dtype, then float32 and round half to even,
  // as diffusers' VaeImageProcessor and numpy do.
  at::Tensor x = (images / 2 + 0.5).clamp(0, 1);
  x = x.to(at::kCPU).permute({0, 2, 3, 1}).to(at::kFloat);
  return at::round(x * 255).to(at::kByte).contiguous();
}

namespace {

struct TextTower {
  std::unique_ptr<ClipTokenizer> tokenizer;
  std::unique_ptr<ClipTextEncoder> encoder;
};

TextTower load_tower(const io::DiffusersFolder& folder, const std::string& tokenizer,
                     const std::string& encoder, const RunOptions& options) {
  for (const auto& c : {tokenizer, encoder}) {
    if (!folder.has_component(c)) {
      throw InputError(folder.dir() + ": component '" + c +
                       "' missing (model_index.json must name it and " + folder.component_dir(c) +
                       "/ must exist)");
    }
  }
  TextTower t;
  t.tokenizer = std::make_unique<ClipTokenizer>(ClipTokenizer::load(folder.component_dir(tokenizer)));
  t.encoder = std::make_unique<ClipTextEncoder>(ClipTextEncoder::load(folder, encoder, options));
  return t;
}

bool json_true(const nlohmann::json& j, const char* key, bool fallback) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return j.at(key).is_boolean() ? j.at(key).get<bool>() : fallback;
}

}  // namespace

struct Pipeline::Impl {
  std::string dir;
  RunOptions options;
  ModelFamily family = ModelFamily::sd;
  std::vector<TextTower> towers;  // SD: one; SDXL: two
  std::unique_ptr<UNet2DCondition> unet;
  std::unique_ptr<VaeDecoder> vae;
  nlohmann::json scheduler_config;
  std::string scheduler_source;
  bool force_zeros_for_empty_prompt = true;
  int64_t vae_scale_factor = 8;
  c10::ScalarType vae_dtype = c10::kFloat;

  // Ids of each prompt through tower `i`, [B, 77]; warns on truncation.
  at::Tensor tokenize(std::size_t i, const std::vector<std::string>& texts, bool& truncated) const {
    std::vector<int64_t> all;
    int64_t length = 0;
    for (const auto& text : texts) {
      ClipTokens t = towers[i].tokenizer->encode(text);
      if (t.truncated) {
        truncated = true;
        log::warn("prompt truncated to " + std::to_string(t.ids.size()) +
                  " tokens (CLIP's limit); dropped: \"" + t.dropped_text + "\"");
      }
      length = static_cast<int64_t>(t.ids.size());
      all.insert(all.end(), t.ids.begin(), t.ids.end());
    }
    return torch::tensor(all, torch::kLong).view({static_cast<int64_t>(texts.size()), length});
  }
};

Pipeline::Pipeline() : impl_(std::make_unique<Impl>()) {}
Pipeline::~Pipeline() = default;

std::unique_ptr<Pipeline> Pipeline::load(const std::string& model_dir, const RunOptions& options) {
  io::DiffusersFolder folder(model_dir);
  std::unique_ptr<Pipeline> p(new Pipeline());
  Impl& m = *p->impl_;
  m.dir = model_dir;
  m.options = options;
  const nlohmann::json& index = folder.model_index();
  m.family = index.contains("text_encoder_2") ? ModelFamily::sdxl : ModelFamily::sd;
  m.force_zeros_for_empty_prompt =
      m.family == ModelFamily::sdxl && json_true(index, "force_zeros_for_empty_prompt", true);
  for (const char* c : {"unet", "vae", "scheduler"}) {
    if (!folder.has_component(c)) {
      throw InputError(model_dir + ": component '" + std::string(c) +
                       "' missing (model_index.json must name it and " + folder.component_dir(c) +
                       "/ must exist)");
    }
  }
  m.towers.push_back(load_tower(folder, "tokenizer", "text_encoder", options));
  if (m.family == ModelFamily::sdxl) {
    m.towers.push_back(load_tower(folder, "tokenizer_2", "text_encoder_2", options));
  }
  m.unet = UNet2DCondition::load(folder, options);
  // SDXL's pipeline decodes fp16 latents with a float32 VAE when the VAE's
  // config asks for it (force_upcast): the SDXL VAE overflows in fp16.
  const nlohmann::json vae_json = folder.component_config("vae");
  RunOptions vae_options = options;
  if (m.family == ModelFamily::sdxl && options.dtype == c10::kHalf &&
      json_true(vae_json, "force_upcast", true)) {
    vae_options.dtype = c10::kFloat;
  }
  m.vae = VaeDecoder::load(folder, vae_options);
  m.vae_dtype = vae_options.dtype;
  m.vae_scale_factor = int64_t{1} << (m.vae->config().block_out_channels.size() - 1);
  m.scheduler_config = folder.component_config("scheduler");
  m.scheduler_source = folder.component_dir("scheduler") + "/scheduler_config.json";

  // The parts must fit together; say so here rather than fail inside a matmul.
  const UNetConfig& uc = m.unet->config();
  int64_t text_dim = 0;
  for (const auto& t : m.towers) text_dim += t.encoder->config().hidden_size;
  if (!uc.cross_attention_dim.empty() && uc.cross_attention_dim[0] != text_dim) {
    throw InputError(uc.source + ": cross_attention_dim is " +
                     std::to_string(uc.cross_attention_dim[0]) + " but the text encoder" +
                     (m.towers.size() > 1 ? "s give " : " gives ") + std::to_string(text_dim) +
                     " features (the unet and text_encoder come from different models)");
  }
  if (m.family == ModelFamily::sdxl) {
    if (!uc.text_time()) {
      throw InputError(uc.source + ": addition_embed_type must be \"text_time\" for an SDXL "
                       "pipeline (model_index.json names text_encoder_2), found \"" +
                       uc.addition_embed_type + "\"");
    }
    const int64_t pooled = m.towers[1].encoder->config().projection_dim;
    const int64_t expected = uc.addition_time_embed_dim * 6 + pooled;
    if (pooled == 0 || uc.projection_class_embeddings_input_dim != expected) {
      throw InputError(uc.source + ": projection_class_embeddings_input_dim is " +
                       std::to_string(uc.projection_class_embeddings_input_dim) +
                       " but 6 time ids x addition_time_embed_dim + text_encoder_2's "
                       "projection_dim give " + std::to_string(expected) +
                       " (text_encoder_2 must be a CLIPTextModelWithProjection)");
    }
  }
  if (uc.in_channels != m.vae->config().latent_channels) {
    throw InputError(uc.source + ": in_channels is " + std::to_string(uc.in_channels) +
                     " but the VAE has " + std::to_string(m.vae->config().latent_channels) +
                     " latent channels");
  }
  // Fail now on a bad scheduler config, not after the encoders have run.
  engine::make_sampler(SamplerKind::ddim, m.scheduler_config, m.scheduler_source);
  return p;
}

ModelFamily Pipeline::family() const { return impl_->family; }
const RunOptions& Pipeline::options() const { return impl_->options; }
const std::string& Pipeline::model_dir() const { return impl_->dir; }
int64_t Pipeline::vae_scale_factor() const { return impl_->vae_scale_factor; }
int64_t Pipeline::latent_channels() const { return impl_->unet->config().in_channels; }
const nlohmann::json& Pipeline::scheduler_config() const { return impl_->scheduler_config; }
const UNet2DCondition& Pipeline::unet() const { return *impl_->unet; }
const VaeDecoder& Pipeline::vae() const { return *impl_->vae; }

int64_t Pipeline::default_height() const {
  const int64_t s = impl_->unet->config().sample_size;
  return (s > 0 ? s : 64) * impl_->vae_scale_factor;
}
int64_t Pipeline::default_width() const { return default_height(); }

std::unique_ptr<Sampler> Pipeline::make_sampler(SamplerKind kind) const {
  return engine::make_sampler(kind, impl_->scheduler_config, impl_->scheduler_source);
}

void Pipeline::check_size(int64_t height, int64_t width) const {
  const int64_t f = impl_->vae_scale_factor;
  for (auto [name, v] : {std::pair<const char*, int64_t>{"height", height}, {"width", width}}) {
    if (v <= 0 || v % f != 0) {
      throw InputError(std::string(name) + " " + std::to_string(v) +
                       " is not a positive multiple of " + std::to_string(f) +
                       " (the VAE's scale factor); use for example " +
                       std::to_string(std::max<int64_t>(f, (v + f / 2) / f * f)));
    }
  }
}

PromptTokens PromptTokens::to(const c10::Device& device) const {
  PromptTokens t = *this;
  for (auto& x : t.ids) x = x.to(device);
  for (auto& x : t.positions) x = x.to(device);
  if (t.time_ids.defined()) t.time_ids = t.time_ids.to(device);
  return t;
}

PromptTokens Pipeline::tokenize_prompts(const std::vector<std::string>& prompts,
                                        const std::vector<std::string>& negative_prompts,
                                        int64_t height, int64_t width) const {
  const Impl& m = *impl_;
  if (prompts.empty()) throw InputError("no prompt given");
  if (!negative_prompts.empty() && negative_prompts.size() != prompts.size()) {
    throw InputError(std::to_string(negative_prompts.size()) + " negative prompts for " +
                     std::to_string(prompts.size()) +
                     " prompts (give none, or one per prompt)");
  }
  // No negative prompt at all is diffusers' negative_prompt=None: SD encodes
  // "", SDXL (force_zeros_for_empty_prompt) uses zeros. A given "" is encoded.
  const bool none_given = negative_prompts.empty();
  std::vector<std::string> negatives = negative_prompts;
  if (none_given) negatives.assign(prompts.size(), "");

  PromptTokens t;
  t.batch = static_cast<int64_t>(prompts.size());
  t.zero_negatives = m.family == ModelFamily::sdxl && none_given && m.force_zeros_for_empty_prompt;
  // Positive and negative ids go through each encoder as one batch: at these
  // sizes the encoder is bound by launching kernels, not by arithmetic.
  for (std::size_t i = 0; i < m.towers.size(); ++i) {
    at::Tensor ids = m.tokenize(i, prompts, t.truncated);
    if (!t.zero_negatives) {
      bool ignored = false;
      ids = at::cat({ids, m.tokenize(i, negatives, ignored)}, 0);
    }
    m.towers[i].encoder->check_ids(ids);
    t.positions.push_back(m.towers[i].encoder->pooling_positions(ids));
    t.ids.push_back(ids);
  }
  if (m.family == ModelFamily::sdxl) {
    // Original size = target size = the requested one, no crop (the defaults
    // of StableDiffusionXLPipeline).
    const double h = static_cast<double>(height), w = static_cast<double>(width);
    t.time_ids = torch::tensor({h, w, 0.0, 0.0, h, w}, torch::kDouble).unsqueeze(0).repeat({t.batch, 1});
  }
  return t;
}

PromptEmbeddings Pipeline::encode_tokens(const PromptTokens& t) const {
  const Impl& m = *impl_;
  DIFFSEARCH_ASSERT(t.ids.size() == m.towers.size() && t.positions.size() == m.towers.size());
  torch::NoGradGuard no_grad;
  ProfileScope scope("text_encode");
  const int64_t b = t.batch;
  PromptEmbeddings e;
  e.truncated = t.truncated;
  if (m.family == ModelFamily::sd) {
    const at::Tensor hidden = m.towers[0].encoder->forward_on_device(t.ids[0], t.positions[0]).last_hidden_state;
    e.positive = hidden.slice(0, 0, b);
    e.negative = hidden.slice(0, b);
    return e;
  }
  // SDXL: hidden_states[-2] of both encoders side by side; the pooled
  // projection of the second.
  std::vector<at::Tensor> pos, neg;
  for (std::size_t i = 0; i < m.towers.size(); ++i) {
    const ClipTextOutput out = m.towers[i].encoder->forward_on_device(t.ids[i], t.positions[i]);
    pos.push_back(out.penultimate.slice(0, 0, b));
    if (!t.zero_negatives) neg.push_back(out.penultimate.slice(0, b));
    if (out.text_embeds.defined()) {
      e.positive_pooled = out.text_embeds.slice(0, 0, b);
      if (!t.zero_negatives) e.negative_pooled = out.text_embeds.slice(0, b);
    }
  }
  e.positive = at::cat(pos, -1);
  if (t.zero_negatives) {
    e.negative = at::zeros_like(e.positive);
    e.negative_pooled = at::zeros_like(e.positive_pooled);
  } else {
    e.negative = at::cat(neg, -1);
  }
  e.time_ids = t.time_ids.to(m.options.dtype);
  return e;
}

PromptEmbeddings Pipeline::encode_prompts(const std::vector<std::string>& prompts,
                                          const std::vector<std::string>& negative_prompts,
                                          int64_t height, int64_t width) const {
  return encode_tokens(tokenize_prompts(prompts, negative_prompts, height, width).to(impl_->options.device));
}

at::Tensor Pipeline::seeded_latents(int64_t batch, int64_t height, int64_t width,
                                    uint64_t seed) const {
  check_size(height, width);
  const int64_t f = impl_->vae_scale_factor;
  return seeded_randn({batch, latent_channels(), height / f, width / f}, seed)
      .to(impl_->options.device, impl_->options.dtype);
}

at::Tensor Pipeline::denoise(const PromptEmbeddings& e, at::Tensor latents, Sampler& sampler,
                             int64_t steps, double guidance_scale,
                             const std::vector<StepPolicy*>& policies,
                             UNetHooks* unet_hooks) const {
  const Impl& m = *impl_;
  torch::NoGradGuard no_grad;
  sampler.set_timesteps(steps);
  const std::vector<int64_t>& timesteps = sampler.timesteps();
  const int64_t batch = latents.size(0);
  const bool sdxl = m.family == ModelFamily::sdxl;
  // Both halves prepared once; CFG puts the negative half first.
  UNetConditioning guided, negative_only, positive_only;
  guided.encoder_hidden_states = at::cat({e.negative, e.positive}, 0);
  negative_only.encoder_hidden_states = e.negative;
  positive_only.encoder_hidden_states = e.positive;
  if (sdxl) {
    guided.text_embeds = at::cat({e.negative_pooled, e.positive_pooled}, 0);
    guided.time_ids = at::cat({e.time_ids, e.time_ids}, 0);
    negative_only.text_embeds = e.negative_pooled;
    negative_only.time_ids = e.time_ids;
    positive_only.text_embeds = e.positive_pooled;
    positive_only.time_ids = e.time_ids;
  }
  latents = latents * sampler.init_noise_sigma();
  for (StepPolicy* p : policies) p->begin_run(timesteps);
  const StepBranch default_branch =
      guidance_scale > 1.0 ? StepBranch::guided : StepBranch::positive_only;
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(m.options.device);
  // The timesteps on the device, filled one by one (a host copy could not be
  // captured in a CUDA graph), and every step's time embedding in one product.
  const int64_t num_steps = static_cast<int64_t>(timesteps.size());
  at::Tensor device_timesteps = at::empty({num_steps}, long_options);
  for (int64_t k = 0; k < num_steps; ++k) device_timesteps.select(0, k).fill_(timesteps[k]);
  const at::Tensor time_table = m.unet->time_embeddings(device_timesteps);
  for (int64_t k = 0; k < num_steps; ++k) {
    StepInfo info{k, num_steps, timesteps[k]};
    StepPlan plan;
    plan.branch = default_branch;
    for (StepPolicy* p : policies) p->plan_step(info, plan);
    const at::Tensor t = device_timesteps.select(0, k);
    at::Tensor noise;
    if (plan.branch == StepBranch::guided) {
      at::Tensor input = at::cat({latents, latents}, 0);
      at::Tensor out;
      {
        ProfileScope scope("unet");
        UNetConditioning c = guided;
        c.time_embedding = time_table.select(0, k);
        out = m.unet->forward(input, t, c, unet_hooks);
      }
      ProfileScope scope("cfg");
      at::Tensor uncond = out.slice(0, 0, batch), cond = out.slice(0, batch);
      // uncond + (cond - uncond) * scale in one kernel.
      noise = at::lerp(uncond, cond, guidance_scale);
    } else {
      ProfileScope scope("unet");
      UNetConditioning c = plan.branch == StepBranch::negative_only ? negative_only : positive_only;
      c.time_embedding = time_table.select(0, k);
      noise = m.unet->forward(latents, t, c, unet_hooks);
    }
    {
      ProfileScope scope("sampler");
      latents = sampler.step(noise, k, latents);
    }
    for (StepPolicy* p : policies) p->end_step(info, latents);
    log::debug("step " + std::to_string(k + 1) + "/" + std::to_string(timesteps.size()) +
               " (t=" + std::to_string(timesteps[k]) + ")");
  }
  return latents;
}

std::pair<int64_t, int64_t> Pipeline::image_size(const SampleRequest& r) const {
  const int64_t height = r.height > 0 ? r.height : default_height();
  const int64_t width = r.width > 0 ? r.width : default_width();
  check_size(height, width);
  return {height, width};
}

at::Tensor Pipeline::starting_latents(const SampleRequest& r) const {
  const Impl& m = *impl_;
  const auto [height, width] = image_size(r);
  const int64_t batch = static_cast<int64_t>(r.prompts.size());
  const int64_t f = m.vae_scale_factor;
  const std::vector<int64_t> shape = {batch, latent_channels(), height / f, width / f};
  if (!r.latents.defined()) return seeded_latents(batch, height, width, r.seed);
  if (r.latents.sizes().vec() != shape) {
    throw InputError("starting latents have shape " + shape_string(r.latents.sizes().vec()) +
                     " but " + std::to_string(batch) + " prompt(s) at " +
                     std::to_string(height) + "x" + std::to_string(width) + " need " +
                     shape_string(shape) + " (set --height/--width to match the latents)");
  }
  if (!at::isFloatingType(r.latents.scalar_type())) {
    throw InputError("starting latents must be floating point, found " +
                     std::string(c10::toString(r.latents.scalar_type())));
  }
  return r.latents.to(m.options.device, m.options.dtype);
}

SampleResult Pipeline::sample(const SampleRequest& r) const {
  const auto [height, width] = image_size(r);
  if (r.steps < 1) {
    throw InputError("steps must be at least 1, found " + std::to_string(r.steps));
  }
  auto sampler = make_sampler(r.sampler);
  // Validate the step count before the encoders run.
  sampler->set_timesteps(r.steps);
  const at::Tensor latents = starting_latents(r);
  PromptEmbeddings e = encode_prompts(r.prompts, r.negative_prompts, height, width);
  SampleResult result;
  result.prompt_truncated = e.truncated;
  result.latents = denoise(e, latents, *sampler, r.steps, r.guidance_scale, r.policies,
                           r.unet_hooks);
  result.timesteps = sampler->timesteps();
  return result;
}

at::Tensor Pipeline::decode(const at::Tensor& latents) const {
  torch::NoGradGuard no_grad;
  ProfileScope scope("vae_decode");
  // In the VAE's dtype (float32 for an upcast SDXL VAE), as diffusers returns it.
  return impl_->vae->decode(latents.to(impl_->options.device, impl_->vae_dtype));
}

}  // namespace diffsearch::engine
