#pragma once
// TokenGrammar: a Grammar over a vocabulary. It answers which tokens a parse can take next: those
// whose whole text (bytes, as the tokenizer has them: a token may hold part of a UTF-8 character)
// the grammar can read from that state. The tokens' texts sit in a byte trie, so tokens that share
// a start are read once, and a branch no parse can take is left at its first byte. Each state's
// answer is kept (a JSON string's inside, a list's separator: states recur), up to kCachedStates.
// One TokenGrammar serves many generations and threads: GenerationConfig::grammar.
//
// Example:
//   auto grammar = std::make_shared<lmdecode::TokenGrammar>(
//       lmdecode::Grammar::from_gbnf(gbnf), tokenizer.token_texts(), special_token_ids);
//   config.grammar = grammar;  // with config.eos_token_ids: EOS is allowed where the grammar accepts

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "lmdecode/grammar/grammar.hpp"
#include "lmdecode/grammar/grammar_state.hpp"

namespace lmdecode {

class TokenGrammar {
 public:
  static constexpr size_t kCachedStates = 256;

  /// `token_texts`: each id's bytes (Tokenizer::token_texts()); `excluded_ids`: ids the grammar never
  /// allows, whatever their text (the tokenizer's special tokens: their text is markup, not output).
  /// Ids with an empty text are never allowed either.
  TokenGrammar(Grammar grammar, std::shared_ptr<const std::vector<std::string>> token_texts,
               const std::vector<int64_t>& excluded_ids = {})
      : grammar_(std::move(grammar)), texts_(std::move(token_texts)) {
    detail::check(texts_ && !texts_->empty(), "a grammar needs each token's text (Tokenizer::token_texts())");
    const std::unordered_set<int64_t> excluded(excluded_ids.begin(), excluded_ids.end());
    for (size_t id = 0; id < texts_->size(); ++id)
      if (!(*texts_)[id].empty() && !excluded.count(static_cast<int64_t>(id))) ids_.push_back(static_cast<int32_t>(id));
    build_trie();
  }

  const Grammar& grammar() const { return grammar_; }
  int64_t vocab_size() const { return static_cast<int64_t>(texts_->size()); }
  GrammarState start() const { return GrammarState::start(grammar_); }

  /// The state after token `id` (dead where the grammar cannot read its text).
  GrammarState after_token(const GrammarState& state, int64_t id) const {
    if (id < 0 || id >= vocab_size()) return {};
    return state.after_text(grammar_, (*texts_)[static_cast<size_t>(id)]);
  }

