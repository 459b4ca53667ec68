// The decoding loop's strategy interface beyond one token a step: a strategy that feeds several
// tokens per row in one forward and keeps a different number of them per row.

#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "lmdecode/lmdecode.hpp"
#include "support/test_data.hpp"

namespace {

using lmdecode::TokenIds;
using lmdecode::detail::FinishedRows;
using lmdecode::detail::LoopRows;
using lmdecode::detail::StepInput;
using lmdecode::detail::StepOutcome;

/// Feeds each row its `targets`, `chunk` tokens a forward, and records each target's log-prob. Of
/// each chunk row r is fed keep[r] targets then `filler` (a rejected draft), and keeps the targets
/// only: the fillers are dropped (holes, or removed where every row drops them), and the next chunk
/// goes on from the last kept target.
class ForcedChunks {
 public:
  static constexpr bool kLogProbs = true;

  ForcedChunks(const LoopRows& loop, std::vector<TokenIds> targets, int64_t chunk, std::vector<int64_t> keep, int64_t filler)
      : loop_(loop), targets_(std::move(targets)), chunk_(chunk), keep_(std::move(keep)), filler_(filler),
        kept_(loop.rows, 0), logprobs_(loop.rows) {
    const int64_t room = static_cast<int64_t>(targets_.front().size() + 1) * chunk_;
    sequence_ = at::zeros({loop.rows, loop.prompt_length + room}, loop.longs());
    sequence_.narrow(1, 0, loop.prompt_length).copy_(loop.batch.input_ids);
    columns_ = loop.prompt_length;
  }

  at::Tensor history() const { return sequence_.narrow(1, 0, columns_); }

  StepOutcome step(const StepInput& in) {
    const int64_t length = static_cast<int64_t>(targets_.front().size());
    std::vector<int64_t> kept_now(loop_.rows, 0);
    for (int64_t r = 0; r < loop_.rows; ++r) {
      if (in.step == 0) {  // the prefill scores the first target
        logprobs_[r].push_back(score(in.scores[0], r, 0));
        continue;
      }
      // Fed position j holds target kept + j and scores the one after it.
      kept_now[r] = std::min(keep_[r], length - 1 - kept_[r]);
      for (int64_t j = 0; j < kept_now[r]; ++j) logprobs_[r].push_back(score(in.scores[j], r, kept_[r] + j + 1));
      kept_[r] += kept_now[r];
    }
    StepOutcome out{.appended = chunk_,
                    .last = std::all_of(kept_.begin(), kept_.end(), [&](int64_t k) { return k == length - 1; })};
    if (in.step > 0) {
      out.kept = at::tensor(kept_now, loop_.longs());
      // What every row dropped at the end is removed: the next chunk goes after the last kept position.
      columns_ -= chunk_ - *std::max_element(kept_now.begin(), kept_now.end());
    }
    for (int64_t r = 0; r < loop_.rows; ++r)
      for (int64_t j = 0; j < chunk_; ++j) {
        const int64_t t = kept_[r] + j;
        sequence_[r][columns_ + j] = j < keep_[r] && t < length ? targets_[r][t] : filler_;
      }
    columns_ += chunk_;
    return out;
  }

  void stop_on_callback(int64_t) {}

  FinishedRows finish(int64_t, const std::vector<at::Tensor>&) const {
    const int64_t rows = loop_.rows, length = static_cast<int64_t>(targets_.front().size());
    auto sequences = at::zeros({rows, loop_.prompt_length + length}, loop_.longs());
    auto logprobs = at::zeros({rows, length}, at::kDouble);
    sequences.narrow(1, 0, loop_.prompt_length).copy_(loop_.batch.input_ids);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < length; ++t) {
        sequences[r][loop_.prompt_length + t] = targets_[r][t];
        logprobs[r][t] = logprobs_[r].at(t);
      }
    return {.sequences = sequences,
            .logprobs = logprobs,
            .lengths = at::full({rows}, length, loop_.longs()),
            .scores = logprobs.sum(1),
            .reasons = at::full({rows}, lmdecode::detail::reason_code(lmdecode::FinishReason::length), loop_.longs()),
            .stops = at::full({rows}, -1, loop_.longs())};
  }

