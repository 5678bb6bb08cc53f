// Loading a CLIPModel folder for scoring, CLIP's image preprocessing and the
// per-pair score max(0, 100 cos(image_embeds, text_embeds)).
#include "worker/engine/metrics/clip_score.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "io/error.h"
#include "io/log/log.h"

namespace fs = std::filesystem;

namespace diffsearch::engine {
namespace {

// OpenAI CLIP's normalisation (transformers' OPENAI_CLIP_MEAN / _STD).
constexpr double kClipMean[3] = {0.48145466, 0.4578275, 0.40821073};
constexpr double kClipStd[3] = {0.26862954, 0.26130258, 0.27577711};

const char* kFolderFix =
    "; CLIP scoring needs a full CLIPModel folder with both towers and their projections, "
    "as CLIPModel.from_pretrained(...).save_pretrained(DIR) writes it (for example "
    "openai/clip-vit-large-patch14), not a CLIPTextModel or CLIPVisionModel";

// Scoring is measurement, not the run being measured: the MACs it executes are
// taken back out of the thread's counter.
class MacsUntouched {
 public:
  MacsUntouched() : before_(macs::total()) {}
  ~MacsUntouched() {
    macs::reset();
    macs::add(before_);
  }

 private:
  int64_t before_;
};

io::WeightSet open_weights(const std::string& dir) {
  const fs::path folder(dir);
  const fs::path single = folder / "model.safetensors";
  if (fs::exists(single)) {
    return io::WeightSet(single.string(), {io::SafetensorsFile::open(single.string())});
  }
  const fs::path index = folder / "model.safetensors.index.json";
  if (fs::exists(index)) {
    nlohmann::json idx = io::read_json_file(index.string());
    if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object()) {
      throw InputError(index.string() +
                       ": field 'weight_map' missing or not an object (expected the index "
                       "that save_pretrained writes beside sharded weights)");
    }
    std::set<std::string> shards;
    for (const auto& [name, file] : idx["weight_map"].items()) {
      if (!file.is_string()) {
        throw InputError(index.string() + ": weight_map['" + name + "'] is not a file name");
      }
      shards.insert(file.get<std::string>());
    }
    std::vector<std::shared_ptr<io::SafetensorsFile>> files;
    for (const auto& shard : shards) {
      files.push_back(io::SafetensorsFile::open((folder / shard).string()));
    }
    return io::WeightSet(index.string(), std::move(files));
  }
  throw InputError(dir + ": no model.safetensors (or model.safetensors.index.json) in the CLIP "
                         "folder; .bin checkpoints are not supported: convert with "
                         "save_pretrained(DIR, safe_serialization=True)");
}

void require_weight(const io::WeightSet& weights, const std::string& dir, const char* tower,
                    const std::string& name) {
  if (!weights.contains(name)) {
    throw InputError(dir + ": the CLIP model has no " + tower + " (weight '" + name +
                     "' missing from " + weights.description() + ")" + kFolderFix);
  }
}

std::string tokenizer_dir(const std::string& dir) {
  const fs::path sub = fs::path(dir) / "tokenizer";
  if (fs::exists(sub / "vocab.json")) return sub.string();
  if (fs::exists(fs::path(dir) / "vocab.json")) return dir;
  throw InputError(dir + ": no CLIP tokenizer found (expected vocab.json and merges.txt in " +
                   sub.string() + " or in " + dir +
                   "); save it beside the model with CLIPTokenizer.save_pretrained");
}

}  // namespace

ClipScorer::ClipScorer(std::string dir, RunOptions options, ClipTextEncoder text,
                       ClipVisionEncoder vision, ClipTokenizer tokenizer)
    : dir_(std::move(dir)),
      options_(options),
      text_(std::move(text)),
      vision_(std::move(vision)),
      tokenizer_(std::move(tokenizer)) {}

