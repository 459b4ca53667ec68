#pragma once
// The one-row-per-sequence strategy of transformers' `_sample` (DECODING_RULES.md §2): each step every
// row takes one token, the arg max (greedy) or a draw from the processed distribution (sampling).

#include <ATen/ATen.h>

#include <algorithm>
#include <optional>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/chosen_tokens.hpp"
#include "lmdecode/decoders/detail/decoding_loop.hpp"
#include "lmdecode/decoders/detail/hypotheses.hpp"
#include "lmdecode/decoders/detail/random_generator.hpp"
#include "lmdecode/decoders/detail/sampling_draws.hpp"
#include "lmdecode/result.hpp"

namespace lmdecode::detail {

/// Every row of the token strategy, on the device.
struct TokenRows {
  at::Tensor sequence;    // [rows, L0 + room] int64: the padded prompt, then the tokens, pad after the end
  at::Tensor logprobs;    // [rows, room] float32: each chosen token's log-prob under the processed scores
  at::Tensor unfinished;  // [rows] bool
  at::Tensor reason;      // [rows] int64 reason_code, for rows that have ended
  at::Tensor stop;        // [rows] int64: the matched stop sequence, -1 if none
  at::Tensor length;      // [rows] int64: generated tokens kept

  int64_t pad;            // fills the room after a row's tokens

  TokenRows(const LoopRows& rows, int64_t pad_token_id) : pad(pad_token_id) {
    const auto longs = rows.longs();
    const int64_t room = std::min(rows.max_new_tokens, kFirstNewTokenChunk);  // doubled by make_room
    sequence = at::full({rows.rows, rows.prompt_length + room}, pad, longs);
    sequence.narrow(1, 0, rows.prompt_length).copy_(rows.batch.input_ids);
    logprobs = at::zeros({rows.rows, room}, rows.floats());
    unfinished = at::ones({rows.rows}, longs.dtype(at::kBool));
    reason = at::full({rows.rows}, reason_code(FinishReason::length), longs);
    stop = at::full({rows.rows}, -1, longs);
    length = at::full({rows.rows}, rows.max_new_tokens, longs);
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

/// Greedy search: the first maximal index, as torch.argmax gives it and transformers relies on.
struct ArgMax {
  ArgMax(const GenerationConfig&, at::Device) {}
  Draws operator()(const at::Tensor& scores) { return {first_max_index(scores), {}}; }
};

/// Sampling: one draw per row from softmax(scores), with the run's own generator (config.seed).
struct SoftmaxDraw {
  SoftmaxDraw(const GenerationConfig& config, at::Device device) : generator(make_generator(config.seed, device)) {}
  Draws operator()(const at::Tensor& scores) { return draw_from_softmax(scores, 1, generator); }
  at::Generator generator;
};

/// One token per row a step, chosen by `Choose` (ArgMax or SoftmaxDraw) from the processed logits.
template <class Choose>
class TokenStrategy {
 public:
  static constexpr bool kLogProbs = false;
  /// Rows per prompt: its sampled sequences (1 for greedy).
  static int64_t copies(const GenerationConfig& config) { return config.num_return_sequences; }

  TokenStrategy(const GenerationConfig& config, const LoopRows& loop)
      : choose_(config, loop.batch.input_ids.device()),
        rows_(loop, config.resolved_pad_token_id()),
        prompt_length_(loop.prompt_length),
        max_new_(loop.max_new_tokens),
        per_prompt_(loop.copies),
        output_scores_(config.output_scores) {}

  at::Tensor history() const { return rows_.sequence.narrow(1, 0, prompt_length_ + steps_); }

  StepOutcome step(const StepInput& in) {
    // 1. The chosen tokens and their log-probs under the processed scores.
    const at::Tensor& scores = in.scores.front();
    auto [chosen, undrawable] = choose_(scores);
    auto next = chosen.squeeze(1);
    rows_.make_room(steps_);
    rows_.logprobs.select(1, steps_).copy_(chosen_logprobs(scores, next));
    // 2. Finished rows emit the pad (rows end early only through EOS ids or stop sequences); the
    // token joins each row's history.
    const bool can_end = in.ends.can_end();
    if (can_end) next = at::where(rows_.unfinished, next, at::full_like(next, rows_.pad));
    rows_.sequence.select(1, prompt_length_ + steps_).copy_(next);
    ++steps_;
    // 3. Rows that end here: an EOS id or a stop sequence, else the deadline.
    if (can_end) rows_.end(in.ends.classify(next, rows_.sequence, steps_, rows_.unfinished), steps_);
    if (in.out_of_time) rows_.end_running(steps_, FinishReason::time);
    StepOutcome out{.undrawable = undrawable, .last = steps_ == max_new_ || in.out_of_time};
    // 4. What the step's one device read asks: is any row still running (with the callback's event)?
    if (in.streaming) {
      auto lengths = at::where(rows_.unfinished, at::full_like(rows_.length, steps_), rows_.length);
      out.view = {.step = in.step, .tokens = next, .lengths = lengths, .running = rows_.unfinished};
    } else if (can_end && !out.last) {
      out.stop = {rows_.unfinished.any(), false};
    }
    return out;
  }

  void stop_on_callback(int64_t steps) { rows_.end_running(steps, FinishReason::callback); }

  /// A row's score is the sum of its kept tokens' log-probs; a token's transformers transition score
  /// is its processed score at its step.
  FinishedRows finish(int64_t steps, const std::vector<at::Tensor>& step_scores) {
    rows_.end_running(steps, FinishReason::length);
    const auto longs = rows_.length.options();
    auto kept = at::arange(steps, longs).unsqueeze(0) < rows_.length.unsqueeze(1);
    auto used = rows_.logprobs.narrow(1, 0, steps);
    auto new_tokens = rows_.sequence.narrow(1, prompt_length_, steps);
    at::Tensor token_scores;
    if (output_scores_) token_scores = at::stack(step_scores, 1).gather(2, new_tokens.unsqueeze(2)).squeeze(2);
    return {.per_prompt = per_prompt_,
            .sequences = rows_.sequence.narrow(1, 0, prompt_length_ + steps),
            .logprobs = used,
            .lengths = rows_.length,
            .scores = at::where(kept, used, at::zeros_like(used)).sum(1),
            .reasons = rows_.reason,
            .stops = rows_.stop,
            .token_scores = token_scores};
  }

 private:
  Choose choose_;
  TokenRows rows_;
  int64_t prompt_length_, max_new_, per_prompt_;
  bool output_scores_;
  int64_t steps_ = 0;  // tokens each row has taken
};

}  // namespace lmdecode::detail
