#pragma once
// Greedy's arg max and each chosen token's log-prob, without passes over the vocabulary that
// nobody reads. On the CPU libtorch 1.13's argmax is not vectorised (0.21 ms over 8 x 32,000 scores,
// 15 times its amax, 1.6% of a small model's step: benchmarks/HISTORY.md), and log_softmax writes
// [rows, vocab] for one value a row (0.20 ms there). For float32 CPU rows: the max (amax), then the
// first index holding it; and the chosen score less the log of sum(exp(score - max)), summed as
// libtorch's AVX2 log_softmax sums it (float32, score i in lane i % 8), since the golden log-probs
// are torch's float32 ones (a float64 sum missed a float64 case by 1.2e-6 against 1.04e-6 allowed).
// Elsewhere, and for a row that holds a NaN (or whose max is not finite), libtorch's operators.

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lmdecode/detail/cpu_kernels.hpp"

namespace lmdecode::detail {

inline bool float32_cpu_rows(const at::Tensor& scores) {
  return scores.is_cpu() && scores.dim() == 2 && scores.size(1) > 0 && scores.scalar_type() == at::kFloat &&
         scores.is_contiguous();
}

/// [rows, 1] int64: the first index of each row's maximum, as scores.argmax(-1, true) (which takes a
/// NaN as the maximum).
inline at::Tensor first_max_index(const at::Tensor& scores) {
  if (!float32_cpu_rows(scores)) return scores.argmax(-1, true);
  const int64_t rows = scores.size(0), vocab = scores.size(1);
  const auto maxima = scores.amax(-1);  // NaN where a row holds one: no element equals it
  auto index = at::empty({rows, 1}, scores.options().dtype(at::kLong));
  const float* data = scores.data_ptr<float>();
  const float* max = maxima.data_ptr<float>();
  int64_t* out = index.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = data + r * vocab;
    const float* first = std::find(row, row + vocab, max[r]);
    if (first == row + vocab) return scores.argmax(-1, true);
    out[r] = first - row;
  }
  return index;
}

#ifdef LMDECODE_X86_KERNELS
/// sum(exp(x[i] - max)) over n values no greater than max, x[i] in lane i % 8 of a float32 sum.
__attribute__((target("avx2,fma"))) inline float sum_of_exp_below(const float* x, int64_t n, float max) {
  const __m256 shift = _mm256_set1_ps(max);
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) sum = _mm256_add_ps(sum, Lanes8::exp_of_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), shift)));
  if (i < n) {  // the last values in lanes 0.., as libtorch's partial vector
    alignas(32) float tail[8] = {};
    for (int64_t j = 0; i + j < n; ++j) tail[j] = x[i + j] - max;
    alignas(32) float terms[8];
    _mm256_store_ps(terms, Lanes8::exp_of_nonpositive(_mm256_load_ps(tail)));
    for (int64_t j = n - i; j < 8; ++j) terms[j] = 0.0f;  // padding, not terms
    sum = _mm256_add_ps(sum, _mm256_load_ps(terms));
  }
  return Lanes8::sum(sum);
}
#endif

/// [rows] float32: log_softmax(scores)[r, chosen[r]] for scores [rows, vocab] and chosen [rows] int64.
inline at::Tensor chosen_logprobs(const at::Tensor& scores, const at::Tensor& chosen) {
  auto from_log_softmax = [&] { return scores.log_softmax(-1).gather(1, chosen.unsqueeze(1)).squeeze(1); };
#ifdef LMDECODE_X86_KERNELS
  if (!float32_cpu_rows(scores) || !cpu_has_avx2_fma()) return from_log_softmax();
  const int64_t rows = scores.size(0), vocab = scores.size(1);
  const auto maxima = scores.amax(-1);
  const auto tokens = chosen.to(at::kLong).contiguous();
  auto out = at::empty({rows}, scores.options());
  const float* data = scores.data_ptr<float>();
  const float* max = maxima.data_ptr<float>();
  const int64_t* token = tokens.data_ptr<int64_t>();
  float* logprob = out.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    if (!std::isfinite(max[r])) return from_log_softmax();
    const float* row = data + r * vocab;
    logprob[r] = (row[token[r]] - max[r]) - std::log(sum_of_exp_below(row, vocab, max[r]));
  }
  return out;
#else
  return from_log_softmax();
#endif
}

}  // namespace lmdecode::detail
