#pragma once
// Speculative decoding (transformers' assisted generation, here for a batch too): each step a
// drafter (drafts.hpp) proposes tokens that likely follow each row; the model scores the row's
// newest token and every draft in one forward, and the row keeps what its own choice agrees with:
//   greedy         the drafts while each equals the arg max at its position, then the arg max
//                  where they stop: exactly plain greedy's tokens;
//   sampling       the same with a draw at each position (prompt lookup: a draw from the model's
//                  distribution, so the kept tokens are distributed as plain sampling's);
//   with draft probabilities (a draft model that samples): each draft x is kept with probability
//                  min(1, p(x) / q(x)), and at the first one refused a token is drawn from
//                  max(0, p - q) normalized (after every draft kept, from p): the speculative
//                  sampling of Leviathan et al. (arXiv 2211.17192), whose tokens follow p exactly.
// Every kept token goes through the end rules in order, so an EOS id or stop sequence among the
// drafts ends the row there; the processors score each position on the history before it (the
// drafts before it included), as they would without drafts. The rows keep different numbers of
// tokens a step: the positions a row does not keep become holes in the cache (StepRunner).

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/chosen_tokens.hpp"
#include "lmdecode/decoders/detail/decoding_loop.hpp"
#include "lmdecode/decoders/detail/drafts.hpp"
#include "lmdecode/decoders/detail/hypotheses.hpp"
#include "lmdecode/decoders/detail/random_generator.hpp"
#include "lmdecode/decoders/detail/sampling_draws.hpp"
#include "lmdecode/result.hpp"

namespace lmdecode::detail {

template <Drafter D>
class SpeculativeStrategy {
 public:
  static constexpr bool kLogProbs = false;
  using Shared = typename D::Shared;
  static int64_t copies(const GenerationConfig& config) { return config.num_return_sequences; }
  /// Positions a row's step scores at most: its newest token and its drafts.
  static int64_t scored_positions(const GenerationConfig& config) { return 1 + D::max_drafts(config); }

  SpeculativeStrategy(const GenerationConfig& config, const LoopRows& loop, Shared& shared)
      : drafter_(config, loop, shared),
        sample_(config.do_sample),
        generator_(make_generator(config.seed, loop.batch.input_ids.device())),
        rows_(loop.rows),
        prompt_length_(loop.prompt_length),
        max_new_(loop.max_new_tokens),
        per_prompt_(loop.copies),
        pad_(config.resolved_pad_token_id()),
        keep_positions_(config.output_scores || config.output_logits),
        keep_scores_(config.output_scores),
        sequence_(at::full({loop.rows, loop.prompt_length + 16}, pad_, loop.longs())),
        columns_(loop.prompt_length),
        rows_state_(static_cast<size_t>(loop.rows)),
        texts_(static_cast<size_t>(loop.rows)) {
    sequence_.narrow(1, 0, prompt_length_).copy_(loop.batch.input_ids);
    const auto ids = loop.batch.input_ids.to(at::kCPU).contiguous();
    const auto mask = loop.batch.attention_mask.to(at::kCPU, at::kLong).contiguous();
    const auto id = ids.accessor<int64_t, 2>();
    const auto real = mask.accessor<int64_t, 2>();
    for (int64_t r = 0; r < rows_; ++r)
      for (int64_t c = 0; c < prompt_length_; ++c) {
        rows_state_[r].sequence.push_back(id[r][c]);
        if (real[r][c] != 0) texts_[r].push_back(id[r][c]);
      }
  }

  at::Tensor history() const { return sequence_.narrow(1, 0, columns_); }

