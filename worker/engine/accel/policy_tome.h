// Token Merging for Stable Diffusion (tomesd) as a policy: bipartite soft
// matching of each transformer block's tokens, merged before attention and
// unmerged after.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "worker/engine/pipeline/pipeline.h"
#include "worker/engine/models/unet_hooks.h"

namespace diffsearch::engine {

struct ToMeParams {  // tomesd.apply_patch's defaults
  double ratio = 0.5;
  int64_t max_downsample = 1;
  int64_t sx = 2;
  int64_t sy = 2;
  bool use_rand = true;
  bool merge_attn = true;
  bool merge_crossattn = false;
  bool merge_mlp = false;
};

// One block's matching: which tokens merge into which. Built once from the
// block input, then applied to each stage input (merge) and output (unmerge).
class TokenMerge {
 public:
  TokenMerge() = default;  // merges nothing
  bool active() const { return map_.defined(); }
  int64_t tokens() const { return tokens_; }         // N before merging
  int64_t merged_tokens() const { return kept_; }    // N - r after
  // [B, N, C] -> [B, N - r, C]: the unmerged sources (best match first), then
  // the destinations, each the mean of itself and the sources merged into it.
  at::Tensor merge(const at::Tensor& x) const;
  // [B, N - r, C] -> [B, N, C]: every token back in place, a merged source as
  // a copy of its destination.
  at::Tensor unmerge(const at::Tensor& x) const;

  // The matching of metric [B, N, C] with destinations `dst_pos` [Nd] (long,
  // ascending, on the metric's device) and every other token a source:
  // cosine similarity, each source's best destination, the r best-scoring
  // sources merged. r <= 0 or no destination: merges nothing.
  static TokenMerge match(const at::Tensor& metric, const at::Tensor& dst_pos, int64_t r);

 private:
  // The same matching and merge from tome_kernels.cu (CUDA, when built in).
  static TokenMerge match_fused(const at::Tensor& scores, const at::Tensor& dst_pos, int64_t r,
                                const at::ScalarType metric_dtype);
  at::Tensor merge_fused(const at::Tensor& x) const;

  bool fused_ = false;  // matched by match_fused: merge() uses the fused kernels
  int64_t tokens_ = 0, kept_ = 0, r_ = 0, num_dst_ = 0;
  at::Tensor order_;       // [B, N] positions: merged sources (best first), kept sources, destinations
  at::Tensor src_to_dst_;  // [B, r] which destination each merged source joins
  at::Tensor map_;         // [B, N] row of the merged tensor that unmerging copies
  // Merging sums sources into destinations as a product with the one-hot
  // assignment, not with scatter-adds: CUDA's scatter-add is atomic, its
  // order (and so the rounding) varies run to run, and a rounding difference
  // can flip a later block's matching. A product repeats exactly.
  at::Tensor assign_;      // [B, Nd, r] 1 where source j joins destination d
  at::Tensor counts_;      // [B, Nd, 1] 1 + sources per destination
};

// Whether TokenMerge uses its fused CUDA kernels (tome_kernels.cu) for
// tensors on `device`: built (cuda_kernels_built()), CUDA, and not
// turned off with DIFFSEARCH_TOME_KERNELS=0 (anything but 0 or 1 is an
// InputError). Large grids whose sort does not fit a thread block's shared
// memory fall back to ATen either way.
bool tome_kernels_enabled(const c10::Device& device);

// tomesd's split of an h x w token grid (CPU long tensors, positions in
// row-major order): each sy x sx window of the top-left (h / sy) x (w / sx)
// windows has one destination, the token at `dst_choice` [h / sy, w / sx] (an
// index in [0, sx * sy), row-major in the window) or the top-left one when
// undefined; every other token is a source. Returns {dst_pos, src_pos}, each
// in row-major order.
std::pair<at::Tensor, at::Tensor> token_partition_2d(int64_t w, int64_t h, int64_t sx, int64_t sy,
                                                     const at::Tensor& dst_choice);

// tomesd's bipartite_soft_matching_random2d. metric [B, N, C] with N = h * w.
// Each sy x sx window of the top-left (h / sy) x (w / sx) windows has one
// destination: the token at `dst_choice` [h / sy, w / sx] (an index in
// [0, sx * sy), row-major in the window), or the top-left one when undefined.
// The rest are sources; each takes its most similar destination (cosine), and
// the r sources with the best scores merge. r <= 0: merges nothing.
TokenMerge bipartite_soft_matching_2d(const at::Tensor& metric, int64_t w, int64_t h, int64_t sx,
                                      int64_t sy, int64_t r, const at::Tensor& dst_choice);

class ToMePolicy final : public UNetHooks, public StepPolicy {
 public:
  // `seed` seeds the generator of the random destinations (use_rand).
  ToMePolicy(const ToMeParams& params, uint64_t seed);
  const ToMeParams& params() const { return params_; }
  // The matching of the transformer block that runs now (inactive when its
  // resolution is not merged).
  const TokenMerge& current() const { return current_; }