 private:
  const LoopRows& loop_;
  std::vector<TokenIds> targets_;
  int64_t chunk_;
  std::vector<int64_t> keep_;  // per row: targets fed in a chunk
  int64_t filler_;
  std::vector<int64_t> kept_;  // per row: targets kept so far
  std::vector<std::vector<double>> logprobs_;
  at::Tensor sequence_;  // [rows, L0 + room], column-aligned with the cache, dropped tokens included
  int64_t columns_;

  double score(const at::Tensor& scores, int64_t r, int64_t target) const {
    return scores[r][targets_[r][target]].item<double>();
  }
};

}  // namespace

TEST_CASE("a strategy that feeds tokens in chunks of 3 and keeps different counts per row decodes as one a step",
          "[loop][models]") {
  auto model = lmdecode::load_pretrained(lmdecode_test::reference_dir() / "qwen2-tiny", {at::kCPU, at::kDouble});
  lmdecode::GenerationConfig config;
  config.max_new_tokens = 8;
  const std::vector<TokenIds> prompts{{5, 17, 99, 3, 42}, {7, 8}};
  // The reference: greedy's tokens, one a step, and their log-probs.
  const auto greedy = lmdecode::GreedyDecoder(*model, config).generate(prompts);
  std::vector<TokenIds> targets;
  for (const auto& h : greedy.hypotheses) targets.push_back(h[0].tokens);

  std::vector<std::vector<TokenIds>> seen_histories;  // what a processor was shown, per run
  int64_t filler = 0;  // a token no target holds
  for (const auto& t : targets)
    while (std::find(t.begin(), t.end(), filler) != t.end()) ++filler;
  auto run = [&](int64_t chunk, std::vector<int64_t> keep) {
    lmdecode::LogitsProcessorList processors;
    auto& seen = seen_histories.emplace_back();
    processors.add([&seen](const at::Tensor& ids, at::Tensor&) {
      for (int64_t r = 0; r < ids.size(0); ++r) {
        auto row = ids[r].contiguous();
        seen.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
      }
    });
    c10::InferenceMode inference;
    auto batch = lmdecode::detail::pad_prompts(prompts, 0, model->device());
    lmdecode::detail::DecodingLoop<lmdecode::PretrainedModel> loop(*model, config, processors, batch, 1, {});
    ForcedChunks strategy(loop.rows(), targets, chunk, std::move(keep), filler);
    return loop.run(strategy);
  };
  const auto one_a_step = run(1, {1, 1});
  const auto chunks = run(3, {3, 3});
  const auto uneven = run(3, {3, 2});
  CHECK(one_a_step.steps == 8);
  CHECK(chunks.steps == 4);    // the prefill, then 3 + 3 + 1 targets
  CHECK(uneven.steps == 5);    // row 1 keeps 2 of each 3: the prefill, then 2 + 2 + 2 + 1
  for (const auto* result : {&one_a_step, &chunks, &uneven})
    for (size_t p = 0; p < prompts.size(); ++p) {
      const auto& ours = result->hypotheses[p][0];
      const auto& reference = greedy.hypotheses[p][0];
      REQUIRE(ours.tokens == reference.tokens);
      // Scores are float32 (as transformers casts the logits), and a float64 Qwen2 computes its norms and
      // softmax in float32, whose rounding differs with the positions fed at once: equal to float32's
      // precision. A token scored at the wrong position or over a dropped one is off by far more.
      for (size_t t = 0; t < reference.tokens.size(); ++t)
        CHECK(ours.token_logprobs[t] == Approx(reference.token_logprobs[t]).margin(1e-6));
    }
  // Processors see each row's padded prompt and the targets it kept, then at most the fillers fed
  // in the step being scored: never a filler dropped at an earlier step.
  const int64_t padded = 5;
  for (const auto& seen : seen_histories)
    for (const auto& history : seen) {
      REQUIRE(static_cast<int64_t>(history.size()) >= padded);
      const bool row0 = std::equal(history.begin(), history.begin() + padded, prompts[0].begin());
      const auto& kept = targets[row0 ? 0 : 1];
      auto end = history.end();
      while (end > history.begin() + padded && *(end - 1) == filler) --end;
      REQUIRE(end - (history.begin() + padded) <= static_cast<std::ptrdiff_t>(kept.size()));
      CHECK(std::equal(history.begin() + padded, end, kept.begin()));
    }
}
