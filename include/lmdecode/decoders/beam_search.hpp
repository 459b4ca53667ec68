#pragma once
// BeamSearchDecoder: transformers 5.x `_beam_search` (HF_SEMANTICS §3), vectorised over prompts x
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
#include "lmdecode/detail/deadline.hpp"
#include "lmdecode/detail/decoder_base.hpp"
#include "lmdecode/detail/generator.hpp"
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

namespace lmdecode {

template <CausalLM Model>
class BeamSearchDecoder : public detail::DecoderBase<BeamSearchDecoder<Model>, Model> {
  using Base = detail::DecoderBase<BeamSearchDecoder<Model>, Model>;
  friend Base;
  using Base::config_;
  using Base::model_;
  using Base::user_processors_;

 public:
  /// `processors` run after the ones `config` enables, on float32 log-probs.
  explicit BeamSearchDecoder(Model& model, GenerationConfig config = {}, LogitsProcessorList processors = {})
      : Base(model, std::move(config), std::move(processors)) {
    validate(config_);
  }

 private:
  // -1e9 marks "cannot be chosen" exactly as transformers does; it is exact in float32 and absorbs
  // any |x| < 32 added to it (HF_SEMANTICS §7).
  static constexpr double kBlocked = -1.0e9;

  /// Hypotheses of every prompt, kept sorted by length-normalised score ([B, nb, ...] each). seq and
  /// lp are as wide as the steps so far, so that a step's work follows its length, not max_new_tokens.
  struct FinishedSet {
    at::Tensor seq;     // [B, nb, prompt + steps] prompt + tokens, `fill` after the end
    at::Tensor lp;      // [B, nb, steps] per-token log-probs, 0 after the end
    at::Tensor score;   // [B, nb] float32, -1e9 placeholders until filled
    at::Tensor done;    // [B, nb] bool: a real hypothesis
    at::Tensor len;     // [B, nb] generated tokens, the last one included
    at::Tensor reason;  // [B, nb] FinishReason
    at::Tensor stop;    // [B, nb] matched stop sequence or -1
    int64_t fill;       // seq's value after a hypothesis' end

    /// Keeps the best nb of the current hypotheses and `n` new ones (each field [B, n, ...]; new_seq
    /// and new_lp may be wider than seq and lp, which then widen with `fill` and 0).
    void merge(const at::Tensor& new_seq, const at::Tensor& new_lp, const at::Tensor& new_score, const at::Tensor& new_done,
               const at::Tensor& new_len, const at::Tensor& new_reason, const at::Tensor& new_stop) {
      const int64_t beams = score.size(1);
      auto widened = [](const at::Tensor& t, int64_t width, int64_t value) {
        return t.size(2) == width ? t : at::constant_pad_nd(t, {0, width - t.size(2)}, value);
      };
      auto [merged_score, pick] = at::cat({score, new_score}, 1).topk(beams, 1);
      auto gather = [&](const at::Tensor& old_part, const at::Tensor& new_part) {
        auto both = at::cat({old_part, new_part}, 1);
        auto index = pick;
        for (int64_t d = 2; d < both.dim(); ++d) index = index.unsqueeze(d);
        auto sizes = both.sizes().vec();
        sizes[1] = beams;
        return both.gather(1, index.expand(sizes));
      };
      seq = gather(widened(seq, new_seq.size(2), fill), new_seq);
      lp = gather(widened(lp, new_lp.size(2), 0), new_lp);
      done = gather(done, new_done);
      len = gather(len, new_len);
      reason = gather(reason, new_reason);
      stop = gather(stop, new_stop);
      score = merged_score;
    }
  };

