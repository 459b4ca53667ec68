#pragma once
// One choice's text as its tokens arrive: UTF-8 text with the special tokens left out, cut before
// the first of the request's stop strings (OpenAI leaves the stop out of the text). Text that may
// still turn out to be the start of a stop string is held back until it cannot, so a streamed
// choice never shows text that the whole answer would not. The answer that is not streamed goes
// through the same class, so both texts are the same.

#include <algorithm>
#include <string>
#include <vector>

#include <lmdecode/text/tokenizer.hpp>

namespace lmdecode_serve {

class ChoiceText {
 public:
  ChoiceText(const lmdecode::Tokenizer& tokenizer, const std::vector<std::string>& stops)
      : decoder_(tokenizer, /*skip_special_tokens=*/true), stops_(stops) {}

  /// The text that `ids` complete and that no stop string can take back (possibly empty).
  std::string push(const lmdecode::TokenIds& ids) {
    for (const int64_t id : ids) held_ += decoder_.push(id);
    return release(false);
  }

  /// All that is left: the decoder's incomplete character (as U+FFFD) and the text held back.
  std::string finish() {
    held_ += decoder_.flush();
    return release(true);
  }

  /// True once a stop string was found: the text ended before it.
  bool stopped() const { return stopped_; }

 private:
  std::string release(bool all) {
    if (stopped_) return {};
    size_t first_stop = std::string::npos;
    for (const auto& stop : stops_) first_stop = std::min(first_stop, held_.find(stop));
    if (first_stop != std::string::npos) {
      stopped_ = true;
      std::string out = held_.substr(0, first_stop);
      held_.clear();
      return out;
    }
    const size_t keep = all ? 0 : longest_stop_start();
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }

  /// The longest end of the held text that some stop string begins with.
  size_t longest_stop_start() const {
    size_t longest = 0;
    for (const auto& stop : stops_)
      for (size_t n = std::min(stop.size() - 1, held_.size()); n > longest; --n)
        if (held_.compare(held_.size() - n, n, stop, 0, n) == 0) {
          longest = n;
          break;
        }
    return longest;
  }

  lmdecode::Tokenizer::StreamDecoder decoder_;
  std::vector<std::string> stops_;  // none empty (the request's checks)
  std::string held_;
  bool stopped_ = false;
};

}  // namespace lmdecode_serve
