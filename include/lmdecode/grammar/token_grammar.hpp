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
    nodes_.emplace_back();
    for (size_t id = 0; id < texts_->size(); ++id)
      if (!(*texts_)[id].empty() && !excluded.count(static_cast<int64_t>(id))) insert((*texts_)[id], static_cast<int32_t>(id));
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
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // (byte, node)
    std::vector<int32_t> tokens;                        // ids whose text ends here
  };

  Grammar grammar_;
  std::shared_ptr<const std::vector<std::string>> texts_;
  std::vector<Node> nodes_;  // the byte trie of the allowed ids' texts; node 0 is the empty text
  mutable std::mutex mutex_;
  mutable std::unordered_map<GrammarState, at::Tensor, GrammarStateHash> cached_;

  void insert(const std::string& text, int32_t id) {
    int32_t node = 0;
    for (char c : text) {
      const auto byte = static_cast<uint8_t>(c);
      auto& children = nodes_[static_cast<size_t>(node)].children;
      auto it = std::find_if(children.begin(), children.end(), [byte](const auto& child) { return child.first == byte; });
      if (it != children.end()) {
        node = it->second;
        continue;
      }
      const auto next = static_cast<int32_t>(nodes_.size());
      children.emplace_back(byte, next);
      nodes_.emplace_back();  // invalidates `children`: not used after this
      node = next;
    }
    nodes_[static_cast<size_t>(node)].tokens.push_back(id);
  }

  /// Marks every token whose text `state` can read, walking the trie depth first (with a stack of
  /// its own: a token's text may be long).
  void visit(const GrammarState& state, bool* allowed) const {
    struct Frame {
      int32_t node;
      size_t next_child;
      GrammarState state;
    };
    std::vector<Frame> frames{{0, 0, state}};
    while (!frames.empty()) {
      Frame& top = frames.back();
      const auto& children = nodes_[static_cast<size_t>(top.node)].children;
      if (top.next_child == children.size()) {
        frames.pop_back();
        continue;
      }
      const auto [byte, child] = children[top.next_child++];
      GrammarState next = top.state.after_byte(grammar_, byte);
      if (next.dead()) continue;
      for (int32_t id : nodes_[static_cast<size_t>(child)].tokens) allowed[id] = true;
      frames.push_back({child, 0, std::move(next)});
    }
  }
};

}  // namespace lmdecode
