#pragma once
// PrefixStore: the engine's prefix cache. It keeps the keys and values of recent prompts (one row,
// every layer) by their tokens; a new request whose prompt begins like a kept one starts its cache
// from the kept positions, shared, not copied (KVCache::from_prefix), and feeds only the rest. The
// least recently used prompts are dropped first, to stay under a size. Used under the engine's mutex.

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <list>
#include <optional>

#include "lmdecode/token_ids.hpp"

namespace lmdecode::detail {

class PrefixStore {
 public:
  /// A kept prompt's first `length` positions: [layers, 2, 1, kv_heads, length, head_dim].
  struct Hit {
    at::Tensor positions;
    int64_t length = 0;
  };

  int64_t bytes() const { return bytes_; }
  bool empty() const { return entries_.empty(); }

  /// The longest beginning of `prompt`, at most `at_most` tokens, that a kept prompt shares; it
  /// becomes the most recently used.
  std::optional<Hit> longest(const TokenIds& prompt, int64_t at_most) {
    auto best = entries_.end();
    int64_t best_length = 0;
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      const auto n = std::min({static_cast<int64_t>(it->tokens.size()), static_cast<int64_t>(prompt.size()), at_most});
      const auto shared = std::mismatch(prompt.begin(), prompt.begin() + n, it->tokens.begin()).first - prompt.begin();
      if (shared > best_length) best = it, best_length = shared;
    }
    if (best == entries_.end()) return std::nullopt;
    entries_.splice(entries_.begin(), entries_, best);
    return Hit{best->positions.narrow(4, 0, best_length), best_length};
  }

  /// Keeps `positions` ([layers, 2, 1, kv_heads, P, head_dim]) of `tokens` if it fits in `room` bytes
  /// once the least recently used prompts are dropped; a kept prompt that begins with `tokens` makes
  /// it needless, and kept prompts that `tokens` begins with are replaced.
  void insert(const TokenIds& tokens, const at::Tensor& positions, int64_t room) {
    const int64_t size = static_cast<int64_t>(positions.nbytes());
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->tokens.size() >= tokens.size() && std::equal(tokens.begin(), tokens.end(), it->tokens.begin())) return;
      if (it->tokens.size() < tokens.size() && std::equal(it->tokens.begin(), it->tokens.end(), tokens.begin())) {
        bytes_ -= it->bytes;
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
    if (size > room) return;
    while (bytes_ + size > room) drop_least_recent();
    entries_.push_front({tokens, positions, size});
    bytes_ += size;
  }

  /// Drops the least recently used prompt; false when none is kept.
  bool drop_least_recent() {
    if (entries_.empty()) return false;
    bytes_ -= entries_.back().bytes;
    entries_.pop_back();
    return true;
  }

 private:
  struct Entry {
    TokenIds tokens;
    at::Tensor positions;
    int64_t bytes;
  };
  std::list<Entry> entries_;  // most recently used first
  int64_t bytes_ = 0;
};

}  // namespace lmdecode::detail
