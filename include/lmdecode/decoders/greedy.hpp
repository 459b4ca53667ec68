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
#include <c10/core/InferenceMode.h>

#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/detail/hypotheses.hpp"
#include "lmdecode/detail/padded_batch.hpp"
#include "lmdecode/detail/step_runner.hpp"
#include "lmdecode/logits/default_processors.hpp"
#include "lmdecode/model.hpp"
#include "lmdecode/result.hpp"
#include "lmdecode/streaming.hpp"

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
    detail::check(!config_.do_sample, "GreedyDecoder does not sample: set do_sample = false");
  }

  const GenerationConfig& config() const { return config_; }

  /// Decodes each prompt (left padded into one batch) until EOS or max_new_tokens.
  GenerationResult generate(const std::vector<TokenIds>& prompts, const StepCallback& on_step = {}) {
    return run(detail::pad_prompts(prompts, config_.effective_pad_token_id(), model_.device()), on_step);
  }

  /// As above, from an HF-style left-padded batch: input_ids and attention_mask [B, L0] on the model's device.
  GenerationResult generate(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                            const StepCallback& on_step = {}) {
    return run(detail::batch_from_tensors(input_ids, attention_mask, model_.device()), on_step);
  }

 private:
  GenerationResult run(const detail::PaddedBatch& batch, const StepCallback& on_step) {
    c10::InferenceMode inference;
    const int64_t rows = batch.input_ids.size(0);
    const int64_t prompt_len = batch.input_ids.size(1);
    const int64_t max_new = detail::checked_max_new_tokens(config_, prompt_len);
    const int64_t pad = config_.effective_pad_token_id();
    const auto& eos_ids = config_.eos_token_ids;
    const bool has_eos = !eos_ids.empty();
    const auto device = batch.input_ids.device();
    auto processors = make_processors(config_, prompt_len, user_processors_);
    detail::StepRunner<Model> runner(model_, batch, max_new, config_.use_cache, pad);

    auto sequence = at::full({rows, prompt_len + max_new}, pad, batch.input_ids.options());  // [rows, L0 + max_new]
    sequence.narrow(1, 0, prompt_len).copy_(batch.input_ids);
    auto logprobs = at::zeros({rows, max_new}, at::TensorOptions().dtype(at::kFloat).device(device));
    auto unfinished = at::ones({rows}, at::TensorOptions().dtype(at::kBool).device(device));
    auto eos = at::tensor(eos_ids, at::kLong).to(device);

    int64_t steps = 0;
    while (steps < max_new) {
      const int64_t cur = prompt_len + steps;
      auto history = sequence.narrow(1, 0, cur);
      at::Tensor scores = runner.next_logits(history);  // [rows, vocab] float32
      processors.apply(history, scores);
      auto next = scores.argmax(-1);  // first maximal index, as torch.argmax
      logprobs.select(1, steps).copy_(scores.log_softmax(-1).gather(1, next.unsqueeze(1)).squeeze(1));
      if (has_eos) next = at::where(unfinished, next, at::full_like(next, pad));  // finished rows emit pad
      sequence.select(1, cur).copy_(next);
      if (has_eos) unfinished.logical_and_(at::isin(next, eos).logical_not());
      ++steps;
      if (on_step) on_step(event(sequence, prompt_len, steps, unfinished, has_eos));
      if (has_eos && steps < max_new && !unfinished.any().item<bool>()) break;  // the one host read per step
    }

    auto generated = sequence.narrow(1, prompt_len, steps);
    // A row's length runs to its first EOS, or to the end.
    auto is_end = has_eos ? at::isin(generated, eos) : at::zeros_like(generated, at::kBool);
    auto first_end = at::where(is_end.any(1), is_end.to(at::kInt).argmax(1) + 1, at::full({rows}, steps, generated.options()));
    auto kept = at::arange(steps, generated.options()).unsqueeze(0) < first_end.unsqueeze(1);
    auto scores = at::where(kept, logprobs.narrow(1, 0, steps), at::zeros_like(logprobs.narrow(1, 0, steps))).sum(1);
    GenerationResult result;
    result.hypotheses = detail::group_by_prompt(
        detail::collect_hypotheses(generated, logprobs, first_end, scores, eos_ids), 1);
    result.sequences = sequence.narrow(1, 0, prompt_len + steps).to(at::kCPU);
    result.prompt_length = prompt_len;
    result.steps = steps;
    return result;
  }

  StepEvent event(const at::Tensor& sequence, int64_t prompt_len, int64_t steps, const at::Tensor& unfinished,
                  bool has_eos) const {
    StepEvent e;
    e.step = steps - 1;
    e.tokens = detail::rows_up_to_eos(sequence.narrow(1, prompt_len, steps), config_.eos_token_ids);
    auto open = unfinished.to(at::kCPU);
    for (int64_t r = 0; r < open.size(0); ++r) e.finished.push_back(has_eos && !open[r].item<bool>());
    return e;
  }

  Model& model_;
  GenerationConfig config_;
  LogitsProcessorList user_processors_;
};

}  // namespace lmdecode
