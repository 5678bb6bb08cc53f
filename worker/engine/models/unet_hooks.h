// The points at which acceleration policies (DeepCache, ToMe, T-GATE) step
// into a UNet forward: blocks and layers, token merging, attention outputs.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace diffsearch::engine {

// Locations use diffusers' module indices: down_blocks[block], mid_block,
// up_blocks[block] (in execution order, so up block 0 is the deepest), and
// within a block resnets[layer] / attentions[layer] (the Transformer2DModel
// after resnets[layer]) / downsamplers[0] / upsamplers[0]. Policies that number
// things differently (DeepCache counts up blocks and their layers from the
// other end) translate from these.
enum class UNetPart { down, mid, up };
enum class UNetModule {
  block,        // a whole down/mid/up block (layer is 0)
  resnet,       // resnets[layer]
  attention,    // attentions[layer]: one Transformer2DModel
  downsampler,  // downsamplers[0] (layer is 0)
  upsampler,    // upsamplers[0] (layer is 0)
};

struct UNetLocation {
  UNetPart part = UNetPart::down;
  int block = 0;
  UNetModule module = UNetModule::block;
  int layer = 0;
};

// One BasicTransformerBlock: transformer_blocks[transformer] inside the
// Transformer2DModel at `attention` (whose module is UNetModule::attention).
struct TransformerLocation {
  UNetLocation attention;
  int transformer = 0;
};

enum class AttentionKind { self, cross };  // attn1, attn2

struct AttentionLocation {
  TransformerLocation transformer;
  AttentionKind kind = AttentionKind::self;
};

// Where token merging applies inside a transformer block: the input of the
// self-attention, of the cross-attention and of the feed-forward.
enum class TokenStage { self_attention, cross_attention, feed_forward };

// What a block or layer produced. `hidden` is the output; a whole down block
// also returns its skip connections (one per resnet/attention pair, and the
// downsampler's output), in the order diffusers returns them.
struct LayerOutput {
  at::Tensor hidden;
  std::vector<at::Tensor> skips;
};

// What an up-block resnet, whose input is cat(h, skip), computed from h
// alone: h's share of conv1 (without conv1's bias) and of the residual (h's
// share of the shortcut, plus the shortcut's and conv2's biases). A policy
// keeps it for the steps on which the resnet gets the same h again.
struct ResnetInputShare {
  at::Tensor conv1;
  at::Tensor residual;
  bool filled() const { return conv1.defined(); }
  void clear() {
    conv1 = at::Tensor();
    residual = at::Tensor();
  }
};

struct UNetForwardInfo {
  int64_t batch = 0;
  int64_t height = 0;  // of the latent sample given to the UNet
  int64_t width = 0;
  at::Tensor timesteps;  // [batch], as given to forward
};

// Default methods do nothing: compute everything, merge nothing, keep nothing.
// The UNet never modifies a tensor after handing it to a hook, so a policy may
// keep references instead of copies. With no hooks (nullptr) the UNet skips
// every call below.
class UNetHooks {
 public:
  virtual ~UNetHooks() = default;

  // Once at the start of every forward.
  virtual void begin_forward(const UNetForwardInfo& info) {}

  // (a) Before computing a block or a layer: return true with `out` filled to
  // use it instead of computing (and then nothing inside it runs). For a whole
  // down block, `out.skips` must hold its skip connections as well.
  virtual bool reuse_layer(const UNetLocation& where, LayerOutput& out) { return false; }
  // After computing it (not called when reuse_layer supplied the output).
  virtual void layer_computed(const UNetLocation& where, const LayerOutput& out) {}

  // (b) Token merging. transformer_begin sees the block input x [B, N, C]
  // (before the norm, as ToMe computes its similarity on it) and the spatial
  // size of the feature map (height * width == N). merge_tokens is applied to
  // each normed stage input and unmerge_tokens to that stage's output, before
  // the residual add.
  virtual void transformer_begin(const TransformerLocation& where, const at::Tensor& x,
                                 int64_t height, int64_t width) {}
  virtual at::Tensor merge_tokens(const TransformerLocation& where, TokenStage stage,
                                  const at::Tensor& x) {
    return x;
  }
  virtual at::Tensor unmerge_tokens(const TransformerLocation& where, TokenStage stage,
                                    const at::Tensor& x) {
    return x;
  }

  // (c) Attention outputs: after to_out, before unmerging and the residual
  // add; [B, N', C] where N' is the (possibly merged) number of query tokens.
  virtual bool reuse_attention(const AttentionLocation& where, at::Tensor& out) { return false; }
  virtual void attention_computed(const AttentionLocation& where, const at::Tensor& out) {}

  // (d) Up-block resnets take cat(h, skip). A policy that hands the resnet at
  // `where` the same h on later steps (DeepCache's first recomputed layer,
  // after UNet2DCondition::prepare_input_share) returns a share to keep: an
  // empty one is filled, a filled one stands in for h's part of the work.
  // nullptr: the resnet runs whole.
  virtual ResnetInputShare* resnet_input_share(const UNetLocation& where) { return nullptr; }
};

}  // namespace diffsearch::engine