  StepOutcome step(const StepInput& in) {
    const auto fed = static_cast<int64_t>(in.scores.size());
    const auto scores = fed == 1 ? in.scores.front().unsqueeze(1) : at::stack(in.scores, 1);  // [rows, fed, vocab]
    std::vector<int64_t> taken_before(rows_);
    for (int64_t r = 0; r < rows_; ++r) taken_before[r] = taken(rows_state_[r]);
    StepOutcome out;
    picks_.clear();
    if (sample_ && !drafts_.probs.empty()) out.undrawable = weigh_drafts(scores, in.ends);
    else out.undrawable = match_drafts(scores, in.ends);
    record_picks(scores, fed);
    if (in.out_of_time) end_running(FinishReason::time);
    // The kept positions: each running row's newest token fed and the drafts it took.
    std::vector<int64_t> kept(rows_, 0);
    int64_t most = 0;
    for (int64_t r = 0; r < rows_; ++r) {
      const auto& row = rows_state_[r];
      const int64_t took = taken(row) - taken_before[r];
      kept[r] = row.running ? took : 0;  // the newest fed and took - 1 drafts
      most = std::max(most, kept[r]);
    }
    if (in.step > 0) {
      out.kept = at::tensor(kept, sequence_.options());
      std::vector<int64_t> accepted(rows_, 0);
      for (int64_t r = 0; r < rows_; ++r) accepted[r] = std::max<int64_t>(kept[r] - 1, 0);
      drafter_.accepted(accepted);
      columns_ = columns_ - fed + most;
    }
    out.last = std::none_of(rows_state_.begin(), rows_state_.end(), [](const Row& row) { return row.running; });
    if (in.streaming) out.view = view(in.step, taken_before);
    if (!out.last) out.appended = append_next_drafts();
    return out;
  }

  void stop_on_callback(int64_t) { end_running(FinishReason::callback); }

  FinishedRows finish(int64_t, const std::vector<at::Tensor>&) {
    end_running(FinishReason::length);
    int64_t longest = 0;
    for (const auto& row : rows_state_) longest = std::max(longest, taken(row));
    const auto longs = at::TensorOptions().dtype(at::kLong);
    auto sequences = at::full({rows_, prompt_length_ + longest}, pad_, longs);
    auto logprobs = at::zeros({rows_, longest}, at::kDouble);
    auto token_scores = keep_scores_ ? at::zeros({rows_, longest}, at::kDouble) : at::Tensor();
    auto positions = keep_positions_ ? at::full({rows_, longest}, -1, longs) : at::Tensor();
    std::vector<int64_t> lengths, reasons, stops;
    std::vector<double> totals;
    for (int64_t r = 0; r < rows_; ++r) {
      const auto& row = rows_state_[r];
      const int64_t n = taken(row);
      sequences[r].narrow(0, 0, prompt_length_ + n).copy_(at::tensor(row.sequence, longs));
      if (n > 0) {
        logprobs[r].narrow(0, 0, n).copy_(at::tensor(row.logprobs, at::kDouble));
        if (keep_scores_) token_scores[r].narrow(0, 0, n).copy_(at::tensor(row.scores, at::kDouble));
        if (keep_positions_) positions[r].narrow(0, 0, n).copy_(at::tensor(row.positions, longs));
      }
      lengths.push_back(n);
      reasons.push_back(reason_code(row.reason));
      stops.push_back(row.stop);
      double total = 0;
      for (double lp : row.logprobs) total += lp;
      totals.push_back(total);
    }
    counts_.draft_forwards = drafter_.forwards();
    return {.per_prompt = per_prompt_,
            .sequences = sequences,
            .logprobs = logprobs,
            .lengths = at::tensor(lengths, longs),
            .scores = at::tensor(totals, at::kDouble),
            .reasons = at::tensor(reasons, longs),
            .stops = at::tensor(stops, longs),
            .token_scores = token_scores,
            .token_positions = positions,
            .speculation = counts_};
  }

 private:
  /// One row, on the host.
  struct Row {
    TokenIds sequence;  // the padded prompt, then the new tokens
    std::vector<double> logprobs, scores;  // each new token's log-prob and processed score
    std::vector<int64_t> positions;        // each new token's fed position, counted over the run
    bool running = true;
    FinishReason reason = FinishReason::length;
    int64_t stop = -1;
  };
  /// The new tokens `row` has taken.
  int64_t taken(const Row& row) const { return static_cast<int64_t>(row.sequence.size()) - prompt_length_; }

  /// A token a row took at a step: chosen at fed position `position` of the step.
  struct Pick {
    int64_t row, position, token;
  };

