#pragma once
// DecodingLoop: what the two decoding loops share, written once. The token loop (greedy and
// sampling, token_loop.hpp) and beam search (beam_search.hpp) each own a DecodingLoop for one
// generate() call and run their own steps with it:
//   setup      the rows (each prompt `copies` times in a row), the lengths, the processors, the
//              model runner, the stop sequences, the EOS ids, the deadline, the callback's tokens;
//   each step  next_scores() -> the strategy picks tokens -> classify_ends() -> read_step() or
//              read_flag(), the step's one device-to-host read;
//   the end    finish() (NaN logits are an error) and assemble_result() (hypotheses.hpp).
// The rules both follow are DECODING_RULES.md §1-§5 (tests/data/hf-reference/).

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/committed_tokens.hpp"
#include "lmdecode/decoders/detail/deadline.hpp"
#include "lmdecode/decoders/detail/padded_batch.hpp"
#include "lmdecode/decoders/detail/step_runner.hpp"
#include "lmdecode/decoders/detail/stop_sequences.hpp"
#include "lmdecode/decoders/detail/stop_strings.hpp"
#include "lmdecode/decoders/detail/streamed_tokens.hpp"
#include "lmdecode/logits/default_processors.hpp"
#include "lmdecode/model.hpp"
#include "lmdecode/result.hpp"
#include "lmdecode/streaming.hpp"

namespace lmdecode::detail {

/// New tokens allowed after the padded prompt; validates the config first.
inline int64_t checked_max_new_tokens(const GenerationConfig& config, int64_t prompt_length) {
  validate(config);
  const int64_t max_new = config.resolved_max_new_tokens(prompt_length);
  check(max_new >= 1, "the padded prompt ({} tokens) leaves no room under max_length ({})", prompt_length,
        config.max_length.value_or(prompt_length + max_new));
  return max_new;
}

/// Which rows end with their newest token, and why: an EOS id first, else a stop sequence or string.
struct RowEnds {
  at::Tensor eos;      // bool: ended by an EOS id
  at::Tensor stop;     // bool: ended by a stop sequence or string (and not by an EOS id)
  at::Tensor ended;    // bool: eos or stop
  at::Tensor matched;  // int64: the first stop sequence the row ends with, else stop_sequences.size() + the
                       // first stop string, -1 if none (EOS rows too)
};

/// What a step's callback is shown. Shown row i is row i * stride (greedy: every row; beam search:
/// each prompt's best running beam).
struct StepView {
  at::Tensor tokens;   // [rows] int64: each row's token of this step
  at::Tensor parents;  // [rows] int64: the row each row continues (beam search), undefined if itself
  at::Tensor lengths;  // [shown] int64: tokens each shown row keeps, undefined if all of them
  at::Tensor running;  // [shown] bool: the shown row (greedy) or its prompt's search (beam) goes on
  int64_t stride = 1;
  at::Tensor finished_merge;  // beam search: the step's FinishedMerge flat (committed_tokens.hpp), int64
};

/// What the step's one device read brought back.
struct StepRead {
  bool flag = false;            // the value of the flag read with the step
  bool any_running = false;     // some shown row still runs
  bool stop_requested = false;  // the callback asked to end the generation now
};

template <CausalLM Model>
class DecodingLoop {
 public:
  /// One generate() call on `prompts`, each decoded as `copies` rows (its beams, or its sampled
  /// sequences; row p * copies + i is copy i of prompt p); with `kept_cache`, continuing it (StepRunner).
  DecodingLoop(Model& model, const GenerationConfig& config, const LogitsProcessorList& user_processors,
               const PaddedBatch& prompts, int64_t copies, const StepCallback& on_step,
               typename Model::Cache* kept_cache = nullptr)
      : batch_(prompts.repeated(copies)),
        rows_(batch_.input_ids.size(0)),
        prompt_length_(batch_.input_ids.size(1)),
        max_new_tokens_(checked_max_new_tokens(config, prompt_length_)),
        deadline_(config.max_time),
        processors_(make_processors(config, prompt_length_, user_processors)),
        runner_(model, batch_, copies, max_new_tokens_, config.use_cache, config.resolved_pad_token_id(), kept_cache),
        stops_(config.stop_sequences, batch_.input_ids.device()),
        stop_strings_(config.stop_strings, config.token_texts, batch_.input_ids.device()),
        eos_(at::tensor(config.eos_token_ids, longs())),
        on_step_(on_step),
        output_scores_(config.output_scores),
        output_logits_(config.output_logits) {
    if (on_step_) streamed_.emplace(rows_);
  }

  const PaddedBatch& batch() const { return batch_; }
  int64_t rows() const { return rows_; }
  int64_t prompt_length() const { return prompt_length_; }
  int64_t max_new_tokens() const { return max_new_tokens_; }
  at::TensorOptions longs() const { return batch_.input_ids.options(); }
  at::TensorOptions floats() const { return longs().dtype(at::kFloat); }
  bool has_stop_sequences() const { return !stops_.empty() || !stop_strings_.empty(); }
  bool has_eos() const { return eos_.numel() > 0; }
  bool streaming() const { return static_cast<bool>(on_step_); }
  bool out_of_time() const { return deadline_.passed(); }
  StepRunner<Model>& runner() { return runner_; }

