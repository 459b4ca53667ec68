#pragma once
// Splits a chat template into text, {{ output }} and {% statement %} pieces, each tag's expression
// already cut into tokens, with the whitespace rules transformers compiles templates under:
// trim_blocks (the newline after a %} or #} goes), lstrip_blocks (spaces and tabs from a line's
// start to a {% or {# go), "-" inside a tag strips all whitespace on that side, "+" keeps it, and
// one trailing newline of the template goes. Newlines in the template become "\n".

#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "lmdecode/jinja/value.hpp"

namespace lmdecode::jinja {

/// Where something stands in the template, 1-based.
struct Position {
  size_t line = 1, column = 1;
};

/// A fault in the template's text (a bad token, an unknown construct) at `where`.
class SyntaxError : public std::runtime_error {
 public:
  SyntaxError(const std::string& what, Position where) : std::runtime_error(what), where(where) {}
  Position where;
};

struct Token {
  enum class Kind { name, string, integer, floating, op };
  Kind kind;
  std::string text;  ///< the name, the operator or the string's value
  int64_t integer = 0;
  double floating = 0;
  Position where;
};

struct Piece {
  enum class Kind { text, output, statement };
  Kind kind;
  std::string text;  ///< text pieces only
  std::vector<Token> tokens;
  Position where;
};

/// A template's largest size: real chat templates are a few KiB (Llama 3's 4, Qwen3's 4); lexing,
/// parsing and holding one costs many times its size.
constexpr size_t kMaxTemplateBytes = size_t{1} << 20;

class Lexer {
 public:
  explicit Lexer(std::string_view source) : source_(checked_size(source)) {
    for (size_t i = 0; i < source_.size(); ++i)
      if (source_[i] == '\n') line_starts_.push_back(i + 1);
  }

  static std::string checked_size(std::string_view source) {
    if (source.size() > kMaxTemplateBytes)
      throw SyntaxError(fmt::format("the template is {} bytes, over the 1 MiB a template may have", source.size()), Position{});
    return normalize_newlines(source);
  }

  std::vector<Piece> pieces() {
    std::vector<Piece> out;
    size_t at = 0;
    while (at < source_.size()) {
      const size_t open = find_tag(at);
      std::string text = source_.substr(at, open - at);
      if (open == source_.size()) {
        push_text(out, std::move(text));
        break;
      }
      const char kind = source_[open + 1];
      const char modifier = open + 2 < source_.size() ? source_[open + 2] : '\0';
      if (modifier == '-') text = rstrip_whitespace(text);
      else if (kind != '{' && modifier != '+') text = lstrip_block_line(text, open);
      push_text(out, std::move(text));
      at = open + 2 + (modifier == '-' || modifier == '+' ? 1 : 0);
      if (kind == '#') at = end_comment(at, open);
      else at = read_tag(out, kind == '{' ? Piece::Kind::output : Piece::Kind::statement, at, open);
    }
    return out;
  }

 private:
  static std::string normalize_newlines(std::string_view source) {
    std::string out;
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        out += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else out += source[i];
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();  // keep_trailing_newline is off
    return out;
  }

