#pragma once
// GreedyDecoder: transformers' greedy search (`_sample` without sampling, DECODING_RULES.md §2) on any
// CausalLM, for a batch of prompts of different lengths.
//
// Example:
//   lmdecode::GenerationConfig config;
//   config.max_new_tokens = 16;
//   config.eos_token_ids = {2};
//   lmdecode::GreedyDecoder decoder(model, config);
//   auto result = decoder.generate({{5, 6, 7}, {8, 9}});
//   for (auto t : result.hypotheses[0][0].tokens) ...

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/decoder.hpp"
#include "lmdecode/decoders/detail/token_strategy.hpp"

namespace lmdecode {

template <CausalLM Model>
class GreedyDecoder : public detail::Decoder<Model, detail::TokenStrategy<detail::ArgMax>> {
 public:
  /// `processors` run after the ones `config` enables, on float32 logits.
  explicit GreedyDecoder(Model& model, GenerationConfig config = {}, LogitsProcessorList processors = {})
      : GreedyDecoder::Decoder(model, std::move(config), std::move(processors)) {
    detail::check(!this->config().prompt_lookup_num_tokens,
                  "GreedyDecoder does not draft: with prompt_lookup_num_tokens use PromptLookupDecoder (or generate())");
    detail::check(this->config().num_beams == 1, "GreedyDecoder needs num_beams == 1 (got {}); use BeamSearchDecoder",
                  this->config().num_beams);
    detail::check(!this->config().do_sample, "GreedyDecoder does not sample: set do_sample = false or use SamplingDecoder");
  }
};

}  // namespace lmdecode
