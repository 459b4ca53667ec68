#pragma once
// Drafts from the text itself, as transformers' PromptLookupCandidateGenerator finds them: the
// row's newest n tokens (n from max_matching_ngram_size down to 1) are looked for in the row's
// earlier tokens, prompt and new ones alike; at the first (leftmost) earlier occurrence that has
// tokens after it, up to prompt_lookup_num_tokens of those are the drafts, cut before the first
// EOS id. A longer n-gram that matches wins over a shorter one. transformers also drops drafts its
// processors would forbid; here the model's check rejects them, which changes no token.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/detail/decoding_loop.hpp"
#include "lmdecode/decoders/detail/drafts.hpp"

namespace lmdecode::detail {

class PromptLookupDrafter {
 public:
  struct Shared {};

  static int64_t max_drafts(const GenerationConfig& config) { return config.prompt_lookup_num_tokens.value_or(10); }

  PromptLookupDrafter(const GenerationConfig& config, const LoopRows&, Shared&)
      : drafts_(max_drafts(config)), ngram_(config.max_matching_ngram_size), eos_(config.eos_token_ids) {}

  Drafts draft(const DraftRequest& request) const {
    Drafts out;
    for (size_t r = 0; r < request.tokens.size(); ++r)
      out.tokens.push_back(lookup(request.tokens[r], std::min(drafts_, request.limits[r])));
    return out;
  }

  void accepted(const std::vector<int64_t>&) {}
  int64_t forwards() const { return 0; }

 private:
  int64_t drafts_, ngram_;
  std::vector<int64_t> eos_;

  /// Up to `count` tokens that followed the first earlier occurrence of `text`'s newest n-gram.
  TokenIds lookup(const TokenIds& text, int64_t count) const {
    const auto length = static_cast<int64_t>(text.size());
    if (count <= 0) return {};
    for (int64_t n = std::min(ngram_, length - 1); n >= 1; --n) {
      const auto ngram = text.end() - n;
      for (int64_t start = 0; start + n < length; ++start) {
        if (!std::equal(ngram, text.end(), text.begin() + start)) continue;
        const int64_t from = start + n, to = std::min(from + count, length);
        TokenIds found(text.begin() + from, text.begin() + to);
        const auto eos = std::find_first_of(found.begin(), found.end(), eos_.begin(), eos_.end());
        found.erase(eos, found.end());
        return found;  // a match decides, even one whose drafts the EOS cut to none (as transformers)
      }
    }
    return {};
  }
};

}  // namespace lmdecode::detail
