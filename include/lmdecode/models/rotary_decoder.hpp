#pragma once
// The rotary decoder families, Llama (3.x), Mistral, Phi-3, Qwen2, Qwen3 and Gemma 3, in one model:
// RMSNorm, rotary embeddings (default, linear or llama3 frequency scaling; Phi-3's partial rotary),
// grouped-query attention (sliding-window layers by the mask), a gated MLP; what differs by family
// comes from ModelConfig: the biases (Qwen2's q/k/v, Llama's attention_bias and mlp_bias, Qwen3's
// attention_bias), the per-head RMSNorm of queries and keys before the rotation (Qwen3, Gemma 3),
// the weight names (Phi-3 stores qkv_proj and gate_up_proj fused), and Gemma 3's scaled embeddings,
// (1 + w) norms around both sublayers, GELU-tanh, query_pre_attn_scalar, a rotary base of its own for
// the sliding layers and tanh soft-capping. It mirrors transformers' float32 islands exactly
// (DECODING_RULES.md §6): RMSNorm, RoPE cos/sin and the attention softmax run in float32 whatever the
// model dtype, which is what keeps bf16/f16 accurate and float64 within 1e-6 of transformers.
//
// Each step dispatches few operators, since on a GPU each one is a kernel launch and the host's
// dispatch cost per launch, not the GPU, bounds a small model's step: q/k/v and gate/up are one
// matmul each (weights concatenated at load), rotary runs once over queries and keys together, and
// query heads are grouped by the KV head they read, so the cache is never copied per query head.
// bfloat16/float16 models on libtorch >= 2.4 also take the fused attention and RMSNorm kernels
// (detail/fused_kernels.hpp); float32 and float64 keep transformers' eager arithmetic exactly, but
// for a long float32 CPU prefill with a causal-only mask (detail/tiled_causal_attention.hpp).

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "lmdecode/models/detail/fused_kernels.hpp"
#include "lmdecode/models/detail/projection.hpp"
#include "lmdecode/models/detail/checkpoint_weights.hpp"
#include "lmdecode/models/pretrained_model.hpp"

