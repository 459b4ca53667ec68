#pragma once
// LinearWeight: a weight matrix [out, in] as the models keep it, in its WeightFormat: the model's
// dtype, bfloat16, or Q8_0 (llama.cpp's 8-bit format: blocks of 32 weights, each block int8 quants
// and one scale). The linear layers (projection.hpp), the output layer and the embedding lookups
// read it; only the few-rows kernel reads Q8_0 and bfloat16 as stored, every other path widens a
// slice at a time.

#include <ATen/ATen.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "lmdecode/error.hpp"
#include "lmdecode/models/weight_format.hpp"

namespace lmdecode::detail {

/// Weights a Q8_0 block holds.
constexpr int64_t kQ8BlockSize = 32;

/// Bytes of the tensors listed (undefined ones count 0).
inline int64_t tensor_bytes(std::initializer_list<at::Tensor> tensors) {
  int64_t sum = 0;
  for (const auto& t : tensors)
    if (t.defined()) sum += static_cast<int64_t>(t.numel() * t.element_size());
  return sum;
}

struct LinearWeight {
  at::Tensor matrix;        // [out, in] row-major: the model dtype, bfloat16, or int8 quants (Q8_0)
  at::Tensor block_scales;  // Q8_0: [out, in / 32] float32, each block's scale; else undefined

  bool quantized() const { return block_scales.defined(); }
  int64_t out_features() const { return matrix.size(0); }
  int64_t in_features() const { return matrix.size(1); }
  int64_t bytes() const { return tensor_bytes({matrix, block_scales}); }

  /// Output features [from, from + n) as a [n, in] tensor of `dtype`, each weight's exact value.
  at::Tensor widened(int64_t from, int64_t n, at::ScalarType dtype) const {
    return exact_values(matrix.narrow(0, from, n), quantized() ? block_scales.narrow(0, from, n) : at::Tensor(), dtype);
  }

  /// The rows `ids` names (an embedding lookup), [ids..., in] in `dtype`.
  at::Tensor rows(const at::Tensor& ids, at::ScalarType dtype) const {
    return exact_values(at::embedding(matrix, ids), quantized() ? at::embedding(block_scales, ids) : at::Tensor(), dtype);
  }

 private:
  /// Stored weights [..., in] in `dtype`: Q8_0 quants times their blocks' scales [..., in / 32].
  static at::Tensor exact_values(const at::Tensor& stored, const at::Tensor& scales, at::ScalarType dtype) {
    auto values = stored.to(dtype);
    if (!scales.defined()) return values;
    auto blocks = values.sizes().vec();
    blocks.back() = -1;
    blocks.push_back(kQ8BlockSize);
    return values.view(blocks).mul_(scales.to(dtype).unsqueeze(-1)).view(values.sizes());
  }
};

/// llama.cpp's Q8_0 of a float matrix [out, in] (quantize_row_q8_0_ref): per block of 32, the scale
/// d = max|w| / 127 rounded to float16 and quants round(w / d) computed with the unrounded d, halves
/// away from zero. The same weights give the same blocks as llama-quantize's Q8_0 file.
inline LinearWeight quantize_q8_0(const at::Tensor& weight, const std::string& name) {
  const int64_t out = weight.size(0), in = weight.size(1);
  detail::check(in % kQ8BlockSize == 0, "q8_0 weights need input sizes that are multiples of {}: {} has {}", kQ8BlockSize,
                name, in);
  auto blocks = weight.to(at::kFloat).view({out, in / kQ8BlockSize, kQ8BlockSize});
  auto scale = blocks.abs().amax(-1, true).div_(127.0);
  auto inverse = at::where(scale != 0, scale.reciprocal(), at::zeros_like(scale));
  auto scaled = blocks * inverse;
  auto quants = scaled.abs().add_(0.5).floor_().mul_(scaled.sign());  // roundf: halves away from zero
  return {quants.to(at::kChar).view({out, in}).contiguous(), scale.squeeze(-1).to(at::kHalf).to(at::kFloat).contiguous()};
}

/// A checkpoint's weight matrix `weight` [out, in] (named `name` in errors) in `format`.
inline LinearWeight make_linear_weight(const at::Tensor& weight, WeightFormat format, const std::string& name) {
  switch (format) {
    case WeightFormat::bfloat16:
      return {weight.to(at::kBFloat16).contiguous(), {}};
    case WeightFormat::q8_0:
      return quantize_q8_0(weight, name);
    case WeightFormat::model_dtype:
      break;
  }
  return {weight.contiguous(), {}};
}

}  // namespace lmdecode::detail
