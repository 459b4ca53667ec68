#pragma once
// The one-row-per-sequence decoding loop of transformers' `_sample` (DECODING_RULES.md §2), shared
// by GreedyDecoder (arg max) and SamplingDecoder (a draw from the processed distribution).

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <functional>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/decoding_loop.hpp"
#include "lmdecode/decoders/detail/hypotheses.hpp"
#include "lmdecode/decoders/detail/padded_batch.hpp"
#include "lmdecode/decoders/detail/sampling_draws.hpp"
#include "lmdecode/model.hpp"
#include "lmdecode/result.hpp"
#include "lmdecode/streaming.hpp"

namespace lmdecode::detail {

/// Picks each row's next token ([rows, 1] `index`) from its processed float32 scores [rows, vocab].
using TokenChooser = std::function<Draws(const at::Tensor& scores)>;

/// Every row of the token loop, on the device.
struct TokenRows {
  at::Tensor sequence;    // [rows, L0 + room] int64: the padded prompt, then the tokens, pad after the end
  at::Tensor logprobs;    // [rows, room] float32: each chosen token's log-prob under the processed scores
  at::Tensor unfinished;  // [rows] bool
  at::Tensor reason;      // [rows] int64 reason_code, for rows that have ended
  at::Tensor stop;        // [rows] int64: the matched stop sequence, -1 if none
  at::Tensor length;      // [rows] int64: generated tokens kept

  int64_t pad;            // fills the room after a row's tokens

  TokenRows(const PaddedBatch& batch, int64_t max_new, int64_t pad_token_id) : pad(pad_token_id) {
    const auto longs = batch.input_ids.options();
    const int64_t rows = batch.input_ids.size(0), prompt_len = batch.input_ids.size(1);
    const int64_t room = std::min(max_new, kFirstNewTokenChunk);  // doubled by make_room
    sequence = at::full({rows, prompt_len + room}, pad, longs);
    sequence.narrow(1, 0, prompt_len).copy_(batch.input_ids);
    logprobs = at::zeros({rows, room}, longs.dtype(at::kFloat));
    unfinished = at::ones({rows}, longs.dtype(at::kBool));
    reason = at::full({rows}, reason_code(FinishReason::length), longs);
    stop = at::full({rows}, -1, longs);
    length = at::full({rows}, max_new, longs);
  }

  /// Makes room for token `step` (counted from 0), doubling the room when it is full.
  void make_room(int64_t step) {
    const int64_t room = logprobs.size(1);
    if (step < room) return;
    const int64_t more = std::max<int64_t>(room, 1);
    sequence = at::cat({sequence, at::full({sequence.size(0), more}, pad, sequence.options())}, 1);
    logprobs = at::cat({logprobs, at::zeros({logprobs.size(0), more}, logprobs.options())}, 1);
  }

  /// Ends the rows that `ends` names, `steps` tokens in.
  void end(const RowEnds& ends, int64_t steps) {
    reason.masked_fill_(ends.eos, reason_code(FinishReason::eos));
    reason.masked_fill_(ends.stop, reason_code(FinishReason::stop_sequence));
    stop = at::where(ends.stop, ends.matched, stop);
    length.masked_fill_(ends.ended, steps);
    unfinished.logical_and_(ends.ended.logical_not());
  }

  /// Ends every row still running now, `steps` tokens in, for `why`.
  void end_running(int64_t steps, FinishReason why) {
    reason.masked_fill_(unfinished, reason_code(why));
    length.masked_fill_(unfinished, steps);
    unfinished.fill_(false);
  }
};

template <CausalLM Model>
GenerationResult run_token_loop(Model& model, const GenerationConfig& config, const LogitsProcessorList& user_processors,
                                const PaddedBatch& prompts, const StepCallback& on_step, const TokenChooser& choose,
                                typename Model::Cache* kept_cache = nullptr) {
  c10::InferenceMode inference;
  const int64_t copies = config.num_return_sequences;  // sampled sequences per prompt
  DecodingLoop<Model> loop(model, config, user_processors, prompts, copies, on_step, kept_cache);
  const int64_t prompt_len = loop.prompt_length(), max_new = loop.max_new_tokens();
  const int64_t pad = config.resolved_pad_token_id();
  TokenRows rows(loop.batch(), max_new, pad);
  // Rows can end early only through EOS ids or stop sequences (then finished rows are fed the pad).
  const bool can_end = loop.has_eos() || loop.has_stop_sequences();

  int64_t steps = 0;
  while (steps < max_new) {
    // 1. The processed scores of every row's next token, and the chosen tokens.
    auto history = rows.sequence.narrow(1, 0, prompt_len + steps);
    at::Tensor scores = loop.next_scores(history, /*log_probs=*/false);  // [rows, vocab]
    auto [chosen, undrawable] = choose(scores);
    if (undrawable.defined()) loop.runner().note_undrawable(undrawable);
    auto next = chosen.squeeze(1);
    rows.make_room(steps);
    rows.logprobs.select(1, steps).copy_(scores.log_softmax(-1).gather(1, next.unsqueeze(1)).squeeze(1));
    // 2. Finished rows emit the pad; the token joins each row's history.
    if (can_end) next = at::where(rows.unfinished, next, at::full_like(next, pad));
    rows.sequence.select(1, prompt_len + steps).copy_(next);
    ++steps;
    // 3. Rows that end here: an EOS id or a stop sequence, else the deadline.
    if (can_end) rows.end(loop.classify_ends(next, rows.sequence, steps, rows.unfinished), steps);
    const bool out_of_time = loop.out_of_time();
    if (out_of_time) rows.end_running(steps, FinishReason::time);
    // 4. The step's one device read: is any row still running (with the callback's event)?
    bool open = true;
    if (loop.streaming()) {
      auto lengths = at::where(rows.unfinished, at::full_like(rows.length, steps), rows.length);
      const StepRead read = loop.read_step(steps, {next, {}, lengths, rows.unfinished, 1, {}});
      open = read.any_running && !read.stop_requested;
      if (read.stop_requested) rows.end_running(steps, FinishReason::callback);
    } else if (can_end && steps < max_new && !out_of_time) {
      open = loop.read_flag(rows.unfinished.any());
    }
    if (steps == max_new || out_of_time || !open) break;
  }
  loop.finish();
  rows.end_running(steps, FinishReason::length);

  // A row's score is the sum of its kept tokens' log-probs.
  auto kept = at::arange(steps, loop.longs()).unsqueeze(0) < rows.length.unsqueeze(1);
  auto used = rows.logprobs.narrow(1, 0, steps);
  auto score = at::where(kept, used, at::zeros_like(used)).sum(1);
  auto new_tokens = rows.sequence.narrow(1, prompt_len, steps);
  // A token's transformers transition score: its processed score at its step.
  at::Tensor token_scores;
  if (config.output_scores) token_scores = at::stack(loop.step_scores(), 1).gather(2, new_tokens.unsqueeze(2)).squeeze(2);
  auto result = assemble_result(
      {rows.sequence.narrow(1, 0, prompt_len + steps), used, rows.length, score, rows.reason, rows.stop, token_scores},
      prompt_len, copies, steps);
  loop.move_step_outputs(result);
  return result;
}

}  // namespace lmdecode::detail