std::unique_ptr<ClipScorer> ClipScorer::load(const std::string& dir, const RunOptions& options) {
  if (!fs::is_directory(dir)) {
    throw InputError(dir + ": CLIP model folder not found" + std::string(kFolderFix));
  }
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(config_path)) {
    throw InputError(config_path + ": missing" + std::string(kFolderFix));
  }
  const nlohmann::json config = io::read_json_file(config_path);
  if (!config.is_object()) throw InputError(config_path + ": expected a JSON object");
  for (const char* part : {"text_config", "vision_config"}) {
    if (!config.contains(part) || !config[part].is_object()) {
      const bool text = std::string(part) == "text_config";
      throw InputError(dir + ": the CLIP model has no " +
                       (text ? "text tower" : "vision tower") + " (" + config_path +
                       " has no '" + part + "' object)" + kFolderFix);
    }
  }
  int64_t projection_dim = 512;  // CLIPConfig's default
  if (config.contains("projection_dim")) {
    const auto& p = config["projection_dim"];
    if (!p.is_number_integer() || p.get<int64_t>() <= 0) {
      throw InputError(config_path + ": field 'projection_dim' must be a positive integer, found " +
                       p.dump());
    }
    projection_dim = p.get<int64_t>();
  }

  io::WeightSet weights = open_weights(dir);
  require_weight(weights, dir, "text tower", "text_model.embeddings.token_embedding.weight");
  require_weight(weights, dir, "text tower", "text_projection.weight");
  require_weight(weights, dir, "vision tower", "vision_model.embeddings.patch_embedding.weight");
  require_weight(weights, dir, "vision tower", "visual_projection.weight");

  // Both projections have CLIPConfig's top-level width; the towers' own
  // projection_dim fields are not what CLIPModel uses.
  ClipTextConfig text_config =
      ClipTextConfig::from_json(config["text_config"], config_path + " (text_config)", true);
  text_config.projection_dim = projection_dim;
  ClipVisionConfig vision_config =
      ClipVisionConfig::from_json(config["vision_config"], config_path + " (vision_config)");
  vision_config.projection_dim = projection_dim;
  if (vision_config.num_channels != 3) {
    throw InputError(config_path + ": vision_config.num_channels is " +
                     std::to_string(vision_config.num_channels) +
                     ", but CLIP scoring takes RGB images (3 channels)");
  }

  ClipTokenizer tokenizer = ClipTokenizer::load(tokenizer_dir(dir));
  if (static_cast<int64_t>(tokenizer.max_length()) > text_config.max_position_embeddings) {
    throw InputError(tokenizer.dir() + ": the tokenizer's model_max_length " +
                     std::to_string(tokenizer.max_length()) + " exceeds text_config's " +
                     "max_position_embeddings " +
                     std::to_string(text_config.max_position_embeddings) +
                     "; set model_max_length in tokenizer_config.json to at most that");
  }
  ClipTextEncoder text = ClipTextEncoder::load(text_config, weights, options);
  ClipVisionEncoder vision = ClipVisionEncoder::load(vision_config, weights, options);
  return std::unique_ptr<ClipScorer>(
      new ClipScorer(dir, options, std::move(text), std::move(vision), std::move(tokenizer)));
}

