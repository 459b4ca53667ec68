#pragma once
// GPT-2: learned positions, LayerNorm, tanh-GELU, Conv1D weights stored [in, out], tied embeddings.
// Everything runs in the model dtype, as in transformers (no float32 islands).

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "lmdecode/models/detail/checkpoint_weights.hpp"
#include "lmdecode/models/detail/projection.hpp"
#include "lmdecode/models/pretrained_model.hpp"

namespace lmdecode {

class Gpt2Model : public PretrainedModel {
 public:
  Gpt2Model(ModelConfig config, const CheckpointWeights& weights, at::Device device, at::ScalarType dtype,
            WeightFormat format = WeightFormat::model_dtype)
      : PretrainedModel(std::move(config), device, dtype, format) {
    const auto& c = this->config();
    const int64_t e = c.hidden_size, inner = c.intermediate_size;
    // Checkpoints saved from GPT2LMHeadModel prefix names with "transformer."; the original ones do not.
    prefix_ = weights.has("transformer.wte.weight") ? "transformer." : "";
    auto matrix = [&](const std::string& name, std::vector<int64_t> shape) {
      return detail::make_linear_weight(weights.take(name, std::move(shape)), format, name);
    };
    // A Conv1D weight [in, out], laid out as nn.Linear's [out, in].
    auto conv1d_matrix = [&](const std::string& name, std::vector<int64_t> shape) {
      return detail::make_linear_weight(weights.take(name, std::move(shape)).t(), format, name);
    };
    wte_ = matrix(prefix_ + "wte.weight", {c.vocab_size, e});
    wpe_ = matrix(prefix_ + "wpe.weight", {c.max_position_embeddings, e});
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string p = prefix_ + "h." + std::to_string(i) + ".";
      Layer l;
      l.ln1_w = weights.take(p + "ln_1.weight", {e});
      l.ln1_b = weights.take(p + "ln_1.bias", {e});
      l.attn_w = conv1d_matrix(p + "attn.c_attn.weight", {e, 3 * e});
      l.attn_b = weights.take(p + "attn.c_attn.bias", {3 * e});
      l.proj_w = conv1d_matrix(p + "attn.c_proj.weight", {e, e});
      l.proj_b = weights.take(p + "attn.c_proj.bias", {e});
      l.ln2_w = weights.take(p + "ln_2.weight", {e});
      l.ln2_b = weights.take(p + "ln_2.bias", {e});
      l.fc_w = conv1d_matrix(p + "mlp.c_fc.weight", {e, inner});
      l.fc_b = weights.take(p + "mlp.c_fc.bias", {inner});
      l.out_w = conv1d_matrix(p + "mlp.c_proj.weight", {inner, e});
      l.out_b = weights.take(p + "mlp.c_proj.bias", {e});
      layers_.push_back(std::move(l));
    }
    lnf_w_ = weights.take(prefix_ + "ln_f.weight", {e});
    lnf_b_ = weights.take(prefix_ + "ln_f.bias", {e});
    head_ = c.tie_word_embeddings || !weights.has("lm_head.weight") ? wte_ : matrix("lm_head.weight", {c.vocab_size, e});
  }

  int64_t weight_bytes_per_step() const override {
    int64_t sum = detail::tensor_bytes({lnf_w_, lnf_b_}) + head_.bytes();
    for (const auto& l : layers_)
      sum += detail::tensor_bytes({l.ln1_w, l.ln1_b, l.attn_b, l.proj_b, l.ln2_w, l.ln2_b, l.fc_b, l.out_b}) + l.attn_w.bytes() +
             l.proj_w.bytes() + l.fc_w.bytes() + l.out_w.bytes();
    return sum;
  }

 protected:
  at::Tensor run_layers(const std::vector<LayerSegment>& segments) override {
    const auto& c = config();
    const int64_t e = c.hidden_size, heads = c.num_heads, d = c.head_dim;
    std::vector<at::Tensor> ids, positions;
    for (const auto& seg : segments) {
      ids.push_back(seg.batch->input_ids.reshape({-1}));
      positions.push_back(seg.batch->position_ids.reshape({-1}));
    }
    auto hidden = embedding_rows(wte_, joined(ids)) + embedding_rows(wpe_, joined(positions));  // [positions, e]
    const detail::ScoreScale scale{1.0, at::full({}, std::sqrt(static_cast<double>(d)), hidden.options())};
    for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
      const Layer& l = layers_[i];
      auto qkv = conv1d(layer_norm(hidden, l.ln1_w, l.ln1_b), l.attn_w, l.attn_b).split(e, -1);
      std::vector<at::Tensor> parts;
      int64_t offset = 0;
      for (const auto& seg : segments) {
        const int64_t rows = seg.rows(), fed = seg.fed();
        auto heads_of = [&](const at::Tensor& t) { return t.narrow(0, offset, rows * fed).view({rows, fed, heads, d}).transpose(1, 2); };
        const LayerKV kv = seg.cache->append(i, heads_of(qkv[1]), heads_of(qkv[2]));
        auto attended = detail::cached_attention(heads_of(qkv[0]), kv, seg.blocked, scale, hidden.scalar_type(), 1);
        parts.push_back(attended.transpose(1, 2).reshape({rows * fed, e}));
        offset += rows * fed;
      }
      hidden = conv1d(joined(parts), l.proj_w, l.proj_b) + hidden;
      auto x = layer_norm(hidden, l.ln2_w, l.ln2_b);
      hidden = hidden + conv1d(gelu_tanh(conv1d(x, l.fc_w, l.fc_b)), l.out_w, l.out_b);
    }
    return layer_norm(hidden, lnf_w_, lnf_b_);
  }

  at::Tensor lm_head(const at::Tensor& hidden) override { return detail::project_positions(hidden, head_); }


 private:
  struct Layer {
    at::Tensor ln1_w, ln1_b, attn_b, proj_b, ln2_w, ln2_b, fc_b, out_b;
    detail::LinearWeight attn_w, proj_w, fc_w, out_w;  // [out, in]
  };

  at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const {
    return at::layer_norm(x, {x.size(-1)}, weight, bias, config().norm_eps);
  }

  /// HF Conv1D: x @ weight + bias, the weight kept as nn.Linear's ([out, in] in memory). Seen with
  /// libtorch 1.13 on a CPU without AVX-512: a bfloat16 matmul whose second operand is row-major
  /// accumulates in bfloat16 (error growing with `in`, 10 ulps in gpt2-tiny's logits), the transposed
  /// one in float32. Transposing costs the float32 and float64 golden cases nothing (they pass with it).
  static at::Tensor conv1d(const at::Tensor& x, const detail::LinearWeight& weight, const at::Tensor& bias) {
    auto sizes = x.sizes().vec();
    sizes.back() = weight.out_features();
    return detail::project(x.reshape({-1, x.size(-1)}), weight, bias).view(sizes);
  }

  /// HF NewGELUActivation ("gelu_new").
  static at::Tensor gelu_tanh(const at::Tensor& x) {
    return 0.5 * x * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * at::pow(x, 3.0))));
  }

  std::string prefix_;
  detail::LinearWeight wte_, wpe_, head_;
  at::Tensor lnf_w_, lnf_b_;
  std::vector<Layer> layers_;
};

}  // namespace lmdecode
