#pragma once
// Beam search as a strategy of the decoding loop: transformers 5.x `_beam_search` (DECODING_RULES.md
// §3), vectorised over prompts x beams on the model's device. Each step, from the processed log-probs
// of every beam: top-K candidates (drawn instead with do_sample: beam sampling), the next running
// beams, the finished-hypothesis merge and the rows' reorder, all as tensor ops; the only host read
// is the "anything left to do?" flag.

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/beam_hypotheses.hpp"
#include "lmdecode/decoders/detail/committed_tokens.hpp"
#include "lmdecode/decoders/detail/decoding_loop.hpp"
#include "lmdecode/decoders/detail/hypotheses.hpp"
#include "lmdecode/decoders/detail/random_generator.hpp"
#include "lmdecode/decoders/detail/sampling_draws.hpp"
#include "lmdecode/result.hpp"

namespace lmdecode::detail {

class BeamStrategy {
 public:
  static constexpr bool kLogProbs = true;
  /// Rows per prompt: its beams (row b * beams + k = beam k of prompt b).
  static int64_t copies(const GenerationConfig& config) { return config.num_beams; }

  /// The first step's state: only beam 0 of each prompt is live; no hypothesis has finished.
  BeamStrategy(const GenerationConfig& config, const LoopRows& loop)
      : config_(config),
        batch_(loop.prompts),
        beams_(config.num_beams),
        rows_(loop.rows),
        prompt_length_(loop.prompt_length),
        num_candidates_(std::max<int64_t>(2, 1 + static_cast<int64_t>(config.eos_token_ids.size())) * beams_),
        max_new_(loop.max_new_tokens),
        max_len_(loop.prompt_length + loop.max_new_tokens) {
    const auto longs = loop.longs(), floats = loop.floats();
    if (config.do_sample) generator_ = make_generator(config.seed, longs.device());
    row_offset_ = (at::arange(batch_, longs) * beams_).unsqueeze(1);
    running_.seq = loop.batch.input_ids.reshape({batch_, beams_, prompt_length_});
    running_.lp = at::zeros({batch_, beams_, 0}, floats);
    running_.score = at::full({batch_, beams_}, kBlocked, floats);
    running_.score.select(1, 0).zero_();
    finished_ = FinishedHypotheses::empty(running_.seq.narrow(1, 0, 1), config.finished_hypotheses_kept(), fill_token(config),
                                          config.output_scores);
    if (config.output_scores) running_.rows = at::zeros({batch_, beams_, 0}, longs);  // HF beam_indices
    can_improve_ = at::ones({batch_, 1}, longs.dtype(at::kBool));
  }

  at::Tensor history() const { return running_.seq.view({rows_, running_.seq.size(2)}); }

  StepOutcome step(const StepInput& in) {
    const int64_t steps = in.step, cur = prompt_length_ + steps;
    // b-c. The K best continuations of each prompt's beams by cumulative score (K draws with do_sample).
    StepOutcome out;
    const Candidates c = candidates(in.scores.front(), steps, out.undrawable);
    // d. Which candidates end here, and why: an EOS id, a stop sequence, the length limit, max_time.
    RowEnds ends = in.ends.classify(c.token, c.seq, steps + 1);
    auto reason = end_reasons(ends, in.out_of_time && cur + 1 < max_len_);
    out.last = cur + 1 >= max_len_ || in.out_of_time;
    // e. The next running beams: the best candidates not ended by a token, from all K.
    auto parent = advance_running(c, ends.ended);
    if (out.last) ends.ended.fill_(true);  // the length limit or max_time ends every candidate
    // f. Finished hypotheses: only the candidates ranked in the top nb can finish.
    auto pick = add_finished(c, ends, reason, steps + 1);
    // g. Each surviving beam takes its parent's keys and values.
    out.parents = (row_offset_ + parent).view({rows_});
    // h. The early-stop heuristic, then the step's one device read: is every prompt done?
    prompt_done_ = update_early_stop(steps + 1, out.last);
    out.stop = {prompt_done_.all().logical_or(ends.ended.all()), true};
    if (in.streaming)
      out.view = {.step = steps, .tokens = running_.seq.select(2, cur), .parents = out.parents,
                  .running = prompt_done_.logical_not(), .stride = beams_,
                  .finished_merge = FinishedMerge::pack(row_offset_, beams_, c, pick, finished_)};
    return out;
  }