namespace lmdecode {

class RotaryDecoderModel : public PretrainedModel {
 public:
  RotaryDecoderModel(ModelConfig config, const CheckpointWeights& weights, at::Device device, at::ScalarType dtype,
                     WeightFormat format = WeightFormat::model_dtype)
      : PretrainedModel(std::move(config), device, dtype, format),
        fused_(detail::kHasFusedKernels && (dtype == at::kBFloat16 || dtype == at::kHalf)) {
    const auto& c = this->config();
    const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
    auto matrix = [&](const at::Tensor& weight, const std::string& name) { return detail::make_linear_weight(weight, format, name); };
    embed_ = matrix(weights.take("model.embed_tokens.weight", {c.vocab_size, h}), "model.embed_tokens.weight");
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      Layer l;
      l.input_norm = norm_weight(weights.take(p + "input_layernorm.weight", {h}));
      // Gemma's post_attention_layernorm normalises the attention output; the others' is the MLP's input norm.
      const auto post_attention = norm_weight(weights.take(p + "post_attention_layernorm.weight", {h}));
      if (c.sandwich_norms) {
        l.attention_out_norm = post_attention;
        l.mlp_norm = norm_weight(weights.take(p + "pre_feedforward_layernorm.weight", {h}));
        l.mlp_out_norm = norm_weight(weights.take(p + "post_feedforward_layernorm.weight", {h}));
      } else {
        l.mlp_norm = post_attention;
      }
      const std::string a = p + "self_attn.", m = p + "mlp.";
      // The q/k/v and gate/up weights are used concatenated; Phi-3 stores them so.
      at::Tensor qkv, gate_up;
      if (c.fused_projections) {
        qkv = weights.take(a + "qkv_proj.weight", {q + 2 * kv, h});
        gate_up = weights.take(m + "gate_up_proj.weight", {2 * c.intermediate_size, h});
      } else {
        std::vector<at::Tensor> parts;  // taken one by one: a missing one throws with nothing half-built
        parts.push_back(weights.take(a + "q_proj.weight", {q, h}));
        parts.push_back(weights.take(a + "k_proj.weight", {kv, h}));
        parts.push_back(weights.take(a + "v_proj.weight", {kv, h}));
        qkv = at::cat(parts);
        parts.clear();
        parts.push_back(weights.take(m + "gate_proj.weight", {c.intermediate_size, h}));
        parts.push_back(weights.take(m + "up_proj.weight", {c.intermediate_size, h}));
        gate_up = at::cat(parts);
      }
      l.qkv = matrix(qkv, a + "q/k/v");
      if (c.qkv_bias)
        l.qkv_bias = at::cat({weights.take(a + "q_proj.bias", {q}), weights.take(a + "k_proj.bias", {kv}),
                              weights.take(a + "v_proj.bias", {kv})});
      if (c.qk_norm)  // one weight row per query head, then per key head: both normalised in one call
        l.qk_norm = at::cat({norm_weight(weights.take(a + "q_norm.weight", {c.head_dim})).expand({c.num_heads, c.head_dim}),
                             norm_weight(weights.take(a + "k_norm.weight", {c.head_dim})).expand({c.num_kv_heads, c.head_dim})});
      l.o = matrix(weights.take(a + "o_proj.weight", {h, q}), a + "o_proj.weight");
      if (c.o_bias) l.o_bias = weights.take(a + "o_proj.bias", {h});
      const int64_t inner = c.intermediate_size;
      l.gate_up = matrix(gate_up, m + "gate/up");
      l.down = matrix(weights.take(m + "down_proj.weight", {h, inner}), m + "down_proj.weight");
      if (c.mlp_bias) {
        l.gate_up_bias = at::cat({weights.take(m + "gate_proj.bias", {inner}), weights.take(m + "up_proj.bias", {inner})});
        l.down_bias = weights.take(m + "down_proj.bias", {h});
      }
      layers_.push_back(std::move(l));
    }
    final_norm_ = norm_weight(weights.take("model.norm.weight", {h}));
    head_ = c.tie_word_embeddings ? embed_ : matrix(weights.take("lm_head.weight", {c.vocab_size, h}), "lm_head.weight");
    const int64_t rotary_dim = c.rotary_dim > 0 ? c.rotary_dim : c.head_dim;
    inv_freq_ = inverse_frequencies(rotary_dim, c.rope_theta, c.rope_scaling, device);
    if (c.sliding_rope_theta > 0)
      sliding_inv_freq_ = inverse_frequencies(rotary_dim, c.sliding_rope_theta, c.sliding_rope_scaling, device);
    // Gemma: sqrt(hidden_size) held as a float32 tensor and cast to the model dtype (transformers'
    // embed_scale buffer; in bfloat16 sqrt(3072) becomes 55.5).
    if (c.scaled_embeddings)
      embed_scale_ = at::scalar_tensor(std::sqrt(static_cast<double>(h)), at::TensorOptions().dtype(at::kFloat).device(device)).to(dtype);
  }

  int64_t weight_bytes_per_step() const override {
    int64_t sum = detail::tensor_bytes({final_norm_}) + head_.bytes();
    for (const auto& l : layers_)
      sum += detail::tensor_bytes({l.input_norm, l.attention_out_norm, l.mlp_norm, l.mlp_out_norm, l.qkv_bias, l.qk_norm,
                                   l.o_bias, l.gate_up_bias, l.down_bias}) +
             l.qkv.bytes() + l.o.bytes() + l.gate_up.bytes() + l.down.bytes();
    return sum;
  }

