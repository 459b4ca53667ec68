#pragma once
// Attention pieces shared by the reference models: the causal + padding mask over the cache, masked
// scores that stay finite (a -inf mask turns fully masked pad rows into NaN, DECODING_RULES.md §6),
// and attention over a KVCache layer in either layout (cache.hpp).

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "lmdecode/cache.hpp"
#include "lmdecode/models/detail/tiled_causal_attention.hpp"

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

/// `blocked` (attention_blocked's, [rows, 1, T, S], the T queries at cache positions S - T ...) with
/// a sliding window too: query position i may not look at key j <= i - window (transformers'
/// sliding_window_overlay, on cache positions). A position is counted as its column, less the
/// masked columns after the row's first real token (`attention_mask` [rows, S]): the holes that
/// speculative decoding leaves where a row dropped drafts (StepRunner::drop_unkept) do not count,
/// so a row's window is the one it would have without them; without holes it is the column.
inline at::Tensor window_blocked(const at::Tensor& blocked, const at::Tensor& attention_mask, int64_t window) {
  const int64_t fed = blocked.size(2), keys = blocked.size(3);
  const auto mask = attention_mask.to(at::kLong);
  const auto first_real = mask.argmax(1, true);  // the left padding's width
  const auto position = mask.cumsum(1) - 1 + first_real;  // [rows, S]
  const auto query = position.narrow(1, keys - fed, fed);  // [rows, T]
  auto outside = position.unsqueeze(1) <= (query - window).unsqueeze(2);  // [rows, T, S]
  return blocked.logical_or(outside.unsqueeze(1));
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

/// weights @ values. A CPU half-precision matmul may accumulate in half precision along the context
/// (libtorch 1.13 without AVX-512: 5% off at 4096 positions, benchmarks/HISTORY.md). The same rounded
/// weights times the values in float32, rounded once, is what a GPU's float32-accumulating GEMM gives.
inline at::Tensor weighted_values(const at::Tensor& weights, const at::Tensor& values) {
  const auto dtype = values.scalar_type();
  if (values.is_cpu() && (dtype == at::kBFloat16 || dtype == at::kHalf))
    return at::matmul(weights.to(at::kFloat), values.to(at::kFloat)).to(dtype);
  return at::matmul(weights, values);
}

/// The softmax of `scores` masked by `blocked`, run in `softmax_dtype` and cast to `dtype`.
/// `scores` is a fresh tensor the caller gives up: it is masked in place.
inline at::Tensor masked_softmax(at::Tensor scores, const at::Tensor& blocked, at::ScalarType softmax_dtype,
                                 at::ScalarType dtype) {
  scores.masked_fill_(blocked, mask_value(scores.scalar_type()));
  auto weights = scores.softmax(-1, softmax_dtype);
  return weights.scalar_type() == dtype ? weights : weights.to(dtype);
}

/// softmax(scores masked by `blocked`) @ values, with the softmax run in `softmax_dtype` and cast back.
inline at::Tensor masked_attention(at::Tensor scores, const at::Tensor& blocked, const at::Tensor& values,
                                   at::ScalarType softmax_dtype) {
  return weighted_values(masked_softmax(std::move(scores), blocked, softmax_dtype, values.scalar_type()), values);
}

/// How a model scales q.k: transformers' Qwen2 multiplies by head_dim^-0.5, its GPT-2 divides by a
/// 0-dim tensor of the model dtype holding sqrt(head_dim); the two round differently.
struct ScoreScale {
  double multiply_by = 1.0;
  at::Tensor divide_by;  // used instead when defined
  at::Tensor& apply(at::Tensor& scores) const { return divide_by.defined() ? scores.div_(divide_by) : scores.mul_(multiply_by); }
};

/// [prompts * copies, kv_heads, M, X] <-> [prompts, kv_heads, copies * M, X]: a prompt's copies as the
/// query rows of one matmul against that prompt's keys, and back.
inline at::Tensor copies_as_queries(const at::Tensor& t, int64_t copies) {
  const int64_t rows = t.size(0), heads = t.size(1), m = t.size(2), x = t.size(3);
  return t.view({rows / copies, copies, heads, m, x}).transpose(1, 2).reshape({rows / copies, heads, copies * m, x});
}
inline at::Tensor copies_as_rows(const at::Tensor& t, int64_t copies) {
  const int64_t prompts = t.size(0), heads = t.size(1), m = t.size(2) / copies, x = t.size(3);
  return t.view({prompts, heads, copies, m, x}).transpose(1, 2).reshape({prompts * copies, heads, m, x});
}

/// The most bytes of scores one attention matmul of a long prefill makes (see attention_in_chunks).
constexpr int64_t kAttentionChunkBytes = int64_t{8} << 20;

/// Attention of a long prefill: the fed positions in chunks whose scores take at most `chunk_bytes`,
/// each chunk against the keys up to its last position only. The keys it leaves out are in every one
/// of its queries' future, masked: their weights are exactly 0 (DECODING_RULES.md §6), so each real
/// query's weights are those of the whole matmul (up to the rounding of shorter sums); pad queries,
/// whose keys are all masked, spread their weights over fewer keys, which no real position reads.
/// Half the arithmetic of the square of scores, and chunks small enough that the allocator hands
/// the same memory back each time instead of mapping fresh pages the size of the block (a
/// 20,000-token prefill spent a third of its time in page faults). `q` is [rows, kv_heads, group * T, d], `blocked` [rows, 1, group * T, S].
inline at::Tensor attention_in_chunks(const at::Tensor& q, const LayerKV& kv, const at::Tensor& blocked, const ScoreScale& scale,
                                      at::ScalarType softmax_dtype, int64_t group, int64_t chunk_bytes) {
  const int64_t rows = q.size(0), kv_heads = q.size(1), fed = q.size(2) / group, d = q.size(3);
  const int64_t keys = kv.keys.size(2), cached = keys - fed;
  const auto queries = q.view({rows, kv_heads, group, fed, d});
  const auto masks = blocked.view({rows, 1, group, fed, keys});
  auto out = at::empty({rows, kv_heads, group, fed, d}, kv.values.options());
  const int64_t chunk = std::max<int64_t>(1, chunk_bytes / (rows * kv_heads * group * keys * static_cast<int64_t>(q.element_size())));
  for (int64_t from = 0; from < fed; from += chunk) {
    const int64_t n = std::min(chunk, fed - from), seen = cached + from + n;
    auto scores = at::matmul(queries.narrow(3, from, n).reshape({rows, kv_heads, group * n, d}),
                             kv.keys.narrow(2, 0, seen).transpose(2, 3));
    auto mask = masks.narrow(3, from, n).narrow(4, 0, seen).reshape({rows, 1, group * n, seen});
    auto part = masked_attention(scale.apply(scores), mask, kv.values.narrow(2, 0, seen), softmax_dtype);
    out.narrow(3, from, n).copy_(part.view({rows, kv_heads, group, n, d}));
  }
  return out.view({rows, kv_heads, group * fed, d});
}

/// What a layer's mask is beyond `blocked`: only the causal rule (no padding, holes or window), which
/// lets a long float32 prefill take the tiled kernel (tiled_causal_attention.hpp), or anything.
enum class MaskShape { causal_only, any };

/// Attention of `q` [rows, kv_heads, M, head_dim] (M = group x T: the `group` query heads reading
/// each KV head times the T positions fed) over one cache layer; `blocked` [rows, 1, M, S] covers
/// every stored position, the prompt's first. Scores over `chunk_bytes` run in chunks
/// (attention_in_chunks), or in tiles where the mask is causal only and the tiled kernel applies.
/// With a shared prompt, the copies of a prompt meet its keys and values in
/// one matmul each (read once for all copies), each row meets its own positions, and one softmax
/// runs over the scores of both: the scores of the concatenated attention, exactly; the weighted sum
/// is formed in two parts and added.
inline at::Tensor cached_attention(const at::Tensor& q, const LayerKV& kv, const at::Tensor& blocked, const ScoreScale& scale,
                                   at::ScalarType softmax_dtype, int64_t group, MaskShape mask_shape = MaskShape::any,
                                   int64_t chunk_bytes = kAttentionChunkBytes) {
  if (!kv.shares_prompt() && q.size(2) > group) {
    const int64_t score_bytes = q.size(0) * q.size(1) * q.size(2) * kv.keys.size(2) * static_cast<int64_t>(q.element_size());
    if (score_bytes > chunk_bytes) {
      if (mask_shape == MaskShape::causal_only && !scale.divide_by.defined() &&
          tiled_causal_attention_applies(q, kv.keys, kv.values, group))
        return tiled_causal_attention(q, kv.keys, kv.values, scale.multiply_by, group);
      return attention_in_chunks(q, kv, blocked, scale, softmax_dtype, group, chunk_bytes);
    }
  }
  auto own_scores = at::matmul(q, kv.keys.transpose(2, 3));
  if (!kv.shares_prompt()) return masked_attention(scale.apply(own_scores), blocked, kv.values, softmax_dtype);
  const int64_t prompt_length = kv.prompt_keys.size(2);
  auto prompt_scores = copies_as_rows(at::matmul(copies_as_queries(q, kv.copies), kv.prompt_keys.transpose(2, 3)), kv.copies);
  auto scores = at::cat({prompt_scores, own_scores}, 3);
  auto weights = masked_softmax(scale.apply(scores), blocked, softmax_dtype, kv.values.scalar_type());
  auto from_prompt = weighted_values(copies_as_queries(weights.narrow(3, 0, prompt_length), kv.copies), kv.prompt_values);
  auto from_own = weighted_values(weights.narrow(3, prompt_length, weights.size(3) - prompt_length), kv.values);
  return copies_as_rows(from_prompt, kv.copies).add_(from_own);
}

}  // namespace lmdecode::detail
