#pragma once
// BeamSearchDecoder: transformers 5.x `_beam_search` (DECODING_RULES.md §3), vectorised over prompts x
// beams on the model's device. Each step: one batched forward for all rows, log-softmax, the
// processors, top-K candidates (drawn instead with do_sample: beam sampling), the next running
// beams, the finished-hypothesis merge and a cache reorder, all as tensor ops; the only host read is
// the "anything left to do?" flag.
//
// Example:
//   lmdecode::GenerationConfig config;
//   config.num_beams = 4;
//   config.num_return_sequences = 2;
//   config.max_new_tokens = 32;
//   config.eos_token_ids = {2};
//   lmdecode::BeamSearchDecoder decoder(model, config);
//   auto result = decoder.generate({{5, 6, 7}});
//   double best = result.hypotheses[0][0].score;  // HF sequences_scores

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/beam_hypotheses.hpp"
#include "lmdecode/decoders/detail/decoder_base.hpp"
#include "lmdecode/decoders/detail/decoding_loop.hpp"
#include "lmdecode/decoders/detail/hypotheses.hpp"
#include "lmdecode/decoders/detail/padded_batch.hpp"
#include "lmdecode/decoders/detail/random_generator.hpp"
#include "lmdecode/decoders/detail/sampling_draws.hpp"
#include "lmdecode/model.hpp"
#include "lmdecode/result.hpp"
#include "lmdecode/streaming.hpp"

namespace lmdecode {

template <CausalLM Model>
class BeamSearchDecoder : public detail::DecoderBase<BeamSearchDecoder<Model>, Model> {
  using Base = detail::DecoderBase<BeamSearchDecoder<Model>, Model>;
  friend Base;
  using Base::config_;
  using Base::model_;
  using Base::user_processors_;
  using Loop = detail::DecodingLoop<Model>;

 public:
  /// `processors` run after the ones `config` enables, on float32 log-probs.
  explicit BeamSearchDecoder(Model& model, GenerationConfig config = {}, LogitsProcessorList processors = {})
      : Base(model, std::move(config), std::move(processors)) {
    validate(config_);
  }

 private:
  /// What one generate() call carries from step to step.
  struct Search {
    int64_t batch, beams, rows, num_candidates, max_new, max_len;
    detail::RunningBeams running;
    detail::FinishedHypotheses finished;
    at::Tensor can_improve;  // [B, 1] bool: HF is_early_stop_heuristic_unsatisfied, sticky per prompt
    at::Tensor row_offset;   // [B, 1] int64: the first row of each prompt, b * nb
    std::optional<at::Generator> generator;  // beam sampling only
  };

  GenerationResult run(const detail::PaddedBatch& prompts, const StepCallback& on_step) {
    c10::InferenceMode inference;
    // Every prompt becomes `beams` identical rows (row b * beams + k = beam k of prompt b); the
    // prefill still runs once per prompt (StepRunner).
    Loop loop(model_, config_, user_processors_, prompts, config_.num_beams, on_step);
    Search s = start(loop, prompts.input_ids.size(0));
    int64_t steps = 0;
    while (steps < loop.max_new_tokens()) {
      const int64_t cur = loop.prompt_length() + steps;
      // a. Log-probs, then the processors, each beam on its own history (no renormalisation after).
      at::Tensor logprobs = loop.next_scores(s.running.seq.view({s.rows, cur}), /*log_probs=*/true);  // [rows, V]
      // b-c. The K best continuations of each prompt's beams by cumulative score (K draws with do_sample).
      const detail::Candidates c = candidates(s, loop, logprobs, steps);
      // d. Which candidates end here, and why: an EOS id, a stop sequence, the length limit, max_time.
      auto ends = loop.classify_ends(c.token, c.seq, steps + 1);
      const bool out_of_time = loop.out_of_time();
      auto reason = end_reasons(ends, out_of_time && cur + 1 < s.max_len);
      const bool last_step = cur + 1 >= s.max_len || out_of_time;
      // e. The next running beams: the best candidates not ended by a token, from all K.
      auto parent = advance_running(s, c, ends.ended);
      if (last_step) ends.ended.fill_(true);  // the length limit or max_time ends every candidate
      // f. Finished hypotheses: only the candidates ranked in the top nb can finish.
      auto pick = add_finished(s, c, ends, reason, steps + 1);
      // g. Each surviving beam takes its parent's keys and values.
      auto parent_row = (s.row_offset + parent).view({s.rows});
      loop.runner().reorder(parent_row);
      ++steps;
      // h. The early-stop heuristic, then the step's one device read: is every prompt done?
      auto prompt_done = update_early_stop(s, steps, last_step);
      auto all_done = prompt_done.all().logical_or(ends.ended.all());
      if (!loop.streaming()) {
        if (loop.read_flag(all_done)) break;
        continue;
      }
      const detail::StepRead read = loop.read_step(
          steps, {s.running.seq.select(2, cur), parent_row, {}, prompt_done.logical_not(), s.beams, merge_view(s, c, pick)},
          all_done);
      if (read.stop_requested) end_on_callback(s, prompt_done, steps);
      if (read.stop_requested || read.flag) break;
    }
    loop.finish();
    return result(loop, s, steps);
  }

