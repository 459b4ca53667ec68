#pragma once

#include <limits>
#include <vector>

#include "lmdecode/logits/processor.hpp"

namespace lmdecode {

/// Bans every EOS id while fewer than `min_new_tokens` tokens have been generated after the padded
/// prompt of `prompt_length` tokens (HF MinNewTokensLength and MinLength, which coincide).
class MinNewTokens : public LogitsProcessor {
 public:
  MinNewTokens(int64_t prompt_length, int64_t min_new_tokens, std::vector<int64_t> eos_token_ids)
      : prompt_length_(prompt_length), min_new_tokens_(min_new_tokens), eos_(std::move(eos_token_ids)) {}

  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    if (eos_.empty() || input_ids.size(1) - prompt_length_ >= min_new_tokens_) return;
    if (!eos_index_.defined() || eos_index_.device() != scores.device())
      eos_index_ = at::tensor(eos_, scores.options().dtype(at::kLong));
    scores.index_fill_(1, eos_index_, -std::numeric_limits<float>::infinity());
  }

 private:
  int64_t prompt_length_;
  int64_t min_new_tokens_;
  std::vector<int64_t> eos_;
  at::Tensor eos_index_;  // eos_ on the scores' device, made once
};

}  // namespace lmdecode
