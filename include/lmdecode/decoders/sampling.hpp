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

#include <ATen/ATen.h>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/decoder_base.hpp"
#include "lmdecode/decoders/detail/random_generator.hpp"
#include "lmdecode/decoders/detail/sampling_draws.hpp"
#include "lmdecode/decoders/detail/token_loop.hpp"

namespace lmdecode {

template <CausalLM Model>
class SamplingDecoder : public detail::DecoderBase<SamplingDecoder<Model>, Model> {
  using Base = detail::DecoderBase<SamplingDecoder<Model>, Model>;
  friend Base;

 public:
  /// `processors` run after the ones `config` enables and before the sampling warpers.
  explicit SamplingDecoder(Model& model, GenerationConfig config = {}, LogitsProcessorList processors = {})
      : Base(model, std::move(config), std::move(processors)) {
    this->config_.do_sample = true;
    validate(this->config_);
    detail::check(this->config_.num_beams == 1, "SamplingDecoder needs num_beams == 1 (got {}); beam sampling is "
                  "BeamSearchDecoder with do_sample", this->config_.num_beams);
  }

 private:
  /// Samples num_return_sequences continuations of each prompt.
  GenerationResult run(const detail::PaddedBatch& batch, const StepCallback& on_step,
                       typename Model::Cache* kept_cache = nullptr) {
    auto generator = detail::make_generator(this->config_.seed, this->model_.device());
    return detail::run_token_loop(this->model_, this->config_, this->user_processors_, batch, on_step,
                                  [&](const at::Tensor& scores) { return detail::draw_from_softmax(scores, 1, generator); },
                                  kept_cache);
  }
};

}  // namespace lmdecode
