#pragma once
// Sampling draws without reading the device. torch.multinomial(probs, n, replacement=false) checks
// its input before drawing: two device-to-host reads a call in libtorch 1.13, and in recent 2.x
// releases an `_assert_async`, on CUDA a device-side assert that ends the process's CUDA context
// instead of throwing.
// These draws do what its no-replacement path does after the check (one exponential draw per
// probability, then arg max or top-n of probability / draw), so a generator in the same state gives
// the same tokens; the check becomes a flag that the decoder reads with its own per-step read.

#include <ATen/ATen.h>

#include <cstdint>

#include "lmdecode/decoders/detail/chosen_tokens.hpp"

namespace lmdecode::detail {

struct Draws {
  at::Tensor index;    // [rows, n] int64, in decreasing order of probability / draw
  at::Tensor invalid;  // bool scalar on the device: some row had no distribution to draw from
                       // (undefined where nothing can be invalid, as for greedy's arg max)
};

/// `n` indices per row of `probs` ([rows, vocab], each row summing to 1), without replacement.
inline Draws draw_from_probabilities(const at::Tensor& probs, int64_t n, at::Generator& generator) {
  auto keys = probs / at::empty_like(probs).exponential_(1, generator);
  auto index = n == 1 ? first_max_index(keys) : std::get<1>(keys.topk(n, -1));
  return {index, probs.isnan().any()};
}

/// `n` indices per row of softmax(`scores`) ([rows, vocab] float32), without replacement. A row
/// whose softmax is NaN (every score -inf, or a +inf or NaN score) sets `invalid`.
inline Draws draw_from_softmax(const at::Tensor& scores, int64_t n, at::Generator& generator) {
  return draw_from_probabilities(scores.softmax(-1), n, generator);
}

}  // namespace lmdecode::detail
