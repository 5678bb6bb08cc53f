// Which operations survive CUDA-graph capture and replay (skipped without
// CUDA): each op captured on a side stream from static inputs, replayed after
// new inputs are written, and compared with the same op run eagerly. ToMe's
// matching, merging and unmerging are checked as a whole at the end.
#include <functional>
#include <limits>

#include <gtest/gtest.h>
#include <torch/torch.h>
#ifdef DIFFSEARCH_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include "worker/engine/core/device.h"
#include "worker/engine/accel/policy_tome.h"

namespace diffsearch::engine {
namespace {

#ifdef DIFFSEARCH_WITH_CUDA
// Captures `op` on inputs `in` (static buffers), replays it on `next` copied
// into them, and returns {replayed output, eager output on `next`}.
std::pair<at::Tensor, at::Tensor> capture_and_replay(
    const std::vector<at::Tensor>& in, const std::vector<at::Tensor>& next,
    const std::function<at::Tensor(const std::vector<at::Tensor>&)>& op) {
  std::vector<at::Tensor> statics;
  for (const auto& t : in) statics.push_back(t.clone());
  op(statics);  // warm-up
  torch::cuda::synchronize();
  at::cuda::CUDAGraph graph;
  at::Tensor out;
  {
    c10::cuda::CUDAStreamGuard guard(at::cuda::getStreamFromPool());
    GraphCaptureScope capturing;
    graph.capture_begin();
    out = op(statics);
    graph.capture_end();
  }
  for (std::size_t i = 0; i < statics.size(); ++i) statics[i].copy_(next[i]);
  graph.replay();
  torch::cuda::synchronize();
  at::Tensor replayed = out.clone();
  return {replayed, op(next)};
}

const auto kCuda = at::TensorOptions().device(at::kCUDA);

TEST(GraphOpsCuda, StableSortDescending) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA";
  for (int64_t n : {64, 256, 4096}) {
    auto a = at::randn({4, n}, kCuda), b = at::randn({4, n}, kCuda);
    auto [got, want] = capture_and_replay({a}, {b}, [](const std::vector<at::Tensor>& x) {
      return std::get<1>(x[0].sort(/*stable=*/true, -1, /*descending=*/true));
    });
    EXPECT_TRUE(torch::equal(got, want)) << n;
  }
}

TEST(GraphOpsCuda, MaxIndexFillGatherScatter) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA";
  auto s = at::randn({4, 64, 16}, kCuda), s2 = at::randn({4, 64, 16}, kCuda);
  auto dst = at::randperm(64, kCuda.dtype(at::kLong)).slice(0, 0, 16);
  auto dst2 = at::randperm(64, kCuda.dtype(at::kLong)).slice(0, 0, 16);
  auto [got, want] = capture_and_replay({s, dst}, {s2, dst2}, [](const std::vector<at::Tensor>& x) {
    auto [m, i] = x[0].max(-1);
    m.index_fill_(1, x[1], -std::numeric_limits<double>::infinity());
    auto order = std::get<1>(m.sort(true, -1, true));
    auto rows = at::arange(64, order.options()).unsqueeze(0).expand({4, 64});
    auto map = at::empty({4, 64}, order.options()).scatter_(1, order, rows);
    return x[0].gather(1, map.unsqueeze(-1).expand({4, 64, 16})) + i.unsqueeze(-1);
  });
  EXPECT_TRUE(torch::equal(got, want));
}

TEST(GraphOpsCuda, TokenMergeRoundTrip) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA";
  const int64_t w = 16, h = 16;
  auto dst_a = token_partition_2d(w, h, 2, 2, at::randint(4, {8, 8}, at::kLong)).first.to(at::kCUDA);
  auto dst_b = token_partition_2d(w, h, 2, 2, at::randint(4, {8, 8}, at::kLong)).first.to(at::kCUDA);
  auto x = at::randn({4, w * h, 32}, kCuda), x2 = at::randn({4, w * h, 32}, kCuda);
  auto [got, want] = capture_and_replay({x, dst_a}, {x2, dst_b}, [](const std::vector<at::Tensor>& v) {
    TokenMerge m = TokenMerge::match(v[0], v[1], 128);
    return m.unmerge(m.merge(v[0]) * 2);
  });
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
}

// A buffer allocated during the capture and filled by the host before each
// replay (ToMe's destinations) must not share memory with the graph's
// earlier temporaries, which the replay writes first.
TEST(GraphOpsCuda, HostFilledBufferAllocatedWhileCapturing) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA";
  auto x = at::randn({1 << 16}, kCuda);
  const at::Tensor index = at::randperm(1 << 16, at::kLong).slice(0, 0, 1024).contiguous();
  auto run = [&](const at::Tensor& dst) {
    at::Tensor tmp = (x * 3).to(at::kLong);  // freed before dst exists when capturing
    return x.index_select(0, dst) + tmp.sum();
  };
  run(index.to(at::kCUDA));
  torch::cuda::synchronize();
  at::cuda::CUDAGraph graph;
  at::Tensor dst, out;
  {
    c10::cuda::CUDAStreamGuard guard(at::cuda::getStreamFromPool());
    GraphCaptureScope capturing;
    graph.capture_begin();
    at::Tensor tmp = (x * 3).to(at::kLong);
    const at::Tensor s = tmp.sum();
    tmp.reset();
    dst = empty_outside_graph({1024}, kCuda.dtype(at::kLong));
    out = x.index_select(0, dst) + s;
    graph.capture_end();
  }
  dst.copy_(index);
  graph.replay();
  torch::cuda::synchronize();
  EXPECT_TRUE(torch::equal(out, run(index.to(at::kCUDA))));
}
#endif

}  // namespace
}  // namespace diffsearch::engine
