#pragma once

#include <limits>
#include <vector>

#include "lmdecode/detail/token_index.hpp"
#include "lmdecode/logits/processor.hpp"

namespace lmdecode {

/// Bans every EOS id while fewer than `min_new_tokens` tokens have been generated after the padded
/// prompt of `prompt_length` tokens (HF MinNewTokensLength and MinLength, which coincide). EOS ids
/// the vocabulary lacks are ignored, as HF's test of each vocabulary id against them does.
class MinNewTokens : public LogitsProcessor {
 public:
  MinNewTokens(int64_t prompt_length, int64_t min_new_tokens, std::vector<int64_t> eos_token_ids)
      : prompt_length_(prompt_length), min_new_tokens_(min_new_tokens), eos_(std::move(eos_token_ids)) {}

  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    if (input_ids.size(1) - prompt_length_ >= min_new_tokens_) return;
    const auto& index = eos_.in_vocabulary(scores);
    if (index.defined()) scores.index_fill_(1, index, -std::numeric_limits<float>::infinity());
  }

 private:
  int64_t prompt_length_;
  int64_t min_new_tokens_;
  detail::TokenIndex eos_;
};

}  // namespace lmdecode
