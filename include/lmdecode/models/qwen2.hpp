#pragma once
// Qwen2 (and Llama-style) decoder: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU MLP,
// q/k/v biases when the checkpoint has them. It mirrors transformers' float32 islands exactly
// (HF_SEMANTICS §6): RMSNorm, RoPE cos/sin and the attention softmax run in float32 whatever the
// model dtype, which is what keeps bf16/f16 accurate and float64 within 1e-6 of transformers.

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "lmdecode/detail/weights.hpp"
#include "lmdecode/models/pretrained_model.hpp"

namespace lmdecode {

class Qwen2Model : public PretrainedModel {
 public:
  Qwen2Model(ModelConfig config, const detail::WeightStore& weights, at::Device device, at::ScalarType dtype)
      : PretrainedModel(std::move(config), device, dtype) {
    const auto& c = this->config();
    const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
    embed_ = weights.take("model.embed_tokens.weight", {c.vocab_size, h});
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      Layer l;
      l.input_norm = weights.take(p + "input_layernorm.weight", {h});
      l.post_norm = weights.take(p + "post_attention_layernorm.weight", {h});
      l.q = weights.take(p + "self_attn.q_proj.weight", {q, h});
      l.k = weights.take(p + "self_attn.k_proj.weight", {kv, h});
      l.v = weights.take(p + "self_attn.v_proj.weight", {kv, h});
      l.o = weights.take(p + "self_attn.o_proj.weight", {h, q});
      if (weights.has(p + "self_attn.q_proj.bias")) {
        l.q_bias = weights.take(p + "self_attn.q_proj.bias", {q});
        l.k_bias = weights.take(p + "self_attn.k_proj.bias", {kv});
        l.v_bias = weights.take(p + "self_attn.v_proj.bias", {kv});
      }
      l.gate = weights.take(p + "mlp.gate_proj.weight", {c.intermediate_size, h});
      l.up = weights.take(p + "mlp.up_proj.weight", {c.intermediate_size, h});
      l.down = weights.take(p + "mlp.down_proj.weight", {h, c.intermediate_size});
      layers_.push_back(std::move(l));
    }
    final_norm_ = weights.take("model.norm.weight", {h});
    head_ = c.tie_word_embeddings ? embed_ : weights.take("lm_head.weight", {c.vocab_size, h});
    // inv_freq = 1 / theta ** (arange(0, d, 2) / d), every operation in float32 as transformers does.
    auto exponent = at::arange(0, c.head_dim, 2, at::TensorOptions().dtype(at::kLong).device(device)).to(at::kFloat) /
                    static_cast<double>(c.head_dim);
    inv_freq_ = at::reciprocal(at::pow(c.rope_theta, exponent));
  }

 protected:
  at::Tensor run_layers(const ForwardBatch& batch, const at::Tensor& allowed, KVCache& cache) override {
    const auto& c = config();
    const int64_t rows = batch.input_ids.size(0), fed = batch.input_ids.size(1);
    auto hidden = at::embedding(embed_, batch.input_ids);  // [rows, T, hidden]
    auto [cos, sin] = rotary(batch.position_ids);          // [rows, 1, T, head_dim]
    const int64_t group = c.num_heads / c.num_kv_heads;
    const double scale = std::pow(static_cast<double>(c.head_dim), -0.5);
    for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
      const Layer& l = layers_[i];
      auto x = rms_norm(hidden, l.input_norm);
      auto q = at::linear(x, l.q, l.q_bias).view({rows, fed, c.num_heads, c.head_dim}).transpose(1, 2);
      auto k = at::linear(x, l.k, l.k_bias).view({rows, fed, c.num_kv_heads, c.head_dim}).transpose(1, 2);
      auto v = at::linear(x, l.v, l.v_bias).view({rows, fed, c.num_kv_heads, c.head_dim}).transpose(1, 2);
      q = q * cos + rotate_half(q) * sin;
      k = k * cos + rotate_half(k) * sin;
      auto [keys, values] = cache.append(i, k, v);  // [rows, kv_heads, S, head_dim]
      keys = repeat_kv(keys, group);
      values = repeat_kv(values, group);
      auto scores = at::matmul(q, keys.transpose(2, 3)) * scale;
      auto attended = detail::masked_attention(scores, allowed, values, at::kFloat);  // [rows, heads, T, head_dim]
      attended = attended.transpose(1, 2).reshape({rows, fed, c.num_heads * c.head_dim});
      hidden = hidden + at::linear(attended, l.o);
      x = rms_norm(hidden, l.post_norm);
      hidden = hidden + at::linear(at::silu(at::linear(x, l.gate)) * at::linear(x, l.up), l.down);
    }
    return rms_norm(hidden, final_norm_);
  }

  at::Tensor lm_head(const at::Tensor& hidden) override { return at::linear(hidden, head_); }

 private:
  struct Layer {
    at::Tensor input_norm, post_norm;
    at::Tensor q, k, v, o, q_bias, k_bias, v_bias;
    at::Tensor gate, up, down;
  };

  /// HF Qwen2RMSNorm: normalise in float32, cast back, then scale.
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
    auto h = x.to(at::kFloat);
    auto variance = h.pow(2).mean(-1, true);
    h = h * at::rsqrt(variance + config().norm_eps);
    return weight * h.to(x.scalar_type());
  }

  /// cos/sin of positions x inv_freq, computed in float32 and cast to the model dtype.
  std::pair<at::Tensor, at::Tensor> rotary(const at::Tensor& position_ids) const {
    auto freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq_;  // [rows, T, head_dim / 2]
    auto emb = at::cat({freqs, freqs}, -1);
    return {emb.cos().to(dtype()).unsqueeze(1), emb.sin().to(dtype()).unsqueeze(1)};
  }

  static at::Tensor rotate_half(const at::Tensor& x) {
    const int64_t half = x.size(-1) / 2;
    return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  }

  /// [rows, kv_heads, S, d] -> [rows, kv_heads * group, S, d], each kv head serving `group` query heads.
  static at::Tensor repeat_kv(const at::Tensor& x, int64_t group) {
    if (group == 1) return x;
    const auto s = x.sizes();
    return x.unsqueeze(2).expand({s[0], s[1], group, s[2], s[3]}).reshape({s[0], s[1] * group, s[2], s[3]});
  }

  at::Tensor embed_, head_, final_norm_;
  at::Tensor inv_freq_;  // [head_dim / 2] float32
  std::vector<Layer> layers_;
};

}  // namespace lmdecode