  /// The kept tokens where drafts are kept while they equal the model's own choice at their
  /// position (its arg max, or a draw from its distribution); returns the draws' undrawable flag.
  at::Tensor match_drafts(const at::Tensor& scores, const EndRules& ends) {
    const int64_t fed = scores.size(1);
    at::Tensor chosen, undrawable;
    if (sample_) {
      auto draws = draw_from_softmax(scores.reshape({-1, scores.size(2)}), 1, generator_);
      chosen = draws.index.view({rows_, fed});
      undrawable = draws.invalid;
    } else {
      chosen = first_max_index(scores.reshape({-1, scores.size(2)})).view({rows_, fed});
    }
    const auto host = chosen.to(at::kCPU).contiguous();
    const int64_t* choice = host.data_ptr<int64_t>();
    for (int64_t r = 0; r < rows_; ++r) {
      if (!rows_state_[r].running) continue;
      const auto drafted = drafts_.tokens.empty() ? int64_t{0} : static_cast<int64_t>(drafts_.tokens[r].size());
      for (int64_t j = 0; j < fed; ++j) {
        const int64_t token = choice[r * fed + j];
        const bool agrees = j < drafted && token == drafts_.tokens[r][j];
        counts_.accepted += agrees;
        if (!take(r, j, token, ends) || !agrees) break;
      }
    }
    return undrawable;
  }

  /// Speculative sampling of drafts drawn from the draft model's q (see the top of this file).
  at::Tensor weigh_drafts(const at::Tensor& scores, const EndRules& ends) {
    at::Tensor undrawable = at::zeros({}, scores.options().dtype(at::kBool));
    for (int64_t r = 0; r < rows_; ++r) {
      if (!rows_state_[r].running) continue;
      const TokenIds& drafts = drafts_.tokens[r];
      const auto d = static_cast<int64_t>(drafts.size());
      const auto p = scores[r].narrow(0, 0, d + 1).softmax(-1);  // [d + 1, vocab]
      int64_t n = 0;
      if (d > 0) {
        const auto index = at::tensor(drafts, sequence_.options()).unsqueeze(1);
        const auto q = drafts_.probs[r];
        const auto ratio = p.narrow(0, 0, d).gather(1, index).squeeze(1) / q.gather(1, index).squeeze(1);
        const auto kept = (at::rand({d}, generator_, p.options()) <= ratio).to(at::kCPU);
        while (n < d && kept[n].item<bool>()) ++n;
      }
      bool running = true;
      for (int64_t j = 0; j < n && running; ++j) {
        ++counts_.accepted;
        running = take(r, j, drafts[j], ends);
      }
      if (!running) continue;
      auto target = p[n];
      if (n < d) {
        const auto residual = (p[n] - drafts_.probs[r][n]).clamp_min(0);
        const auto mass = residual.sum();
        target = at::where(mass > 0, residual / mass, p[n]);
      }
      const auto draw = draw_from_probabilities(target.unsqueeze(0), 1, generator_);
      undrawable = undrawable.logical_or(draw.invalid);
      take(r, n, draw.index.item<int64_t>(), ends);
    }
    return undrawable;
  }

  /// Row r takes `token`, chosen at fed position `position`; returns whether the row goes on
  /// (an EOS id, a stop sequence or string, or max_new_tokens ends it).
  bool take(int64_t r, int64_t position, int64_t token, const EndRules& ends) {
    auto& row = rows_state_[r];
    row.sequence.push_back(token);
    texts_[r].push_back(token);
    picks_.push_back({r, position, token});
    const int64_t n = taken(row);
    if (ends.can_end()) {
      const auto longs = sequence_.options();
      const RowEnds e = ends.classify(at::tensor(TokenIds{token}, longs), at::tensor(row.sequence, longs).unsqueeze(0), n);
      const auto host = at::stack({e.eos.to(at::kLong), e.stop.to(at::kLong), e.matched}).to(at::kCPU);
      if (host[0][0].item<int64_t>() != 0) row.reason = FinishReason::eos;
      if (host[1][0].item<int64_t>() != 0) {
        row.reason = FinishReason::stop_sequence;
        row.stop = host[2][0].item<int64_t>();
      }
      row.running = host[0][0].item<int64_t>() == 0 && host[1][0].item<int64_t>() == 0;
    }
    if (row.running && n == max_new_) {
      row.running = false;
      row.reason = FinishReason::length;
    }
    return row.running;
  }

