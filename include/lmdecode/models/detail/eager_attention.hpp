#pragma once
// Attention pieces shared by the reference models: the causal + padding mask over the cache, and
// masked scores that stay finite (a -inf mask turns fully masked pad rows into NaN, DECODING_RULES.md §6).

#include <ATen/ATen.h>

#include <limits>

namespace lmdecode::detail {

/// blocked[r, 0, t, s]: query t of this call (at cache position cached + t) may NOT attend key s.
/// attention_mask is [rows, cached + T]; the result is [rows, 1, T, cached + T] bool. It is built once
/// per forward so that each layer only applies it.
inline at::Tensor attention_blocked(const at::Tensor& attention_mask, int64_t cached, int64_t fed) {
  const int64_t keys = cached + fed;
  auto opts = attention_mask.options().dtype(at::kLong);
  auto future = at::arange(keys, opts).unsqueeze(0) > (at::arange(fed, opts) + cached).unsqueeze(1);  // [T, S]
  return attention_mask.eq(0).unsqueeze(1).unsqueeze(1).logical_or(future);
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

/// softmax(scores masked by `blocked`) @ values, with the softmax run in `softmax_dtype` and cast back.
/// `scores` is a fresh tensor the caller gives up: it is masked in place.
inline at::Tensor masked_attention(at::Tensor scores, const at::Tensor& blocked, const at::Tensor& values,
                                   at::ScalarType softmax_dtype) {
  scores.masked_fill_(blocked, mask_value(scores.scalar_type()));
  auto weights = scores.softmax(-1, softmax_dtype);
  const auto dtype = values.scalar_type();
  if (weights.scalar_type() != dtype) weights = weights.to(dtype);
  // A CPU half-precision matmul may accumulate in half precision along the context (libtorch 1.13
  // without AVX-512: 5% off at 4096 positions, benchmarks/RESULTS.md). The same rounded weights
  // times the values in float32, rounded once, is what a GPU's float32-accumulating GEMM gives.
  if (values.is_cpu() && (dtype == at::kBFloat16 || dtype == at::kHalf))
    return at::matmul(weights.to(at::kFloat), values.to(at::kFloat)).to(dtype);
  return at::matmul(weights, values);
}

}  // namespace lmdecode::detail
