// SampleRunner: eager runs, and CUDA-graph capture and replay of whole samples.
#include "worker/engine/pipeline/sample_runner.h"

#include <iomanip>
#include <sstream>

#include <torch/torch.h>
#ifdef DIFFSEARCH_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include "io/error.h"
#include "io/log/log.h"
#include "worker/engine/core/device.h"
#include "worker/engine/core/nn.h"

namespace diffsearch::engine {

// A captured sample: its static inputs (written before each replay, and
// allocated before the capture so no kernel of the graph shares their
// memory), its output (overwritten by each replay), the policies it was
// captured with (which keep what the graph reads across steps alive).
struct SampleRunner::Graph {
  std::string key;
  std::unique_ptr<Acceleration> acceleration;
  PromptTokens tokens;  // on the device
  at::Tensor latents;
  at::Tensor images;
  int64_t macs = 0;
  bool replayed_once = false;
#ifdef DIFFSEARCH_WITH_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

SampleRunner::SampleRunner(const Pipeline& pipeline, bool use_graphs, std::size_t max_graphs)
    : pipeline_(pipeline),
      use_graphs_(use_graphs && pipeline.options().device.is_cuda()),
      max_graphs_(std::max<std::size_t>(1, max_graphs)) {
#ifndef DIFFSEARCH_WITH_CUDA
  use_graphs_ = false;
#endif
}

SampleRunner::~SampleRunner() {
  // A graph may still run on the device; let it finish before its memory goes.
  if (!graphs_.empty()) device_synchronize(pipeline_.options());
}

void SampleRunner::drop_graphs() {
  if (!graphs_.empty()) device_synchronize(pipeline_.options());  // as in the destructor
  graphs_.clear();
}

SampleOutput SampleRunner::run_eager(const SampleRequest& request,
                                     const std::vector<AccelSpec>& specs,
                                     uint64_t accel_seed) const {
  DIFFSEARCH_ASSERT(request.policies.empty() && request.unet_hooks == nullptr);
  SampleRequest r = request;
  std::unique_ptr<Acceleration> acceleration;
  if (!specs.empty()) {
    acceleration = Acceleration::create(specs, pipeline_.unet(), r.steps, accel_seed);
    r.policies = acceleration->step_policies();
    r.unet_hooks = acceleration->unet_hooks();
  }
  torch::NoGradGuard no_grad;
  const SampleResult result = pipeline_.sample(r);
  SampleOutput out;
  out.images = pipeline_.decode(result.latents);
  out.prompt_truncated = result.prompt_truncated;
  return out;
}

std::string SampleRunner::graph_key(const SampleRequest& r,
                                    const std::vector<AccelSpec>& specs) const {
  // Everything a capture bakes in: shapes, the timesteps and guidance (kernel
  // arguments), the policies' parameters. Prompts, seeds and latents are inputs.
  const auto [height, width] = pipeline_.image_size(r);
  std::ostringstream key;
  key << std::setprecision(17) << static_cast<int>(r.sampler) << "|" << r.steps << "|"
      << r.guidance_scale << "|" << r.prompts.size() << "|" << height << "x" << width << "|"
      << (r.negative_prompts.empty() ? "no-negative" : "negative");
  for (const AccelSpec& s : specs) {
    key << "|" << s.method << complete_accel_params(s, pipeline_.unet(), r.steps).dump();
  }
  return key.str();
}

std::unique_ptr<SampleRunner::Graph> SampleRunner::capture(const SampleRequest& request,
                                                           const std::vector<AccelSpec>& specs,
                                                           uint64_t accel_seed) const {
#ifdef DIFFSEARCH_WITH_CUDA
  const RunOptions& options = pipeline_.options();
  auto g = std::make_unique<Graph>();
  g->key = graph_key(request, specs);
  const auto [height, width] = pipeline_.image_size(request);
  g->tokens = pipeline_.tokenize_prompts(request.prompts, request.negative_prompts, height, width)
                  .to(options.device);
  g->latents = pipeline_.starting_latents(request).clone();
  if (!specs.empty()) {
    g->acceleration = Acceleration::create(specs, pipeline_.unet(), request.steps, accel_seed);
  }
  std::vector<StepPolicy*> policies;
  UNetHooks* hooks = nullptr;
  if (g->acceleration) {
    policies = g->acceleration->step_policies();
    hooks = g->acceleration->unet_hooks();
  }
  auto sampler = pipeline_.make_sampler(request.sampler);
  device_synchronize(options);
  const int64_t macs_before = macs::total();
  {
    // Capture runs on a side stream (CUDA cannot capture the default one).
    c10::cuda::CUDAGuard device_guard(options.device);
    c10::cuda::CUDAStreamGuard stream_guard(at::cuda::getStreamFromPool(false, options.device.index()));
    GraphCaptureScope capturing;
    torch::NoGradGuard no_grad;
    g->graph = std::make_unique<at::cuda::CUDAGraph>();
    g->graph->capture_begin();
    try {
      const PromptEmbeddings e = pipeline_.encode_tokens(g->tokens);
      const at::Tensor latents = pipeline_.denoise(e, g->latents, *sampler, request.steps,
                                                   request.guidance_scale, policies, hooks);
      g->images = pipeline_.decode(latents);
    } catch (...) {
      try {
        g->graph->capture_end();
      } catch (...) {
        // The capture is already broken; the first error is the one to report.
      }
      macs::add(macs_before - macs::total());
      throw;
    }
    g->graph->capture_end();
  }
  // Nothing ran while capturing: the MACs counted belong to each replay.
  g->macs = macs::total() - macs_before;
  macs::add(-g->macs);
  return g;
#else
  (void)request;
  (void)specs;
  (void)accel_seed;
  DIFFSEARCH_ASSERT(false && "CUDA graphs need PyTorch's CUDA libtorch");
  return nullptr;
#endif
}

SampleOutput SampleRunner::run(const SampleRequest& request, const std::vector<AccelSpec>& specs,
                               uint64_t accel_seed) {
  if (!use_graphs_) return run_eager(request, specs, accel_seed);
#ifdef DIFFSEARCH_WITH_CUDA
  DIFFSEARCH_ASSERT(request.policies.empty() && request.unet_hooks == nullptr);
  if (request.steps < 1) {
    throw InputError("steps must be at least 1, found " + std::to_string(request.steps));
  }
  const std::string key = graph_key(request, specs);
  if (eager_only_.count(key) != 0) return run_eager(request, specs, accel_seed);
  auto it = graphs_.begin();
  while (it != graphs_.end() && (*it)->key != key) ++it;
  if (it != graphs_.end()) {
    graphs_.splice(graphs_.begin(), graphs_, it);  // most recently used first
  } else {
    // The first run of this setting is eager: cuDNN autotunes, cuBLAS and the
    // attention kernels set up, the allocator settles, none of which a
    // capture may do. Then capture and replay once, as every later run will.
    SampleOutput eager = run_eager(request, specs, accel_seed);
    std::unique_ptr<Graph> g;
    try {
      g = capture(request, specs, accel_seed);
      log::debug("captured a CUDA graph of " + key + " (" + std::to_string(graphs_.size() + 1) + " held)");
    } catch (const std::exception& e) {
      log::warn(std::string("CUDA graph capture failed; this setting runs eagerly "
                            "(DIFFSEARCH_CUDA_GRAPHS=0: every setting eagerly, no capture): ") + e.what());
      eager_only_.insert(key);
      return eager;
    }
    if (graphs_.size() >= max_graphs_) {
      device_synchronize(pipeline_.options());
      graphs_.pop_back();
    }
    graphs_.push_front(std::move(g));
  }
  Graph& g = *graphs_.front();
  const auto [height, width] = pipeline_.image_size(request);
  const PromptTokens tokens =
      pipeline_.tokenize_prompts(request.prompts, request.negative_prompts, height, width);
  DIFFSEARCH_ASSERT(tokens.ids.size() == g.tokens.ids.size());
  for (std::size_t i = 0; i < tokens.ids.size(); ++i) {
    DIFFSEARCH_ASSERT(tokens.ids[i].sizes() == g.tokens.ids[i].sizes());
    g.tokens.ids[i].copy_(tokens.ids[i]);
    g.tokens.positions[i].copy_(tokens.positions[i]);
  }
  if (tokens.time_ids.defined()) g.tokens.time_ids.copy_(tokens.time_ids);
  g.latents.copy_(pipeline_.starting_latents(request));
  if (g.acceleration) g.acceleration->refill_for_replay(accel_seed);
  g.graph->replay();
  // The first replay follows the eager run that already counted this sample.
  if (g.replayed_once) macs::add(g.macs);
  g.replayed_once = true;
  SampleOutput out;
  out.images = g.images.clone();  // the next replay overwrites g.images
  out.prompt_truncated = tokens.truncated;
  out.replayed = true;
  return out;
#else
  return run_eager(request, specs, accel_seed);
#endif
}

}  // namespace diffsearch::engine
