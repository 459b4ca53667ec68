#pragma once
// The models' linear layers (HF's Linear and GPT-2's Conv1D), each chosen by shape: a decode step of
// one row on the CPU is a matrix-vector product, which streams the weight once at two to three times
// the speed of a GEMM with one row (OpenBLAS, benchmarks/HISTORY.md); 2 to 16 float32 rows (a batch,
// or speculative decoding's drafts) take few_rows_product, which also reads the weight once, and so
// does one float32 row where the kernel outruns sgemv (kernel_outruns_gemv); more rows and every GPU
// call take the GEMM. bfloat16 weights of a float32 model (WeightFormat::bfloat16) go through the
// kernel at every count it takes, and through a GEMM of widened slices of the weight past it.

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "lmdecode/models/detail/few_rows_product.hpp"

namespace lmdecode::detail {

/// The float32 bytes of weight one slice of widened_product widens at a time: the GEMM of each
/// slice still has thousands of output features, and the transient copy stays small.
constexpr int64_t kWidenedSliceBytes = int64_t{8} << 20;

/// x @ w_t (+ bias) where w_t holds narrower weights than x (bfloat16 under float32): the weight is
/// widened exactly, a slice of output features at a time, so a long prefill never holds a widened
/// copy of the whole matrix (the output layer's would be hundreds of MiB).
inline at::Tensor widened_product(const at::Tensor& x, const at::Tensor& w_t, const at::Tensor& bias) {
  const int64_t in = w_t.size(0), out_features = w_t.size(1);
  const int64_t slice = std::max<int64_t>(1, kWidenedSliceBytes / (in * static_cast<int64_t>(x.element_size())));
  std::vector<at::Tensor> parts;
  for (int64_t from = 0; from < out_features; from += slice) {
    const int64_t n = std::min(slice, out_features - from);
    const auto w = w_t.narrow(1, from, n).to(x.scalar_type());
    parts.push_back(bias.defined() ? at::addmm(bias.narrow(0, from, n), x, w) : at::mm(x, w));
  }
  return parts.size() == 1 ? parts[0] : at::cat(parts, 1);
}

/// x [rows, in] @ w_t [in, out] (+ bias [out]), w_t being the transposed view of a row-major
/// [out, in] weight.
inline at::Tensor project(const at::Tensor& x, const at::Tensor& w_t, const at::Tensor& bias = {}) {
  const auto dtype = x.scalar_type();
  if (x.is_cpu() && x.size(0) <= kFewRowsMax) {
    const auto weight = w_t.t();  // the row-major [out, in] weight
    const bool kernel_for_one_row = dtype == at::kFloat && (kernel_outruns_gemv() || weight.scalar_type() != dtype);
    // float32 and float64 only: libtorch's CPU half-precision mv may accumulate in half precision.
    if (x.size(0) == 1 && !kernel_for_one_row && (dtype == at::kFloat || dtype == at::kDouble) && weight.is_contiguous() &&
        weight.scalar_type() == dtype) {
      auto y = bias.defined() ? at::addmv(bias, weight, x[0]) : at::mv(weight, x[0]);
      return y.unsqueeze(0);
    }
    if (auto y = few_rows_product(x, weight, bias); y.defined()) return y;
  }
  if (w_t.scalar_type() != dtype) return widened_product(x, w_t, bias);
  return bias.defined() ? at::addmm(bias, x, w_t) : at::mm(x, w_t);
}

/// The output layer over hidden states [rows, T, hidden]: logits [rows, T, vocab] from `weight`
/// [vocab, hidden] (row-major), as project() chooses.
inline at::Tensor project_positions(const at::Tensor& hidden, const at::Tensor& weight) {
  return project(hidden.reshape({-1, hidden.size(-1)}), weight.t()).view({hidden.size(0), hidden.size(1), -1});
}

}  // namespace lmdecode::detail
