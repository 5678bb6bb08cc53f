// UNet hooks that hand every call on to another set (or do nothing without
// one), so a test can watch what a policy's hooks are asked and answer by
// overriding only the calls it records and calling the base to forward.
#pragma once

#include <cstdint>

#include "worker/engine/models/unet_hooks.h"

namespace diffsearch::engine::testing {

class ForwardingHooks : public UNetHooks {
 public:
  explicit ForwardingHooks(UNetHooks* inner) : inner_(inner) {}

  void begin_forward(const UNetForwardInfo& info) override {
    if (inner_) inner_->begin_forward(info);
  }
  bool reuse_layer(const UNetLocation& where, LayerOutput& out) override {
    return inner_ && inner_->reuse_layer(where, out);
  }
  void layer_computed(const UNetLocation& where, const LayerOutput& out) override {
    if (inner_) inner_->layer_computed(where, out);
  }
  void transformer_begin(const TransformerLocation& where, const at::Tensor& x, int64_t height,
                         int64_t width) override {
    if (inner_) inner_->transformer_begin(where, x, height, width);
  }
  at::Tensor merge_tokens(const TransformerLocation& where, TokenStage stage, const at::Tensor& x) override {
    return inner_ ? inner_->merge_tokens(where, stage, x) : x;
  }
  at::Tensor unmerge_tokens(const TransformerLocation& where, TokenStage stage, const at::Tensor& x) override {
    return inner_ ? inner_->unmerge_tokens(where, stage, x) : x;
  }
  bool reuse_attention(const AttentionLocation& where, at::Tensor& out) override {
    return inner_ && inner_->reuse_attention(where, out);
  }
  void attention_computed(const AttentionLocation& where, const at::Tensor& out) override {
    if (inner_) inner_->attention_computed(where, out);
  }
  ResnetInputShare* resnet_input_share(const UNetLocation& where) override {
    return inner_ ? inner_->resnet_input_share(where) : nullptr;
  }

 private:
  UNetHooks* inner_;
};

}  // namespace diffsearch::engine::testing
