#pragma once
// Grammar: a context-free grammar over Unicode code points, compiled from llama.cpp's GBNF
// (grammar/detail/gbnf_parser.hpp), so users bring the grammars they already have. It is the
// rules only; a parse in progress is a GrammarState (grammar_state.hpp), and the tokens a parse
// can take next come from a TokenGrammar (token_grammar.hpp).
//
// Example:
//   auto grammar = lmdecode::Grammar::from_gbnf(R"(root ::= "yes" | "no")");
//
// Compiled form: every rule is a list of alternatives; every alternative is a run of items in one
// flat array, closed by an `end` item. An item matches one code point (a set of ranges, or its
// complement) or stands for another rule. Groups and repetitions become rules of their own, so the
// parse of a grammar is a stack machine over rules and items alone.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lmdecode/error.hpp"

namespace lmdecode {

namespace detail {
class GbnfParser;

/// The bytes of the UTF-8 character that `lead` starts (1 to 4), or 0 where no valid character
/// starts with it (a continuation byte, an overlong or out-of-range lead). text/detail/utf8.hpp has
/// the tokenizer's own, which counts such a byte as one; grammars refuse it.
inline int utf8_length_of_lead(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

/// At most `limit` + 1 bytes of the file `path` (enough for its reader to see that it is too long);
/// `what` names the file's kind in the error where it cannot be opened.
inline std::string read_at_most(const std::filesystem::path& path, size_t limit, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error(fmt::format("cannot open the {} {}", what, path.string()));
  std::string text(limit + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

/// `read()`, with the file's path before the message of an invalid_argument it throws.
template <class Read>
auto naming_file(const std::filesystem::path& path, const Read& read) {
  try {
    return read();
  } catch (const invalid_argument& e) {
    throw invalid_argument(fmt::format("{}: {}", path.string(), std::string_view(e.what()).substr(std::string_view("lmdecode: ").size())));
  }
}
}  // namespace detail

/// One item of an alternative.
struct GrammarItem {
  enum class Kind : uint8_t { end, chars, rule };
  Kind kind = Kind::end;
  bool negated = false;   // chars: any code point outside the ranges
  uint32_t first = 0;     // chars: the ranges are Grammar::ranges()[first, first + count)
  uint32_t count = 0;
  int32_t rule = -1;      // rule: the rule it stands for
};

class Grammar {
 public:
  /// Bounds on what a grammar may hold, so that a hostile grammar costs bounded time and memory.
  static constexpr size_t kMaxTextBytes = size_t{1} << 20;
  static constexpr size_t kMaxItems = size_t{1} << 20;  // after repetitions are written out
  static constexpr int kMaxNesting = 256;               // groups inside groups
  static constexpr uint32_t kMaxRepetition = 10000;     // the largest count in x{m,n}

  /// The grammar of a GBNF text; its start rule is `root`. Errors name the line and column.
  static Grammar from_gbnf(std::string_view text);
  /// The grammar of a GBNF file (at most kMaxTextBytes); errors name the file too.
  static Grammar from_gbnf_file(const std::filesystem::path& path);

  int32_t root() const { return root_; }
  const GrammarItem& item(int32_t index) const { return items_[static_cast<size_t>(index)]; }
  /// The index of each alternative's first item.
  std::span<const int32_t> alternatives(int32_t rule) const { return alternatives_[static_cast<size_t>(rule)]; }
  const std::string& rule_name(int32_t rule) const { return names_[static_cast<size_t>(rule)]; }
  size_t rule_count() const { return alternatives_.size(); }
  size_t item_count() const { return items_.size(); }

  /// Whether a chars item takes `code_point`.
  bool matches(const GrammarItem& chars, uint32_t code_point) const { return in_ranges(chars, code_point) != chars.negated; }

  /// Whether a chars item takes some code point in [low, high] (a UTF-8 character begun but not ended).
  bool matches_some(const GrammarItem& chars, uint32_t low, uint32_t high) const {
    if (!chars.negated) {
      for (uint32_t i = chars.first; i < chars.first + chars.count; ++i)
        if (ranges_[i].first <= high && low <= ranges_[i].second) return true;
      return false;
    }
    // Negated: some point of [low, high] lies outside every range. The candidates are low and the
    // point after each range.
    auto outside = [&](uint32_t point) { return point >= low && point <= high && !in_ranges(chars, point); };
    if (outside(low)) return true;
    for (uint32_t i = chars.first; i < chars.first + chars.count; ++i)
      if (ranges_[i].second < high && outside(ranges_[i].second + 1)) return true;
    return false;
  }

 private:
  friend class detail::GbnfParser;

  bool in_ranges(const GrammarItem& chars, uint32_t code_point) const {
    for (uint32_t i = chars.first; i < chars.first + chars.count; ++i)
      if (ranges_[i].first <= code_point && code_point <= ranges_[i].second) return true;
    return false;
  }

  std::vector<GrammarItem> items_;
  std::vector<std::pair<uint32_t, uint32_t>> ranges_;  // inclusive code point ranges of the chars items
  std::vector<std::vector<int32_t>> alternatives_;     // by rule
  std::vector<std::string> names_;                     // by rule, for messages
  int32_t root_ = -1;
};

}  // namespace lmdecode

#include "lmdecode/grammar/detail/gbnf_parser.hpp"

namespace lmdecode {

inline Grammar Grammar::from_gbnf(std::string_view text) { return detail::GbnfParser(text).parse(); }

inline Grammar Grammar::from_gbnf_file(const std::filesystem::path& path) {
  const std::string text = detail::read_at_most(path, kMaxTextBytes, "grammar");
  return detail::naming_file(path, [&] { return from_gbnf(text); });
}

}  // namespace lmdecode
