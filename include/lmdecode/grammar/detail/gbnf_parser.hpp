#pragma once
// The GBNF reader behind Grammar::from_gbnf. GBNF as llama.cpp reads it:
//   name ::= alternatives        one rule a line; `root` is the start
//   a b | c                      sequence and alternation; `|` may end a line, to go on on the next
//   "lit\n"  [a-z0-9_]  [^"\\]   literals and character classes (escapes \n \r \t \\ \" \[ \] \- \^
//   .                            \xHH \uHHHH \UHHHHHHHH), any character
//   ( ... )                      a group: newlines inside are spaces
//   x*  x+  x?  x{m}  x{m,}  x{m,n}   repetitions of the element before (a whole literal, a class,
//                                a name or a group)
//   # ...                        a comment to the end of the line
// What a parse could not finish is refused here: a rule used but not defined, a rule that reaches
// itself before taking a character (left recursion, also through parts that can be empty) and a
// repetition of something that can be empty, which would loop without reading.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lmdecode {
class Grammar;
}

namespace lmdecode::detail {

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view text) : text_(text) {
    check(text.size() <= Grammar::kMaxTextBytes, "grammar: {} bytes, more than the {} a grammar may have", text.size(),
          Grammar::kMaxTextBytes);
  }

  Grammar parse() {
    skip_space(true);
    while (pos_ < text_.size()) {
      parse_rule();
      skip_space(true);
    }
    for (size_t r = 0; r < rules_.size(); ++r)
      if (!defined_[r]) fail_at(first_use_[r], "rule '{}' is used but never defined", names_[r]);
    const auto root = ids_.find("root");
    check(root != ids_.end(), "grammar: no rule 'root' (the start of every GBNF grammar)");
    refuse_left_recursion();
    return assemble(root->second);
  }

 private:
  using Sequence = std::vector<GrammarItem>;
  using Alternatives = std::vector<Sequence>;

  std::string_view text_;
  size_t pos_ = 0;
  int nesting_ = 0;
  size_t items_ = 0;  // items written so far, against Grammar::kMaxItems
  std::vector<std::pair<uint32_t, uint32_t>> ranges_;
  std::vector<Alternatives> rules_;
  std::vector<std::string> names_;
  std::vector<bool> defined_;
  std::vector<size_t> first_use_;
  std::unordered_map<std::string, int32_t> ids_;

  template <class... Args>
  [[noreturn]] void fail_at(size_t at, fmt::format_string<Args...> format, Args&&... args) const {
    const size_t line = 1 + static_cast<size_t>(std::count(text_.begin(), text_.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
    const size_t line_start = text_.rfind('\n', at == 0 ? 0 : at - 1);
    const size_t column = line == 1 ? at + 1 : at - line_start;
    throw invalid_argument(fmt::format("grammar: line {}, column {}: {}", line, column,
                                       fmt::format(format, std::forward<Args>(args)...)));
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }

  /// Skips spaces, tabs and comments, and newlines where `newlines` (inside groups, after `|`).
  void skip_space(bool newlines) {
    while (!at_end()) {
      const char c = peek();
      if (c == ' ' || c == '\t' || (newlines && (c == '\n' || c == '\r'))) ++pos_;
      else if (c == '#') while (!at_end() && peek() != '\n') ++pos_;
      else break;
    }
  }

  std::string parse_name() {
    const size_t start = pos_;
    while (is_name_char(peek())) ++pos_;
    if (pos_ == start) fail_at(start, "expected a rule name, found {}", describe_here());
    return std::string(text_.substr(start, pos_ - start));
  }

  std::string describe_here() const {
    if (at_end()) return "the end of the grammar";
    const char c = peek();
    if (c == '\n' || c == '\r') return "the end of the line";
    return fmt::format("'{}'", c);
  }

  int32_t rule_id(const std::string& name, size_t used_at) {
    auto [it, inserted] = ids_.try_emplace(name, static_cast<int32_t>(rules_.size()));
    if (inserted) {
      rules_.emplace_back();
      names_.push_back(name);
      defined_.push_back(false);
      first_use_.push_back(used_at);
    }
    return it->second;
  }

  /// A rule of the grammar's own (a group or a repetition), named after the rule it is written in.
  int32_t new_rule(const std::string& parent, Alternatives alternatives) {
    const int32_t id = static_cast<int32_t>(rules_.size());
    rules_.push_back(std::move(alternatives));
    names_.push_back(fmt::format("{} (a group or repetition in it)", parent));
    defined_.push_back(true);
    first_use_.push_back(pos_);
    return id;
  }

  void parse_rule() {
    const size_t start = pos_;
    const std::string name = parse_name();
    skip_space(false);
    if (text_.substr(pos_, 3) != "::=") fail_at(pos_, "expected '::=' after the rule name '{}', found {}", name, describe_here());
    pos_ += 3;
    skip_space(true);
    const int32_t id = rule_id(name, start);
    if (defined_[static_cast<size_t>(id)]) fail_at(start, "rule '{}' is defined twice", name);
    Alternatives alternatives = parse_alternatives(name);
    rules_[static_cast<size_t>(id)] = std::move(alternatives);
    defined_[static_cast<size_t>(id)] = true;
    if (!at_end() && peek() != '\n' && peek() != '\r') fail_at(pos_, "unexpected {} in rule '{}'", describe_here(), name);
  }

  Alternatives parse_alternatives(const std::string& rule) {
    Alternatives alternatives{parse_sequence(rule)};
    items_ += alternatives.back().size() + 1;
    while (peek() == '|') {
      ++pos_;
      skip_space(true);
      alternatives.push_back(parse_sequence(rule));
      items_ += alternatives.back().size() + 1;
    }
    return alternatives;
  }

  Sequence parse_sequence(const std::string& rule) {
    Sequence items;
    size_t last = items.size();  // where the element a repetition would apply to begins
    bool has_last = false;
    while (!at_end()) {
      const size_t start = pos_;
      const char c = peek();
      if (c == '"') {
        last = items.size(), has_last = true;
        ++pos_;
        while (peek() != '"') {
          if (at_end() || peek() == '\n') fail_at(start, "a literal that is not closed");
          const uint32_t cp = parse_char();
          items.push_back(chars_item({{cp, cp}}, false));
        }
        ++pos_;
      } else if (c == '[') {
        last = items.size(), has_last = true;
        items.push_back(parse_class());
      } else if (c == '.') {
        last = items.size(), has_last = true;
        ++pos_;
        items.push_back(chars_item({}, true));
      } else if (is_name_char(c)) {
        last = items.size(), has_last = true;
        const std::string name = parse_name();
        items.push_back(rule_item(rule_id(name, start)));
      } else if (c == '(') {
        last = items.size(), has_last = true;
        ++pos_;
        if (++nesting_ > Grammar::kMaxNesting) fail_at(start, "groups nested more than {} deep", Grammar::kMaxNesting);
        skip_space(true);
        Alternatives inner = parse_alternatives(rule);
        if (peek() != ')') fail_at(pos_, "expected ')' to close the group opened at column {}, found {}", start + 1, describe_here());
        ++pos_;
        --nesting_;
        items.push_back(rule_item(new_rule(rule, std::move(inner))));
      } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (!has_last) fail_at(start, "'{}' with nothing before it to repeat", c);
        const auto [min, max] = parse_repetition();
        Sequence element(items.begin() + static_cast<std::ptrdiff_t>(last), items.end());
        items.resize(last);
        append_repetition(rule, element, min, max, items);
        has_last = false;
      } else {
        break;
      }
      count_items(items.size());
      skip_space(nesting_ > 0);
    }
    return items;
  }

  void count_items(size_t sequence_items) const {
    if (items_ + sequence_items > Grammar::kMaxItems)
      throw invalid_argument(fmt::format("grammar: more than {} items once its repetitions are written out", Grammar::kMaxItems));
  }

  /// The counts of `*`, `+`, `?` or `{m}`, `{m,}`, `{m,n}`; max UINT32_MAX: no bound.
  std::pair<uint32_t, uint32_t> parse_repetition() {
    const size_t start = pos_;
    const char c = text_[pos_++];
    if (c == '*') return {0, UINT32_MAX};
    if (c == '+') return {1, UINT32_MAX};
    if (c == '?') return {0, 1};
    skip_space(nesting_ > 0);
    const uint32_t min = parse_count(start);
    uint32_t max = min;
    skip_space(nesting_ > 0);
    if (peek() == ',') {
      ++pos_;
      skip_space(nesting_ > 0);
      max = peek() == '}' ? UINT32_MAX : parse_count(start);
      skip_space(nesting_ > 0);
    }
    if (peek() != '}') fail_at(pos_, "expected '}}' to close the repetition, found {}", describe_here());
    ++pos_;
    if (max < min) fail_at(start, "repetition {{{},{}}} has its largest count below its smallest", min, max);
    return {min, max};
  }

  uint32_t parse_count(size_t repetition_start) {
    const size_t start = pos_;
    uint64_t value = 0;
    while (peek() >= '0' && peek() <= '9') {
      value = value * 10 + static_cast<uint64_t>(peek() - '0');
      if (value > Grammar::kMaxRepetition)
        fail_at(repetition_start, "a repetition count above {}", Grammar::kMaxRepetition);
      ++pos_;
    }
    if (pos_ == start) fail_at(pos_, "expected a count in the repetition, found {}", describe_here());
    return static_cast<uint32_t>(value);
  }

  /// Writes `element` repeated min to max times: min copies, then either a rule that takes any
  /// number more (R ::= element R | empty) or a chain of max - min optional copies.
  void append_repetition(const std::string& rule, const Sequence& element, uint32_t min, uint32_t max, Sequence& out) {
    const uint64_t copies = max == UINT32_MAX ? uint64_t{min} + 1 : max;  // each with a rule's few items more
    count_items(out.size() + static_cast<size_t>(copies * (element.size() + 3)));
    for (uint32_t i = 0; i < min; ++i) out.insert(out.end(), element.begin(), element.end());
    if (max == UINT32_MAX) {
      const int32_t id = new_rule(rule, {});
      Sequence again = element;
      again.push_back(rule_item(id));
      rules_[static_cast<size_t>(id)] = {again, {}};
      items_ += again.size() + 2;
      out.push_back(rule_item(id));
      return;
    }
    int32_t tail = -1;  // the optional copies after this one
    for (uint32_t i = min; i < max; ++i) {
      Sequence once = element;
      if (tail >= 0) once.push_back(rule_item(tail));
      items_ += once.size() + 2;
      tail = new_rule(rule, {once, {}});
    }
    if (tail >= 0) out.push_back(rule_item(tail));
  }

  GrammarItem chars_item(std::vector<std::pair<uint32_t, uint32_t>> ranges, bool negated) {
    GrammarItem item{GrammarItem::Kind::chars, negated, static_cast<uint32_t>(ranges_.size()), static_cast<uint32_t>(ranges.size())};
    ranges_.insert(ranges_.end(), ranges.begin(), ranges.end());
    return item;
  }

  static GrammarItem rule_item(int32_t rule) { return {GrammarItem::Kind::rule, false, 0, 0, rule}; }

  GrammarItem parse_class() {
    const size_t start = pos_++;
    const bool negated = peek() == '^';
    if (negated) ++pos_;
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    while (peek() != ']') {
      if (at_end() || peek() == '\n') fail_at(start, "a character class that is not closed");
      const uint32_t low = parse_char();
      uint32_t high = low;
      if (peek() == '-' && pos_ + 1 < text_.size() && text_[pos_ + 1] != ']' && text_[pos_ + 1] != '\n') {
        ++pos_;
        high = parse_char();
        if (high < low) fail_at(start, "a range in a character class that ends (U+{:04X}) before it starts (U+{:04X})", high, low);
      }
      ranges.emplace_back(low, high);
    }
    ++pos_;
    if (ranges.empty() && !negated) fail_at(start, "an empty character class matches nothing");
    return chars_item(std::move(ranges), negated);
  }

  /// One character of a literal or class: an escape or a UTF-8 character.
  uint32_t parse_char() {
    const size_t start = pos_;
    const auto byte = static_cast<unsigned char>(text_[pos_]);
    if (byte == '\\') {
      if (++pos_ >= text_.size()) fail_at(start, "an escape at the end of the grammar");
      const char e = text_[pos_++];
      switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case '\\': case '"': case '[': case ']': case '-': case '^': case '/': return static_cast<uint32_t>(e);
        case 'x': return parse_hex(start, 2);
        case 'u': return parse_hex(start, 4);
        case 'U': return parse_hex(start, 8);
        default: fail_at(start, "unknown escape '\\{}'", e);
      }
    }
    const int length = detail::utf8_length_of_lead(byte);
    if (length == 0 || start + static_cast<size_t>(length) > text_.size()) fail_at(start, "the grammar is not valid UTF-8 here");
    uint32_t cp = length == 1 ? byte : byte & (0x7F >> length);
    for (int i = 1; i < length; ++i) {
      const auto next = static_cast<unsigned char>(text_[start + static_cast<size_t>(i)]);
      if ((next & 0xC0) != 0x80) fail_at(start, "the grammar is not valid UTF-8 here");
      cp = (cp << 6) | (next & 0x3F);
    }
    pos_ = start + static_cast<size_t>(length);
    return cp;
  }

  uint32_t parse_hex(size_t start, int digits) {
    uint32_t value = 0;
    for (int i = 0; i < digits; ++i, ++pos_) {
      const char c = peek();
      const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (digit < 0) fail_at(start, "an escape that needs {} hex digits", digits);
      value = value * 16 + static_cast<uint32_t>(digit);
    }
    if (value > 0x10FFFF) fail_at(start, "an escape past the last code point U+10FFFF");
    return value;
  }

  /// Rules that can match the empty text.
  std::vector<bool> nullable_rules() const {
    std::vector<bool> nullable(rules_.size(), false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < rules_.size(); ++r) {
        if (nullable[r]) continue;
        for (const auto& sequence : rules_[r])
          if (std::all_of(sequence.begin(), sequence.end(), [&](const GrammarItem& i) {
                return i.kind == GrammarItem::Kind::rule && nullable[static_cast<size_t>(i.rule)];
              })) {
            nullable[r] = changed = true;
            break;
          }
      }
    }
    return nullable;
  }

  /// A rule that reaches itself through the starts of its alternatives (past parts that can be
  /// empty) would expand without end: refused, naming the rules of the loop.
  void refuse_left_recursion() const {
    const auto nullable = nullable_rules();
    std::vector<std::vector<int32_t>> leftmost(rules_.size());
    for (size_t r = 0; r < rules_.size(); ++r)
      for (const auto& sequence : rules_[r])
        for (const auto& item : sequence) {
          if (item.kind != GrammarItem::Kind::rule) break;
          leftmost[r].push_back(item.rule);
          if (!nullable[static_cast<size_t>(item.rule)]) break;
        }
    enum Mark : uint8_t { unvisited, open, done };
    std::vector<Mark> mark(rules_.size(), unvisited);
    std::vector<int32_t> path;
    // Iterative depth-first search: a hostile grammar's chain of rules must not overflow the stack.
    for (size_t start = 0; start < rules_.size(); ++start) {
      if (mark[start] != unvisited) continue;
      std::vector<std::pair<int32_t, size_t>> frames{{static_cast<int32_t>(start), 0}};
      mark[start] = open;
      while (!frames.empty()) {
        auto& [rule, next] = frames.back();
        const auto& edges = leftmost[static_cast<size_t>(rule)];
        if (next == edges.size()) {
          mark[static_cast<size_t>(rule)] = done;
          frames.pop_back();
          continue;
        }
        const int32_t to = edges[next++];
        if (mark[static_cast<size_t>(to)] == open) {
          std::vector<std::string> loop;
          bool in_loop = false;
          for (const auto& frame : frames) {
            in_loop = in_loop || frame.first == to;
            if (in_loop) loop.push_back(fmt::format("'{}'", names_[static_cast<size_t>(frame.first)]));
          }
          loop.push_back(loop.front());
          throw invalid_argument(fmt::format(
              "grammar: rule {} reaches itself before reading a character (left recursion, or a repetition of "
              "something that can be empty): loop {}", loop.front(), fmt::join(loop, " -> ")));
        }
        if (mark[static_cast<size_t>(to)] == unvisited) {
          mark[static_cast<size_t>(to)] = open;
          frames.emplace_back(to, 0);
        }
      }
    }
  }

  Grammar assemble(int32_t root) {
    Grammar g;
    g.root_ = root;
    g.ranges_ = std::move(ranges_);
    g.names_ = std::move(names_);
    g.alternatives_.resize(rules_.size());
    for (size_t r = 0; r < rules_.size(); ++r)
      for (const auto& sequence : rules_[r]) {
        g.alternatives_[r].push_back(static_cast<int32_t>(g.items_.size()));
        g.items_.insert(g.items_.end(), sequence.begin(), sequence.end());
        g.items_.push_back({});
      }
    return g;
  }
};

}  // namespace lmdecode::detail
