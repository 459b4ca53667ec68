#pragma once
// Qwen2 (and Llama-style) decoder: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU MLP,
// q/k/v biases when the checkpoint has them. It mirrors transformers' float32 islands exactly
// (DECODING_RULES.md §6): RMSNorm, RoPE cos/sin and the attention softmax run in float32 whatever the
// model dtype, which is what keeps bf16/f16 accurate and float64 within 1e-6 of transformers.
//
// Each step dispatches few operators, since on a GPU each one is a kernel launch and the host's
// dispatch cost per launch, not the GPU, bounds a small model's step: q/k/v and gate/up are one
// matmul each (weights concatenated at load), rotary runs once over queries and keys together, and
// query heads are grouped by the KV head they read, so the cache is never copied per query head.
// bfloat16/float16 models on libtorch >= 2.4 also take the fused attention and RMSNorm kernels
// (detail/fused_kernels.hpp); float32 and float64 keep transformers' eager arithmetic exactly.

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "lmdecode/models/detail/fused_kernels.hpp"
#include "lmdecode/models/detail/projection.hpp"
#include "lmdecode/models/checkpoint_weights.hpp"
#include "lmdecode/models/pretrained_model.hpp"

namespace lmdecode {

class Qwen2Model : public PretrainedModel {
 public:
  Qwen2Model(ModelConfig config, const CheckpointWeights& weights, at::Device device, at::ScalarType dtype)
      : PretrainedModel(std::move(config), device, dtype),
        fused_(detail::kHasFusedKernels && (dtype == at::kBFloat16 || dtype == at::kHalf)) {
    const auto& c = this->config();
    const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
    embed_ = weights.take("model.embed_tokens.weight", {c.vocab_size, h});
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      Layer l;
      l.input_norm = weights.take(p + "input_layernorm.weight", {h});
      l.post_norm = weights.take(p + "post_attention_layernorm.weight", {h});
      l.qkv_t = at::cat({weights.take(p + "self_attn.q_proj.weight", {q, h}), weights.take(p + "self_attn.k_proj.weight", {kv, h}),
                         weights.take(p + "self_attn.v_proj.weight", {kv, h})})
                    .t();
      if (weights.has(p + "self_attn.q_proj.bias"))
        l.qkv_bias = at::cat({weights.take(p + "self_attn.q_proj.bias", {q}), weights.take(p + "self_attn.k_proj.bias", {kv}),
                              weights.take(p + "self_attn.v_proj.bias", {kv})});
      l.o_t = weights.take(p + "self_attn.o_proj.weight", {h, q}).t();
      l.gate_up_t = at::cat({weights.take(p + "mlp.gate_proj.weight", {c.intermediate_size, h}),
                             weights.take(p + "mlp.up_proj.weight", {c.intermediate_size, h})})
                        .t();
      l.down_t = weights.take(p + "mlp.down_proj.weight", {h, c.intermediate_size}).t();
      layers_.push_back(std::move(l));
    }
    final_norm_ = weights.take("model.norm.weight", {h});
    head_ = c.tie_word_embeddings ? embed_ : weights.take("lm_head.weight", {c.vocab_size, h});
    // inv_freq = 1 / theta ** (arange(0, d, 2) / d), every operation in float32 as transformers does.
    auto exponent = at::arange(0, c.head_dim, 2, at::TensorOptions().dtype(at::kLong).device(device)).to(at::kFloat) /
                    static_cast<double>(c.head_dim);
    inv_freq_ = at::reciprocal(at::pow(c.rope_theta, exponent));
  }

  int64_t weight_bytes_per_step() const override {
    int64_t sum = detail::tensor_bytes({final_norm_, head_});
    for (const auto& l : layers_) sum += detail::tensor_bytes({l.input_norm, l.post_norm, l.qkv_t, l.qkv_bias, l.o_t, l.gate_up_t, l.down_t});
    return sum;
  }

