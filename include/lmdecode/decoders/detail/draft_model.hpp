#pragma once
// Drafts from a smaller model with the same vocabulary (transformers' AssistedCandidateGenerator):
// it decodes up to num_assistant_tokens tokens after each row, greedily or, when the generation
// samples, by sampling (each draft's distribution is kept for speculative sampling), with the same
// processors as the model. A row stops drafting after a draft whose probability is below
// assistant_confidence_threshold (that draft kept), or at its limit. The draft model keeps its own
// cache: what the model rejects is dropped from it as from the model's.

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/chosen_tokens.hpp"
#include "lmdecode/decoders/detail/decoding_loop.hpp"
#include "lmdecode/decoders/detail/drafts.hpp"
#include "lmdecode/decoders/detail/random_generator.hpp"
#include "lmdecode/decoders/detail/sampling_draws.hpp"
#include "lmdecode/decoders/detail/step_runner.hpp"
#include "lmdecode/logits/default_processors.hpp"

namespace lmdecode::detail {

template <CausalLM DraftModel>
class DraftModelDrafter {
 public:
  struct Shared {
    DraftModel* model = nullptr;
    int64_t draft_length = 0;  // drafts a step: the schedule's state (DraftSchedule::heuristic keeps it across calls)
    int64_t vocab = 0;         // the model's vocabulary, which the draft model must share (0: not known)
  };

  /// The heuristic schedules may grow the drafts to kMaxDrafts.
  static int64_t max_drafts(const GenerationConfig& config) {
    return config.num_assistant_tokens_schedule == DraftSchedule::constant ? config.num_assistant_tokens : kMaxDrafts;
  }

  DraftModelDrafter(const GenerationConfig& config, const LoopRows& loop, Shared& shared)
      : shared_(shared),
        schedule_(config.num_assistant_tokens_schedule),
        threshold_(config.assistant_confidence_threshold),
        sample_(config.do_sample),
        generator_(make_generator(config.seed ? std::optional<uint64_t>(*config.seed + 1) : std::nullopt, loop.batch.input_ids.device())),
        processors_(make_processors(config, loop.prompt_length, {})),
        runner_(*shared.model, loop.batch, loop.copies, loop.max_new_tokens, true, config.resolved_pad_token_id()),
        pad_(config.resolved_pad_token_id()),
        sequence_(loop.batch.input_ids.clone()),
        columns_(loop.prompt_length),
        synced_(static_cast<size_t>(loop.rows), 0) {
    if (schedule_ != DraftSchedule::heuristic || shared_.draft_length == 0) shared_.draft_length = config.num_assistant_tokens;
    // Each row's prompt counts as seen: the first forward feeds it (the cache is empty then).
    auto real = loop.batch.attention_mask.sum(1).to(at::kCPU);
    for (int64_t r = 0; r < loop.rows; ++r) synced_[r] = real[r].item<int64_t>();
  }

  Drafts draft(const DraftRequest& request) {
    const auto rows = static_cast<int64_t>(request.tokens.size());
    const int64_t most = std::min(shared_.draft_length, *std::max_element(request.limits.begin(), request.limits.end()));
    Drafts out{std::vector<TokenIds>(rows), {}};
    std::vector<std::vector<at::Tensor>> probs(rows);
    std::vector<bool> drafting(rows);
    for (int64_t r = 0; r < rows; ++r) drafting[r] = std::min(shared_.draft_length, request.limits[r]) > 0;
    drafted_.assign(rows, 0);
    at::Tensor scores = feed_unseen(request);
    fed_drafts_ = 0;
    for (int64_t i = 0; i < most; ++i) {
      const Choice choice = choose(scores);
      // One read: each row's token and its probability (token ids are exact in float64).
      const at::Tensor host = at::stack({choice.token.to(at::kDouble), choice.probability}).to(at::kCPU);
      for (int64_t r = 0; r < rows; ++r) {
        if (!drafting[r]) continue;
        out.tokens[r].push_back(static_cast<int64_t>(host[0][r].item<double>()));
        ++drafted_[r];
        if (sample_) probs[r].push_back(choice.distribution[r]);
        drafting[r] = i + 1 < std::min(shared_.draft_length, request.limits[r]) &&
                      host[1][r].item<double>() >= threshold_;
      }
      if (i + 1 == most || std::none_of(drafting.begin(), drafting.end(), [](bool d) { return d; })) break;
      scores = feed(choice.token.unsqueeze(1));
      ++fed_drafts_;
    }
    if (sample_)
      for (int64_t r = 0; r < rows; ++r)
        out.probs.push_back(probs[r].empty() ? at::Tensor() : at::stack(probs[r]));
    return out;
  }