  /// The first step's state: only beam 0 of each prompt is live; no hypothesis has finished.
  Search start(Loop& loop, int64_t batch) const {
    const int64_t beams = config_.num_beams;
    const auto& eos_ids = config_.eos_token_ids;
    const auto longs = loop.longs(), floats = loop.floats();
    Search s;
    s.batch = batch;
    s.beams = beams;
    s.rows = batch * beams;
    s.num_candidates = std::max<int64_t>(2, 1 + static_cast<int64_t>(eos_ids.size())) * beams;
    s.max_new = loop.max_new_tokens();
    s.max_len = loop.prompt_length() + s.max_new;
    if (config_.do_sample) s.generator = detail::make_generator(config_.seed, longs.device());
    s.row_offset = (at::arange(batch, longs) * beams).unsqueeze(1);
    s.running.seq = loop.batch().input_ids.reshape({batch, beams, loop.prompt_length()});
    s.running.lp = at::zeros({batch, beams, 0}, floats);
    s.running.score = at::full({batch, beams}, detail::kBlocked, floats);
    s.running.score.select(1, 0).zero_();
    // HF's fill: pad if it is truthy, else the first EOS, else -1 (Python `or` on the pad id).
    const int64_t fill = (config_.pad_token_id && *config_.pad_token_id != 0) ? *config_.pad_token_id
                         : !eos_ids.empty()                                    ? eos_ids.front()
                                                                               : -1;
    const int64_t kept = config_.finished_hypotheses_kept();
    s.finished = {s.running.seq.narrow(1, 0, 1).expand({batch, kept, loop.prompt_length()}).contiguous(),
                  at::zeros({batch, kept, 0}, floats),
                  at::full({batch, kept}, detail::kBlocked, floats),
                  at::zeros({batch, kept}, longs.dtype(at::kBool)),
                  at::zeros({batch, kept}, longs),
                  at::full({batch, kept}, detail::reason_code(FinishReason::length), longs),
                  at::full({batch, kept}, -1, longs),
                  fill,
                  {}};
    if (config_.output_scores) {  // HF beam_indices: the row each token was chosen on
      s.running.rows = at::zeros({batch, beams, 0}, longs);
      s.finished.rows = at::full({batch, kept, 0}, -1, longs);
    }
    s.can_improve = at::ones({batch, 1}, longs.dtype(at::kBool));
    return s;
  }