  /// The callback asked to stop: the running beams of open prompts end here and compete with the
  /// finished hypotheses.
  void stop_on_callback(int64_t steps) {
    const auto longs = row_offset_.options();
    const at::Tensor steps_taken = at::full({batch_, beams_}, steps, longs);
    finished_.merge({.seq = running_.seq,
                     .lp = running_.lp,
                     .score = running_.score / std::pow(static_cast<double>(steps), config_.length_penalty) +
                              prompt_done_.unsqueeze(1).to(at::kFloat) * kBlocked,
                     .done = prompt_done_.logical_not().unsqueeze(1).expand({batch_, beams_}),
                     .len = steps_taken,
                     .reason = at::full_like(steps_taken, reason_code(FinishReason::callback)),
                     .stop = at::full_like(steps_taken, -1),
                     .rows = running_.rows});
  }

  /// The best num_return_sequences hypotheses of each prompt. A beam token's transformers transition
  /// score is its processed log-prob along the beam's path.
  FinishedRows finish(int64_t, const std::vector<at::Tensor>&) const {
    const int64_t returned = config_.num_return_sequences;
    auto best = [&](const at::Tensor& t) { return t.narrow(1, 0, returned).reshape({batch_ * returned, -1}); };
    auto flat = [&](const at::Tensor& t) { return best(t).view({-1}); };
    const auto& f = finished_;
    return {.per_prompt = returned,
            .sequences = best(f.seq),
            .logprobs = best(f.lp),
            .lengths = flat(f.len),
            .scores = flat(f.score),
            .reasons = flat(f.reason),
            .stops = flat(f.stop),
            .token_scores = config_.output_scores ? best(f.lp) : at::Tensor(),
            .beam_rows = f.rows.defined() ? best(f.rows) : at::Tensor()};
  }

 private:
  const GenerationConfig& config_;
  int64_t batch_, beams_, rows_, prompt_length_, num_candidates_, max_new_, max_len_;
  RunningBeams running_;
  FinishedHypotheses finished_;
  at::Tensor can_improve_;  // [B, 1] bool: HF is_early_stop_heuristic_unsatisfied, sticky per prompt
  at::Tensor row_offset_;   // [B, 1] int64: the first row of each prompt, b * nb
  at::Tensor prompt_done_;  // [B] bool: the prompt's search has ended (as of the last step)
  std::optional<at::Generator> generator_;  // beam sampling only

  /// HF's fill after a finished hypothesis: pad if it is truthy, else the first EOS, else -1 (Python
  /// `or` on the pad id).
  static int64_t fill_token(const GenerationConfig& config) {
    if (config.pad_token_id && *config.pad_token_id != 0) return *config.pad_token_id;
    return config.eos_token_ids.empty() ? -1 : config.eos_token_ids.front();
  }

  /// b-c: each prompt's K continuations of all its beams by cumulative (unnormalised) score: the
  /// top K, or with do_sample K draws without replacement (HF beam sampling).
  Candidates candidates(const at::Tensor& logprobs, int64_t steps, at::Tensor& undrawable) {
    const int64_t vocab = logprobs.size(1), cur = prompt_length_ + steps;
    check(num_candidates_ <= beams_ * vocab,
          "beam search keeps {} candidates a step but only {} beams x {} tokens exist: lower num_beams",
          num_candidates_, beams_, vocab);
    auto total = (logprobs + running_.score.view({rows_, 1})).view({batch_, beams_ * vocab});
    Candidates c;
    at::Tensor index;  // [B, K] into beams x vocab
    if (generator_) {
      auto draws = draw_from_softmax(total, num_candidates_, *generator_);
      undrawable = draws.invalid;
      index = draws.index;
      c.score = total.gather(1, index);
    } else {
      std::tie(c.score, index) = total.topk(num_candidates_, 1);
    }
    c.beam = index.div(vocab, "floor");
    c.token = index.remainder(vocab);
    auto from_parents = [&](const at::Tensor& t, int64_t width) {
      return t.gather(1, c.beam.unsqueeze(2).expand({batch_, num_candidates_, width}));
    };
    c.seq = at::cat({from_parents(running_.seq, cur), c.token.unsqueeze(2)}, 2);
    c.lp = at::cat({from_parents(running_.lp, steps), logprobs.view({batch_, beams_ * vocab}).gather(1, index).unsqueeze(2)}, 2);
    if (running_.rows.defined())
      c.rows = at::cat({from_parents(running_.rows, steps), (row_offset_ + c.beam).unsqueeze(2)}, 2);
    return c;
  }