at::Tensor ClipScorer::preprocess(const at::Tensor& images) const {
  const int64_t channels = vision_.config().num_channels;
  if (images.dim() != 4 || images.size(3) != channels || images.scalar_type() != at::kByte) {
    throw InputError("CLIP preprocessing: expected uint8 images of shape [B, H, W, " +
                     std::to_string(channels) + "], found " +
                     std::string(c10::toString(images.scalar_type())) + " " +
                     shape_string(images.sizes().vec()) +
                     " (quantise images to uint8 first, as users save them)");
  }
  const int64_t b = images.size(0), h = images.size(1), w = images.size(2);
  const int64_t s = vision_.config().image_size;
  if (h == 0 || w == 0) {
    throw InputError("CLIP preprocessing: images of size " + std::to_string(h) + "x" +
                     std::to_string(w) + " have no pixels");
  }
  // Resampling runs in float64 for float64 runs and float32 otherwise (the
  // antialiased kernels have no half-precision CPU version).
  const auto work = options_.dtype == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor x = images.to(options_.device).permute({0, 3, 1, 2}).to(work).contiguous() / 255.0;
  if (b == 0) return at::empty({0, channels, s, s}, x.options().dtype(options_.dtype));
  // Shortest side to s, the other rounded to keep the aspect ratio.
  int64_t nh = s, nw = s;
  if (h <= w) {
    nw = static_cast<int64_t>(std::nearbyint(double(s) * double(w) / double(h)));
  } else {
    nh = static_cast<int64_t>(std::nearbyint(double(s) * double(h) / double(w)));
  }
  x = at::_upsample_bicubic2d_aa(x, {nh, nw}, /*align_corners=*/false);
  const int64_t top = (nh - s) / 2, left = (nw - s) / 2;
  x = x.slice(2, top, top + s).slice(3, left, left + s);
  at::Tensor mean = at::tensor(at::ArrayRef<double>(kClipMean, 3), x.options()).view({1, 3, 1, 1});
  at::Tensor stdev = at::tensor(at::ArrayRef<double>(kClipStd, 3), x.options()).view({1, 3, 1, 1});
  return ((x - mean) / stdev).to(options_.dtype).contiguous();
}

at::Tensor ClipScorer::image_embeds(const at::Tensor& images) const {
  torch::NoGradGuard no_grad;
  MacsUntouched keep_macs;
  return vision_.forward(preprocess(images)).image_embeds;
}

at::Tensor ClipScorer::text_embeds(const std::vector<std::string>& texts) const {
  torch::NoGradGuard no_grad;
  MacsUntouched keep_macs;
  const int64_t n = static_cast<int64_t>(texts.size());
  const int64_t t = static_cast<int64_t>(tokenizer_.max_length());
  if (n == 0) {
    return at::empty({0, projection_dim()},
                     at::TensorOptions().dtype(options_.dtype).device(options_.device));
  }
  at::Tensor ids = at::empty({n, t}, at::kLong);
  auto acc = ids.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const ClipTokens tokens = tokenizer_.encode(texts[i]);
    DIFFSEARCH_ASSERT(static_cast<int64_t>(tokens.ids.size()) == t);
    if (tokens.truncated) {
      log::warn("CLIP score: prompt longer than " + std::to_string(t) +
                " tokens was truncated for scoring; dropped: \"" + tokens.dropped_text + "\"");
    }
    for (int64_t j = 0; j < t; ++j) acc[i][j] = tokens.ids[j];
  }
  return text_.forward(ids).text_embeds;
}

std::vector<double> ClipScorer::pair_scores(const at::Tensor& image_embeds,
                                            const at::Tensor& text_embeds) {
  if (image_embeds.dim() != 2 || text_embeds.dim() != 2 ||
      image_embeds.size(0) != text_embeds.size(0) || image_embeds.size(1) != text_embeds.size(1)) {
    throw InputError("CLIP score: " + shape_string(image_embeds.sizes().vec()) +
                     " image embeddings against " + shape_string(text_embeds.sizes().vec()) +
                     " text embeddings; give one prompt per image");
  }
  at::Tensor a = image_embeds.detach().to(at::kCPU, at::kDouble);
  at::Tensor t = text_embeds.detach().to(at::kCPU, at::kDouble);
  at::Tensor cos = (a * t).sum(1) / (a.norm(2, 1) * t.norm(2, 1));
  at::Tensor score = (cos * 100.0).clamp_min(0.0).contiguous();
  return std::vector<double>(score.data_ptr<double>(), score.data_ptr<double>() + score.numel());
}

std::vector<double> ClipScorer::scores(const at::Tensor& images,
                                       const std::vector<std::string>& texts) const {
  if (images.dim() >= 1 && images.size(0) != static_cast<int64_t>(texts.size())) {
    throw InputError("CLIP score: " + std::to_string(images.size(0)) + " images but " +
                     std::to_string(texts.size()) + " prompts; give one prompt per image");
  }
  return pair_scores(image_embeds(images), text_embeds(texts));
}

}  // namespace diffsearch::engine