  /// b-c: each prompt's K continuations of all its beams by cumulative (unnormalised) score: the
  /// top K, or with do_sample K draws without replacement (HF beam sampling).
  detail::Candidates candidates(Search& s, Loop& loop, const at::Tensor& logprobs, int64_t steps) const {
    const int64_t vocab = logprobs.size(1), cur = loop.prompt_length() + steps;
    detail::check(s.num_candidates <= s.beams * vocab,
                  "beam search keeps {} candidates a step but only {} beams x {} tokens exist: lower num_beams",
                  s.num_candidates, s.beams, vocab);
    auto total = (logprobs + s.running.score.view({s.rows, 1})).view({s.batch, s.beams * vocab});
    detail::Candidates c;
    at::Tensor index;  // [B, K] into beams x vocab
    if (s.generator) {
      auto draws = detail::draw_from_softmax(total, s.num_candidates, *s.generator);
      loop.runner().note_undrawable(draws.invalid);
      index = draws.index;
      c.score = total.gather(1, index);
    } else {
      std::tie(c.score, index) = total.topk(s.num_candidates, 1);
    }
    c.beam = index.div(vocab, "floor");
    c.token = index.remainder(vocab);
    c.seq = at::cat({s.running.seq.gather(1, c.beam.unsqueeze(2).expand({s.batch, s.num_candidates, cur})), c.token.unsqueeze(2)}, 2);
    c.lp = at::cat({s.running.lp.gather(1, c.beam.unsqueeze(2).expand({s.batch, s.num_candidates, steps})),
                    logprobs.view({s.batch, s.beams * vocab}).gather(1, index).unsqueeze(2)}, 2);
    if (s.running.rows.defined())
      c.rows = at::cat({s.running.rows.gather(1, c.beam.unsqueeze(2).expand({s.batch, s.num_candidates, steps})),
                        (s.row_offset + c.beam).unsqueeze(2)}, 2);
    return c;
  }

  /// d: each candidate's FinishReason code should it finish now (`length` unless a token ended it;
  /// `time` instead when max_time ran out before the length limit). Clears `ends.matched` where no
  /// stop sequence ended the candidate.
  static at::Tensor end_reasons(detail::RowEnds& ends, bool out_of_time_early) {
    auto reason = at::full_like(ends.matched, detail::reason_code(FinishReason::length));
    reason.masked_fill_(ends.eos, detail::reason_code(FinishReason::eos));
    reason.masked_fill_(ends.stop, detail::reason_code(FinishReason::stop_sequence));
    ends.matched.masked_fill_(ends.stop.logical_not(), -1);
    if (out_of_time_early) reason.masked_fill_(ends.ended.logical_not(), detail::reason_code(FinishReason::time));
    return reason;
  }

  /// e: the best nb candidates that no token ended become the running beams; returns each new
  /// beam's parent beam [B, nb]. (On the last step they go no further; they are what its event shows.)
  static at::Tensor advance_running(Search& s, const detail::Candidates& c, const at::Tensor& ended) {
    const int64_t cur = c.seq.size(2), generated = c.lp.size(2);
    auto [score, pick] = (c.score + ended.to(at::kFloat) * detail::kBlocked).topk(s.beams, 1);
    s.running.seq = c.seq.gather(1, pick.unsqueeze(2).expand({s.batch, s.beams, cur}));
    s.running.lp = c.lp.gather(1, pick.unsqueeze(2).expand({s.batch, s.beams, generated}));
    s.running.score = score;
    if (c.rows.defined()) s.running.rows = c.rows.gather(1, pick.unsqueeze(2).expand({s.batch, s.beams, generated}));
    return c.beam.gather(1, pick);
  }

  /// f: the candidates ranked in the top nb that ended join the finished hypotheses with their
  /// length-normalised score, unless their prompt is full (early_stopping true) or can no longer
  /// improve. Returns the merge's pick (FinishedHypotheses::merge).
  at::Tensor add_finished(Search& s, const detail::Candidates& c, const detail::RowEnds& ends, const at::Tensor& reason,
                    int64_t generated) const {
    auto new_done = ends.ended.narrow(1, 0, s.beams);
    auto normalised = c.score.narrow(1, 0, s.beams) / std::pow(static_cast<double>(generated), config_.length_penalty);
    if (config_.early_stopping == EarlyStopping::on_full)
      normalised = normalised + s.finished.done.all(1, true).to(at::kFloat) * detail::kBlocked;
    normalised = normalised + s.can_improve.logical_not().to(at::kFloat) * detail::kBlocked;
    normalised = normalised + new_done.logical_not().to(at::kFloat) * detail::kBlocked;
    auto top = [&](const at::Tensor& t) { return t.defined() ? t.narrow(1, 0, s.beams) : t; };
    return s.finished.merge(top(c.seq), top(c.lp), normalised, new_done,
                            at::full({s.batch, s.beams}, generated, c.token.options()), top(reason),
                            top(ends.matched), top(c.rows));
  }