 protected:
  at::Tensor run_layers(const ForwardBatch& batch, const at::Tensor& blocked, KVCache& cache) override {
    const auto& c = config();
    const int64_t rows = batch.input_ids.size(0), fed = batch.input_ids.size(1);
    const int64_t heads = c.num_heads, kv_heads = c.num_kv_heads, d = c.head_dim, group = heads / kv_heads;
    const double scale = std::pow(static_cast<double>(d), -0.5);
    auto hidden = at::embedding(embed_, batch.input_ids.reshape({-1}));  // [rows * T, hidden]
    const auto [cos, signed_sin] = rotary(batch.position_ids);          // [rows, T, 1, head_dim]
    // Query head h reads KV head h / group. Queries are laid out [rows, kv_heads, group * T, d] (row
    // g * T + t: head kv * group + g, position t), so each KV head serves its group in one matmul.
    const auto grouped_blocked = group == 1 ? blocked : blocked.repeat({1, 1, group, 1});  // [rows, 1, group * T, S]
    at::Tensor bias;  // the fused kernel's mask: 0 or the lowest finite value, added to the scores
    if (fused_) bias = at::zeros(grouped_blocked.sizes(), hidden.options()).masked_fill_(grouped_blocked, detail::mask_value(dtype()));
    for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
      const Layer& l = layers_[i];
      auto x = rms_norm(hidden, l.input_norm);
      auto qkv = detail::project(x, l.qkv_t, l.qkv_bias)
                     .view({rows, fed, heads + 2 * kv_heads, d})
                     .split_with_sizes({heads + kv_heads, kv_heads}, 2);  // queries and keys, values
      auto qk = apply_rotary(qkv[0], cos, signed_sin).split_with_sizes({heads, kv_heads}, 2);  // [rows, T, heads | kv_heads, d]
      // One position a row (every decoding step): the grouped layouts are plain views, one call each.
      auto q = fed == 1 ? qk[0].view({rows, kv_heads, group, d})
                        : qk[0].view({rows, fed, kv_heads, group, d}).permute({0, 2, 3, 1, 4}).reshape({rows, kv_heads, group * fed, d});
      const LayerKV kv = cache.append(i, qk[1].transpose(1, 2), qkv[1].transpose(1, 2));
      // A shared prompt needs one softmax over two key sets, which the fused kernel cannot take.
      auto attended = fused_ && !kv.shares_prompt()
                          ? detail::fused_attention(q, kv.keys, kv.values, bias, scale)
                          : detail::cached_attention(q, kv, grouped_blocked, {scale, {}}, at::kFloat);  // [rows, kv_heads, group * T, d]
      attended = fed == 1 ? attended.reshape({rows, heads * d})
                          : attended.view({rows, kv_heads, group, fed, d}).permute({0, 3, 1, 2, 4}).reshape({rows * fed, heads * d});
      hidden.add_(detail::project(attended, l.o_t));
      x = rms_norm(hidden, l.post_norm);
      auto gate_up = detail::project(x, l.gate_up_t).chunk(2, 1);
      hidden.add_(detail::project(at::silu(gate_up[0]).mul_(gate_up[1]), l.down_t));
    }
    return rms_norm(hidden, final_norm_).view({rows, fed, c.hidden_size});
  }

  at::Tensor lm_head(const at::Tensor& hidden) override { return detail::project_positions(hidden, head_); }


 private:
  struct Layer {
    at::Tensor input_norm, post_norm;
    at::Tensor qkv_t, qkv_bias;  // [hidden, (heads + 2 kv_heads) * head_dim] (a transposed view), bias or undefined
    at::Tensor o_t, gate_up_t, down_t;  // transposed views: x @ w_t is HF's Linear
  };

  /// HF Qwen2RMSNorm: normalise in float32, cast back, then scale.
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
    if (fused_) return detail::fused_rms_norm(x, weight, config().norm_eps);
    const bool is_float = x.scalar_type() == at::kFloat;
    auto h = is_float ? x : x.to(at::kFloat);
    h = h * h.pow(2).mean(-1, true).add_(config().norm_eps).rsqrt_();
    return weight * (is_float ? h : h.to(x.scalar_type()));
  }

  /// cos and sin of positions x inv_freq, computed in float32 and cast to the model dtype, shaped
  /// [rows, T, 1, head_dim]. The sin comes with its first half negated: rotate_half(x) * sin then equals
  /// swap_halves(x) * signed_sin exactly (negation commutes with rounding), one operator fewer per layer.
  std::pair<at::Tensor, at::Tensor> rotary(const at::Tensor& position_ids) const {
    auto freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq_;  // [rows, T, head_dim / 2]
    auto emb = at::cat({freqs, freqs}, -1);
    auto sin = emb.sin().to(dtype());
    const int64_t half = sin.size(-1) / 2;
    auto signed_sin = at::cat({-sin.narrow(-1, 0, half), sin.narrow(-1, half, half)}, -1);
    return {emb.cos().to(dtype()).unsqueeze(2), signed_sin.unsqueeze(2)};
  }

  /// HF apply_rotary_pos_emb on x [rows, T, heads, d]: x * cos + rotate_half(x) * sin.
  static at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& signed_sin) {
    auto swapped = x.roll(x.size(-1) / 2, -1);  // the two halves swapped
    return (x * cos).add_(swapped.mul_(signed_sin));
  }

  bool fused_;  // fused attention and RMSNorm kernels (half precision on libtorch >= 2.4)
  at::Tensor embed_, head_, final_norm_;
  at::Tensor inv_freq_;  // [head_dim / 2] float32
  std::vector<Layer> layers_;
};

}  // namespace lmdecode
