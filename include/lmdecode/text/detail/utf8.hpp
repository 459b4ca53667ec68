#pragma once
// UTF-8 helpers for the tokenizer: NFC normalisation (utf8proc), where a UTF-8 string stops
// being complete (for streaming decodes), and literal replacement (normalizers, decoders).

#include <utf8proc.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "lmdecode/error.hpp"

namespace lmdecode::detail {

/// Throws invalid_argument naming the offset of the first byte of `text` that does not start a valid
/// UTF-8 character.
inline void check_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    utf8proc_int32_t cp = 0;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                                    static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
    if (n <= 0) throw invalid_argument(fmt::format("text is not valid UTF-8 at byte {} (0x{:02x})", i, static_cast<unsigned char>(text[i])));
    i += static_cast<size_t>(n);
  }
}

/// Unicode NFC of `text`; invalid UTF-8 is an invalid_argument.
inline std::string nfc(std::string_view text) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                              &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw invalid_argument(fmt::format("text is not valid UTF-8: {}", utf8proc_errmsg(n)));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(out, &std::free);
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

/// `text` with every occurrence of `from` (not empty) replaced by `to`, left to right.
inline std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(text);
  std::string out;
  size_t at = 0;
  for (size_t hit = text.find(from); hit != std::string_view::npos; hit = text.find(from, at)) {
    out.append(text.substr(at, hit - at)).append(to);
    at = hit + from.size();
  }
  return out.append(text.substr(at));
}

/// Bytes of the UTF-8 character that starts with byte `lead`: 1 for ASCII, 2 to 4 for a lead byte,
/// and 1 for a byte no valid character starts with (a stray continuation byte, 0xC0, 0xC1, 0xF5 and
/// above), so that a scan over any bytes moves on by at least one and never swallows what follows.
inline size_t utf8_char_length(unsigned char lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 1;
}

/// Length of the longest prefix of `bytes` that does not end inside a UTF-8 character that more
/// bytes could still complete.
inline size_t complete_utf8_prefix(std::string_view bytes) {
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(bytes[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back for the lead
    return utf8_char_length(c) > back ? n - back : n;
  }
  return n;
}

/// `bytes` as valid UTF-8, each invalid sequence replaced by U+FFFD (as a TextDecoder does).
inline std::string to_valid_utf8(std::string_view bytes) {
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    utf8proc_int32_t cp = 0;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(bytes.data() + i),
                                    static_cast<utf8proc_ssize_t>(bytes.size() - i), &cp);
    if (n > 0) {
      out.append(bytes.substr(i, static_cast<size_t>(n)));
      i += static_cast<size_t>(n);
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace lmdecode::detail
