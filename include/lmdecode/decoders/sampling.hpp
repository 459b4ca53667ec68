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

#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/detail/generator.hpp"
#include "lmdecode/detail/token_loop.hpp"

namespace lmdecode {

template <CausalLM Model>
class SamplingDecoder {
 public:
  /// `processors` run after the ones `config` enables and before the sampling warpers.
  explicit SamplingDecoder(Model& model, GenerationConfig config = {}, LogitsProcessorList processors = {})
      : model_(model), config_(std::move(config)), user_processors_(std::move(processors)) {
    config_.do_sample = true;
    validate(config_);
    detail::check(config_.num_beams == 1, "SamplingDecoder needs num_beams == 1 (got {}); beam sampling is "
                  "BeamSearchDecoder with do_sample", config_.num_beams);
  }

  const GenerationConfig& config() const { return config_; }

  /// Samples num_return_sequences continuations of each prompt.
  GenerationResult generate(const std::vector<TokenIds>& prompts, const StepCallback& on_step = {}) {
    return run(detail::pad_prompts(prompts, config_.effective_pad_token_id(), model_.device()), on_step);
  }

  GenerationResult generate(const at::Tensor& input_ids, const at::Tensor& attention_mask, const StepCallback& on_step = {}) {
    return run(detail::batch_from_tensors(input_ids, attention_mask, model_.device()), on_step);
  }

 private:
  GenerationResult run(const detail::PaddedBatch& batch, const StepCallback& on_step) {
    auto generator = detail::make_generator(config_.seed, model_.device());
    return detail::run_token_loop(model_, config_, user_processors_, batch, on_step, [&](const at::Tensor& scores) {
      return at::multinomial(scores.softmax(-1), 1, false, generator).squeeze(1);
    });
  }

  Model& model_;
  GenerationConfig config_;
  LogitsProcessorList user_processors_;
};

}  // namespace lmdecode
