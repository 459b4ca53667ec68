#pragma once
// config.stop_strings matched on the device, as transformers' StopStringCriteria matches them: a row
// stops when a stop string ends inside its newest token's text; the string may reach back over
// earlier tokens (the prompt's too) and overhang the start of the first of them. A token shorter than
// its place in the string must equal that part; the earliest token may hold more before it.
//
// Per stop string S (L bytes) and token t, tables built once from each token's text: `ends[t][i]`:
// t's first i bytes are S's last i (t can be the newest token, i bytes of S then matched), or for
// i = L, S lies anywhere inside t;
// `fits[t][p]`: with p bytes of S's end matched, t matches the bytes before them (or, longer than
// what is left, ends with all of it); t's byte length. A step then walks back over the newest L
// tokens with one gather each, for every starting i at once.

#include <ATen/ATen.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "lmdecode/error.hpp"

namespace lmdecode::detail {

class StopStringMatcher {
 public:
  StopStringMatcher(const std::vector<std::string>& strings, const std::shared_ptr<const std::vector<std::string>>& token_texts,
                    at::Device device) {
    if (strings.empty()) return;
    check(token_texts && !token_texts->empty(),
          "stop_strings need config.token_texts, each token's text (Tokenizer::token_texts()), as transformers needs the "
          "tokenizer for them");
    const auto& texts = *token_texts;
    vocab_ = static_cast<int64_t>(texts.size());
    std::vector<int64_t> lengths(texts.size() + 1, 0);  // the extra last row: ids beyond the texts (no text)
    for (size_t t = 0; t < texts.size(); ++t) lengths[t] = static_cast<int64_t>(texts[t].size());
    lengths_ = at::tensor(lengths, at::TensorOptions().dtype(at::kLong)).to(device);
    int64_t bytes = 0;  // of the tables: two bools per token and byte of each string
    for (const auto& s : strings) bytes += 2 * (vocab_ + 1) * static_cast<int64_t>(s.size());
    check(bytes <= kMaxTableBytes,
          "{} stop strings of {} bytes in all need {} MiB of match tables over a vocabulary of {} tokens, over the {} MiB "
          "allowed: use fewer or shorter stop strings", strings.size(), bytes / (2 * (vocab_ + 1)), bytes >> 20, vocab_,
          kMaxTableBytes >> 20);
    for (const auto& s : strings) {
      tables_.push_back(make_table(s, texts, device));
      longest_ = std::max(longest_, tables_.back().length);
    }
  }

  bool empty() const { return tables_.empty(); }

  /// For sequences [..., n] (the prompt included), the index of the first stop string each row's
  /// newest token completes, else -1.
  at::Tensor match(const at::Tensor& sequence) const {
    // Only the newest longest-string-many tokens can take part: a step's cost does not grow with the sequence.
    const int64_t n = std::min(sequence.size(-1), longest_);
    const auto recent = sequence.narrow(-1, sequence.size(-1) - n, n);
    auto ids = at::where(recent < vocab_, recent, at::full_like(recent, vocab_));
    auto found = at::full(sequence.sizes().slice(0, sequence.dim() - 1), -1, sequence.options());
    for (int64_t i = static_cast<int64_t>(tables_.size()) - 1; i >= 0; --i)  // the lowest index wins
      found.masked_fill_(completes(tables_[i], ids, n), i);
    return found;
  }

 private:
  static constexpr int64_t kMaxTableBytes = int64_t{256} << 20;

  struct Table {
    int64_t length;    // L, bytes of the stop string
    at::Tensor ends;   // [V + 1, L] bool: column i - 1 for i matched bytes
    at::Tensor fits;   // [V + 1, L] bool: column p for p matched bytes (column 0 unused)
  };

  static Table make_table(const std::string& s, const std::vector<std::string>& texts, at::Device device) {
    const int64_t L = static_cast<int64_t>(s.size()), V = static_cast<int64_t>(texts.size());
    auto ends = at::zeros({V + 1, L}, at::kBool), fits = at::zeros({V + 1, L}, at::kBool);
    auto e = ends.accessor<bool, 2>();
    auto f = fits.accessor<bool, 2>();
    for (int64_t t = 0; t < V; ++t) {
      const std::string& text = texts[t];
      const int64_t len = static_cast<int64_t>(text.size());
      for (int64_t i = 1; i <= std::min(L, len); ++i) e[t][i - 1] = s.compare(L - i, i, text, 0, i) == 0;
      if (text.find(s) != std::string::npos) e[t][L - 1] = true;  // all of S inside the token, wherever it ends
      for (int64_t p = 1; p < L; ++p) {
        const int64_t left = L - p;  // bytes of S before the matched end
        f[t][p] = len <= left ? s.compare(left - len, len, text) == 0 : text.compare(len - left, left, s, 0, left) == 0;
      }
    }
    return {L, ends.to(device), fits.to(device)};
  }

  /// Rows whose newest tokens complete `table`'s string: one walk state per starting overlap i.
  at::Tensor completes(const Table& table, const at::Tensor& ids, int64_t n) const {
    const int64_t L = table.length, window = std::min(n, L);
    auto newest = ids.select(-1, n - 1);
    auto alive = table.ends.index_select(0, newest.reshape({-1}));  // [rows, L]
    auto matched = at::arange(1, L + 1, ids.options()).expand_as(alive).clone();  // bytes of S matched so far
    auto done = alive.select(-1, L - 1).clone();  // the newest token holds all of S
    alive.select(-1, L - 1).fill_(false);
    auto flat_ids = ids.reshape({-1, n});
    for (int64_t back = 2; back <= window; ++back) {
      auto token = flat_ids.select(-1, n - back);
      auto fits = table.fits.index_select(0, token).gather(1, matched.clamp_max(L - 1));
      alive = alive.logical_and(fits);
      matched = matched + lengths_.index_select(0, token).unsqueeze(1);
      done = done.logical_or(alive.logical_and(matched >= L).any(1));
      alive = alive.logical_and(matched < L);
    }
    return done.view(newest.sizes());
  }

  int64_t vocab_ = 0, longest_ = 0;  // longest_: bytes of the longest stop string (a token holds at least one)
  at::Tensor lengths_;  // [V + 1] int64: each token text's bytes
  std::vector<Table> tables_;
};

}  // namespace lmdecode::detail
