#pragma once

#include "lmdecode/error.hpp"
#include "lmdecode/logits/processor.hpp"

namespace lmdecode {

/// CTRL repetition penalty (HF RepetitionPenaltyLogitsProcessor): every token present anywhere in the
/// row's history, left pads included, gets score / p if positive and score * p if not.
class RepetitionPenalty : public LogitsProcessor {
 public:
  explicit RepetitionPenalty(double penalty) : penalty_(penalty) {
    detail::check(penalty > 0.0, "repetition_penalty must be > 0 (got {})", penalty);
  }

  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    auto seen = scores.gather(1, input_ids);  // [rows, cur]; duplicates get the same value back
    seen = at::where(seen < 0, seen * penalty_, seen / penalty_);
    scores.scatter_(1, input_ids, seen);
  }

 private:
  double penalty_;
};

}  // namespace lmdecode
