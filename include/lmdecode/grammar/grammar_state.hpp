#pragma once
// GrammarState: a parse of a Grammar in progress, as a value: every way the text so far can
// continue, each a stack of the items still to match (innermost rule on top). A state takes text
// one byte at a time; a UTF-8 character split across tokens waits, half read, until its last byte,
// and is kept only while some stack can take a character that starts with those bytes.
//
// Example:
//   auto grammar = lmdecode::Grammar::from_gbnf(R"(root ::= [a-z]+ "!")");
//   auto state = lmdecode::GrammarState::start(grammar).after_text(grammar, "hi!");
//   state.accepts();  // true: "hi!" is a whole sentence of the grammar

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "lmdecode/grammar/grammar.hpp"

namespace lmdecode {

class GrammarState {
 public:
  /// Bounds that keep every step's work bounded: the parses a state keeps at once (an ambiguous
  /// grammar), the depth of a parse's stack (text nested deeper than this is not taken), and the
  /// rule expansions a character may cause.
  static constexpr size_t kMaxParses = 1024;
  static constexpr size_t kMaxDepth = 1024;
  static constexpr size_t kMaxExpansions = size_t{1} << 16;

  /// Before any text.
  static GrammarState start(const Grammar& grammar) {
    GrammarState state;
    std::vector<Stack> out;
    size_t budget = kMaxExpansions;
    for (int32_t alternative : grammar.alternatives(grammar.root())) expand(grammar, {alternative}, out, budget);
    state.stacks_ = unique(std::move(out));
    return state;
  }

  /// No text can follow: the text so far is not the start of a sentence of the grammar.
  bool dead() const { return stacks_.empty(); }
  /// The text so far is a whole sentence of the grammar (whole characters only).
  bool accepts() const { return pending_ == 0 && std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); }); }

  GrammarState after_text(const Grammar& grammar, std::string_view text) const {
    GrammarState state = *this;
    for (size_t i = 0; i < text.size() && !state.dead(); ++i) state = state.after_byte(grammar, static_cast<uint8_t>(text[i]));
    return state;
  }

  GrammarState after_byte(const Grammar& grammar, uint8_t byte) const {
    if (pending_ == 0) {
      if (byte < 0x80) return after_code_point(grammar, byte);
      const int more = detail::utf8_length_of_lead(byte) - 1;
      if (more <= 0) return {};
      return begun(grammar, byte & (0x3F >> more), static_cast<uint8_t>(more));
    }
    if ((byte & 0xC0) != 0x80) return {};
    const uint32_t bits = (partial_ << 6) | (byte & 0x3F);
    if (pending_ == 1) {
      GrammarState whole = *this;
      whole.pending_ = 0, whole.partial_ = 0;
      return whole.after_code_point(grammar, bits);
    }
    return begun(grammar, bits, static_cast<uint8_t>(pending_ - 1));
  }

  bool operator==(const GrammarState& other) const {
    return pending_ == other.pending_ && partial_ == other.partial_ && stacks_ == other.stacks_;
  }

  size_t hash() const {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t{pending_} << 32) ^ partial_;
    auto mix = [&h](uint64_t v) { h = (h ^ v) * 0xBF58476D1CE4E5B9ull; h ^= h >> 31; };
    for (const auto& stack : stacks_) {
      mix(stack.size());
      for (int32_t index : stack) mix(static_cast<uint64_t>(index));
    }
    return static_cast<size_t>(h);
  }

 private:
  using Stack = std::vector<int32_t>;  // indices of items; the top is the next item of the innermost rule

  std::vector<Stack> stacks_;  // sorted, no repeats; each top is a chars item, or the stack is empty (a whole parse)
  uint32_t partial_ = 0;       // the bits of a UTF-8 character begun
  uint8_t pending_ = 0;        // its continuation bytes still to come

  GrammarState after_code_point(const Grammar& grammar, uint32_t code_point) const {
    GrammarState next;
    std::vector<Stack> out;
    size_t budget = kMaxExpansions;
    for (const Stack& stack : stacks_) {
      if (stack.empty() || !grammar.matches(grammar.item(stack.back()), code_point)) continue;
      Stack moved = stack;
      ++moved.back();
      expand(grammar, std::move(moved), out, budget);
    }
    next.stacks_ = unique(std::move(out));
    return next;
  }

  /// A UTF-8 character begun: `bits` read, `more` bytes to come. Keeps the stacks that can take
  /// some character starting so.
  GrammarState begun(const Grammar& grammar, uint32_t bits, uint8_t more) const {
    const uint32_t low = bits << (6 * more), high = low | ((1u << (6 * more)) - 1);
    GrammarState next;
    next.partial_ = bits, next.pending_ = more;
    for (const Stack& stack : stacks_)
      if (!stack.empty() && grammar.matches_some(grammar.item(stack.back()), low, std::min<uint32_t>(high, 0x10FFFF)))
        next.stacks_.push_back(stack);
    return next;
  }

  /// Moves `stack` on until its top is a chars item (or it is empty): a finished rule returns to the
  /// rule below; a rule's item opens each of its alternatives. A rule item last in its alternative
  /// returns nowhere, so it is popped before the rule opens (x* takes any length at one depth).
  static void expand(const Grammar& grammar, Stack stack, std::vector<Stack>& out, size_t& budget) {
    std::vector<Stack> work{std::move(stack)};
    while (!work.empty()) {
      Stack s = std::move(work.back());
      work.pop_back();
      while (!s.empty() && grammar.item(s.back()).kind == GrammarItem::Kind::end) s.pop_back();
      if (s.empty() || grammar.item(s.back()).kind == GrammarItem::Kind::chars) {
        detail::check(out.size() < kMaxParses, "grammar: more than {} parses open at once: the grammar is too ambiguous", kMaxParses);
        out.push_back(std::move(s));
        continue;
      }
      detail::check(budget-- > 0, "grammar: one character opened more than {} rules", kMaxExpansions);
      const int32_t rule = grammar.item(s.back()).rule;
      ++s.back();
      if (grammar.item(s.back()).kind == GrammarItem::Kind::end) s.pop_back();
      if (s.size() >= kMaxDepth) continue;
      for (int32_t alternative : grammar.alternatives(rule)) {
        Stack opened = s;
        opened.push_back(alternative);
        work.push_back(std::move(opened));
      }
    }
  }

  static std::vector<Stack> unique(std::vector<Stack> stacks) {
    std::sort(stacks.begin(), stacks.end());
    stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
    return stacks;
  }
};

struct GrammarStateHash {
  size_t operator()(const GrammarState& state) const { return state.hash(); }
};

}  // namespace lmdecode
