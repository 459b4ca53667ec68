#pragma once
// What every decoder shares: the model, the config and the caller's processors, and the two ways
// to call generate() (token-id prompts, or an HF-style left-padded batch). `Derived::run` decodes.

#include <ATen/ATen.h>

#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/padded_batch.hpp"
#include "lmdecode/logits/processor.hpp"
#include "lmdecode/model.hpp"
#include "lmdecode/result.hpp"
#include "lmdecode/streaming.hpp"

namespace lmdecode::detail {

template <class Derived, CausalLM Model>
class DecoderBase {
 public:
  const GenerationConfig& config() const { return config_; }

  /// Decodes each prompt (left padded into one batch).
  GenerationResult generate(const std::vector<TokenIds>& prompts, const StepCallback& on_step = {}) {
    return derived().run(pad_prompts(prompts, config_.resolved_pad_token_id(), model_.device()), on_step);
  }

  /// Decodes one prompt whose first cache.length() tokens `cache` (one row, from make_cache or an
  /// earlier call) already holds: only the rest is fed, and the cache keeps what was fed (the prompt
  /// and every new token but the last). Greedy and sampling, one sequence (Conversation uses it).
  GenerationResult continue_from(const TokenIds& prompt, typename Model::Cache& cache, const StepCallback& on_step = {}) {
    return derived().run(pad_prompts({prompt}, config_.resolved_pad_token_id(), model_.device()), on_step, &cache);
  }

  /// As above, from an HF-style left-padded batch: input_ids and attention_mask [B, L0] on the model's device.
  GenerationResult generate(const at::Tensor& input_ids, const at::Tensor& attention_mask, const StepCallback& on_step = {}) {
    return derived().run(batch_from_tensors(input_ids, attention_mask, model_.device()), on_step);
  }

 protected:
  DecoderBase(Model& model, GenerationConfig config, LogitsProcessorList processors)
      : model_(model), config_(std::move(config)), user_processors_(std::move(processors)) {}

  Model& model_;
  GenerationConfig config_;
  LogitsProcessorList user_processors_;  // run after the ones config_ enables

 private:
  Derived& derived() { return static_cast<Derived&>(*this); }
};

}  // namespace lmdecode::detail
