#pragma once

#include <algorithm>
#include <limits>
#include <vector>

#include "lmdecode/detail/token_index.hpp"
#include "lmdecode/error.hpp"
#include "lmdecode/logits/processor.hpp"

namespace lmdecode {

/// HF NoBadWordsLogitsProcessor: a one-token entry is banned everywhere; for a longer one, its last
/// token is banned wherever the row's newest tokens equal the rest. One-token entries equal to an EOS
/// id are dropped, as HF does. A token the vocabulary lacks is an error, as in HF.
class NoBadWords : public LogitsProcessor {
 public:
  NoBadWords(std::vector<std::vector<int64_t>> bad_words_ids, const std::vector<int64_t>& eos_token_ids) {
    for (auto& words : bad_words_ids) {
      const bool is_eos = words.size() == 1 && std::find(eos_token_ids.begin(), eos_token_ids.end(), words[0]) != eos_token_ids.end();
      if (!is_eos) words_.push_back(std::move(words));
    }
  }

  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    check_vocabulary(scores.size(1));
    const int64_t length = input_ids.size(1);
    for (size_t i = 0; i < words_.size(); ++i) {
      const auto& words = words_[i];
      const auto prefix = static_cast<int64_t>(words.size()) - 1;
      if (prefix > length) continue;
      auto banned = scores.select(1, words.back());
      if (prefix == 0) {
        banned.fill_(-std::numeric_limits<float>::infinity());
        continue;
      }
      auto expected = device_tensor(i, scores.device());
      auto matches = input_ids.narrow(1, length - prefix, prefix).eq(expected).all(1);  // [rows]
      banned.masked_fill_(matches, -std::numeric_limits<float>::infinity());
    }
  }

 private:
  void check_vocabulary(int64_t vocab) {
    if (vocab == checked_vocab_) return;
    for (const auto& words : words_) {
      const auto outside = detail::first_outside_vocabulary(words, vocab);
      detail::check(!outside, "bad_words_ids entry [{}] holds {}, not a token of this model (vocabulary {})",
                    fmt::join(words, ", "), outside.value_or(0), vocab);
    }
    checked_vocab_ = vocab;
  }

  const at::Tensor& device_tensor(size_t i, at::Device device) {
    if (prefixes_.size() != words_.size() || prefixes_[i].device() != device) {
      prefixes_.clear();
      const auto longs = at::TensorOptions().dtype(at::kLong).device(device);
      for (const auto& w : words_) prefixes_.push_back(at::tensor(std::vector<int64_t>(w.begin(), w.end() - 1), longs));
    }
    return prefixes_[i];
  }

  std::vector<std::vector<int64_t>> words_;
  std::vector<at::Tensor> prefixes_;  // every entry but its last token, on the scores' device
  int64_t checked_vocab_ = -1;        // the vocabulary every entry was found in
};

}  // namespace lmdecode
