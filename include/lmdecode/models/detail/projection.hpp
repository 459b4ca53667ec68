#pragma once
// The models' linear layers (HF's Linear and GPT-2's Conv1D), each chosen by shape: a decode step of
// one row on the CPU is a matrix-vector product, which streams the weight once at two to three times
// the speed of a GEMM with one row (OpenBLAS, benchmarks/RESULTS.md); more rows, the prefill and every
// GPU call take the GEMM.

#include <ATen/ATen.h>

namespace lmdecode::detail {

/// x [rows, in] @ w_t [in, out] (+ bias [out]), w_t being the transposed view of a row-major
/// [out, in] weight.
inline at::Tensor project(const at::Tensor& x, const at::Tensor& w_t, const at::Tensor& bias = {}) {
  const auto dtype = x.scalar_type();
  // float32 and float64 only: libtorch's CPU half-precision mv may accumulate in half precision.
  if (x.size(0) == 1 && x.is_cpu() && (dtype == at::kFloat || dtype == at::kDouble) && w_t.t().is_contiguous()) {
    auto y = bias.defined() ? at::addmv(bias, w_t.t(), x[0]) : at::mv(w_t.t(), x[0]);
    return y.unsqueeze(0);
  }
  return bias.defined() ? at::addmm(bias, x, w_t) : at::mm(x, w_t);
}

/// The output layer over hidden states [rows, T, hidden]: logits [rows, T, vocab] from `weight`
/// [vocab, hidden] (row-major), as project() chooses.
inline at::Tensor project_positions(const at::Tensor& hidden, const at::Tensor& weight) {
  return project(hidden.reshape({-1, hidden.size(-1)}), weight.t()).view({hidden.size(0), hidden.size(1), -1});
}

}  // namespace lmdecode::detail
