// ToMe's operations one by one at SD1.5's 512 px shapes (the 64x64 level:
// 4096 tokens of 320 channels, batch 2 for CFG, 8 heads of 40): what the
// matching, merging and unmerging cost against what halving the tokens saves
// in self-attention. Each line is the mean over many calls between device
// synchronisations.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

#include <torch/torch.h>

#include "io/error.h"
#include "worker/engine/core/device.h"
#include "worker/engine/core/nn.h"
#include "worker/engine/accel/policy_tome.h"

using namespace diffsearch;

int main(int argc, char** argv) {
  try {
    const std::string device = argc > 1 ? argv[1] : "cuda";
    const engine::RunOptions options = engine::parse_run_options(device == "cpu" ? "float32" : "float16", device);
    torch::NoGradGuard no_grad;
    const int64_t b = 2, h = 64, w = 64, n = h * w, c = 320, heads = 8, r = n / 2;
    const auto opts = at::TensorOptions().dtype(options.dtype).device(options.device);
    const at::Tensor x = at::randn({b, n, c}, opts);
    auto time_ms = [&](const char* name, const std::function<void()>& f) {
      for (int i = 0; i < 10; ++i) f();
      engine::device_synchronize(options);
      const int iters = 200;
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) f();
      engine::device_synchronize(options);
      const double ms = 1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
      std::printf("%-44s %8.4f ms\n", name, ms);
      return ms;
    };
    auto [dst_cpu, src_cpu] = engine::token_partition_2d(w, h, 2, 2, {});
    const at::Tensor dst = dst_cpu.to(options.device);
    engine::TokenMerge m = engine::TokenMerge::match(x, dst, r);
    const at::Tensor merged = m.merge(x);
    std::printf("%s, [%lld, %lld, %lld] %s, r = %lld, %s\n", engine::device_name(options).c_str(),
                (long long)b, (long long)n, (long long)c, device.c_str(), (long long)r,
                engine::tome_kernels_enabled(options.device) ? "fused kernels (tome_kernels.cu)"
                                                             : "ATen kernels");
    time_ms("partition, fixed windows (host + copy)", [&] {
      auto p = engine::token_partition_2d(w, h, 2, 2, {});
      (void)p.first.to(options.device);
    });
    time_ms("partition, random windows (host + copy)", [&] {
      const at::Tensor choice = at::randint(0, 4, {h / 2, w / 2}, at::TensorOptions().dtype(at::kLong));
      auto p = engine::token_partition_2d(w, h, 2, 2, choice);
      (void)p.first.to(options.device);
    });
    time_ms("match", [&] { (void)engine::TokenMerge::match(x, dst, r); });
    time_ms("  normalise + scores matmul", [&] {
      const at::Tensor unit = x / x.norm(2, {-1}, true);
      (void)at::matmul(unit, unit.index_select(1, dst).transpose(-1, -2));
    });
    const at::Tensor scores = at::randn({b, n}, opts);
    time_ms("  stable sort of [2, 4096]", [&] { (void)scores.sort(true, -1, true); });
    time_ms("merge", [&] { (void)m.merge(x); });
    time_ms("unmerge", [&] { (void)m.unmerge(merged); });
    const at::Tensor q = at::randn({b, heads, n, c / heads}, opts);
    const at::Tensor qm = at::randn({b, heads, n - r, c / heads}, opts);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c / heads));
    const double full = time_ms("self-attention, 4096 tokens", [&] { (void)engine::scaled_dot_attention(q, q, q, scale, false); });
    const double half = time_ms("self-attention, 2048 tokens", [&] { (void)engine::scaled_dot_attention(qm, qm, qm, scale, false); });
    std::printf("attention saved per block: %.4f ms\n", full - half);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
