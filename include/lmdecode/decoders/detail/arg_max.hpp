#pragma once
// Greedy's arg max. On the CPU libtorch 1.13's argmax is not vectorised: 0.21 ms over 8 x 32,000
// scores, 15 times its amax, 1.6% of a small model's step (benchmarks/HISTORY.md). For float32 CPU
// rows this takes the max (amax, vectorised), then the first index holding it; elsewhere, and for a
// row that holds a NaN, libtorch's argmax answers, so the result is always the one it gives.

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>

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

}  // namespace lmdecode::detail
