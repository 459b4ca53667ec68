#pragma once
// The one-row-per-sequence decoding loop of transformers' `_sample` (HF_SEMANTICS §2), shared by
// GreedyDecoder (arg max) and SamplingDecoder (a draw from the processed distribution).

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <functional>
#include <optional>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/detail/deadline.hpp"
#include "lmdecode/detail/hypotheses.hpp"
#include "lmdecode/detail/multinomial.hpp"
#include "lmdecode/detail/padded_batch.hpp"
#include "lmdecode/detail/step_runner.hpp"
#include "lmdecode/detail/stop_sequences.hpp"
#include "lmdecode/detail/streamed_tokens.hpp"
#include "lmdecode/logits/default_processors.hpp"
#include "lmdecode/model.hpp"
#include "lmdecode/result.hpp"
#include "lmdecode/streaming.hpp"

namespace lmdecode::detail {

/// Picks each row's next token ([rows, 1] `index`) from its processed float32 scores [rows, vocab].
using TokenChooser = std::function<Draws(const at::Tensor& scores)>;

template <CausalLM Model>
GenerationResult run_token_loop(Model& model, const GenerationConfig& config, const LogitsProcessorList& user_processors,
                                const PaddedBatch& prompts, const StepCallback& on_step, const TokenChooser& choose) {
  c10::InferenceMode inference;
  const Deadline deadline(config.max_time);
  // Each prompt runs num_return_sequences times (sampling); row p * n + i is its i-th sequence.
  const int64_t copies = config.num_return_sequences;
  const PaddedBatch batch = prompts.repeated(copies);
  const int64_t rows = batch.input_ids.size(0);
  const int64_t prompt_len = batch.input_ids.size(1);
  const int64_t max_new = checked_max_new_tokens(config, prompt_len);
  const int64_t pad = config.effective_pad_token_id();
  const auto& eos_ids = config.eos_token_ids;
  const auto device = batch.input_ids.device();
  const auto longs = batch.input_ids.options();
  auto processors = make_processors(config, prompt_len, user_processors);
  StepRunner<Model> runner(model, batch, copies, max_new, config.use_cache, pad);
  StopSequenceMatcher stops(config.stop_sequences, device);
  // Rows can end early only through EOS ids or stop sequences (then finished rows are fed the pad).
  const bool can_end = !eos_ids.empty() || !stops.empty();

  auto sequence = at::full({rows, prompt_len + max_new}, pad, longs);  // [rows, L0 + max_new]
  sequence.narrow(1, 0, prompt_len).copy_(batch.input_ids);
  auto logprobs = at::zeros({rows, max_new}, at::TensorOptions().dtype(at::kFloat).device(device));
  auto unfinished = at::ones({rows}, longs.dtype(at::kBool));
  auto reason = at::full({rows}, static_cast<int64_t>(FinishReason::length), longs);  // for rows that end early
  auto stop_index = at::full({rows}, -1, longs);
  auto length = at::full({rows}, max_new, longs);  // generated tokens kept per row
  auto eos = at::tensor(eos_ids, longs);
  std::optional<StreamedTokens> streamed;  // the callback's tokens, kept on the host
  if (on_step) streamed.emplace(rows);

  // Ends every row still running now, `steps` tokens in, for `why`.
  auto end_running = [&](int64_t steps, FinishReason why) {
    reason.masked_fill_(unfinished, static_cast<int64_t>(why));
    length.masked_fill_(unfinished, steps);
    unfinished.fill_(false);
  };

  int64_t steps = 0;
  while (steps < max_new) {
    const int64_t cur = prompt_len + steps;
    auto history = sequence.narrow(1, 0, cur);
    at::Tensor scores = runner.next_logits(history);  // [rows, vocab] float32
    processors.apply(history, scores);
    auto [chosen, undrawable] = choose(scores);
    if (undrawable.defined()) runner.note_undrawable(undrawable);
    auto next = chosen.squeeze(1);
    logprobs.select(1, steps).copy_(scores.log_softmax(-1).gather(1, next.unsqueeze(1)).squeeze(1));
    if (can_end) next = at::where(unfinished, next, at::full_like(next, pad));  // finished rows emit pad
    sequence.select(1, cur).copy_(next);
    ++steps;
    if (can_end) {
      auto ended_eos = unfinished.logical_and(at::isin(next, eos));
      auto matched = stops.empty() ? at::full_like(next, -1) : stops.match(sequence.narrow(1, prompt_len, steps));
      auto ended_stop = unfinished.logical_and(ended_eos.logical_not()).logical_and(matched >= 0);
      auto ended = ended_eos.logical_or(ended_stop);
      reason.masked_fill_(ended_eos, static_cast<int64_t>(FinishReason::eos));
      reason.masked_fill_(ended_stop, static_cast<int64_t>(FinishReason::stop_sequence));
      stop_index = at::where(ended_stop, matched, stop_index);
      length.masked_fill_(ended, steps);
      unfinished.logical_and_(ended.logical_not());
    }
    const bool out_of_time = deadline.passed();
    if (out_of_time) end_running(steps, FinishReason::time);
    bool open = true;  // some row still runs
    if (on_step) {
      auto lengths = at::where(unfinished, at::full_like(length, steps), length);
      // The one host read per step: this step's tokens, the kept lengths and which rows still run.
      const std::vector<at::Tensor> host = runner.read({next, lengths, unfinished});
      streamed->append(host[0].data_ptr<int64_t>());
      auto kept_length = host[1].accessor<int64_t, 1>();
      auto running = host[2].accessor<int64_t, 1>();
      StepEvent e;
      e.step = steps - 1;
      open = false;
      for (int64_t r = 0; r < rows; ++r) {
        e.tokens.push_back(streamed->prefix(r, kept_length[r]));
        e.finished.push_back(running[r] == 0);
        open = open || running[r] != 0;
      }
      on_step(e);
      if (e.stop_requested) {
        end_running(steps, FinishReason::callback);
        open = false;
      }
    } else if (can_end && steps < max_new && !out_of_time) {
      open = runner.read_flag(unfinished.any());  // the one host read per step
    }
    if (steps == max_new || out_of_time || !open) break;
  }
  runner.read_flag(unfinished.any());  // NaN logits are an error, also where no step read them
  end_running(steps, FinishReason::length);

  auto kept = at::arange(steps, longs).unsqueeze(0) < length.unsqueeze(1);
  auto used = logprobs.narrow(1, 0, steps);
  auto scores = at::where(kept, used, at::zeros_like(used)).sum(1);
  GenerationResult result;
  auto flat = collect_hypotheses(sequence.narrow(1, prompt_len, steps), logprobs, length, scores, reason, stop_index);
  result.hypotheses = group_by_prompt(std::move(flat), copies);
  result.sequences = sequence.narrow(1, 0, prompt_len + steps).to(at::kCPU);
  result.prompt_length = prompt_len;
  result.steps = steps;
  return result;
}

}  // namespace lmdecode::detail
