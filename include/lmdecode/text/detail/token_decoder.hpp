#pragma once
// How ids become text, as a tokenizer.json decoder says: ByteLevel (a token's characters stand for
// bytes, GPT-2's alphabet), or the SentencePiece chain: Replace of a literal string ("▁" by " "),
// ByteFallback (a token "<0x41>" is the byte 0x41), Fuse, then Strip of leading characters of the
// whole text; or Metaspace (the same: "▁" by " ", one leading space stripped).

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmdecode/text/detail/byte_level_alphabet.hpp"
#include "lmdecode/text/detail/utf8.hpp"

namespace lmdecode::detail {

class TokenDecoder {
 public:
  /// Reads `d` (null: tokens are their own text); `fail(why)` throws for what is not supported.
  template <class Fail>
  void read(const nlohmann::json& d, const Fail& fail) {
    if (d.is_null()) return;
    const std::string type = d.value("type", "");
    if (type == "Sequence" && d.contains("decoders")) {
      for (const auto& each : d["decoders"]) read(each, fail);
    } else if (type == "ByteLevel") {
      byte_level_ = true;
    } else if (type == "Replace" && d.contains("pattern") && d["pattern"].contains("String")) {
      replacements_.emplace_back(d["pattern"]["String"].get<std::string>(), d.value("content", ""));
      if (replacements_.back().first.empty()) fail("a Replace decoder with an empty pattern");
    } else if (type == "ByteFallback") {
      byte_fallback_ = true;
    } else if (type == "Fuse") {
      fused_ = true;
    } else if (type == "Strip") {
      // After Fuse there is one token, the whole text: only its start is stripped.
      if (!fused_ || d.value("stop", 0) != 0 || d.value("content", " ") != " " || d.value("start", 0) < 0)
        fail("only a Strip of leading spaces after Fuse is supported");
      strip_leading_ += d.value("start", 0);
    } else if (type == "Metaspace") {
      replacements_.emplace_back(d.value("replacement", "\xE2\x96\x81"), " ");
      if (replacements_.back().first.empty()) fail("a Metaspace decoder with an empty replacement");
      if (d.value("prepend_scheme", d.value("add_prefix_space", true) ? "always" : "never") != "never") strip_leading_ += 1;
    } else {
      fail(fmt::format("decoder \"{}\" is not supported (ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)",
                       type));
    }
  }

  /// Appends the bytes of vocabulary token `token` (its string in tokenizer.json); false where a
  /// byte-level token holds a character outside the alphabet.
  bool append(const std::string& token, std::string& out) const {
    if (byte_level_) return alphabet_.decode(token, out);
    if (byte_fallback_ && token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') {
      const int byte = hex(token[3]) * 16 + hex(token[4]);
      if (byte >= 0) return out.push_back(static_cast<char>(byte)), true;
    }
    append_replaced(token, out);
    return true;
  }

  /// Appends the text of an added token (`<s>`, `<|im_end|>`...): its content, replaced as a
  /// SentencePiece chain replaces every token.
  void append_added(const std::string& content, std::string& out) const {
    if (byte_level_) out += content;
    else append_replaced(content, out);
  }

  /// How many bytes to drop at the start of the whole decoded text (Strip, Metaspace).
  size_t leading_strip(std::string_view text) const {
    size_t n = 0;
    while (n < static_cast<size_t>(strip_leading_) && n < text.size() && text[n] == ' ') ++n;
    return n;
  }

  /// Stripped leading characters at most (for a stream, which strips only at its start).
  int64_t strip_leading() const { return strip_leading_; }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -256;  // makes the byte negative
  }

  void append_replaced(const std::string& token, std::string& out) const {
    std::string text = token;
    for (const auto& [from, to] : replacements_) text = replace_all(text, from, to);
    out += text;
  }

  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool fused_ = false;
  int64_t strip_leading_ = 0;
  std::vector<std::pair<std::string, std::string>> replacements_;
  ByteLevelAlphabet alphabet_;
};

}  // namespace lmdecode::detail
