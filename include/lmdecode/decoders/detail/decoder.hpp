#pragma once
// Decoder: what every decoder class (GreedyDecoder, SamplingDecoder, BeamSearchDecoder) is: the
// model, the validated config and the caller's processors, and the three ways to call generate(),
// written once for every strategy. Each call runs a DecodingLoop with a fresh `Strategy`.

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/decoding_loop.hpp"
#include "lmdecode/decoders/detail/padded_batch.hpp"
#include "lmdecode/detail/backend_errors.hpp"
#include "lmdecode/logits/processor.hpp"
#include "lmdecode/model.hpp"
#include "lmdecode/result.hpp"
#include "lmdecode/streaming.hpp"

namespace lmdecode::detail {

/// What a strategy keeps across the calls of one decoder (its `Shared` type; none by default).
template <class Strategy>
struct SharedOf {
  struct None {};
  using type = None;
};
template <class Strategy>
  requires requires { typename Strategy::Shared; }
struct SharedOf<Strategy> {
  using type = typename Strategy::Shared;
};

template <CausalLM Model, DecodingStrategy Strategy>
class Decoder {
 public:
  const GenerationConfig& config() const { return config_; }

  /// Decodes each prompt (left padded into one batch).
  GenerationResult generate(const std::vector<TokenIds>& prompts, const StepCallback& on_step = {}) {
    return run(pad_prompts(prompts, config_.resolved_pad_token_id(), model_.device()), on_step);
  }

  /// As above, from an HF-style left-padded batch: input_ids and attention_mask [B, L0] on the model's device.
  GenerationResult generate(const at::Tensor& input_ids, const at::Tensor& attention_mask, const StepCallback& on_step = {}) {
    return run(batch_from_tensors(input_ids, attention_mask, model_.device()), on_step);
  }

  /// Decodes one prompt whose first cache.length() tokens `cache` (one row, from make_cache or an
  /// earlier call) already holds: only the rest is fed, and the cache keeps what was fed (the prompt
  /// and every new token but the last). One sequence (Conversation uses it).
  GenerationResult continue_from(const TokenIds& prompt, typename Model::Cache& cache, const StepCallback& on_step = {}) {
    return run(pad_prompts({prompt}, config_.resolved_pad_token_id(), model_.device()), on_step, &cache);
  }

 protected:
  /// `config` as the strategy's decoder class has set it up; it is validated here, once.
  Decoder(Model& model, GenerationConfig config, LogitsProcessorList processors)
      : model_(model), config_(std::move(config)), user_processors_(std::move(processors)) {
    validate(config_);
  }

 protected:
  typename SharedOf<Strategy>::type& shared() { return shared_; }

 private:
  Model& model_;
  GenerationConfig config_;
  LogitsProcessorList user_processors_;  // run after the ones config_ enables
  typename SharedOf<Strategy>::type shared_;

  /// A fresh strategy for one call, given what it keeps across calls where it keeps something.
  Strategy make_strategy(const LoopRows& rows) {
    if constexpr (requires { typename Strategy::Shared; }) return Strategy(config_, rows, shared_);
    else return Strategy(config_, rows);
  }

  GenerationResult run(const PaddedBatch& prompts, const StepCallback& on_step, typename Model::Cache* kept_cache = nullptr) {
    return in_our_words("decoding", [&] {
      c10::InferenceMode inference;
      int64_t scored = 1;  // positions a row's step scores at most
      if constexpr (requires { Strategy::scored_positions(config_); }) scored = Strategy::scored_positions(config_);
      DecodingLoop<Model> loop(model_, config_, user_processors_, prompts, Strategy::copies(config_), on_step, kept_cache, scored);
      Strategy strategy = make_strategy(loop.rows());
      return loop.run(strategy);
    });
  }
};

}  // namespace lmdecode::detail