 protected:
  at::Tensor run_layers(const std::vector<LayerSegment>& segments) override {
    const auto& c = config();
    std::vector<SegmentAttention> attending;
    std::vector<at::Tensor> ids;
    for (const auto& seg : segments) {
      attending.push_back(segment_attention(seg));
      ids.push_back(seg.batch->input_ids.reshape({-1}));
    }
    auto hidden = embedding_rows(embed_, joined(ids));  // [positions, hidden]
    if (embed_scale_.defined()) hidden.mul_(embed_scale_);
    for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
      const Layer& l = layers_[i];
      auto qkv = detail::project(rms_norm(hidden, l.input_norm), l.qkv, l.qkv_bias);
      std::vector<at::Tensor> parts;
      int64_t offset = 0;
      for (const auto& a : attending) {
        parts.push_back(attention(i, qkv.narrow(0, offset, a.rows * a.fed), a));
        offset += a.rows * a.fed;
      }
      auto attended = detail::project(joined(parts), l.o, l.o_bias);
      hidden.add_(l.attention_out_norm.defined() ? rms_norm(attended, l.attention_out_norm) : attended);
      auto gate_up = detail::project(rms_norm(hidden, l.mlp_norm), l.gate_up, l.gate_up_bias).chunk(2, 1);
      auto activated = c.activation == Activation::gelu_tanh ? at::gelu(gate_up[0], "tanh") : at::silu(gate_up[0]);
      auto mlp_out = detail::project(activated.mul_(gate_up[1]), l.down, l.down_bias);
      hidden.add_(l.mlp_out_norm.defined() ? rms_norm(mlp_out, l.mlp_out_norm) : mlp_out);
    }
    return rms_norm(hidden, final_norm_);
  }

  at::Tensor lm_head(const at::Tensor& hidden) override {
    auto logits = detail::project_positions(hidden, head_);
    const double cap = config().final_logit_softcap;
    return cap > 0 ? logits.div_(cap).tanh_().mul_(cap) : logits;
  }

 private:
  /// cos and sin of the positions (sin with its first half negated, rotary()), [rows, T, 1, rotary dims].
  struct Rotation {
    at::Tensor cos, signed_sin;
  };

  struct Layer {
    at::Tensor input_norm, mlp_norm;             // the norms of the attention's and the MLP's inputs
    at::Tensor attention_out_norm, mlp_out_norm;  // Gemma: the norms of their outputs; or undefined
    detail::LinearWeight qkv;    // [(heads + 2 kv_heads) * head_dim, hidden]
    at::Tensor qkv_bias;         // or undefined
    at::Tensor qk_norm;          // Qwen3, Gemma: [heads + kv_heads, head_dim], q_norm's rows then k_norm's; or undefined
    detail::LinearWeight o, gate_up, down;
    at::Tensor o_bias, gate_up_bias, down_bias;  // or undefined
  };

  /// A layer's attention mask in the grouped query layout, and for the fused kernel as an additive bias.
  struct LayerMask {
    at::Tensor grouped_blocked;  // [rows, 1, group * T, S] bool
    at::Tensor bias;             // the fused kernel's: 0 or the lowest finite value, added to the scores
  };

  LayerMask layer_mask(const at::Tensor& blocked, int64_t group) const {
    LayerMask mask{group == 1 ? blocked : blocked.repeat({1, 1, group, 1}), {}};
    if (fused_)
      mask.bias = at::zeros(mask.grouped_blocked.sizes(), at::TensorOptions().dtype(dtype()).device(device()))
                      .masked_fill_(mask.grouped_blocked, detail::mask_value(dtype()));
    return mask;
  }

  /// What one segment's attention needs in every layer: its rotations and masks (the full ones and the
  /// sliding layers'), its cache and its shape.
  struct SegmentAttention {
    Rotation full_rotation, sliding_rotation;
    LayerMask full, sliding;
    KVCache* cache;
    int64_t rows, fed;
    detail::MaskShape full_mask_shape;  // the full layers' (the sliding layers' is never causal only)
  };

  SegmentAttention segment_attention(const LayerSegment& seg) const {
    const auto& c = config();
    const auto& positions = seg.batch->position_ids;
    const int64_t group = c.num_heads / c.num_kv_heads;
    const Rotation full_rotation = rotary(positions, inv_freq_);
    // Only a CPU prefill asks whether the mask has a zero (a GPU would wait for the answer).
    const auto& attention_mask = seg.batch->attention_mask;
    const bool causal_only = seg.fed() > 1 && attention_mask.is_cpu() && attention_mask.ne(0).all().item<bool>();
    SegmentAttention a{full_rotation, sliding_inv_freq_.defined() ? rotary(positions, sliding_inv_freq_) : full_rotation,
                       layer_mask(seg.blocked, group), {}, seg.cache, seg.rows(), seg.fed(),
                       causal_only ? detail::MaskShape::causal_only : detail::MaskShape::any};
    if (!c.sliding_layers.empty())
      a.sliding = layer_mask(detail::window_blocked(seg.blocked, seg.batch->attention_mask, c.sliding_window), group);
    return a;
  }

  /// Layer i's attention over one segment's cache, from its q/k/v projections ([rows * T, (heads + 2 kv_heads) * d]),
  /// before o_proj: [rows * T, heads * d].
  at::Tensor attention(int64_t i, const at::Tensor& projected, const SegmentAttention& a) const {
    const auto& c = config();
    const Layer& l = layers_[i];
    const bool slides = !c.sliding_layers.empty() && c.sliding_layers[i];
    const Rotation& rotation = slides ? a.sliding_rotation : a.full_rotation;
    const LayerMask& mask = slides ? a.sliding : a.full;
    const int64_t rows = a.rows, fed = a.fed;
    const int64_t heads = c.num_heads, kv_heads = c.num_kv_heads, d = c.head_dim, group = heads / kv_heads;
    auto qkv = projected.view({rows, fed, heads + 2 * kv_heads, d})
                   .split_with_sizes({heads + kv_heads, kv_heads}, 2);  // queries and keys, values
    auto qk_in = l.qk_norm.defined() ? head_rms_norm(qkv[0], l.qk_norm) : qkv[0];
    auto qk = apply_rotary(qk_in, rotation).split_with_sizes({heads, kv_heads}, 2);  // [rows, T, heads | kv_heads, d]
    // Query head h reads KV head h / group. Queries are laid out [rows, kv_heads, group * T, d] (row
    // g * T + t: head kv * group + g, position t), so each KV head serves its group in one matmul.
    // One position a row (every decoding step): the grouped layouts are plain views, one call each.
    auto q = fed == 1 ? qk[0].view({rows, kv_heads, group, d})
                      : qk[0].view({rows, fed, kv_heads, group, d}).permute({0, 2, 3, 1, 4}).reshape({rows, kv_heads, group * fed, d});
    const LayerKV kv = a.cache->append(i, qk[1].transpose(1, 2), qkv[1].transpose(1, 2));
    const detail::ScoreScale scale{c.attention_scale > 0 ? c.attention_scale : std::pow(static_cast<double>(d), -0.5), {}};
    // A shared prompt needs one softmax over two key sets, which the fused kernel cannot take.
    auto attended = fused_ && !kv.shares_prompt()
                        ? detail::fused_attention(q, kv.keys, kv.values, mask.bias, scale.multiply_by)
                        : detail::cached_attention(q, kv, mask.grouped_blocked, scale, at::kFloat, group,
                                                   slides ? detail::MaskShape::any : a.full_mask_shape);  // [rows, kv_heads, group * T, d]
    return fed == 1 ? attended.reshape({rows, heads * d})
                    : attended.view({rows, kv_heads, group, fed, d}).permute({0, 3, 1, 2, 4}).reshape({rows * fed, heads * d});
  }

  /// A norm weight as rms_norm() takes it: Gemma's (1 + w) in float32 (what Gemma3RMSNorm multiplies
  /// by), the others' as stored.
  at::Tensor norm_weight(const at::Tensor& w) const {
    return config().unit_offset_norms ? w.to(at::kFloat).add(1.0) : w;
  }

  /// HF's RMSNorm: normalise in float32; LlamaRMSNorm (Qwen2, Qwen3, Mistral, Phi-3 alike) casts back,
  /// then scales; Gemma3RMSNorm scales by (1 + w) in float32, then casts back.
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
    if (config().unit_offset_norms) return offset_rms_norm(x, weight);
    return fused_ ? detail::fused_rms_norm(x, weight, config().norm_eps) : eager_rms_norm(x, weight);
  }

  /// rms_norm over each head of x [rows, T, heads, d] with a weight row per head (which the fused
  /// kernel cannot take).
  at::Tensor head_rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
    return config().unit_offset_norms ? offset_rms_norm(x, weight) : eager_rms_norm(x, weight);
  }

  at::Tensor normalized_float(const at::Tensor& x) const {
    auto h = x.scalar_type() == at::kFloat ? x : x.to(at::kFloat);
    return h * h.pow(2).mean(-1, true).add_(config().norm_eps).rsqrt_();
  }

  at::Tensor eager_rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
    auto h = normalized_float(x);
    return weight * (x.scalar_type() == at::kFloat ? h : h.to(x.scalar_type()));
  }

  at::Tensor offset_rms_norm(const at::Tensor& x, const at::Tensor& weight_plus_one) const {
    auto scaled = normalized_float(x).mul_(weight_plus_one);
    return scaled.scalar_type() == x.scalar_type() ? scaled : scaled.to(x.scalar_type());
  }

  /// transformers' inverse frequencies (modeling_rope_utils: default, linear, llama3), every operation
  /// in float32 and in its order (Python's `scalar / t` is `t.reciprocal() * scalar`).
  static at::Tensor inverse_frequencies(int64_t d, double theta, const RopeScaling& s, at::Device device) {
    // 1 / theta ** (arange(0, d, 2) / d), d the rotary dimensions
    auto exponent = at::arange(0, d, 2, at::TensorOptions().dtype(at::kLong).device(device)).to(at::kFloat) /
                    static_cast<double>(d);
    auto inv_freq = at::reciprocal(at::pow(theta, exponent));
    if (s.type == "linear") return inv_freq / s.factor;
    if (s.type != "llama3") return inv_freq;
    // Llama 3.1: wavelengths above the pretraining context / low_freq_factor are stretched by factor,
    // those below context / high_freq_factor kept, the band between interpolated.
    const double context = static_cast<double>(s.original_max_position_embeddings);
    const double low_freq_wavelen = context / s.low_freq_factor, high_freq_wavelen = context / s.high_freq_factor;
    auto wavelen = at::reciprocal(inv_freq) * (2 * M_PI);
    auto scaled = at::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
    auto smooth = (at::reciprocal(wavelen) * context - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    auto smoothed = at::rsub(smooth, 1) * scaled / s.factor + smooth * scaled;
    auto medium = (wavelen < high_freq_wavelen).logical_not().logical_and((wavelen > low_freq_wavelen).logical_not());
    return at::where(medium, smoothed, scaled);
  }

  /// cos and sin of positions x inv_freq, computed in float32 and cast to the model dtype, shaped
  /// [rows, T, 1, head_dim]. The sin comes with its first half negated: rotate_half(x) * sin then equals
  /// swap_halves(x) * signed_sin exactly (negation commutes with rounding), one operator fewer per layer.
  Rotation rotary(const at::Tensor& position_ids, const at::Tensor& inv_freq) const {
    auto freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq;  // [rows, T, head_dim / 2]
    auto emb = at::cat({freqs, freqs}, -1);
    auto sin = emb.sin().to(dtype());
    const int64_t half = sin.size(-1) / 2;
    auto signed_sin = at::cat({-sin.narrow(-1, 0, half), sin.narrow(-1, half, half)}, -1);
    return {emb.cos().to(dtype()).unsqueeze(2), signed_sin.unsqueeze(2)};
  }

  /// HF apply_rotary_pos_emb on x [rows, T, heads, d]: x * cos + rotate_half(x) * sin over the
  /// first cos.size(-1) dimensions (all of them but with Phi-3's partial rotary), the rest as it is.
  static at::Tensor apply_rotary(const at::Tensor& x, const Rotation& rotation) {
    const auto& [cos, signed_sin] = rotation;
    const int64_t rotary = cos.size(-1), d = x.size(-1);
    auto rotating = rotary == d ? x : x.narrow(-1, 0, rotary);
    auto swapped = rotating.roll(rotary / 2, -1);  // the two halves swapped
    auto rotated = (rotating * cos).add_(swapped.mul_(signed_sin));
    return rotary == d ? rotated : at::cat({rotated, x.narrow(-1, rotary, d - rotary)}, -1);
  }

  bool fused_;  // fused attention and RMSNorm kernels (half precision on libtorch >= 2.4)
  detail::LinearWeight embed_, head_;
  at::Tensor final_norm_;
  at::Tensor embed_scale_;                 // Gemma: 0-dim, the model dtype; or undefined
  at::Tensor inv_freq_, sliding_inv_freq_;  // [rotary dims / 2] float32; Gemma's sliding layers' own, or undefined
  std::vector<Layer> layers_;
};

}  // namespace lmdecode