  /// Of each row's drafts, the model kept `counts[r]`: the draft model keeps those it fed, and the
  /// schedule adapts the number of drafts (all kept: 2 more, else 1 fewer, as transformers).
  void accepted(const std::vector<int64_t>& counts) {
    std::vector<int64_t> kept(counts.size());
    for (size_t r = 0; r < counts.size(); ++r) {
      kept[r] = std::min(counts[r], fed_drafts_);
      synced_[r] += kept[r];
    }
    if (fed_drafts_ > 0) columns_ = runner_.drop_unkept(fed_drafts_, at::tensor(kept, sequence_.options()));
    if (schedule_ == DraftSchedule::constant) return;
    bool all = true;
    for (size_t r = 0; r < counts.size(); ++r) all = all && counts[r] == drafted_[r];
    shared_.draft_length = all ? std::min(shared_.draft_length + 2, kMaxDrafts) : std::max<int64_t>(shared_.draft_length - 1, 1);
  }

  int64_t forwards() const { return forwards_; }

  static std::string vocabulary_mismatch(int64_t draft, int64_t model) {
    return fmt::format("the draft model's vocabulary has {} tokens, the model's {}: they must share one", draft, model);
  }

 private:
  Shared& shared_;
  DraftSchedule schedule_;
  double threshold_;
  bool sample_;
  at::Generator generator_;
  LogitsProcessorList processors_;
  StepRunner<DraftModel> runner_;
  int64_t pad_;
  at::Tensor sequence_;  // [rows, capacity]: the draft model's history, column-aligned with its cache
  int64_t columns_;
  std::vector<int64_t> synced_;  // per row: its tokens (prompt without padding, new ones) the history holds
  int64_t fed_drafts_ = 0;       // drafts fed at the last draft() (each row keeps at most this many)
  std::vector<int64_t> drafted_;  // per row: its drafts at the last draft()
  int64_t forwards_ = 0;

  struct Choice {
    at::Tensor token;         // [rows] int64
    at::Tensor probability;   // [rows] float64: the token's probability
    at::Tensor distribution;  // [rows, vocab]: what it was drawn from (sampling only)
  };

  Choice choose(const at::Tensor& scores) {
    auto probs = scores.softmax(-1);
    auto token = sample_ ? draw_from_probabilities(probs, 1, generator_).index.squeeze(1) : first_max_index(scores).squeeze(1);
    auto probability = probs.gather(1, token.unsqueeze(1)).squeeze(1).to(at::kDouble);
    return {token, probability, sample_ ? probs : at::Tensor()};
  }

  /// Feeds each row the tokens its history lacks (the model's newest token, and the last draft
  /// where the model kept every draft fed before), and returns the processed scores after them.
  at::Tensor feed_unseen(const DraftRequest& request) {
    const auto rows = static_cast<int64_t>(request.tokens.size());
    std::vector<int64_t> unseen(rows, 1);
    for (int64_t r = 0; r < rows; ++r)
      if (request.limits[r] > 0) unseen[r] = static_cast<int64_t>(request.tokens[r].size()) - synced_[r];
    const int64_t width = *std::max_element(unseen.begin(), unseen.end());
    auto block = at::full({rows, width}, pad_, at::kLong);
    for (int64_t r = 0; r < rows; ++r) {
      if (request.limits[r] == 0) continue;
      for (int64_t j = 0; j < unseen[r]; ++j) block[r][j] = request.tokens[r][synced_[r] + j];
      synced_[r] += unseen[r];
    }
    at::Tensor logits = feed(block.to(sequence_.device()), width);
    if (width == 1) return logits;
    // Row r's scores follow its last unseen token; the pads after it become holes.
    columns_ = runner_.drop_unkept(width, at::tensor(unseen, sequence_.options()));
    auto index = at::tensor(unseen, sequence_.options()).sub(1).view({rows, 1, 1}).expand({rows, 1, logits.size(2)});
    auto scores = logits.gather(1, index).squeeze(1);
    runner_.process(processors_, sequence_, columns_, scores);
    return scores;
  }

  /// Appends `block` ([rows, width]) to the history and runs the draft model on it: the processed
  /// float32 scores after its last column ([rows, vocab]), or with width > 1 the raw logits after
  /// each ([rows, width, vocab], processed by the caller once holes are known).
  at::Tensor feed(const at::Tensor& block, int64_t width = 1) {
    if (columns_ + width > sequence_.size(1))
      sequence_ = at::cat({sequence_, at::full({sequence_.size(0), std::max(sequence_.size(1), width)}, pad_, sequence_.options())}, 1);
    sequence_.narrow(1, columns_, width).copy_(block);
    columns_ += width;
    const auto history = sequence_.narrow(1, 0, columns_);
    at::Tensor logits = runner_.next_logits(history, width);
    ++forwards_;
    check(shared_.vocab == 0 || logits.size(-1) == shared_.vocab, "{}", vocabulary_mismatch(logits.size(-1), shared_.vocab));
    if (width == 1) runner_.process(processors_, history, columns_, logits);
    return logits;
  }
};

}  // namespace lmdecode::detail
