#pragma once
// The host copy of every row's generated tokens that a decoder keeps while a step callback is set:
// each step's one device read then carries only that step's tokens (and, in beam search, which row
// each beam continues), a few bytes whatever the step, instead of the whole history.

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "lmdecode/token_ids.hpp"
#include "lmdecode/error.hpp"

namespace lmdecode::detail {

class StreamedTokens {
 public:
  explicit StreamedTokens(int64_t rows) : rows_(static_cast<size_t>(rows)) {}

  /// Row i gains `tokens[i]` (one per row, host memory).
  void append(const int64_t* tokens) {
    for (size_t r = 0; r < rows_.size(); ++r) rows_[r].push_back(tokens[r]);
  }

  /// Row i gains the first `counts[i]` of its `width` tokens in `tokens` ([rows, width], row-major).
  void append(const int64_t* tokens, int64_t width, const int64_t* counts) {
    for (size_t r = 0; r < rows_.size(); ++r)
      rows_[r].insert(rows_[r].end(), tokens + static_cast<int64_t>(r) * width, tokens + static_cast<int64_t>(r) * width + counts[r]);
  }

  /// Row i becomes a copy of what row `parent[i]` held, then gains `tokens[i]` (beam search, where
  /// the surviving beams continue any beam of their prompt).
  void append(const int64_t* tokens, const int64_t* parent) {
    std::vector<TokenIds> next(rows_.size());
    for (size_t r = 0; r < rows_.size(); ++r) {
      check(parent[r] >= 0 && parent[r] < static_cast<int64_t>(rows_.size()),
            "internal error: beam {} continues row {} of {}", r, parent[r], rows_.size());
      next[r].reserve(rows_[parent[r]].size() + 1);
      next[r] = rows_[parent[r]];
      next[r].push_back(tokens[r]);
    }
    rows_ = std::move(next);
  }

  /// Row r's tokens.
  const TokenIds& row(int64_t r) const { return rows_.at(static_cast<size_t>(r)); }

  /// The first `length` tokens of row `r`.
  TokenIds prefix(int64_t r, int64_t length) const {
    const auto& row = rows_.at(static_cast<size_t>(r));
    return TokenIds(row.begin(), row.begin() + std::min<int64_t>(length, static_cast<int64_t>(row.size())));
  }

 private:
  std::vector<TokenIds> rows_;
};

}  // namespace lmdecode::detail