  /// With a callback: what the step's merge did, for the committed prefix (FinishedMerge): the top nb
  /// candidates' rows and tokens, then each kept slot's pick and whether it can still come first.
  static at::Tensor merge_view(const Search& s, const detail::Candidates& c, const at::Tensor& pick) {
    const auto& f = s.finished;
    auto can_win = f.done.logical_and(f.score == f.score.narrow(1, 0, 1));
    return at::cat({(s.row_offset + c.beam.narrow(1, 0, s.beams)).view(-1), c.token.narrow(1, 0, s.beams).reshape(-1),
                    pick.reshape(-1), can_win.to(at::kLong).view(-1)});
  }

  /// h: HF's _check_early_stop_heuristic after `steps` steps, sticky per prompt. Returns which
  /// prompts are done [B] (bool).
  at::Tensor update_early_stop(Search& s, int64_t steps, bool last_step) const {
    const double length_penalty = config_.length_penalty;
    const bool optimistic = config_.early_stopping == EarlyStopping::never && length_penalty > 0.0;
    const double best_length = static_cast<double>(optimistic ? s.max_new : steps);
    auto best_running = s.running.score.narrow(1, 0, 1) / std::pow(best_length, length_penalty);
    auto worst_finished = at::where(s.finished.done, std::get<0>(s.finished.score.min(1, true)),
                                    at::full_like(s.finished.score, detail::kBlocked));
    s.can_improve.logical_and_((best_running > worst_finished).any(1, true));
    auto prompt_done = s.can_improve.squeeze(1).logical_not();
    if (config_.early_stopping == EarlyStopping::on_full) prompt_done.logical_or_(s.finished.done.all(1));
    if (last_step) prompt_done.fill_(true);
    return prompt_done;
  }

  /// The callback asked to stop: the running beams of open prompts end here and compete with the
  /// finished hypotheses.
  void end_on_callback(Search& s, const at::Tensor& prompt_done, int64_t steps) const {
    const auto longs = s.row_offset.options();
    auto score = s.running.score / std::pow(static_cast<double>(steps), config_.length_penalty) +
                 prompt_done.unsqueeze(1).to(at::kFloat) * detail::kBlocked;
    auto open = prompt_done.logical_not().unsqueeze(1).expand({s.batch, s.beams});
    s.finished.merge(s.running.seq, s.running.lp, score, open, at::full({s.batch, s.beams}, steps, longs),
                     at::full({s.batch, s.beams}, detail::reason_code(FinishReason::callback), longs),
                     at::full({s.batch, s.beams}, -1, longs), s.running.rows);
  }

  /// The best num_return_sequences hypotheses of each prompt.
  GenerationResult result(Loop& loop, const Search& s, int64_t steps) const {
    const int64_t returned = config_.num_return_sequences;
    auto best = [&](const at::Tensor& t) { return t.narrow(1, 0, returned).reshape({s.batch * returned, -1}); };
    auto flat = [&](const at::Tensor& t) { return best(t).view({-1}); };
    const auto& f = s.finished;
    // A beam token's transformers transition score is its processed log-prob along the beam's path.
    const at::Tensor token_scores = config_.output_scores ? best(f.lp) : at::Tensor();
    auto result = detail::assemble_result(
        {best(f.seq), best(f.lp), flat(f.len), flat(f.score), flat(f.reason), flat(f.stop), token_scores},
        loop.prompt_length(), returned, steps);
    if (f.rows.defined())  // cropped to the longest returned hypothesis, as transformers crops it
      result.beam_indices = best(f.rows).narrow(1, 0, result.sequences.size(1) - loop.prompt_length()).to(at::kCPU);
    loop.move_step_outputs(result);
    return result;
  }
};

}  // namespace lmdecode
