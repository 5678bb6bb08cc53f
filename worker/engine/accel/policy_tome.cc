// ToMe for SD: tomesd's destination windows, bipartite soft matching with
// mean merging, and the per-block decision of compute_merge.
#include "worker/engine/accel/policy_tome.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <torch/version.h>

#include "io/error.h"
#include "worker/engine/kernels/cuda_kernels.h"
#include "worker/engine/core/device.h"
#include "worker/engine/core/nn.h"
#include "worker/engine/core/profile_scope.h"
#include "worker/engine/kernels/tome_kernels.h"

namespace diffsearch::engine {

namespace {

// Index tensors made on the host reach the device without stalling the
// host: a synchronous copy would wait for every queued kernel.
at::Tensor to_device_async(const at::Tensor& cpu, const at::Device& device) {
  if (device.is_cpu()) return cpu;
  return cpu.pin_memory().to(device, /*non_blocking=*/true);
}

}  // namespace

bool tome_kernels_enabled(const c10::Device& device) {
  return cuda_kernels_enabled("DIFFSEARCH_TOME_KERNELS", device);
}

std::pair<at::Tensor, at::Tensor> token_partition_2d(int64_t w, int64_t h, int64_t sx, int64_t sy,
                                                     const at::Tensor& dst_choice) {
  DIFFSEARCH_ASSERT(w > 0 && h > 0 && sx > 0 && sy > 0);
  const int64_t hsy = h / sy, wsx = w / sx;
  std::vector<char> is_dst(static_cast<std::size_t>(h * w), 0);
  at::Tensor choice;
  if (dst_choice.defined()) {
    DIFFSEARCH_ASSERT(dst_choice.numel() == hsy * wsx);
    choice = dst_choice.to(at::kCPU, at::kLong).contiguous();
  }
  const int64_t* c = choice.defined() ? choice.data_ptr<int64_t>() : nullptr;
  for (int64_t i = 0; i < hsy; ++i) {
    for (int64_t j = 0; j < wsx; ++j) {
      const int64_t k = c ? c[i * wsx + j] : 0;
      DIFFSEARCH_ASSERT(k >= 0 && k < sx * sy);
      is_dst[static_cast<std::size_t>((i * sy + k / sx) * w + j * sx + k % sx)] = 1;
    }
  }
  // Destinations first, then sources, each in row-major order: the stable
  // argsort that tomesd's -1/0 buffer gives.
  std::vector<int64_t> dst, src;
  for (int64_t p = 0; p < h * w; ++p) (is_dst[static_cast<std::size_t>(p)] ? dst : src).push_back(p);
  auto as_tensor = [](const std::vector<int64_t>& v) {
    return at::tensor(at::ArrayRef<int64_t>(v), at::TensorOptions().dtype(at::kLong));
  };
  return {as_tensor(dst), as_tensor(src)};
}

TokenMerge TokenMerge::match(const at::Tensor& metric, const at::Tensor& dst_pos, int64_t r) {
  const int64_t batch = metric.size(0), n = metric.size(1), channels = metric.size(2);
  const int64_t num_dst = dst_pos.numel(), num_src = n - num_dst;
  DIFFSEARCH_ASSERT(num_src >= 0);
  r = std::min(r, num_src);
  if (r <= 0 || num_dst == 0) return {};

  // Few and large operations (each small one costs more in launching than in
  // running at these sizes): every token is scored against the destinations,
  // the destinations' own rows go last (-inf), and one stable sort orders
  // the tokens as [merged sources, best first | kept sources | destinations
  // in position order]: tomesd's order, whose ties also fall to position.
  const at::Tensor unit = metric / metric.norm(2, {-1}, /*keepdim=*/true);
  const at::Tensor scores = at::matmul(unit, unit.index_select(1, dst_pos).transpose(-1, -2));
  macs::add(batch * n * num_dst * channels);
#ifdef DIFFSEARCH_WITH_CUDA_KERNELS
  if (tome_kernels_enabled(metric.device()) &&
      tome_kernels::order_fits(n, num_dst, metric.scalar_type() == at::kDouble)) {
    return match_fused(scores, dst_pos, r, metric.scalar_type());
  }
#endif
  auto [node_max, node_idx] = scores.max(-1);
  node_max.index_fill_(1, dst_pos, -std::numeric_limits<double>::infinity());

  TokenMerge m;
  m.tokens_ = n;
  m.r_ = r;
  m.kept_ = n - r;
  m.num_dst_ = num_dst;
  m.order_ = std::get<1>(node_max.sort(/*stable=*/true, -1, /*descending=*/true));
  m.src_to_dst_ = node_idx.gather(1, m.order_.slice(1, 0, r));
  // Unmerging is one gather: for each original position, the merged row it
  // comes from (its own for kept tokens, its destination's for merged ones).
  const int64_t num_unm = num_src - r;
  const auto longs = at::TensorOptions().dtype(at::kLong).device(metric.device());
  const at::Tensor rows = at::cat(
      {m.src_to_dst_ + num_unm, at::arange(n - r, longs).unsqueeze(0).expand({batch, n - r})}, 1);
  m.map_ = at::empty({batch, n}, longs).scatter_(1, m.order_, rows);
  m.assign_ = at::zeros({batch, num_dst, r}, metric.options()).scatter_(1, m.src_to_dst_.unsqueeze(1), 1.0);
  // Counts in float32 at least: half precision holds integers only to 2048.
  m.counts_ = m.assign_.sum({-1}, /*keepdim=*/true, at::promote_types(metric.scalar_type(), at::kFloat)) + 1;
  return m;
}

TokenMerge TokenMerge::match_fused(const at::Tensor& scores_in, const at::Tensor& dst_pos_in,
                                   int64_t r, const at::ScalarType metric_dtype) {
#ifdef DIFFSEARCH_WITH_CUDA_KERNELS
  const at::Tensor scores = scores_in.contiguous();  // [B, N, Nd]
  const at::Tensor dst_pos = dst_pos_in.to(at::kLong).contiguous();
  const int64_t batch = scores.size(0), n = scores.size(1), num_dst = scores.size(2);
  const bool f64 = scores.scalar_type() == at::kDouble;
  const auto longs = at::TensorOptions().dtype(at::kLong).device(scores.device());
  void* stream = kernels::current_stream(scores);
  const at::Tensor keys = at::empty({batch, n}, scores.options().dtype(f64 ? at::kDouble : at::kFloat));
  const at::Tensor node_idx = at::empty({batch, n}, longs);
  kernels::check(tome_kernels::row_max(scores.data_ptr(), kernels::dtype_of(scores), batch * n,
                                       num_dst, keys.data_ptr(), node_idx.data_ptr<int64_t>(), stream),
                 "tome_kernels::row_max");
  TokenMerge m;
  m.fused_ = true;
  m.tokens_ = n;
  m.r_ = r;
  m.kept_ = n - r;
  m.num_dst_ = num_dst;
  m.order_ = at::empty({batch, n}, longs);
  m.src_to_dst_ = at::empty({batch, r}, longs);
  m.map_ = at::empty({batch, n}, longs);
  m.assign_ = at::zeros({batch, num_dst, r}, scores.options().dtype(metric_dtype));
  m.counts_ = at::empty({batch, num_dst, 1},
                        scores.options().dtype(at::promote_types(metric_dtype, at::kFloat)));
  kernels::check(tome_kernels::order_tokens(keys.data_ptr(), f64, node_idx.data_ptr<int64_t>(),
                                            dst_pos.data_ptr<int64_t>(), batch, n, num_dst, r,
                                            m.order_.data_ptr<int64_t>(),
                                            m.src_to_dst_.data_ptr<int64_t>(),
                                            m.map_.data_ptr<int64_t>(), m.counts_.data_ptr(),
                                            kernels::dtype_of(m.counts_), m.assign_.data_ptr(),
                                            kernels::dtype_of(m.assign_), stream),
                 "tome_kernels::order_tokens");
  return m;
#else
  DIFFSEARCH_ASSERT(false && "built without DIFFSEARCH_CUDA_KERNELS");
  return {};
#endif
}

at::Tensor TokenMerge::merge_fused(const at::Tensor& x_in) const {
#ifdef DIFFSEARCH_WITH_CUDA_KERNELS
  const at::Tensor x = x_in.contiguous();
  const int64_t batch = x.size(0), channels = x.size(2);
  void* stream = kernels::current_stream(x);
  at::Tensor kept = at::empty({batch, kept_, channels}, x.options());
  at::Tensor src = at::empty({batch, r_, channels}, x.options());
  kernels::check(tome_kernels::gather_rows(x.data_ptr(), kernels::dtype_of(x), order_.data_ptr<int64_t>(),
                                           batch, tokens_, channels, r_, src.data_ptr(), kept.data_ptr(),
                                           stream),
                 "tome_kernels::gather_rows");
  const at::Tensor assign = assign_.scalar_type() == x.scalar_type() ? assign_ : assign_.to(x.scalar_type());
  const at::Tensor sums = at::matmul(assign, src).contiguous();  // [B, Nd, C]
  kernels::check(tome_kernels::finish_destinations(kept.data_ptr(), sums.data_ptr(), kernels::dtype_of(kept),
                                                   counts_.data_ptr(), kernels::dtype_of(counts_), batch,
                                                   kept_, num_dst_, channels, stream),
                 "tome_kernels::finish_destinations");
  return kept;
#else
  DIFFSEARCH_ASSERT(false && "built without DIFFSEARCH_CUDA_KERNELS");
  return x_in;
#endif
}

at::Tensor TokenMerge::merge(const at::Tensor& x) const {
  if (!active()) return x;
  ProfileScope scope("tome_merge");
  if (fused_) return merge_fused(x);
  const int64_t batch = x.size(0), channels = x.size(2);
  DIFFSEARCH_ASSERT(batch == map_.size(0) && x.size(1) == tokens_);
  at::Tensor out = x.gather(1, order_.slice(1, r_).unsqueeze(-1).expand({batch, kept_, channels}));
  const at::Tensor src = x.gather(1, order_.slice(1, 0, r_).unsqueeze(-1).expand({batch, r_, channels}));
  // Each destination becomes the mean of itself and its sources.
  at::Tensor dst = out.narrow(1, kept_ - num_dst_, num_dst_);
  const at::Tensor assign = assign_.scalar_type() == x.scalar_type() ? assign_ : assign_.to(x.scalar_type());
  // Bookkeeping, not the model's arithmetic: tomesd's scatter-mean counts no
  // MACs either, so none are counted here.
  dst.add_(at::matmul(assign, src)).div_(counts_);
  return out;
}

at::Tensor TokenMerge::unmerge(const at::Tensor& x) const {
  if (!active()) return x;
  ProfileScope scope("tome_unmerge");
  const int64_t batch = x.size(0), channels = x.size(2);
  DIFFSEARCH_ASSERT(batch == map_.size(0) && x.size(1) == kept_);
#ifdef DIFFSEARCH_WITH_CUDA_KERNELS
  if (fused_) {
    // A vectorised row copy: ATen's gather indexes element by element.
    const at::Tensor rows = x.contiguous();
    at::Tensor out = at::empty({batch, tokens_, channels}, rows.options());
    kernels::check(tome_kernels::rows_by_map(rows.data_ptr(), kernels::dtype_of(rows),
                                             map_.data_ptr<int64_t>(), batch, kept_, tokens_,
                                             channels, out.data_ptr(), kernels::current_stream(rows)),
                   "tome_kernels::rows_by_map");
    return out;
  }
#endif
  return x.gather(1, map_.unsqueeze(-1).expand({batch, tokens_, channels}));
}

TokenMerge bipartite_soft_matching_2d(const at::Tensor& metric, int64_t w, int64_t h, int64_t sx,
                                      int64_t sy, int64_t r, const at::Tensor& dst_choice) {
  DIFFSEARCH_ASSERT(metric.dim() == 3 && metric.size(1) == w * h);
  if (r <= 0) return {};
  const at::Tensor dst = token_partition_2d(w, h, sx, sy, dst_choice).first;
  return TokenMerge::match(metric, to_device_async(dst, metric.device()), r);
}

ToMePolicy::ToMePolicy(const ToMeParams& params, uint64_t seed)
    : params_(params),
      seed_(seed),
      random_state_(seed) {}

void ToMePolicy::begin_run(const std::vector<int64_t>& timesteps) {
  random_state_ = seed_;
  draws_.clear();
}

void ToMePolicy::end_step(const StepInfo& step, const at::Tensor& latents) {
  if (step.step_index + 1 == step.num_steps) {
    current_ = TokenMerge();
    draws_.clear();
  }
}

void ToMePolicy::begin_forward(const UNetForwardInfo& info) {
  height_ = info.height;
  width_ = info.width;
}

bool ToMePolicy::merges(TokenStage stage) const {
  switch (stage) {
    case TokenStage::self_attention:
      return params_.merge_attn;
    case TokenStage::cross_attention:
      return params_.merge_crossattn;
    case TokenStage::feed_forward:
      return params_.merge_mlp;
  }
  return false;
}

at::Tensor ToMePolicy::upload(const at::Tensor& cpu, const at::Device& device, bool random,
                              int64_t w, int64_t h) {
  if (!capturing_graph() || device.is_cpu()) return to_device_async(cpu, device);
  at::Tensor on_device = empty_outside_graph(cpu.sizes(), cpu.options().device(device));
  uploads_.push_back({on_device, cpu, random, w, h});
  return on_device;
}

void ToMePolicy::refill_for_replay(uint64_t seed) {
  seed_ = seed;
  random_state_ = seed_;
  // The host work here delays the replay, so it is kept small: draws straight
  // into pinned buffers, asynchronous copies (the stream orders them before
  // the replay; the previous replay has finished reading them).
  for (Upload& u : uploads_) {
    // Pinned once, here rather than while capturing (no host allocation then).
    if (!u.host.is_pinned()) u.host = u.host.pin_memory();
    if (u.random) draw_destination_rows(u.w, u.h, u.host);
    u.device.copy_(u.host, /*non_blocking=*/true);
  }
}

at::Tensor ToMePolicy::fixed_destinations(int64_t w, int64_t h, const at::Tensor& like) {
  at::Tensor& slot = fixed_[{w, h, like.device().str()}];
  if (!slot.defined()) {
    slot = upload(token_partition_2d(w, h, params_.sx, params_.sy, at::Tensor()).first,
                  like.device(), /*random=*/false, w, h);
  }
  return slot;
}

at::Tensor ToMePolicy::random_destinations(int64_t w, int64_t h, const at::Tensor& like) {
  Draws& d = draws_[{w, h, like.device().str()}];
  if (!d.rows.defined() || d.next == d.rows.size(0)) {
    d.rows = upload(draw_destination_rows(w, h), like.device(), /*random=*/true, w, h);
    d.next = 0;
  }
  return d.rows[d.next++];
}

at::Tensor ToMePolicy::draw_destination_rows(int64_t w, int64_t h) {
  // Many draws per copy to the device: one small copy per transformer block
  // would cost more than the block's merging saves.
  constexpr int64_t kDraws = 64;
  at::Tensor rows = at::empty({kDraws, (h / params_.sy) * (w / params_.sx)},
                              at::TensorOptions().dtype(at::kLong));
  draw_destination_rows(w, h, rows);
  return rows;
}

void ToMePolicy::draw_destination_rows(int64_t w, int64_t h, at::Tensor& rows) {
  const int64_t sx = params_.sx, sy = params_.sy, hsy = h / sy, wsx = w / sx;
  DIFFSEARCH_ASSERT(rows.dim() == 2 && rows.size(1) == hsy * wsx && rows.is_contiguous() &&
                    rows.scalar_type() == at::kLong);
  const uint64_t rows_in_window = static_cast<uint64_t>(sy), cols_in_window = static_cast<uint64_t>(sx);
  int64_t* out = rows.data_ptr<int64_t>();
  // This runs on the host before every replay of a captured run (256 draws
  // of 1024 windows at 512 px), so it avoids divisions and unpredictable
  // branches: with them it took milliseconds, several times the merging's gain.
  std::vector<int64_t> pick_row(static_cast<std::size_t>(wsx)), pick_col(static_cast<std::size_t>(wsx));
  std::vector<int64_t> band(static_cast<std::size_t>(wsx) + 1);
  for (int64_t k = 0; k < rows.size(0); ++k) {
    for (int64_t i = 0; i < hsy; ++i) {
      for (int64_t j = 0; j < wsx; ++j) {
        // splitmix64; its high half scaled to the window's rows and its low
        // half to its columns (Lemire): one uniform draw of the window.
        random_state_ += 0x9E3779B97F4A7C15ull;
        uint64_t z = random_state_;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        pick_row[static_cast<std::size_t>(j)] = static_cast<int64_t>(((z >> 32) * rows_in_window) >> 32);
        pick_col[static_cast<std::size_t>(j)] =
            static_cast<int64_t>(((z & 0xFFFFFFFFull) * cols_in_window) >> 32);
      }
      // token_partition_2d's order (ascending token index): row by row of
      // the window band, left to right. Branch-free (the picks are random):
      // every candidate is written, the cursor moves for the chosen ones;
      // `band` has room for the one written past its wsx entries.
      int64_t* cursor = band.data();
      for (int64_t r = 0; r < sy; ++r) {
        const int64_t row_start = (i * sy + r) * w;
        for (int64_t j = 0; j < wsx; ++j) {
          *cursor = row_start + j * sx + pick_col[static_cast<std::size_t>(j)];
          cursor += pick_row[static_cast<std::size_t>(j)] == r ? 1 : 0;
        }
      }
      DIFFSEARCH_ASSERT(cursor == band.data() + wsx);
      out = std::copy(band.data(), band.data() + wsx, out);
    }
  }
}

void ToMePolicy::transformer_begin(const TransformerLocation& where, const at::Tensor& x,
                                   int64_t height, int64_t width) {
  current_ = TokenMerge();
  if (!params_.merge_attn && !params_.merge_crossattn && !params_.merge_mlp) return;
  const int64_t n = x.size(1);
  // tomesd's compute_merge: the downsampling of this block from the token
  // count, and the grid from the UNet input's size.
  const int64_t original = (height_ > 0 ? height_ : height) * (width_ > 0 ? width_ : width);
  const auto ds = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(original / n))));
  if (ds > params_.max_downsample) return;
  int64_t w = static_cast<int64_t>(std::ceil(static_cast<double>(width_) / static_cast<double>(ds)));
  int64_t h = static_cast<int64_t>(std::ceil(static_cast<double>(height_) / static_cast<double>(ds)));
  if (w * h != n) {
    w = width;
    h = height;
  }
  const auto r = static_cast<int64_t>(static_cast<double>(n) * params_.ratio);
  if (r <= 0 || h / params_.sy == 0 || w / params_.sx == 0) return;
  // An odd batch cannot hold both CFG halves, whose destinations must agree:
  // tomesd turns the random choice off then.
  const bool use_rand = params_.use_rand && x.size(0) % 2 == 0;
  // Random destinations come from our own generator, seeded per run (tomesd
  // forks the global CUDA/CPU RNG instead): the same seed gives the same
  // destinations on any device.
  const at::Tensor dst = use_rand ? random_destinations(w, h, x) : fixed_destinations(w, h, x);
  current_ = TokenMerge::match(x, dst, r);
}

at::Tensor ToMePolicy::merge_tokens(const TransformerLocation& where, TokenStage stage,
                                    const at::Tensor& x) {
  return merges(stage) ? current_.merge(x) : x;
}

at::Tensor ToMePolicy::unmerge_tokens(const TransformerLocation& where, TokenStage stage,
                                      const at::Tensor& x) {
  return merges(stage) ? current_.unmerge(x) : x;
}

}  // namespace diffsearch::engine
