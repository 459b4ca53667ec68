#pragma once

#include <limits>
#include <optional>
#include <vector>

#include "lmdecode/logits/processor.hpp"

namespace lmdecode {

/// HF SuppressTokensLogitsProcessor and SuppressTokensAtBeginLogitsProcessor: `tokens` get -inf,
/// always, or (with `only_at_length`) only when the row's history has exactly that many tokens.
class SuppressTokens : public LogitsProcessor {
 public:
  explicit SuppressTokens(std::vector<int64_t> tokens, std::optional<int64_t> only_at_length = std::nullopt)
      : tokens_(std::move(tokens)), only_at_length_(only_at_length) {}

  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    if (tokens_.empty() || (only_at_length_ && input_ids.size(1) != *only_at_length_)) return;
    if (!index_.defined() || index_.device() != scores.device())
      index_ = at::tensor(tokens_, scores.options().dtype(at::kLong));
    scores.index_fill_(1, index_, -std::numeric_limits<float>::infinity());
  }

 private:
  std::vector<int64_t> tokens_;
  std::optional<int64_t> only_at_length_;
  at::Tensor index_;
};

/// HF ForcedBOS/ForcedEOS: when the row's history has `at_length` tokens, every token but `tokens`
/// gets -inf and those get 0.
class ForceTokens : public LogitsProcessor {
 public:
  ForceTokens(std::vector<int64_t> tokens, int64_t at_length) : tokens_(std::move(tokens)), at_length_(at_length) {}

  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    if (input_ids.size(1) != at_length_) return;
    if (!index_.defined() || index_.device() != scores.device())
      index_ = at::tensor(tokens_, scores.options().dtype(at::kLong));
    scores.fill_(-std::numeric_limits<float>::infinity());
    scores.index_fill_(1, index_, 0.0);
  }

 private:
  std::vector<int64_t> tokens_;
  int64_t at_length_;
  at::Tensor index_;
};

}  // namespace lmdecode