  // StepPolicy: every run starts the generator from the seed again.
  void begin_run(const std::vector<int64_t>& timesteps) override;
  void end_step(const StepInfo& step, const at::Tensor& latents) override;
  // Refills the destinations a captured run took from the host, drawing the
  // random ones again from `seed` in the order the run drew them.
  void refill_for_replay(uint64_t seed) override;

  // UNetHooks
  void begin_forward(const UNetForwardInfo& info) override;
  void transformer_begin(const TransformerLocation& where, const at::Tensor& x, int64_t height,
                         int64_t width) override;
  at::Tensor merge_tokens(const TransformerLocation& where, TokenStage stage,
                          const at::Tensor& x) override;
  at::Tensor unmerge_tokens(const TransformerLocation& where, TokenStage stage,
                            const at::Tensor& x) override;

 private:
  bool merges(TokenStage stage) const;
  // The destinations of a w x h grid on the metric's device: the top-left
  // ones (made once), or the next random draw.
  at::Tensor fixed_destinations(int64_t w, int64_t h, const at::Tensor& like);
  at::Tensor random_destinations(int64_t w, int64_t h, const at::Tensor& like);
  // kDraws random destination lists of a w x h grid, [kDraws, Nd]; or as
  // many as `rows` [draws, Nd] (int64, contiguous) holds, written into it.
  at::Tensor draw_destination_rows(int64_t w, int64_t h);
  void draw_destination_rows(int64_t w, int64_t h, at::Tensor& rows);
  // Host indices to the device: an asynchronous copy, or while a CUDA graph
  // is captured an empty device tensor remembered in uploads_ (random: its
  // rows are draws of a w x h grid; else `cpu` is its content).
  at::Tensor upload(const at::Tensor& cpu, const at::Device& device, bool random, int64_t w,
                    int64_t h);

  ToMeParams params_;
  uint64_t seed_ = 0;
  uint64_t random_state_ = 0;  // splitmix64, from seed_ at every run
  int64_t height_ = 0, width_ = 0;  // of the UNet's input latents
  TokenMerge current_;
  using GridKey = std::tuple<int64_t, int64_t, std::string>;
  std::map<GridKey, at::Tensor> fixed_;
  // Random draws are made on the host and sent to the device many at a time
  // ([draws, Nd] per grid), handed out one row per transformer block.
  struct Draws {
    at::Tensor rows;
    int64_t next = 0;
  };
  std::map<GridKey, Draws> draws_;
  struct Upload {
    at::Tensor device;
    // The fixed destinations, or where the random ones are drawn; pinned at
    // the first refill (no host allocation while capturing).
    at::Tensor host;
    bool random = false;
    int64_t w = 0, h = 0;
  };
  std::vector<Upload> uploads_;  // in the order the captured run made them
};

}  // namespace diffsearch::engine
