#pragma once
// Fused kernels of libtorch >= 2.4: scaled_dot_product_attention and rms_norm (one CUDA kernel
// since pytorch/pytorch#153666, 2025). Half-precision models use them for fewer kernel launches per
// layer; their rounding differs from transformers' eager float32 islands (as transformers' own
// default "sdpa" attention does), so float32 and float64 models, the exact ones, never use them.
// libtorch 1.x has neither.

#include <ATen/ATen.h>
#include <torch/version.h>

#include <stdexcept>

namespace lmdecode::detail {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
inline constexpr bool kHasFusedKernels = true;

/// weight * x / sqrt(mean(x^2) + eps) over the last dimension, accumulated in float32.
inline at::Tensor fused_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return at::rms_norm(x, {x.size(-1)}, weight, eps);
}

/// softmax(q @ k^T * scale + bias) @ v; `bias` is an additive mask broadcast to the scores.
inline at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                                  double scale) {
  return at::scaled_dot_product_attention(q, k, v, bias, /*dropout_p=*/0.0, /*is_causal=*/false, scale);
}
#else
inline constexpr bool kHasFusedKernels = false;

// Callers check kHasFusedKernels first; these keep them free of version tests.
inline at::Tensor fused_rms_norm(const at::Tensor&, const at::Tensor&, double) {
  throw std::logic_error("lmdecode: fused rms_norm needs libtorch >= 2.4");
}
inline at::Tensor fused_attention(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, double) {
  throw std::logic_error("lmdecode: scaled_dot_product_attention needs libtorch >= 2.4");
}
#endif

}  // namespace lmdecode::detail
