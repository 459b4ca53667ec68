#pragma once

#include <limits>

#include "lmdecode/error.hpp"
#include "lmdecode/logits/processor.hpp"

namespace lmdecode {

/// Bans every token that would complete an n-gram already present in the row's history (HF
/// NoRepeatNGramLogitsProcessor; n = 1 bans every token seen). Runs on the device: no host reads.
class NoRepeatNGram : public LogitsProcessor {
 public:
  explicit NoRepeatNGram(int64_t ngram_size) : n_(ngram_size) {
    detail::check(ngram_size >= 1, "no_repeat_ngram_size must be >= 1 here (got {})", ngram_size);
  }

  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    const int64_t length = input_ids.size(1);
    if (length < n_) return;  // no complete n-gram yet (HF: cur_len + 1 < n, or no window)
    auto ngrams = input_ids.unfold(1, n_, 1);             // [rows, windows, n]
    auto prefix = input_ids.narrow(1, length - n_ + 1, n_ - 1);  // [rows, n - 1]: the tokens the next one extends
    auto matches = ngrams.narrow(2, 0, n_ - 1).eq(prefix.unsqueeze(1)).all(-1);  // [rows, windows]
    auto next_tokens = ngrams.select(2, n_ - 1);          // [rows, windows]
    auto banned = at::zeros_like(scores).scatter_add_(1, next_tokens, matches.to(scores.scalar_type()));
    scores.masked_fill_(banned > 0, -std::numeric_limits<float>::infinity());
  }

 private:
  int64_t n_;
};

}  // namespace lmdecode
