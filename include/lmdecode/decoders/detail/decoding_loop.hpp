#pragma once
// DecodingLoop: the one loop every decoding strategy runs in. It owns what does not depend on how
// tokens are chosen:
//   setup      the rows (each prompt `copies` times in a row), the processors, the model runner, the
//              end rules (EOS ids, stop sequences, stop strings), the deadline;
//   each step  the forward, the processed scores of each fed position, the strategy's choice, the
//              cache reorder (beams) or the dropped positions (a strategy that keeps fewer tokens
//              than it fed), the step's one device read, the callback and committed streaming;
//   the end    NaN logits are an error; the strategy's finished rows become the GenerationResult.
// A strategy (token_strategy.hpp: greedy and sampling; beam_strategy.hpp: beam search and beam
// sampling) only chooses, from the scores it is given, what each row takes next; its interface is
// `DecodingStrategy` below. The rules both follow are DECODING_RULES.md §1-§5
// (tests/data/hf-reference/).

#include <ATen/ATen.h>

#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/committed_tokens.hpp"
#include "lmdecode/decoders/detail/deadline.hpp"
#include "lmdecode/decoders/detail/end_rules.hpp"
#include "lmdecode/decoders/detail/hypotheses.hpp"
#include "lmdecode/decoders/detail/padded_batch.hpp"
#include "lmdecode/decoders/detail/step_runner.hpp"
#include "lmdecode/decoders/detail/streamed_tokens.hpp"
#include "lmdecode/detail/memory_budget.hpp"
#include "lmdecode/logits/default_processors.hpp"
#include "lmdecode/model.hpp"
#include "lmdecode/result.hpp"
#include "lmdecode/streaming.hpp"

