#pragma once
// BeamSearchDecoder: transformers 5.x `_beam_search` (DECODING_RULES.md §3), and beam sampling with
// do_sample; the strategy is detail/beam_strategy.hpp.
//
// Example:
//   lmdecode::GenerationConfig config;
//   config.num_beams = 4;
//   config.num_return_sequences = 2;
//   config.max_new_tokens = 32;
//   config.eos_token_ids = {2};
//   lmdecode::BeamSearchDecoder decoder(model, config);
//   auto result = decoder.generate({{5, 6, 7}});
//   double best = result.hypotheses[0][0].score;  // HF sequences_scores

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/beam_strategy.hpp"
#include "lmdecode/decoders/detail/decoder.hpp"

namespace lmdecode {

template <CausalLM Model>
class BeamSearchDecoder : public detail::Decoder<Model, detail::BeamStrategy> {
 public:
  /// `processors` run after the ones `config` enables, on float32 log-probs.
  explicit BeamSearchDecoder(Model& model, GenerationConfig config = {}, LogitsProcessorList processors = {})
      : BeamSearchDecoder::Decoder(model, std::move(config), std::move(processors)) {}
};

}  // namespace lmdecode
