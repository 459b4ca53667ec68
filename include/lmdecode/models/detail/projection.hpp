#pragma once
// The models' linear layers (HF's Linear and GPT-2's Conv1D), each chosen by shape: a decode step of
// one row on the CPU is a matrix-vector product, which streams the weight once at two to three times
// the speed of a GEMM with one row (OpenBLAS, benchmarks/HISTORY.md); 2 to 16 float32 rows (a batch,
// or speculative decoding's drafts) take few_rows_product, which also reads the weight once, and so
// does one float32 row where the kernel outruns sgemv (kernel_outruns_gemv); more rows and every GPU
// call take the GEMM.

#include <ATen/ATen.h>

#include "lmdecode/models/detail/few_rows_product.hpp"

namespace lmdecode::detail {

/// x [rows, in] @ w_t [in, out] (+ bias [out]), w_t being the transposed view of a row-major
/// [out, in] weight.
inline at::Tensor project(const at::Tensor& x, const at::Tensor& w_t, const at::Tensor& bias = {}) {
  const auto dtype = x.scalar_type();
  if (x.is_cpu() && x.size(0) <= kFewRowsMax) {
    const auto weight = w_t.t();  // the row-major [out, in] weight
    const bool kernel_for_one_row = dtype == at::kFloat && kernel_outruns_gemv();
    // float32 and float64 only: libtorch's CPU half-precision mv may accumulate in half precision.
    if (x.size(0) == 1 && !kernel_for_one_row && (dtype == at::kFloat || dtype == at::kDouble) && weight.is_contiguous()) {
      auto y = bias.defined() ? at::addmv(bias, weight, x[0]) : at::mv(weight, x[0]);
      return y.unsqueeze(0);
    }
    if (auto y = few_rows_product(x, weight, bias); y.defined()) return y;
  }
  return bias.defined() ? at::addmm(bias, x, w_t) : at::mm(x, w_t);
}

/// The output layer over hidden states [rows, T, hidden]: logits [rows, T, vocab] from `weight`
/// [vocab, hidden] (row-major), as project() chooses.
inline at::Tensor project_positions(const at::Tensor& hidden, const at::Tensor& weight) {
  return project(hidden.reshape({-1, hidden.size(-1)}), weight.t()).view({hidden.size(0), hidden.size(1), -1});
}

}  // namespace lmdecode::detail
