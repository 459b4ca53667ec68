#pragma once
// RequestModel: the model as one Engine request's generate() sees it. It is a CausalLM whose
// forward() does not run the model: it posts the batch to the engine and waits until the engine has
// run it, together with the other requests' batches, in one forward_segments() call. So each request
// decodes through the very code of generate(), and only the model's passes are shared. A prefill
// longer than max_prefill_tokens_per_step is posted in chunks, one a step, so that the requests
// already decoding keep their step time. With a prefix cache (PrefixStore), the first cache begins with
// the longest kept beginning of the prompt, and the prompt's positions are offered to it once fed.

#include <ATen/ATen.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "lmdecode/engine/detail/engine_request.hpp"
#include "lmdecode/engine/detail/prefix_store.hpp"
#include "lmdecode/models/pretrained_model.hpp"

namespace lmdecode::detail {

/// The engine's prefix cache as a request sees it: `longest(prompt, at_most)` looks a beginning up,
/// `keep(prompt, positions)` offers the prompt's positions. Both lock the engine's mutex themselves.
struct PrefixAccess {
  std::function<std::optional<PrefixStore::Hit>(const TokenIds&, int64_t)> longest;
  std::function<void(const TokenIds&, const at::Tensor&)> keep;
};

template <class Model>
class RequestModel {
 public:
  using Cache = KVCache;

  /// `cache_positions`: the positions a cache of this request is made for at once (so that it never
  /// grows past what the engine reserved for it).
  RequestModel(Model& model, EngineShared& shared, EngineRequest& request, int64_t max_prefill_tokens,
               int64_t cache_positions, PrefixAccess prefixes)
      : model_(model), shared_(shared), request_(request), max_prefill_tokens_(max_prefill_tokens),
        cache_positions_(cache_positions), prefixes_(std::move(prefixes)), prompt_length_(static_cast<int64_t>(request.prompt.size())) {}

  /// The request's first cache (one row per prompt, with use_cache) begins with the longest kept
  /// beginning of its prompt, one token short of all of it at most (a forward must give the logits).
  KVCache make_cache(int64_t rows, int64_t capacity) {
    const int64_t positions = std::max(capacity, cache_positions_);
    if (std::exchange(first_cache_, false) && rows == 1 && request_.config.use_cache && prompt_length_ > 1)
      if (auto hit = prefixes_.longest(request_.prompt, prompt_length_ - 1))
        return KVCache::from_prefix(hit->positions, positions, model_.cache_layout());
    return model_.make_cache(rows, positions);
  }
  at::Device device() const { return model_.device(); }
  const ModelConfig& config() const { return model_.config(); }
  auto position_limit() const { return model_.position_limit(); }
  int64_t kv_bytes_per_position() const { return model_.kv_bytes_per_position(); }

  /// The logits of `batch` after `cache`, as the model's forward() gives them, computed in the
  /// engine's steps.
  at::Tensor forward(const ForwardBatch& batch, KVCache& cache) {
    const int64_t fed = batch.input_ids.size(1);
    if (fed <= max_prefill_tokens_) {
      auto logits = post(batch, cache);
      offer_prompt(cache);
      return logits;
    }
    std::vector<at::Tensor> parts;
    for (int64_t from = 0; from < fed; from += max_prefill_tokens_) {
      const int64_t n = std::min(max_prefill_tokens_, fed - from);
      const ForwardBatch chunk{batch.input_ids.narrow(1, from, n), batch.attention_mask.narrow(1, 0, cache.length() + n),
                               batch.position_ids.narrow(1, from, n), batch.all_logits};
      auto logits = post(chunk, cache);
      if (batch.all_logits || from + n == fed) parts.push_back(logits);
    }
    offer_prompt(cache);
    return parts.size() == 1 ? parts[0] : at::cat(parts, 1);
  }

 private:
  /// Once the prompt is in the cache (before a strategy's copies are made of it), its positions go to
  /// the prefix cache.
  void offer_prompt(const KVCache& cache) {
    if (offered_ || !request_.config.use_cache || cache.rows() != 1 || cache.length() != prompt_length_) return;
    offered_ = true;
    prefixes_.keep(request_.prompt, cache.stored_positions(prompt_length_));
  }

  /// Hands `batch` to the engine and waits for its logits (or its error). A request cancelled
  /// before this call ends here unless its prefill is done: after it, the step callback ends it
  /// with its tokens so far.
  at::Tensor post(const ForwardBatch& batch, KVCache& cache) {
    std::unique_lock lock(shared_.mutex);
    if (request_.cancel_requested && cache.length() < prompt_length_) throw RequestCancelled{};
    request_.posted_batch = &batch;
    request_.posted_cache = &cache;
    shared_.work.notify_all();
    request_.changed.wait(lock, [&] { return !request_.posted(); });
    if (auto error = std::exchange(request_.forward_error, nullptr)) std::rethrow_exception(error);
    return std::move(request_.logits);
  }

  Model& model_;
  EngineShared& shared_;
  EngineRequest& request_;
  int64_t max_prefill_tokens_;
  int64_t cache_positions_;
  PrefixAccess prefixes_;
  int64_t prompt_length_;
  bool first_cache_ = true;  // the next make_cache() is the request's first
  bool offered_ = false;     // the prompt's positions went to the prefix cache
};

}  // namespace lmdecode::detail