  /// Float32 scores [rows, vocab] of each row's next token after `history` ([rows, cur]): the
  /// logits, or their log-softmax with `log_probs` (beam search), then the processors (§2, §3.2a).
  /// With output_scores / output_logits each step's scores / logits are kept (move_step_outputs).
  at::Tensor next_scores(const at::Tensor& history, bool log_probs) {
    at::Tensor logits = runner_.next_logits(history);
    if (output_logits_) step_logits_.push_back(logits.clone());
    at::Tensor scores = log_probs ? logits.log_softmax(-1) : logits;
    processors_.apply(history, scores);
    if (output_scores_) step_scores_.push_back(scores.clone());
    return scores;
  }

  /// Each step's processed scores kept so far, [rows, vocab] each (output_scores).
  const std::vector<at::Tensor>& step_scores() const { return step_scores_; }

  /// Hands the kept scores and logits, and the cache's size, to `result`.
  void move_step_outputs(GenerationResult& result) {
    result.scores = std::move(step_scores_);
    result.logits = std::move(step_logits_);
    result.cache_bytes = runner_.cache_bytes();
  }

  /// How rows whose newest token is `token` end (§5). `sequence` ([..., >= L0 + generated]) holds
  /// each row's padded prompt, then its `generated` tokens, that token last; a stop sequence must lie
  /// within the generated ones. Where `live` (bool) is given, only live rows can end.
  RowEnds classify_ends(const at::Tensor& token, const at::Tensor& sequence, int64_t generated,
                        const at::Tensor& live = {}) const {
    auto only_live = [&](const at::Tensor& t) { return live.defined() ? live.logical_and(t) : t; };
    RowEnds ends;
    ends.eos = only_live(has_eos() ? at::isin(token, eos_) : at::zeros_like(token, at::kBool));
    ends.matched = stops_.empty() ? at::full_like(token, -1)
                                  : stops_.match(sequence.narrow(-1, prompt_length_, generated));
    if (!stop_strings_.empty()) {  // numbered after the stop sequences
      auto string_hit = stop_strings_.match(sequence.narrow(-1, 0, prompt_length_ + generated));
      ends.matched = at::where(ends.matched.ge(0).logical_or(string_hit.lt(0)), ends.matched,
                               string_hit + stops_.size());
    }
    ends.stop = only_live(ends.eos.logical_not()).logical_and(ends.matched >= 0);
    ends.ended = ends.eos.logical_or(ends.stop);
    return ends;
  }

  /// The step's one device read without a callback: a bool scalar `flag` (and the error flags).
  bool read_flag(const at::Tensor& flag) { return runner_.read_flag(flag); }

  /// The step's one device read with a callback: `view`, and `flag` where defined, in one copy;
  /// then the step's event goes to the callback. `steps` counts the steps done, this one included.
  StepRead read_step(int64_t steps, const StepView& view, const at::Tensor& flag = {}) {
    std::vector<at::Tensor> values{view.tokens, view.running};
    for (const auto* t : {&view.parents, &view.lengths, &view.finished_merge, &flag})
      if (t->defined()) values.push_back(*t);
    const std::vector<at::Tensor> host = runner_.read(values);
    size_t next = 2;
    auto take = [&](const at::Tensor& t) { return t.defined() ? host[next++].data_ptr<int64_t>() : nullptr; };
    const int64_t* parents = take(view.parents);
    const int64_t* lengths = take(view.lengths);
    const int64_t* merge = take(view.finished_merge);
    StepRead read;
    if (flag.defined()) read.flag = *host[next].data_ptr<int64_t>() != 0;
    const int64_t shown = host[1].size(0);
    if (merge) record_finished_merge(merge, shown, view.stride, view.finished_merge.numel());
    if (parents) streamed_->append(host[0].data_ptr<int64_t>(), parents);
    else streamed_->append(host[0].data_ptr<int64_t>());
    StepEvent event;
    event.step = steps - 1;
    const auto running = host[1].accessor<int64_t, 1>();
    for (int64_t i = 0; i < shown; ++i) {
      event.tokens.push_back(streamed_->prefix(i * view.stride, lengths ? lengths[i] : steps));
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

  /// Ends the loop: NaN logits (or a row with nothing to draw) are an error, also where no step read them.
  void finish() { runner_.read({}); }

 private:
  PaddedBatch batch_;
  int64_t rows_;
  int64_t prompt_length_;
  int64_t max_new_tokens_;
  Deadline deadline_;
  LogitsProcessorList processors_;
  StepRunner<Model> runner_;
  StopSequenceMatcher stops_;
  StopStringMatcher stop_strings_;
  at::Tensor eos_;  // [E] int64
  const StepCallback& on_step_;
  std::optional<StreamedTokens> streamed_;  // the callback's tokens, kept on the host
  bool output_scores_, output_logits_;
  std::vector<at::Tensor> step_scores_, step_logits_;
  std::optional<CommittedBeamTokens> committed_;  // beam search's committed prefix, with a callback
  std::vector<size_t> shown_;                     // greedy and sampling: tokens committed per row

  /// Beam search: the step's finished-hypothesis merge (`size` int64 values, for `prompts` prompts
  /// of `beams` beams) goes into the committed prefix, before the rows take this step's tokens.
  void record_finished_merge(const int64_t* merge, int64_t prompts, int64_t beams, int64_t size) {
    const int64_t kept = (size - 2 * prompts * beams) / (2 * prompts);
    if (!committed_) committed_.emplace(prompts, beams, kept);
    const int64_t candidates = prompts * beams;
    committed_->merge_finished(*streamed_, {merge, merge + candidates, merge + 2 * candidates,
                                            merge + 2 * candidates + prompts * kept, kept});
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
