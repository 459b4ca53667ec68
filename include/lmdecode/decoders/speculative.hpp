#pragma once
// Speculative decoding: several tokens per forward of the model, the same tokens as without it.
// A drafter proposes tokens each row likely continues with, the model checks them all in one
// forward and each row keeps those its own choice agrees with (detail/speculative_strategy.hpp).
// Greedy returns plain greedy's tokens; sampling keeps plain sampling's distribution.
//   PromptLookupDecoder  drafts from the text so far (transformers' prompt_lookup_num_tokens)
//   AssistedDecoder      drafts from a smaller model with the same vocabulary (transformers'
//                        assistant_model; num_assistant_tokens and its schedule)
// Both take a batch: its rows keep different numbers of drafts, which leaves holes in the cache's
// columns (masked; a sliding window counts positions without them). A model of one's own
// (HfStyleModel) with a sliding window must measure it the same way to take a batch. Beam search
// takes no drafts.
//
// Example:
//   config.max_new_tokens = 64;
//   config.prompt_lookup_num_tokens = 10;
//   lmdecode::PromptLookupDecoder decoder(model, config);
//   auto result = decoder.generate({prompt});  // result.speculation: drafted and accepted tokens
//
//   lmdecode::AssistedDecoder decoder(model, draft_model, config);

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/decoder.hpp"
#include "lmdecode/decoders/detail/draft_model.hpp"
#include "lmdecode/decoders/detail/prompt_lookup.hpp"
#include "lmdecode/decoders/detail/speculative_strategy.hpp"

namespace lmdecode {

namespace detail {

/// The checks both speculative decoders make of their config.
inline void check_speculative(const GenerationConfig& config) {
  check(config.num_beams == 1, "speculative decoding works with greedy search and sampling: num_beams must be 1 (got {})",
        config.num_beams);
}

}  // namespace detail

/// Greedy search or sampling (config.do_sample) with drafts from the prompt lookup:
/// config.prompt_lookup_num_tokens (10 where unset) and config.max_matching_ngram_size.
template <CausalLM Model>
class PromptLookupDecoder
    : public detail::Decoder<Model, detail::SpeculativeStrategy<detail::PromptLookupDrafter>> {
 public:
  explicit PromptLookupDecoder(Model& model, GenerationConfig config = {}, LogitsProcessorList processors = {})
      : PromptLookupDecoder::Decoder(model, std::move(config), std::move(processors)) {
    detail::check_speculative(this->config());
  }
};

/// Greedy search or sampling (config.do_sample) with drafts from `draft_model`, a smaller model
/// with the same vocabulary: config.num_assistant_tokens a step (num_assistant_tokens_schedule),
/// fewer where the draft model's confidence drops below config.assistant_confidence_threshold.
/// When sampling, the draft model samples too and the model accepts by speculative sampling.
template <CausalLM Model, CausalLM DraftModel>
class AssistedDecoder
    : public detail::Decoder<Model, detail::SpeculativeStrategy<detail::DraftModelDrafter<DraftModel>>> {
 public:
  AssistedDecoder(Model& model, DraftModel& draft_model, GenerationConfig config = {}, LogitsProcessorList processors = {})
      : AssistedDecoder::Decoder(model, std::move(config), std::move(processors)) {
    detail::check_speculative(this->config());
    detail::check(draft_model.device() == model.device(), "the draft model is on {}, the model on {}: they must share a device",
          draft_model.device().str(), model.device().str());
    auto& shared = this->shared();
    shared.model = &draft_model;
    if constexpr (requires { model.config().vocab_size; }) shared.vocab = model.config().vocab_size;
    if constexpr (requires { draft_model.config().vocab_size; })
      detail::check(shared.vocab == 0 || draft_model.config().vocab_size == shared.vocab, "{}",
                    detail::DraftModelDrafter<DraftModel>::vocabulary_mismatch(draft_model.config().vocab_size, shared.vocab));
  }
};

}  // namespace lmdecode
