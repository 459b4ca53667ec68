#pragma once
// Beam search's committed prefix, kept on the host while a step callback is set: a beam's tokens can
// still be replaced by another beam's, but a token that every running beam and every finished
// hypothesis that can still come first hold at the same place can no longer change (every later
// beam and hypothesis descends from a running beam). Each step shows the tokens that became certain
// that way, once each and in order; when a prompt's search ends, the rest of its best hypothesis.
// Concatenated, they are the returned best sequence.

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lmdecode/decoders/detail/beam_hypotheses.hpp"
#include "lmdecode/decoders/detail/streamed_tokens.hpp"
#include "lmdecode/error.hpp"
#include "lmdecode/token_ids.hpp"

namespace lmdecode::detail {

/// What a step's finished-hypothesis merge did, as the step's device read brings it (int64, flat):
/// for each prompt's top `beams` candidates the row they continue and their token, then for each of
/// the `kept` finished slots which it now holds (i < kept: old slot i, else candidate i - kept) and
/// whether it can still come first (finished, and scored as the best). pack() writes that layout on
/// the device, unpack() reads it on the host.
struct FinishedMerge {
  const int64_t* parent_rows;  // [prompts * beams]
  const int64_t* tokens;       // [prompts * beams]
  const int64_t* pick;         // [prompts * kept]
  const int64_t* can_win;      // [prompts * kept]
  int64_t kept;

  /// The packed merge of a step: the top `beams` of `candidates` and the merge's `pick`
  /// (FinishedHypotheses::merge), with `finished` after the merge; `row_offset` [B, 1] is each
  /// prompt's first row.
  static at::Tensor pack(const at::Tensor& row_offset, int64_t beams, const Candidates& candidates, const at::Tensor& pick,
                         const FinishedHypotheses& finished) {
    auto can_win = finished.done.logical_and(finished.score == finished.score.narrow(1, 0, 1));
    return at::cat({(row_offset + candidates.beam.narrow(1, 0, beams)).view(-1),
                    candidates.token.narrow(1, 0, beams).reshape(-1), pick.reshape(-1), can_win.to(at::kLong).view(-1)});
  }

  /// The merge of `prompts` prompts of `beams` beams from the `size` values pack() wrote.
  static FinishedMerge unpack(const int64_t* packed, int64_t size, int64_t prompts, int64_t beams) {
    const int64_t kept = (size - 2 * prompts * beams) / (2 * prompts);
    const int64_t candidates = prompts * beams;
    return {packed, packed + candidates, packed + 2 * candidates, packed + 2 * candidates + prompts * kept, kept};
  }
};

class CommittedBeamTokens {
 public:
  CommittedBeamTokens(int64_t prompts, int64_t beams, int64_t kept)
      : beams_(beams),
        kept_(kept),
        finished_(static_cast<size_t>(prompts), std::vector<TokenIds>(static_cast<size_t>(kept))),
        can_win_(static_cast<size_t>(prompts), std::vector<bool>(static_cast<size_t>(kept), false)),
        committed_(static_cast<size_t>(prompts), 0),
        ended_(static_cast<size_t>(prompts), false) {}

  /// Applies the step's merge; `running` still holds the rows as they were before this step's token.
  void merge_finished(const StreamedTokens& running, const FinishedMerge& m) {
    check(m.kept == kept_, "internal error: {} finished slots read, {} kept", m.kept, kept_);
    for (size_t p = 0; p < finished_.size(); ++p) {
      std::vector<TokenIds> next(static_cast<size_t>(kept_));
      for (int64_t slot = 0; slot < kept_; ++slot) {
        const int64_t from = m.pick[p * kept_ + slot];
        check(from >= 0 && from < kept_ + beams_, "internal error: finished slot picks {}", from);
        if (from < kept_) {
          next[slot] = finished_[p][from];
        } else {
          const int64_t candidate = static_cast<int64_t>(p) * beams_ + (from - kept_);
          next[slot] = running.row(m.parent_rows[candidate]);
          next[slot].push_back(m.tokens[candidate]);
        }
        can_win_[p][slot] = m.can_win[p * kept_ + slot] != 0;
      }
      finished_[p] = std::move(next);
    }
  }

  /// The tokens each prompt commits at this step; `running` holds the rows with this step's token,
  /// `open[p]` whether prompt p's search goes on (when it has ended: the rest of its best hypothesis).
  std::vector<TokenIds> commit(const StreamedTokens& running, const std::vector<bool>& open) {
    std::vector<TokenIds> out(finished_.size());
    for (size_t p = 0; p < finished_.size(); ++p) {
      if (ended_[p]) continue;
      const TokenIds& best = finished_[p][0];
      const TokenIds& lead = open[p] ? running.row(static_cast<int64_t>(p) * beams_) : best;
      const size_t from = committed_[p];
      const size_t upto = open[p] ? shared_length(p, running) : best.size();
      if (!open[p]) ended_[p] = true;
      if (upto <= from) continue;
      out[p].assign(lead.begin() + static_cast<std::ptrdiff_t>(from), lead.begin() + static_cast<std::ptrdiff_t>(upto));
      committed_[p] = upto;
    }
    return out;
  }

 private:
  /// How long the prefix is that prompt p's running beams and its finished hypotheses that can still
  /// come first share (at least what is already committed: it is shared by construction).
  size_t shared_length(size_t p, const StreamedTokens& running) const {
    std::vector<const TokenIds*> holders;
    for (int64_t k = 0; k < beams_; ++k) holders.push_back(&running.row(static_cast<int64_t>(p) * beams_ + k));
    for (int64_t slot = 0; slot < kept_; ++slot)
      if (can_win_[p][slot]) holders.push_back(&finished_[p][slot]);
    size_t length = committed_[p];
    for (;; ++length) {
      for (const TokenIds* h : holders)
        if (h->size() <= length || (*h)[length] != (*holders[0])[length]) return length;
    }
  }

  int64_t beams_, kept_;
  std::vector<std::vector<TokenIds>> finished_;  // [prompt][slot] the finished hypotheses' tokens
  std::vector<std::vector<bool>> can_win_;       // [prompt][slot]
  std::vector<size_t> committed_;                // [prompt] tokens shown so far
  std::vector<bool> ended_;                      // [prompt] the rest has been shown
};

}  // namespace lmdecode::detail