  /// [vocab_size()] bool on the CPU: the tokens `state` can take (EOS is the caller's: where accepts()).
  at::Tensor allowed_tokens(const GrammarState& state) const {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto it = cached_.find(state); it != cached_.end()) return it->second;
    }
    at::Tensor allowed = at::zeros({vocab_size()}, at::kBool);
    visit(state, allowed.data_ptr<bool>());
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_.size() >= kCachedStates) cached_.clear();
    cached_.emplace(state, allowed);
    return allowed;
  }

 private:
  Grammar grammar_;
  std::shared_ptr<const std::vector<std::string>> texts_;
  // The byte trie of the allowed ids' texts, its nodes in depth-first order so that a walk reads
  // them front to back: node i is the byte byte_[i] after its parent, its subtree runs up to
  // end_[i], and the ids whose text ends there are ids_[first_id_[i], first_id_[i] + id_count_[i]).
  // Node 0 is the empty text.
  std::vector<int32_t> ids_;  // the allowed ids, sorted by text
  std::vector<uint8_t> byte_;
  std::vector<int32_t> end_, first_id_, id_count_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<GrammarState, at::Tensor, GrammarStateHash> cached_;

  void build_trie() {
    const auto& texts = *texts_;
    std::sort(ids_.begin(), ids_.end(), [&](int32_t a, int32_t b) { return texts[static_cast<size_t>(a)] < texts[static_cast<size_t>(b)]; });
    byte_.push_back(0), end_.push_back(0), first_id_.push_back(0), id_count_.push_back(0);
    std::vector<int32_t> path{0};  // the nodes of the previous text, root first
    std::string_view previous;
    for (size_t k = 0; k < ids_.size(); ++k) {
      const std::string_view text = texts[static_cast<size_t>(ids_[k])];
      size_t common = 0;
      while (common < previous.size() && common < text.size() && previous[common] == text[common]) ++common;
      for (; path.size() > common + 1; path.pop_back()) end_[static_cast<size_t>(path.back())] = static_cast<int32_t>(byte_.size());
      for (size_t i = common; i < text.size(); ++i) {
        path.push_back(static_cast<int32_t>(byte_.size()));
        byte_.push_back(static_cast<uint8_t>(text[i])), end_.push_back(0), first_id_.push_back(static_cast<int32_t>(k)), id_count_.push_back(0);
      }
      ++id_count_[static_cast<size_t>(path.back())];  // ids of one text are neighbours in ids_, from first_id_ on
      previous = text;
    }
    for (; !path.empty(); path.pop_back()) end_[static_cast<size_t>(path.back())] = static_cast<int32_t>(byte_.size());
  }

  /// The states one walk of the trie meets, each once, and the moves between them by a byte: most
  /// nodes of the trie are reached in a handful of states (inside a string, every ordinary
  /// character leads back to the same state), so a move is mostly a table look-up. Moves are kept
  /// for the first kTabledStates states; later ones are computed each time (bounded memory).
  class WalkStates {
   public:
    static constexpr size_t kTabledStates = 1024;
    static constexpr int32_t kDead = -1, kUnknown = -2;

    explicit WalkStates(const Grammar& grammar) : grammar_(grammar) {}

    int32_t intern(GrammarState state) {
      if (state.dead()) return kDead;
      auto [it, inserted] = ids_.try_emplace(std::move(state), static_cast<int32_t>(states_.size()));
      if (inserted) {
        states_.push_back(&it->first);
        if (moves_.size() < kTabledStates) moves_.emplace_back().fill(kUnknown);
      }
      return it->second;
    }

    int32_t move(int32_t id, uint8_t byte) {
      const auto index = static_cast<size_t>(id);
      if (index < moves_.size() && moves_[index][byte] != kUnknown) return moves_[index][byte];
      const int32_t next = intern(states_[index]->after_byte(grammar_, byte));
      if (index < moves_.size()) moves_[index][byte] = next;
      return next;
    }

   private:
    const Grammar& grammar_;
    std::unordered_map<GrammarState, int32_t, GrammarStateHash> ids_;  // node-based: the pointers below stay valid
    std::vector<const GrammarState*> states_;
    std::vector<std::array<int32_t, 256>> moves_;
  };

  /// Marks every token whose text `state` can read: one pass over the trie's nodes in order,
  /// skipping the subtree of a byte no parse can take.
  void visit(const GrammarState& state, bool* allowed) const {
    WalkStates states(grammar_);
    std::vector<std::pair<int32_t, int32_t>> open{{static_cast<int32_t>(byte_.size()), states.intern(state)}};  // (end, state)
    for (int32_t node = 1; node < static_cast<int32_t>(byte_.size());) {
      while (node >= open.back().first) open.pop_back();
      const int32_t next = states.move(open.back().second, byte_[static_cast<size_t>(node)]);
      if (next == WalkStates::kDead) {
        node = end_[static_cast<size_t>(node)];
        continue;
      }
      const auto first = static_cast<size_t>(first_id_[static_cast<size_t>(node)]);
      for (size_t k = first; k < first + static_cast<size_t>(id_count_[static_cast<size_t>(node)]); ++k) allowed[ids_[k]] = true;
      open.emplace_back(end_[static_cast<size_t>(node)], next);
      ++node;
    }
  }
};

}  // namespace lmdecode