namespace lmdecode::detail {

/// What a strategy is given to start: every row of the loop, and its bounds.
struct LoopRows {
  PaddedBatch batch;       // [rows, L0]: each prompt `copies` times in a row (row p * copies + i is copy i of prompt p)
  int64_t prompts = 0;
  int64_t copies = 1;
  int64_t rows = 0;
  int64_t prompt_length = 0;   // L0, the padded prompt length
  int64_t max_new_tokens = 0;  // new tokens a row may take
  at::TensorOptions longs() const { return batch.input_ids.options(); }
  at::TensorOptions floats() const { return longs().dtype(at::kFloat); }
};

/// What a strategy is given at each step.
struct StepInput {
  /// The processed float32 scores [rows, vocab] of each position this step fed, in order: the one
  /// after fed position j is scores[j] (one entry unless the strategy appended several tokens).
  /// Logits, or log-probs where the strategy asks (kLogProbs), after the processors.
  const std::vector<at::Tensor>& scores;
  int64_t step;            // 0-based: the prefill's step is 0
  bool out_of_time;        // config.max_time has run out
  bool streaming;          // a callback will be shown the outcome's `view`
  const EndRules& ends;    // how a row's newest token ends it
};

/// What a step's callback is shown. Shown row i is row i * stride (greedy: every row; beam search:
/// each prompt's best running beam).
struct StepView {
  int64_t step = 0;    // 0-based index of the step
  at::Tensor tokens;   // [rows] int64: each row's token of this step; with `counts`, [rows, width] its tokens
  at::Tensor counts;   // [rows] int64: how many tokens of `tokens` each row took (undefined: one each)
  at::Tensor parents;  // [rows] int64: the row each row continues (beam search), undefined if itself
  at::Tensor lengths;  // [shown] int64: tokens each shown row keeps, undefined if step + 1
  at::Tensor running;  // [shown] bool: the shown row (greedy) or its prompt's search (beam) goes on
  int64_t stride = 1;
  at::Tensor finished_merge;  // beam search: the step's merge, packed (FinishedMerge, committed_tokens.hpp)
};

/// A bool scalar on the device that tells whether to go on; read with the step's one device read.
struct StopFlag {
  at::Tensor value;       // undefined: nothing to read (the strategy knows the end on the host)
  bool stop_when = true;  // the loop ends when value == stop_when
};

/// What a strategy decided at a step.
struct StepOutcome {
  /// Tokens each row appended to its history (`history()`) for the next forward to feed, 1 or more;
  /// the next step scores each of them.
  int64_t appended = 1;
  /// [rows] int64: of the positions this step fed, how many each row keeps; the cache drops the
  /// rest (their keys become masked holes, later positions continue from the kept ones). What every
  /// row drops at the end is removed: the `appended` tokens then sit in the history from column
  /// first + max(kept) on, `first` the first column this step fed (StepRunner::drop_unkept).
  /// Undefined: all.
  at::Tensor kept;
  at::Tensor parents;     // [rows] int64: the row each row continues (beam search); undefined: itself
  at::Tensor undrawable;  // bool scalar: a sampled row had nothing to draw (an error at the next read)
  bool last = false;      // known on the host: no step follows
  StopFlag stop;
  StepView view;          // only when streaming
};

/// The interface of a decoding strategy (see the strategies named at the top of this file).
template <class S>
concept DecodingStrategy = requires(S& s, const StepInput& input, int64_t steps, const std::vector<at::Tensor>& scores) {
  { S::kLogProbs } -> std::convertible_to<bool>;  // processors see log-probs (beam search), else logits
  { s.history() } -> std::convertible_to<at::Tensor>;  // [rows, columns]: column-aligned with the cache
  { s.step(input) } -> std::same_as<StepOutcome>;
  s.stop_on_callback(steps);                           // the callback asked to stop after `steps` steps
  { s.finish(steps, scores) } -> std::same_as<FinishedRows>;  // `scores`: each step's, with output_scores
};

/// New tokens allowed after the padded prompt (the config is validated by the decoder).
inline int64_t checked_max_new_tokens(const GenerationConfig& config, int64_t prompt_length) {
  const int64_t max_new = config.resolved_max_new_tokens(prompt_length);
  check(max_new >= 1, "the padded prompt ({} tokens) leaves no room under max_length ({})", prompt_length,
        config.max_length.value_or(prompt_length + max_new));
  return max_new;
}

/// The rows of one generate() call: each of `prompts` `copies` times. On the CPU, the bytes they take
/// at once are checked against what the process may still use before anything is allocated: each
/// row's step buffers over its first positions (tokens, mask, positions, a beam's candidates: a few
/// int64 each), its scores over the vocabulary for each of the `scored` positions a step scores
/// (logits, log-probs, processed, a beam's totals and the copies kept while a step runs: six float32
/// each) and its KV cache, where the model says what a position costs.
template <CausalLM Model>
LoopRows checked_rows(Model& model, const GenerationConfig& config, const PaddedBatch& prompts, int64_t copies,
                      int64_t scored = 1) {
  const int64_t count = prompts.input_ids.size(0), prompt_length = prompts.input_ids.size(1);
  const int64_t max_new = checked_max_new_tokens(config, prompt_length);
  const double rows = static_cast<double>(count) * static_cast<double>(copies);
  const int64_t positions = prompt_length + std::min(max_new, kFirstNewTokenChunk) + scored - 1;
  double per_row = static_cast<double>(positions) * 8 * 8;
  if constexpr (requires { model.config().vocab_size; })
    per_row += static_cast<double>(model.config().vocab_size) * 4 * 6 * static_cast<double>(scored);
  if constexpr (requires { model.kv_bytes_per_position(); }) per_row += static_cast<double>(positions * model.kv_bytes_per_position());
  if constexpr (requires { model.position_limit(); }) {
    const auto limit = model.position_limit();
    check(!limit.hard || prompt_length + max_new - 1 <= limit.positions,
          "the padded prompt ({} tokens) and max_new_tokens ({}) reach position {}, past the model's {} positions",
          prompt_length, max_new, prompt_length + max_new - 1, limit.positions);
  }
  if (const auto room = model.device().is_cpu() ? available_memory_bytes() : std::nullopt)
    check(rows * per_row <= static_cast<double>(*room),
          "{} prompts x {} rows each (beams or sequences) of {} positions, {} scored a step, need about {:.0f} MiB at once, "
          "more than the {} MiB this process may still use: lower num_beams or num_return_sequences, the drafts a step, "
          "or the prompts' count or length",
          count, copies, positions, scored, rows * per_row / (1 << 20), *room >> 20);
  return {prompts.repeated(copies), count, copies, count * copies, prompt_length, max_new};
}

template <CausalLM Model>
class DecodingLoop {
 public:
  /// One generate() call on `prompts`, each decoded as `copies` rows (its beams, or its sampled
  /// sequences), scoring up to `scored` positions a row a step (speculative decoding's drafts);
  /// with `kept_cache`, continuing it (StepRunner).
  DecodingLoop(Model& model, const GenerationConfig& config, const LogitsProcessorList& user_processors,
               const PaddedBatch& prompts, int64_t copies, const StepCallback& on_step,
               typename Model::Cache* kept_cache = nullptr, int64_t scored = 1)
      : rows_(checked_rows(model, config, prompts, copies, scored)),
        deadline_(config.max_time),
        processors_(make_processors(config, rows_.prompt_length, user_processors)),
        runner_(model, rows_.batch, copies, rows_.max_new_tokens, config.use_cache, config.resolved_pad_token_id(),
                kept_cache),
        ends_(config, rows_.batch.input_ids.device(), rows_.prompt_length),
        on_step_(on_step),
        output_scores_(config.output_scores),
        output_logits_(config.output_logits),
        grammar_(config.grammar) {
    if (on_step_) streamed_.emplace(rows_.rows);
    if constexpr (requires { model.position_limit(); }) trained_positions_ = model.position_limit().positions;
  }

