#pragma once
// GrammarProcessor: only the tokens a grammar can take (GenerationConfig::grammar) keep their
// scores; EOS keeps its score only where the text so far is a whole sentence of the grammar.
//
// Each row's parse follows its own tokens: the processor finds a row's state from its history
// alone (the new tokens after the prompt), keyed by a hash of them, so whatever the strategy does
// to the rows between steps (beam search reorders and forks them, speculative decoding drops
// rejected drafts) each row continues the parse of exactly the tokens it holds. A state is a value:
// two beams forked from one go on separately.
//
// A row whose tokens the grammar does not allow (a rejected draft past which nothing is kept) or
// that already took EOS is left as it is. A row with no token allowed where its text is not a
// whole sentence (the vocabulary cannot write what the grammar needs next) may take EOS only; its
// result says FinishReason::grammar (mark_grammar_dead_ends).

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <unordered_map>
#include <vector>

#include "lmdecode/grammar/token_grammar.hpp"
#include "lmdecode/logits/processor.hpp"
#include "lmdecode/result.hpp"

namespace lmdecode {

class GrammarProcessor : public LogitsProcessor {
 public:
  GrammarProcessor(std::shared_ptr<const TokenGrammar> grammar, int64_t prompt_length, std::vector<int64_t> eos_token_ids)
      : grammar_(std::move(grammar)), prompt_length_(prompt_length), eos_(std::move(eos_token_ids)) {}

  void apply(const at::Tensor& input_ids, at::Tensor& scores) override {
    const at::Tensor ids = input_ids.to(at::kCPU, at::kLong).contiguous();
    const int64_t rows = ids.size(0), columns = ids.size(1), vocab = scores.size(1);
    const int64_t known = std::min(vocab, grammar_->vocab_size());
    at::Tensor allowed = at::ones({rows, vocab}, at::kBool);
    ++calls_;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t* row = ids.data_ptr<int64_t>() + r * columns;
      const RowParse& parse = parse_of(row + prompt_length_, columns - prompt_length_);
      if (parse.left || parse.ended) continue;
      at::Tensor row_allowed = allowed[r];
      row_allowed.fill_(false);
      const at::Tensor tokens = grammar_->allowed_tokens(parse.state);
      row_allowed.narrow(0, 0, known).copy_(tokens.narrow(0, 0, known));
      const bool eos_allowed = parse.state.accepts() || !row_allowed.any().item<bool>();
      for (int64_t eos : eos_)
        if (eos >= 0 && eos < vocab) row_allowed[eos] = eos_allowed;
    }
    scores.masked_fill_(allowed.logical_not().to(scores.device()), -std::numeric_limits<float>::infinity());
    forget_old();
  }

 private:
  /// A row's parse after its new tokens.
  struct RowParse {
    GrammarState state;
    bool ended = false;  // it took EOS: what follows is padding
    bool left = false;   // it took a token the grammar does not allow
    uint64_t last_used = 0;
  };
  /// The new tokens' count and hash.
  struct Key {
    int64_t length;
    uint64_t hash;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return static_cast<size_t>(k.hash ^ static_cast<uint64_t>(k.length)); }
  };
  /// Parses kept for this many calls after their last use: beam search and speculative decoding
  /// come back to a parse one to a few calls later.
  static constexpr uint64_t kKeptCalls = 8;

  std::shared_ptr<const TokenGrammar> grammar_;
  int64_t prompt_length_;
  std::vector<int64_t> eos_;
  std::unordered_map<Key, RowParse, KeyHash> parses_;
  uint64_t calls_ = 0;

  static uint64_t extend(uint64_t hash, int64_t token) {
    uint64_t h = hash ^ (static_cast<uint64_t>(token) + 0x9E3779B97F4A7C15ull + (hash << 6) + (hash >> 2));
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    return h ^ (h >> 31);
  }

  /// The parse of `tokens`: known, or the known parse of all but the last token moved on by it, or
  /// (a row seen first, or after a long gap) read from the start.
  const RowParse& parse_of(const int64_t* tokens, int64_t count) {
    std::vector<Key> keys{{0, 0}};
    for (int64_t i = 0; i < count; ++i) keys.push_back({i + 1, extend(keys.back().hash, tokens[i])});
    int64_t from = count;
    while (from > 0 && !parses_.count(keys[static_cast<size_t>(from)])) --from;
    if (from == 0 && !parses_.count(keys[0])) parses_[keys[0]] = {grammar_->start()};
    for (int64_t i = from; i < count; ++i) {
      RowParse next = parses_.at(keys[static_cast<size_t>(i)]);
      const int64_t token = tokens[i];
      if (next.ended || next.left) {
      } else if (std::find(eos_.begin(), eos_.end(), token) != eos_.end()) {
        next.ended = true;
      } else {
        next.state = grammar_->after_token(next.state, token);
        next.left = next.state.dead();
      }
      parses_[keys[static_cast<size_t>(i + 1)]] = std::move(next);
    }
    RowParse& parse = parses_.at(keys.back());
    parse.last_used = calls_;
    return parse;
  }

  void forget_old() {
    for (auto it = parses_.begin(); it != parses_.end();)
      it = calls_ - it->second.last_used > kKeptCalls ? parses_.erase(it) : std::next(it);
  }
};

/// Relabels the hypotheses that ended on EOS where their text was not a whole sentence of the
/// grammar (the processor's way out of a dead end): FinishReason::grammar.
inline void mark_grammar_dead_ends(const TokenGrammar& grammar, GenerationResult& result) {
  for (auto& per_prompt : result.hypotheses)
    for (auto& h : per_prompt) {
      if (h.finish_reason != FinishReason::eos || h.tokens.empty()) continue;
      GrammarState state = grammar.start();
      for (size_t i = 0; i + 1 < h.tokens.size() && !state.dead(); ++i) state = grammar.after_token(state, h.tokens[i]);
      if (!state.accepts()) h.finish_reason = FinishReason::grammar;
    }
}

}  // namespace lmdecode
