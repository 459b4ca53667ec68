#pragma once
// What a decoder needs from a model. Any type that satisfies `CausalLM` can be decoded:
//   - the reference models (models/rotary_decoder.hpp, models/gpt2.hpp) and any C++ model that writes its
//     keys/values into a KVCache (the fast path);
//   - adapters/hf_style_model.hpp, which wraps an HF-style module (C++ or TorchScript) whose forward
//     takes and returns `past_key_values`.

#include <ATen/ATen.h>

#include <concepts>
#include <cstdint>

#include "lmdecode/detail/token_index.hpp"
#include "lmdecode/error.hpp"

namespace lmdecode {

/// The inputs of one forward call. Rows are left padded and all have the same length.
struct ForwardBatch {
  at::Tensor input_ids;       // [rows, T] int64: the tokens to feed this call
  at::Tensor attention_mask;  // [rows, cached + T] int64: 1 for real tokens, 0 for padding
  at::Tensor position_ids;    // [rows, T] int64: HF positions (cumsum(mask) - 1, pads at 0)
  bool all_logits = false;    // return logits for every fed position, not only the last
};

/// A cache a decoder can keep across steps and reorder between beams. `reorder(row_index)` makes row i
/// hold what row `row_index[i]` held, and may change the number of rows: the decoders make a cache
/// for one row per prompt, prefill it, then reorder it into a prompt's beams (or sampled sequences).
template <class Cache>
concept DecodingCache = requires(Cache& cache, const at::Tensor& row_index) {
  cache.reorder(row_index);
  { cache.length() } -> std::convertible_to<int64_t>;
};

/// A causal language model:
///   - `make_cache(rows, capacity)` returns an empty cache for `rows` rows;
///   - `forward(batch, cache)` feeds `batch.input_ids` after what the cache holds, stores their
///     keys/values in the cache and returns float logits [rows, vocab] for the last position
///     ([rows, T, vocab] with `all_logits`), on the model's device;
///   - `device()` is where inputs must live.
template <class Model>
concept CausalLM = requires(Model& model, const ForwardBatch& batch, int64_t n) {
  typename Model::Cache;
  requires DecodingCache<typename Model::Cache>;
  { model.make_cache(n, n) } -> std::same_as<typename Model::Cache>;
  { model.forward(batch, std::declval<typename Model::Cache&>()) } -> std::same_as<at::Tensor>;
  { model.device() } -> std::convertible_to<at::Device>;
};

namespace detail {

/// Checks a model's output against its contract; `rows`/`vocab` < 0 mean "any".
inline void check_logits(const at::Tensor& logits, int64_t rows, int64_t vocab, at::Device device) {
  check<model_error>(logits.defined(), "the model returned an undefined logits tensor");
  check<model_error>(logits.dim() == 2, "the model returned logits of rank {} with shape [{}], expected [rows, vocab]",
                     logits.dim(), fmt::join(logits.sizes(), ", "));
  check<model_error>(rows < 0 || logits.size(0) == rows, "the model returned logits for {} rows, expected {}",
                     logits.size(0), rows);
  check<model_error>(vocab < 0 || logits.size(1) == vocab,
                     "the model returned logits over {} tokens, expected {} (as on the first step)",
                     logits.size(1), vocab);
  check<model_error>(logits.size(1) >= 1, "the model returned logits over an empty vocabulary");
  check<model_error>(at::isFloatingType(logits.scalar_type()), "the model returned logits of dtype {}, expected floating point",
                     c10::toString(logits.scalar_type()));
  check<model_error>(logits.device() == device, "the model returned logits on {}, expected {} (the input device)",
                     logits.device().str(), device.str());
}

/// Checks that the prompt's ids (pads included) are tokens of a `vocab`-token model, with one host
/// read. Later steps feed tokens the decoder chose from the logits, so only the prefill needs it. On a
/// GPU an id outside the embedding is a device-side assert that leaves the CUDA context unusable.
inline void check_prompt_in_vocabulary(const at::Tensor& input_ids, int64_t vocab) {
  auto range = at::stack({input_ids.min(), input_ids.max()}).to(at::kCPU);
  const int64_t low = range[0].item<int64_t>(), high = range[1].item<int64_t>();
  check(is_token(low, vocab) && is_token(high, vocab),
        "input_ids hold token {} outside the vocabulary [0, {}) (a prompt token, or the pad id of the left padding)",
        is_token(low, vocab) ? high : low, vocab);
}

}  // namespace detail
}  // namespace lmdecode
