#pragma once
// The models' linear layers (HF's Linear and GPT-2's Conv1D), each chosen by shape: a decode step of
// one row on the CPU is a matrix-vector product, which streams the weight once at two to three times
// the speed of a GEMM with one row (OpenBLAS, benchmarks/HISTORY.md); 2 to few_rows_max() float32
// rows (a batch, speculative decoding's drafts, a short prompt; 16, or 32 with AVX-512) take
// few_rows_product, which also reads the weight once, and so does one float32 row where the kernel
// outruns sgemv (kernel_outruns_gemv); more rows and every GPU call take the GEMM. bfloat16 and Q8_0
// weights of a float32 model go through the kernel at every count it takes, and through a GEMM of
// widened slices of the weight past it.

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "lmdecode/models/detail/few_rows_product.hpp"

namespace lmdecode::detail {

/// The float32 bytes of weight one slice of widened_product widens at a time: the GEMM of each
/// slice still has thousands of output features, and the transient copy stays small.
constexpr int64_t kWidenedSliceBytes = int64_t{8} << 20;

/// x @ weight^T (+ bias) where the weight is kept narrower than x (bfloat16 or Q8_0 under float32):
/// it is widened exactly, a slice of output features at a time, so a long prefill never holds a
/// widened copy of the whole matrix (the output layer's would be hundreds of MiB).
inline at::Tensor widened_product(const at::Tensor& x, const LinearWeight& weight, const at::Tensor& bias) {
  const int64_t in = weight.in_features(), out_features = weight.out_features();
  const int64_t slice = std::max<int64_t>(1, kWidenedSliceBytes / (in * static_cast<int64_t>(x.element_size())));
  std::vector<at::Tensor> parts;
  for (int64_t from = 0; from < out_features; from += slice) {
    const int64_t n = std::min(slice, out_features - from);
    const auto w_t = weight.widened(from, n, x.scalar_type()).t();
    parts.push_back(bias.defined() ? at::addmm(bias.narrow(0, from, n), x, w_t) : at::mm(x, w_t));
  }
  return parts.size() == 1 ? parts[0] : at::cat(parts, 1);
}

/// x [rows, in] @ weight [out, in]^T (+ bias [out]): HF's Linear.
inline at::Tensor project(const at::Tensor& x, const LinearWeight& weight, const at::Tensor& bias = {}) {
  const auto dtype = x.scalar_type();
  const auto& matrix = weight.matrix;
  const bool narrower = weight.quantized() || matrix.scalar_type() != dtype;
  if (x.is_cpu() && x.size(0) <= few_rows_max()) {
    const bool kernel_for_one_row = dtype == at::kFloat && (kernel_outruns_gemv() || narrower);
    // float32 and float64 only: libtorch's CPU half-precision mv may accumulate in half precision.
    if (x.size(0) == 1 && !kernel_for_one_row && (dtype == at::kFloat || dtype == at::kDouble) && !narrower &&
        matrix.is_contiguous()) {
      auto y = bias.defined() ? at::addmv(bias, matrix, x[0]) : at::mv(matrix, x[0]);
      return y.unsqueeze(0);
    }
    if (auto y = few_rows_product(x, weight, bias); y.defined()) return y;
  }
  if (narrower) return widened_product(x, weight, bias);
  return bias.defined() ? at::addmm(bias, x, matrix.t()) : at::mm(x, matrix.t());
}

/// The output layer over hidden states [rows, T, hidden]: logits [rows, T, vocab] from `weight`
/// [vocab, hidden], as project() chooses.
inline at::Tensor project_positions(const at::Tensor& hidden, const LinearWeight& weight) {
  return project(hidden.reshape({-1, hidden.size(-1)}), weight).view({hidden.size(0), hidden.size(1), -1});
}

}  // namespace lmdecode::detail
