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

#include <ATen/ATen.h>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/decoder_base.hpp"
#include "lmdecode/decoders/detail/token_loop.hpp"

namespace lmdecode {

template <CausalLM Model>
class GreedyDecoder : public detail::DecoderBase<GreedyDecoder<Model>, Model> {
  using Base = detail::DecoderBase<GreedyDecoder<Model>, Model>;
  friend Base;

 public:
  /// `processors` run after the ones `config` enables, on float32 logits.
  explicit GreedyDecoder(Model& model, GenerationConfig config = {}, LogitsProcessorList processors = {})
      : Base(model, std::move(config), std::move(processors)) {
    validate(this->config_);
    detail::check(this->config_.num_beams == 1, "GreedyDecoder needs num_beams == 1 (got {}); use BeamSearchDecoder",
                  this->config_.num_beams);
    detail::check(!this->config_.do_sample, "GreedyDecoder does not sample: set do_sample = false or use SamplingDecoder");
  }

 private:
  /// Runs until EOS, a stop sequence or max_new_tokens.
  GenerationResult run(const detail::PaddedBatch& batch, const StepCallback& on_step,
                       typename Model::Cache* kept_cache = nullptr) {
    // torch.argmax returns the first maximal index, as transformers relies on.
    return detail::run_token_loop(this->model_, this->config_, this->user_processors_, batch, on_step,
                                  [](const at::Tensor& scores) { return detail::Draws{scores.argmax(-1, true), {}}; },
                                  kept_cache);
  }
};

}  // namespace lmdecode