  const LoopRows& rows() const { return rows_; }

  /// Runs `strategy` to the end: each step one forward, the strategy's choice and one device read.
  template <DecodingStrategy Strategy>
  GenerationResult run(Strategy& strategy) {
    int64_t steps = 0, fed = 1;  // positions the next forward scores (the prefill: the last one)
    for (bool done = false; !done;) {
      const std::vector<at::Tensor> scores = next_scores(strategy.history(), fed, Strategy::kLogProbs);
      StepOutcome out = strategy.step({scores, steps, deadline_.passed(), streaming(), ends_});
      ++steps;
      if (out.undrawable.defined()) runner_.note_undrawable(out.undrawable);
      if (out.parents.defined()) runner_.reorder(out.parents);
      if (out.kept.defined()) runner_.drop_unkept(fed, out.kept);
      fed = out.appended;
      done = out.last;
      if (streaming()) {
        const StepRead read = read_step(out.view, out.stop.value);
        if (read.stop_requested) strategy.stop_on_callback(steps);
        done = done || read.stop_requested || !read.any_running || (out.stop.value.defined() && read.flag == out.stop.stop_when);
      } else if (!done && out.stop.value.defined()) {
        done = runner_.read_flag(out.stop.value) == out.stop.stop_when;
      }
    }
    runner_.read({});  // NaN logits (or a row with nothing to draw) are an error, also where no step read them
    const FinishedRows finished = strategy.finish(steps, step_scores_);
    auto result = assemble_result(finished, rows_.prompt_length, steps);
    result.scores = by_token(std::move(step_scores_), finished.token_positions);
    result.logits = by_token(std::move(step_logits_), finished.token_positions);
    result.cache_bytes = runner_.cache_bytes();
    if (grammar_) mark_grammar_dead_ends(*grammar_, result);
    if (trained_positions_ > 0 && runner_.columns_fed() > trained_positions_)
      result.warnings.push_back(fmt::format("the sequence reached {} positions, past the {} the model has "
                                            "(max_position_embeddings): it runs on, as transformers lets it, untrained there",
                                            runner_.columns_fed(), trained_positions_));
    return result;
  }

 private:
  /// What the step's one device read brought back.
  struct StepRead {
    bool flag = false;            // the value of the flag read with the step
    bool any_running = false;     // some shown row still runs
    bool stop_requested = false;  // the callback asked to end the generation now
  };

  LoopRows rows_;
  Deadline deadline_;
  LogitsProcessorList processors_;
  StepRunner<Model> runner_;
  EndRules ends_;
  StepCallback on_step_;
  std::optional<StreamedTokens> streamed_;  // the callback's tokens, kept on the host
  bool output_scores_, output_logits_;
  std::vector<at::Tensor> step_scores_, step_logits_;
  std::optional<CommittedBeamTokens> committed_;  // beam search's committed prefix, with a callback
  std::vector<size_t> shown_;                     // greedy and sampling: tokens committed per row
  int64_t trained_positions_ = 0;                 // the model's max_position_embeddings where it says, else 0
  std::shared_ptr<const TokenGrammar> grammar_;   // config.grammar, to name its dead ends in the result

  bool streaming() const { return static_cast<bool>(on_step_); }

