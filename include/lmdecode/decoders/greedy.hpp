#pragma once
// GreedyDecoder: transformers' greedy search (`_sample` without sampling, HF_SEMANTICS §2) on any
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

#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/detail/token_loop.hpp"

namespace lmdecode {

template <CausalLM Model>
class GreedyDecoder {
 public:
  /// `processors` run after the ones `config` enables, on float32 logits.
  explicit GreedyDecoder(Model& model, GenerationConfig config = {}, LogitsProcessorList processors = {})
      : model_(model), config_(std::move(config)), user_processors_(std::move(processors)) {
    validate(config_);
    detail::check(config_.num_beams == 1, "GreedyDecoder needs num_beams == 1 (got {}); use BeamSearchDecoder",
                  config_.num_beams);
    detail::check(!config_.do_sample, "GreedyDecoder does not sample: set do_sample = false or use SamplingDecoder");
  }

  const GenerationConfig& config() const { return config_; }

  /// Decodes each prompt (left padded into one batch) until EOS, a stop sequence or max_new_tokens.
  GenerationResult generate(const std::vector<TokenIds>& prompts, const StepCallback& on_step = {}) {
    return run(detail::pad_prompts(prompts, config_.effective_pad_token_id(), model_.device()), on_step);
  }

  /// As above, from an HF-style left-padded batch: input_ids and attention_mask [B, L0] on the model's device.
  GenerationResult generate(const at::Tensor& input_ids, const at::Tensor& attention_mask, const StepCallback& on_step = {}) {
    return run(detail::batch_from_tensors(input_ids, attention_mask, model_.device()), on_step);
  }

 private:
  GenerationResult run(const detail::PaddedBatch& batch, const StepCallback& on_step) {
    // torch.argmax returns the first maximal index, as transformers relies on.
    return detail::run_token_loop(model_, config_, user_processors_, batch, on_step,
                                  [](const at::Tensor& scores) { return scores.argmax(-1); });
  }

  Model& model_;
  GenerationConfig config_;
  LogitsProcessorList user_processors_;
};

}  // namespace lmdecode
