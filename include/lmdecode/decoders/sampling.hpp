#pragma once
// SamplingDecoder: transformers' `_sample` with do_sample (multinomial draws from the processed
// distribution, warpers included), with a private generator seeded from config.seed.
//
// Example:
//   config.do_sample = true;
//   config.temperature = 0.7;
//   config.top_p = 0.9;
//   config.seed = 42;
//   lmdecode::SamplingDecoder decoder(model, config);
//   auto result = decoder.generate({{5, 6, 7}});  // the same tokens every run on this device

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/decoder.hpp"
#include "lmdecode/decoders/detail/token_strategy.hpp"

namespace lmdecode {

template <CausalLM Model>
class SamplingDecoder : public detail::Decoder<Model, detail::TokenStrategy<detail::SoftmaxDraw>> {
 public:
  /// `processors` run after the ones `config` enables and before the sampling warpers. Samples
  /// num_return_sequences continuations of each prompt (config.do_sample is set).
  explicit SamplingDecoder(Model& model, GenerationConfig config = {}, LogitsProcessorList processors = {})
      : SamplingDecoder::Decoder(model, sampled(std::move(config)), std::move(processors)) {
    detail::check(!this->config().prompt_lookup_num_tokens,
                  "SamplingDecoder does not draft: with prompt_lookup_num_tokens use PromptLookupDecoder (or generate())");
    detail::check(this->config().num_beams == 1, "SamplingDecoder needs num_beams == 1 (got {}); beam sampling is "
                  "BeamSearchDecoder with do_sample", this->config().num_beams);
  }

 private:
  static GenerationConfig sampled(GenerationConfig config) {
    config.do_sample = true;
    return config;
  }
};

}  // namespace lmdecode
