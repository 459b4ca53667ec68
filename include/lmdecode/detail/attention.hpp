#pragma once
// Attention pieces shared by the reference models: the causal + padding mask over the cache, and
// masked scores that stay finite (a -inf mask turns fully masked pad rows into NaN, HF_SEMANTICS §6).

#include <ATen/ATen.h>

#include <limits>

namespace lmdecode::detail {

/// allowed[r, 0, t, s]: query t of this call (at cache position cached + t) may attend key s.
/// attention_mask is [rows, cached + T]; the result is [rows, 1, T, cached + T] bool.
inline at::Tensor attention_allowed(const at::Tensor& attention_mask, int64_t cached, int64_t fed) {
  const int64_t keys = cached + fed;
  auto opts = attention_mask.options().dtype(at::kLong);
  auto causal = at::arange(keys, opts).unsqueeze(0) <= (at::arange(fed, opts) + cached).unsqueeze(1);  // [T, S]
  return attention_mask.to(at::kBool).unsqueeze(1).unsqueeze(1).logical_and(causal);
}

/// The value written at masked positions: the lowest finite value of `dtype`, and for float64 the
/// lowest float32, so that it stays finite when the scores are cast to float32 for the softmax.
inline double mask_value(at::ScalarType dtype) {
  switch (dtype) {
    case at::kHalf: return -65504.0;
    case at::kBFloat16: return -3.3895313892515355e38;
    default: return std::numeric_limits<float>::lowest();
  }
}

/// softmax(scores masked by `allowed`) @ values, with the softmax run in `softmax_dtype` and cast back.
inline at::Tensor masked_attention(const at::Tensor& scores, const at::Tensor& allowed, const at::Tensor& values,
                                   at::ScalarType softmax_dtype) {
  auto masked = scores.masked_fill(allowed.logical_not(), mask_value(scores.scalar_type()));
  auto weights = masked.softmax(-1, softmax_dtype).to(values.scalar_type());
  return at::matmul(weights, values);
}

}  // namespace lmdecode::detail