  Position position(size_t offset) const {
    const size_t line = static_cast<size_t>(std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - line_starts_.begin());
    return {line, offset - line_starts_[line - 1] + 1};
  }

  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < source_.size(); ++i)
      if (source_[i] == '{' && (source_[i + 1] == '{' || source_[i + 1] == '%' || source_[i + 1] == '#')) return i;
    return source_.size();
  }

  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

  static std::string rstrip_whitespace(std::string text) {
    while (!text.empty() && is_space(text.back())) text.pop_back();
    return text;
  }

  /// lstrip_blocks: the spaces and tabs between the start of the tag's line and the tag.
  std::string lstrip_block_line(std::string text, size_t tag) const {
    size_t start = tag;
    while (start > 0 && (source_[start - 1] == ' ' || source_[start - 1] == '\t')) --start;
    if (start > 0 && source_[start - 1] != '\n') return text;
    const size_t run = tag - start;
    if (run > text.size()) return text;  // the run reaches into the previous tag: not a line start
    text.resize(text.size() - run);
    return text;
  }

  static void push_text(std::vector<Piece>& out, std::string text) {
    if (!text.empty()) out.push_back({Piece::Kind::text, std::move(text), {}, {}});
  }

  /// After a tag's end: "-" strips all whitespace, trim_blocks one newline after %} and #}.
  size_t after_tag(size_t end, bool strip, bool keep, bool block) const {
    if (strip) {
      while (end < source_.size() && is_space(source_[end])) ++end;
    } else if (block && !keep && end < source_.size() && source_[end] == '\n') ++end;
    return end;
  }

  size_t end_comment(size_t at, size_t open) const {
    const size_t close = source_.find("#}", at);
    if (close == std::string::npos) throw SyntaxError("a comment {# is never closed by #}", position(open));
    const bool strip = close > at && source_[close - 1] == '-', keep = close > at && source_[close - 1] == '+';
    return after_tag(close + 2, strip, keep, true);
  }

  size_t read_tag(std::vector<Piece>& out, Piece::Kind kind, size_t at, size_t open) {
    Piece piece{kind, {}, {}, position(open)};
    const char close = kind == Piece::Kind::output ? '}' : '%';
    int braces = 0;
    while (true) {
      while (at < source_.size() && is_space(source_[at])) ++at;
      if (at >= source_.size())
        throw SyntaxError(kind == Piece::Kind::output ? "{{ is never closed by }}" : "{% is never closed by %}", position(open));
      const char c = source_[at];
      const bool sign = (c == '-' || c == '+') && at + 2 < source_.size() && source_[at + 1] == close &&
                        source_[at + 2] == '}';
      if ((sign || (c == close && at + 1 < source_.size() && source_[at + 1] == '}')) && (braces == 0 || close == '%')) {
        const size_t end = at + (sign ? 3 : 2);
        out.push_back(std::move(piece));
        if (kind == Piece::Kind::statement && is_raw(out.back()))
          return read_raw(out, after_tag(end, sign && c == '-', sign && c == '+', true), open);
        return after_tag(end, sign && c == '-', sign && c == '+', kind == Piece::Kind::statement);
      }
      Token token = read_token(at);
      if (token.kind == Token::Kind::op && token.text == "{") ++braces;
      if (token.kind == Token::Kind::op && token.text == "}") --braces;
      piece.tokens.push_back(std::move(token));
    }
  }

  static bool is_raw(const Piece& piece) {
    return piece.tokens.size() == 1 && piece.tokens[0].kind == Token::Kind::name && piece.tokens[0].text == "raw";
  }

  /// {% raw %}...{% endraw %}: the text between, untouched (the tags' own whitespace rules still apply).
  size_t read_raw(std::vector<Piece>& out, size_t at, size_t open) {
    out.pop_back();
    for (size_t search = at;;) {
      const size_t tag = source_.find("{%", search);
      if (tag == std::string::npos) throw SyntaxError("{% raw %} is never closed by {% endraw %}", position(open));
      size_t i = tag + 2;
      const bool strip_before = i < source_.size() && source_[i] == '-';
      if (strip_before || (i < source_.size() && source_[i] == '+')) ++i;
      while (i < source_.size() && is_space(source_[i])) ++i;
      if (source_.compare(i, 6, "endraw") != 0) {
        search = tag + 2;
        continue;
      }
      i += 6;
      while (i < source_.size() && is_space(source_[i])) ++i;
      const bool strip_after = i < source_.size() && source_[i] == '-';
      if (strip_after || (i < source_.size() && source_[i] == '+')) ++i;
      if (source_.compare(i, 2, "%}") != 0) throw SyntaxError("a malformed {% endraw %}", position(tag));
      std::string text = source_.substr(at, tag - at);
      push_text(out, strip_before ? rstrip_whitespace(std::move(text)) : lstrip_block_line(std::move(text), tag));
      return after_tag(i + 2, strip_after, false, true);
    }
  }

  Token read_token(size_t& at) const {
    Token token{Token::Kind::op, {}, 0, 0, position(at)};
    const char c = source_[at];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const size_t start = at;
      while (at < source_.size() && (std::isalnum(static_cast<unsigned char>(source_[at])) || source_[at] == '_')) ++at;
      token.kind = Token::Kind::name;
      token.text = source_.substr(start, at - start);
      return token;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return read_number(at, token);
    if (c == '\'' || c == '"') return read_string(at, token);
    static const char* const two_char[] = {"**", "//", "==", "!=", "<=", ">="};
    for (const char* op : two_char)
      if (source_.compare(at, 2, op) == 0) {
        token.text = op;
        at += 2;
        return token;
      }
    if (std::string_view("+-*/%~<>=()[]{},.:|").find(c) == std::string_view::npos)
      throw SyntaxError(fmt::format("unexpected character '{}' in a tag", c), token.where);
    token.text = std::string(1, c);
    ++at;
    return token;
  }

  Token read_number(size_t& at, Token& token) const {
    std::string digits;
    bool is_float = false;
    const auto take_digits = [&] {
      while (at < source_.size() && (std::isdigit(static_cast<unsigned char>(source_[at])) || source_[at] == '_'))
        if (source_[at++] != '_') digits += source_[at - 1];
    };
    take_digits();
    if (at + 1 < source_.size() && source_[at] == '.' && std::isdigit(static_cast<unsigned char>(source_[at + 1]))) {
      is_float = true;
      digits += source_[at++];
      take_digits();
    }
    if (at < source_.size() && (source_[at] == 'e' || source_[at] == 'E')) {
      size_t look = at + 1;
      if (look < source_.size() && (source_[look] == '+' || source_[look] == '-')) ++look;
      if (look < source_.size() && std::isdigit(static_cast<unsigned char>(source_[look]))) {
        is_float = true;
        digits += source_.substr(at, look - at);
        at = look;
        take_digits();
      }
    }
    token.text = digits;
    if (is_float) {
      token.kind = Token::Kind::floating;
      token.floating = std::strtod(digits.c_str(), nullptr);
    } else {
      token.kind = Token::Kind::integer;
      errno = 0;
      token.integer = std::strtoll(digits.c_str(), nullptr, 10);
      if (errno == ERANGE) throw SyntaxError("the integer " + digits + " does not fit 64 bits", token.where);
    }
    return token;
  }

  Token read_string(size_t& at, Token& token) const {
    const char quote = source_[at++];
    token.kind = Token::Kind::string;
    while (true) {
      if (at >= source_.size()) throw SyntaxError("a string literal is never closed", token.where);
      const char c = source_[at++];
      if (c == quote) return token;
      if (c != '\\' || at >= source_.size()) {
        token.text += c;
        continue;
      }
      const char e = source_[at++];
      switch (e) {
        case 'n': token.text += '\n'; break;
        case 't': token.text += '\t'; break;
        case 'r': token.text += '\r'; break;
        case 'b': token.text += '\b'; break;
        case 'f': token.text += '\f'; break;
        case 'v': token.text += '\v'; break;
        case '0': token.text += '\0'; break;
        case '\\': case '\'': case '"': token.text += e; break;
        case '\n': break;  // a backslash before a newline joins the lines, as in Python
        case 'x': case 'u': case 'U': token.text += read_escaped_code_point(at, e == 'x' ? 2 : e == 'u' ? 4 : 8, token); break;
        default: token.text += '\\', token.text += e;  // Python keeps unknown escapes as written
      }
    }
  }

  std::string read_escaped_code_point(size_t& at, size_t digits, const Token& token) const {
    if (at + digits > source_.size()) throw SyntaxError("a truncated \\x, \\u or \\U escape", token.where);
    const std::string hex = source_.substr(at, digits);
    if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
      throw SyntaxError("a malformed \\x, \\u or \\U escape", token.where);
    at += digits;
    const auto cp = static_cast<int32_t>(std::strtol(hex.c_str(), nullptr, 16));
    utf8proc_uint8_t buffer[4];
    if (!utf8proc_codepoint_valid(cp)) throw SyntaxError("an escape names no Unicode character", token.where);
    return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(utf8proc_encode_char(cp, buffer)));
  }

  std::string source_;
  std::vector<size_t> line_starts_{0};
};

}  // namespace lmdecode::jinja
