#pragma once

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "lmdecode/detail/token_index.hpp"
#include "lmdecode/error.hpp"
#include "lmdecode/logits/processor.hpp"

namespace lmdecode {

/// HF SuppressTokensLogitsProcessor and SuppressTokensAtBeginLogitsProcessor: `tokens` get -inf,
/// always, or (with `only_at_length`) only when the row's history has exactly that many tokens. Ids
/// the vocabulary lacks are ignored, as HF's test of each vocabulary id against the list does.
class SuppressTokens : public LogitsProcessor {
 public:
  explicit SuppressTokens(std::vector<int64_t> tokens, std::optional<int64_t> only_at_length = std::nullopt)
      : tokens_(std::move(tokens)), only_at_length_(only_at_length) {}

  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    if (only_at_length_ && input_ids.size(1) != *only_at_length_) return;
    const auto& index = tokens_.in_vocabulary(scores);
    if (index.defined()) scores.index_fill_(1, index, -std::numeric_limits<float>::infinity());
  }

 private:
  detail::TokenIndex tokens_;
  std::optional<int64_t> only_at_length_;
};

/// HF ForcedBOS/ForcedEOS: when the row's history has `at_length` tokens, every token but `tokens`
/// gets -inf and those get 0. A token the vocabulary lacks is an error (HF's indexing fails too);
/// `name` is what the message calls the tokens (the config field, e.g. "forced_eos_token_id").
class ForceTokens : public LogitsProcessor {
 public:
  ForceTokens(std::vector<int64_t> tokens, int64_t at_length, std::string name = "forced token")
      : tokens_(std::move(tokens)), at_length_(at_length), name_(std::move(name)) {}

  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    if (input_ids.size(1) != at_length_) return;
    const int64_t vocab = scores.size(1);
    const auto outside = detail::first_outside_vocabulary(tokens_.ids(), vocab);
    detail::check(!outside, "{} {} is not a token of this model (vocabulary {})", name_, outside.value_or(0), vocab);
    scores.fill_(-std::numeric_limits<float>::infinity());
    const auto& index = tokens_.in_vocabulary(scores);
    if (index.defined()) scores.index_fill_(1, index, 0.0);
  }

 private:
  detail::TokenIndex tokens_;
  int64_t at_length_;
  std::string name_;
};

}  // namespace lmdecode
