// CLIP score of generated images against their prompts, with a Hugging Face
// CLIPModel folder (both towers and projections) and CLIP's preprocessing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "worker/engine/clip/clip_text.h"
#include "worker/engine/clip/clip_tokenizer.h"
#include "worker/engine/clip/clip_vision.h"
#include "worker/engine/core/weights.h"

namespace diffsearch::engine {

class ClipScorer {
 public:
  // `dir` as CLIPModel.save_pretrained writes it: config.json with text_config
  // and vision_config, model.safetensors (or a sharded index) with
  // text_model.*, vision_model.*, text_projection and visual_projection, and
  // the tokenizer files in dir/tokenizer/ or in dir itself. Throws InputError
  // naming the folder, the missing part and the fix.
  static std::unique_ptr<ClipScorer> load(const std::string& dir, const RunOptions& options);

  // uint8 images [B, H, W, 3] (as saved) -> normalised pixels [B, 3, S, S]
  // in the run dtype on the run device, S = vision_config.image_size: /255,
  // shortest side resized to S (antialiased bicubic, other side rounded),
  // centre crop (floor offsets), (x - mean) / std with CLIP's mean and std.
  at::Tensor preprocess(const at::Tensor& images) const;
  // Projected image features [B, projection_dim] (not normalised).
  at::Tensor image_embeds(const at::Tensor& images) const;
  // Projected text features [N, projection_dim] (not normalised); prompts
  // longer than the tokenizer's limit are truncated with a warning.
  at::Tensor text_embeds(const std::vector<std::string>& texts) const;
  // CLIP score of image i against text i: max(0, 100 cos).
  std::vector<double> scores(const at::Tensor& images, const std::vector<std::string>& texts) const;
  // The same from embeddings already computed (row i against row i), so that
  // one set of text embeddings serves several image sets.
  static std::vector<double> pair_scores(const at::Tensor& image_embeds,
                                         const at::Tensor& text_embeds);

  const std::string& dir() const { return dir_; }
  const RunOptions& options() const { return options_; }
  int64_t image_size() const { return vision_.config().image_size; }
  int64_t projection_dim() const { return vision_.config().projection_dim; }

 private:
  ClipScorer(std::string dir, RunOptions options, ClipTextEncoder text, ClipVisionEncoder vision,
             ClipTokenizer tokenizer);

  std::string dir_;
  RunOptions options_;
  ClipTextEncoder text_;
  ClipVisionEncoder vision_;
  ClipTokenizer tokenizer_;
};

}  // namespace diffsearch::engine