  /// Each token taken at this step gets its log-prob and processed score (one read), and its fed
  /// position over the run (GenerationResult::scores then follows the tokens).
  void record_picks(const at::Tensor& scores, int64_t fed) {
    if (!picks_.empty()) {
      std::vector<int64_t> flat, tokens;
      for (const auto& pick : picks_) {
        flat.push_back(pick.row * fed + pick.position);
        tokens.push_back(pick.token);
      }
      const auto longs = sequence_.options();
      const auto chosen = scores.reshape({-1, scores.size(2)}).index_select(0, at::tensor(flat, longs));
      const auto index = at::tensor(tokens, longs).unsqueeze(1);
      const auto host = at::stack({chosen_logprobs(chosen, index.squeeze(1)), chosen.gather(1, index).squeeze(1)})
                            .to(at::kCPU, at::kDouble).contiguous();
      for (size_t i = 0; i < picks_.size(); ++i) {
        auto& row = rows_state_[picks_[i].row];
        row.logprobs.push_back(host[0][static_cast<int64_t>(i)].item<double>());
        if (keep_scores_) row.scores.push_back(host[1][static_cast<int64_t>(i)].item<double>());
        if (keep_positions_) row.positions.push_back(positions_fed_ + picks_[i].position);
      }
    }
    positions_fed_ += fed;
  }

  void end_running(FinishReason why) {
    for (auto& row : rows_state_)
      if (row.running) {
        row.running = false;
        row.reason = why;
      }
  }

  /// What the callback is shown: each row's tokens of this step (counts), all it kept, whether it runs.
  StepView view(int64_t step, const std::vector<int64_t>& before) const {
    int64_t width = 1;
    for (int64_t r = 0; r < rows_; ++r) width = std::max(width, taken(rows_state_[r]) - before[r]);
    auto tokens = at::full({rows_, width}, pad_, at::kLong);
    std::vector<int64_t> counts, lengths, running;
    for (int64_t r = 0; r < rows_; ++r) {
      const auto& row = rows_state_[r];
      const int64_t n = taken(row);
      for (int64_t j = before[r]; j < n; ++j) tokens[r][j - before[r]] = row.sequence[prompt_length_ + j];
      counts.push_back(n - before[r]);
      lengths.push_back(n);
      running.push_back(row.running);
    }
    const auto device = sequence_.device();
    return {.step = step,
            .tokens = tokens.to(device),
            .counts = at::tensor(counts, sequence_.options()),
            .lengths = at::tensor(lengths, sequence_.options()),
            .running = at::tensor(running, sequence_.options()).to(at::kBool)};
  }

  /// Each running row's newest token and its drafts join the history for the next forward; returns
  /// how many columns were appended (1 + the most drafts of a row; rows with fewer get pads).
  int64_t append_next_drafts() {
    std::vector<int64_t> limits(rows_, 0);
    for (int64_t r = 0; r < rows_; ++r)
      if (rows_state_[r].running) limits[r] = max_new_ - taken(rows_state_[r]) - 1;
    drafts_ = drafter_.draft({texts_, limits});
    int64_t width = 0;
    for (const auto& d : drafts_.tokens) {
      width = std::max(width, static_cast<int64_t>(d.size()));
      counts_.drafted += static_cast<int64_t>(d.size());
    }
    auto block = at::full({rows_, 1 + width}, pad_, at::kLong);
    for (int64_t r = 0; r < rows_; ++r) {
      if (!rows_state_[r].running) continue;
      block[r][0] = rows_state_[r].sequence.back();
      for (size_t i = 0; i < drafts_.tokens[r].size(); ++i) block[r][static_cast<int64_t>(i) + 1] = drafts_.tokens[r][i];
    }
    if (columns_ + 1 + width > sequence_.size(1)) {
      const int64_t more = std::max(sequence_.size(1), 1 + width);
      sequence_ = at::cat({sequence_, at::full({rows_, more}, pad_, sequence_.options())}, 1);
    }
    sequence_.narrow(1, columns_, 1 + width).copy_(block);
    columns_ += 1 + width;
    return 1 + width;
  }

  D drafter_;
  bool sample_;
  at::Generator generator_;
  int64_t rows_, prompt_length_, max_new_, per_prompt_, pad_;
  bool keep_positions_, keep_scores_;
  at::Tensor sequence_;  // [rows, capacity]: the history, column-aligned with the cache (holes included)
  int64_t columns_;
  std::vector<Row> rows_state_;
  std::vector<TokenIds> texts_;  // per row: the prompt without padding, then the new tokens (what drafters read)
  Drafts drafts_;              // the drafts fed at this step, per row
  std::vector<Pick> picks_;    // the tokens taken at this step, in order
  int64_t positions_fed_ = 0;  // fed positions before this step's, over the run
  SpeculationCounts counts_;
};

}  // namespace lmdecode::detail