  /// d: each candidate's FinishReason code should it finish now (`length` unless a token ended it;
  /// `time` instead when max_time ran out before the length limit). Clears `ends.matched` where no
  /// stop sequence ended the candidate.
  static at::Tensor end_reasons(RowEnds& ends, bool out_of_time_early) {
    auto reason = at::full_like(ends.matched, reason_code(FinishReason::length));
    reason.masked_fill_(ends.eos, reason_code(FinishReason::eos));
    reason.masked_fill_(ends.stop, reason_code(FinishReason::stop_sequence));
    ends.matched.masked_fill_(ends.stop.logical_not(), -1);
    if (out_of_time_early) reason.masked_fill_(ends.ended.logical_not(), reason_code(FinishReason::time));
    return reason;
  }

  /// e: the best nb candidates that no token ended become the running beams; returns each new
  /// beam's parent beam [B, nb]. (On the last step they go no further; they are what its event shows.)
  at::Tensor advance_running(const Candidates& c, const at::Tensor& ended) {
    const int64_t cur = c.seq.size(2), generated = c.lp.size(2);
    auto [score, pick] = (c.score + ended.to(at::kFloat) * kBlocked).topk(beams_, 1);
    auto picked = [&](const at::Tensor& t, int64_t width) {
      return t.gather(1, pick.unsqueeze(2).expand({batch_, beams_, width}));
    };
    running_.seq = picked(c.seq, cur);
    running_.lp = picked(c.lp, generated);
    running_.score = score;
    if (c.rows.defined()) running_.rows = picked(c.rows, generated);
    return c.beam.gather(1, pick);
  }

  /// f: the candidates ranked in the top nb that ended join the finished hypotheses with their
  /// length-normalised score, unless their prompt is full (early_stopping true) or can no longer
  /// improve. Returns the merge's pick (FinishedHypotheses::merge).
  at::Tensor add_finished(const Candidates& c, const RowEnds& ends, const at::Tensor& reason, int64_t generated) {
    auto new_done = ends.ended.narrow(1, 0, beams_);
    auto normalised = c.score.narrow(1, 0, beams_) / std::pow(static_cast<double>(generated), config_.length_penalty);
    if (config_.early_stopping == EarlyStopping::on_full)
      normalised = normalised + finished_.done.all(1, true).to(at::kFloat) * kBlocked;
    normalised = normalised + can_improve_.logical_not().to(at::kFloat) * kBlocked;
    normalised = normalised + new_done.logical_not().to(at::kFloat) * kBlocked;
    auto top = [&](const at::Tensor& t) { return t.defined() ? t.narrow(1, 0, beams_) : t; };
    return finished_.merge({.seq = top(c.seq),
                            .lp = top(c.lp),
                            .score = normalised,
                            .done = new_done,
                            .len = at::full({batch_, beams_}, generated, c.token.options()),
                            .reason = top(reason),
                            .stop = top(ends.matched),
                            .rows = top(c.rows)});
  }

  /// h: HF's _check_early_stop_heuristic after `steps` steps, sticky per prompt. Returns which
  /// prompts are done [B] (bool).
  at::Tensor update_early_stop(int64_t steps, bool last_step) {
    const double length_penalty = config_.length_penalty;
    const bool optimistic = config_.early_stopping == EarlyStopping::never && length_penalty > 0.0;
    const double best_length = static_cast<double>(optimistic ? max_new_ : steps);
    auto best_running = running_.score.narrow(1, 0, 1) / std::pow(best_length, length_penalty);
    auto worst_finished = at::where(finished_.done, std::get<0>(finished_.score.min(1, true)),
                                    at::full_like(finished_.score, kBlocked));
    can_improve_.logical_and_((best_running > worst_finished).any(1, true));
    auto prompt_done = can_improve_.squeeze(1).logical_not();
    if (config_.early_stopping == EarlyStopping::on_full) prompt_done.logical_or_(finished_.done.all(1));
    if (last_step) prompt_done.fill_(true);
    return prompt_done;
  }
};

}  // namespace lmdecode::detail