  GenerationResult run(const detail::PaddedBatch& prompts, const StepCallback& on_step) {
    c10::InferenceMode inference;
    const detail::Deadline deadline(config_.max_time);
    const int64_t batch = prompts.input_ids.size(0);
    const int64_t beams = config_.num_beams;
    const int64_t rows = batch * beams;
    const int64_t prompt_len = prompts.input_ids.size(1);
    const int64_t max_new = detail::checked_max_new_tokens(config_, prompt_len);
    const int64_t max_len = prompt_len + max_new;
    const auto& eos_ids = config_.eos_token_ids;
    const int64_t candidates = std::max<int64_t>(2, 1 + static_cast<int64_t>(eos_ids.size())) * beams;
    const double length_penalty = config_.length_penalty;
    const bool stop_when_full = config_.early_stopping == EarlyStopping::on_full;
    // HF's fill: pad if it is truthy, else the first EOS, else -1 (Python `or` on the pad id).
    const int64_t fill = (config_.pad_token_id && *config_.pad_token_id != 0) ? *config_.pad_token_id
                         : !eos_ids.empty()                                    ? eos_ids.front()
                                                                               : -1;
    const auto device = prompts.input_ids.device();
    const auto longs = prompts.input_ids.options();
    const auto floats = at::TensorOptions().dtype(at::kFloat).device(device);
    auto code = [](FinishReason r) { return static_cast<int64_t>(r); };

    // Every prompt becomes `beams` identical rows (row b * beams + k = beam k of prompt b); the
    // prefill still runs once per prompt (StepRunner).
    const detail::PaddedBatch expanded = prompts.repeated(beams);
    auto processors = make_processors(config_, prompt_len, user_processors_);
    detail::StepRunner<Model> runner(model_, expanded, beams, max_new, config_.use_cache, config_.effective_pad_token_id());
    detail::StopSequenceMatcher stops(config_.stop_sequences, device);
    std::optional<at::Generator> generator;
    if (config_.do_sample) generator = detail::make_generator(config_.seed, device);
    auto eos = at::tensor(eos_ids, longs);
    auto row_offset = (at::arange(batch, longs) * beams).unsqueeze(1);  // [B, 1]
    std::optional<detail::StreamedTokens> streamed;  // the callback's tokens, kept on the host
    if (on_step) streamed.emplace(rows);

    // Running beams: whole sequences (prompt included), per-token log-probs, cumulative scores. The
    // first two grow by a column a step.
    auto running_seq = expanded.input_ids.reshape({batch, beams, prompt_len});  // [B, nb, prompt + steps]
    auto running_lp = at::zeros({batch, beams, 0}, floats);                   // [B, nb, steps]
    auto running_score = at::full({batch, beams}, kBlocked, floats);  // [B, nb]: only beam 0 is live at first
    running_score.select(1, 0).zero_();
    FinishedSet finished{running_seq,
                         running_lp,
                         at::full({batch, beams}, kBlocked, floats),
                         at::zeros({batch, beams}, longs.dtype(at::kBool)),
                         at::zeros({batch, beams}, longs),
                         at::full({batch, beams}, code(FinishReason::length), longs),
                         at::full({batch, beams}, -1, longs),
                         fill};
    auto can_improve = at::ones({batch, 1}, longs.dtype(at::kBool));  // HF is_early_stop_heuristic_unsatisfied

    int64_t steps = 0;
    while (steps < max_new) {
      const int64_t cur = prompt_len + steps;
      const int64_t generated = steps + 1;  // tokens per candidate after this step, its last one included
      auto history = running_seq.view({rows, cur});
      // a. Log-probs come before the processors (HF's order); no renormalisation after them.
      at::Tensor logprobs = runner.next_logits(history).log_softmax(-1);  // [rows, V]
      processors.apply(history, logprobs);
      const int64_t vocab = logprobs.size(1);
      detail::check(candidates <= beams * vocab,
                    "beam search keeps {} candidates a step but only {} beams x {} tokens exist: lower num_beams",
                    candidates, beams, vocab);

      // b-c. K continuations of all beams of each prompt by cumulative (unnormalised) score: the
      // top K, or with do_sample K draws without replacement (HF beam sampling).
      auto total = (logprobs + running_score.view({rows, 1})).view({batch, beams * vocab});
      at::Tensor cand_score, cand_index;  // [B, K]
      if (generator) {
        auto draws = detail::draw_from_softmax(total, candidates, *generator);
        runner.note_undrawable(draws.invalid);
        cand_index = draws.index;
        cand_score = total.gather(1, cand_index);
      } else {
        std::tie(cand_score, cand_index) = total.topk(candidates, 1);
      }
      auto cand_beam = cand_index.div(vocab, "floor");
      auto cand_token = cand_index.remainder(vocab);
      // Each candidate: its parent's sequence and log-probs, and one column more.
      auto cand_seq = at::cat({running_seq.gather(1, cand_beam.unsqueeze(2).expand({batch, candidates, cur})),
                               cand_token.unsqueeze(2)}, 2);  // [B, K, cur + 1]
      auto cand_lp = at::cat({running_lp.gather(1, cand_beam.unsqueeze(2).expand({batch, candidates, steps})),
                              logprobs.view({batch, beams * vocab}).gather(1, cand_index).unsqueeze(2)}, 2);  // [B, K, steps + 1]

      // d. Which candidates end here, and why: an EOS id, a stop sequence, the length limit, max_time.
      auto is_eos = eos_ids.empty() ? at::zeros_like(cand_token, at::kBool) : at::isin(cand_token, eos);
      auto cand_stop = stops.empty() ? at::full_like(cand_token, -1)
                                     : stops.match(cand_seq.narrow(2, prompt_len, generated));
      auto is_stop = is_eos.logical_not().logical_and(cand_stop >= 0);
      auto hit = is_eos.logical_or(is_stop);
      auto cand_reason = at::full_like(cand_token, code(FinishReason::length));
      cand_reason.masked_fill_(is_eos, code(FinishReason::eos));
      cand_reason.masked_fill_(is_stop, code(FinishReason::stop_sequence));
      cand_stop.masked_fill_(is_stop.logical_not(), -1);
      const bool out_of_time = deadline.passed();
      if (out_of_time && cur + 1 < max_len) cand_reason.masked_fill_(hit.logical_not(), code(FinishReason::time));
      const bool last_step = cur + 1 >= max_len || out_of_time;

      // e. The next running beams: the best candidates not ended by a token, from all K. (On the
      // last step they go no further; they are what its step event shows.)
      auto [next_score, next_pick] = (cand_score + hit.to(at::kFloat) * kBlocked).topk(beams, 1);
      running_seq = cand_seq.gather(1, next_pick.unsqueeze(2).expand({batch, beams, cur + 1}));
      running_lp = cand_lp.gather(1, next_pick.unsqueeze(2).expand({batch, beams, generated}));
      running_score = next_score;
      auto parent = cand_beam.gather(1, next_pick);  // [B, nb]
      if (last_step) hit.fill_(true);  // the length limit or max_time ends every candidate

      // f. Finished hypotheses: only candidates ranked in the top nb can finish.
      auto new_done = hit.narrow(1, 0, beams);
      auto normalised = cand_score.narrow(1, 0, beams) / std::pow(static_cast<double>(generated), length_penalty);
      if (stop_when_full) normalised = normalised + finished.done.all(1, true).to(at::kFloat) * kBlocked;  // prompt is full
      normalised = normalised + can_improve.logical_not().to(at::kFloat) * kBlocked;
      normalised = normalised + new_done.logical_not().to(at::kFloat) * kBlocked;
      finished.merge(cand_seq.narrow(1, 0, beams), cand_lp.narrow(1, 0, beams), normalised, new_done,
                     at::full({batch, beams}, generated, longs), cand_reason.narrow(1, 0, beams), cand_stop.narrow(1, 0, beams));

      // g. Each surviving beam takes its parent's keys and values.
      auto parent_row = (row_offset + parent).view({rows});
      runner.reorder(parent_row);
      ++steps;

      // h. Early-stop heuristic (HF _check_early_stop_heuristic), sticky per prompt.
      const bool optimistic = config_.early_stopping == EarlyStopping::never && length_penalty > 0.0;
      const double best_length = optimistic ? static_cast<double>(max_new) : static_cast<double>(steps);
      auto best_running = running_score.narrow(1, 0, 1) / std::pow(best_length, length_penalty);
      auto worst_finished =
          at::where(finished.done, std::get<0>(finished.score.min(1, true)), at::full_like(finished.score, kBlocked));
      can_improve.logical_and_((best_running > worst_finished).any(1, true));

      auto prompt_done = can_improve.squeeze(1).logical_not();  // [B]
      if (stop_when_full) prompt_done.logical_or_(finished.done.all(1));
      if (last_step) prompt_done.fill_(true);
      auto all_done = prompt_done.all().logical_or(hit.all());
      bool done;
      if (on_step) {
        // The one host read per step: the running beams' new tokens and parent rows, which prompts
        // are done, and all_done.
        const std::vector<at::Tensor> host = runner.read({running_seq.select(2, cur), parent_row, prompt_done, all_done});
        streamed->append(host[0].data_ptr<int64_t>(), host[1].data_ptr<int64_t>());
        auto e = event(*streamed, host[2], beams, steps);
        on_step(e);
        if (e.stop_requested) {
          // The running beams of open prompts end here and compete with the finished hypotheses.
          auto score = running_score / std::pow(static_cast<double>(steps), length_penalty) +
                       prompt_done.unsqueeze(1).to(at::kFloat) * kBlocked;
          auto open = prompt_done.logical_not().unsqueeze(1).expand({batch, beams});
          finished.merge(running_seq, running_lp, score, open, at::full({batch, beams}, steps, longs),
                         at::full({batch, beams}, code(FinishReason::callback), longs), at::full({batch, beams}, -1, longs));
          break;
        }
        done = *host[3].data_ptr<int64_t>() != 0;
      } else {
        done = runner.read_flag(all_done);  // the one host read per step
      }
      if (done) break;
    }
    runner.read_flag(can_improve.any());  // NaN logits are an error, also after a callback stop

    const int64_t returned = config_.num_return_sequences;
    auto first = [&](const at::Tensor& t) { return t.narrow(1, 0, returned).reshape({batch * returned, -1}); };
    at::Tensor out_len = first(finished.len).view({-1});
    at::Tensor out_seq = first(finished.seq);
    const int64_t longest = out_len.max().item<int64_t>();
    GenerationResult result;
    result.hypotheses = detail::group_by_prompt(
        detail::collect_hypotheses(out_seq.narrow(1, prompt_len, steps), first(finished.lp), out_len,
                                   first(finished.score).view({-1}), first(finished.reason).view({-1}),
                                   first(finished.stop).view({-1})),
        returned);
    result.sequences = out_seq.narrow(1, 0, prompt_len + longest).to(at::kCPU);
    result.prompt_length = prompt_len;
    result.steps = steps;
    return result;
  }

  /// The event of a step: each prompt's best running beam (its beam 0) and prompt_done [B] (host).
  static StepEvent event(const detail::StreamedTokens& streamed, const at::Tensor& prompt_done, int64_t beams,
                         int64_t steps) {
    StepEvent e;
    e.step = steps - 1;
    auto done = prompt_done.accessor<int64_t, 1>();
    for (int64_t b = 0; b < done.size(0); ++b) {
      e.tokens.push_back(streamed.prefix(b * beams, steps));
      e.finished.push_back(done[b] != 0);
    }
    return e;
  }
};

}  // namespace lmdecode