  /// Float32 scores [rows, vocab] of each of the `positions` last positions of `history` ([rows, cur]):
  /// the logits, or their log-softmax with `log_probs`, then the processors, each position's on the
  /// history up to it (§2, §3.2a). With output_scores / output_logits each one is kept.
  std::vector<at::Tensor> next_scores(const at::Tensor& history, int64_t positions, bool log_probs) {
    const at::Tensor logits = runner_.next_logits(history, positions);
    const int64_t cur = history.size(1);
    std::vector<at::Tensor> scores;
    for (int64_t j = 0; j < positions; ++j) {
      at::Tensor position_logits = positions == 1 ? logits : logits.select(1, j);
      if (output_logits_) step_logits_.push_back(position_logits.clone());
      at::Tensor processed = log_probs ? position_logits.log_softmax(-1) : position_logits;
      runner_.process(processors_, history, cur - positions + 1 + j, processed);
      if (output_scores_) step_scores_.push_back(processed.clone());
      scores.push_back(processed);
    }
    return scores;
  }

  /// Each fed position's [rows, vocab] tensors, `kept`, rearranged by token where `positions`
  /// ([rows, tokens] int64, from a strategy that took several tokens a step) says which fed position
  /// chose each row's token t (-1 past the row's end, where the row gets -inf); else as they are.
  static std::vector<at::Tensor> by_token(std::vector<at::Tensor> kept, const at::Tensor& positions) {
    if (!positions.defined() || kept.empty()) return kept;
    const int64_t rows = positions.size(0);
    const auto all = at::stack(kept, 0).view({-1, kept.front().size(1)});  // [fed positions x rows, vocab]
    const auto on_device = positions.to(all.device());
    const auto row = at::arange(rows, on_device.options());
    std::vector<at::Tensor> tokens;
    for (int64_t t = 0; t < positions.size(1); ++t) {
      const auto at_t = on_device.select(1, t);
      auto scores = all.index_select(0, at_t.clamp_min(0) * rows + row);
      tokens.push_back(scores.masked_fill(at_t.lt(0).unsqueeze(1), -std::numeric_limits<float>::infinity()));
    }
    return tokens;
  }

  /// The step's one device read with a callback: `view`, and `flag` where defined, in one copy;
  /// then the step's event goes to the callback.
  StepRead read_step(const StepView& view, const at::Tensor& flag) {
    std::vector<at::Tensor> values{view.tokens, view.running};
    for (const auto* t : {&view.counts, &view.parents, &view.lengths, &view.finished_merge, &flag})
      if (t->defined()) values.push_back(*t);
    const std::vector<at::Tensor> host = runner_.read(values);
    size_t next = 2;
    auto take = [&](const at::Tensor& t) { return t.defined() ? host[next++].data_ptr<int64_t>() : nullptr; };
    const int64_t* counts = take(view.counts);
    const int64_t* parents = take(view.parents);
    const int64_t* lengths = take(view.lengths);
    const int64_t* merge = take(view.finished_merge);
    StepRead read;
    if (flag.defined()) read.flag = *host[next].data_ptr<int64_t>() != 0;
    const int64_t shown = host[1].size(0);
    if (merge) {
      const FinishedMerge m = FinishedMerge::unpack(merge, view.finished_merge.numel(), shown, view.stride);
      if (!committed_) committed_.emplace(shown, view.stride, m.kept);
      committed_->merge_finished(*streamed_, m);
    }
    if (parents) streamed_->append(host[0].data_ptr<int64_t>(), parents);
    else if (counts) streamed_->append(host[0].data_ptr<int64_t>(), view.tokens.size(1), counts);
    else streamed_->append(host[0].data_ptr<int64_t>());
    StepEvent event;
    event.step = view.step;
    const auto running = host[1].accessor<int64_t, 1>();
    for (int64_t i = 0; i < shown; ++i) {
      event.tokens.push_back(streamed_->prefix(i * view.stride, lengths ? lengths[i] : view.step + 1));
      event.finished.push_back(running[i] == 0);
      read.any_running = read.any_running || running[i] != 0;
    }
    event.committed = merge ? committed_->commit(*streamed_, [&] {
      std::vector<bool> open;
      for (bool f : event.finished) open.push_back(!f);
      return open;
    }()) : newly_shown(event.tokens);
    on_step_(event);
    read.stop_requested = event.stop_requested;
    return read;
  }

  /// Greedy and sampling: each shown row's tokens not shown before (a token is final once chosen).
  std::vector<TokenIds> newly_shown(const std::vector<TokenIds>& tokens) {
    shown_.resize(tokens.size(), 0);
    std::vector<TokenIds> fresh(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      fresh[i].assign(tokens[i].begin() + static_cast<std::ptrdiff_t>(std::min(shown_[i], tokens[i].size())), tokens[i].end());
      shown_[i] = std::max(shown_[i], tokens[i].size());
    }
    return fresh;
  }
};

}  // namespace lmdecode::detail
