#pragma once
// GPT-2's byte-level alphabet: each of the 256 byte values is shown as one printable Unicode
// character, so that BPE vocabularies hold only printable strings (space is "Ġ", newline "Ċ").

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "lmdecode/text/detail/utf8.hpp"

namespace lmdecode::detail {

inline void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class ByteLevelAlphabet {
 public:
  ByteLevelAlphabet() {
    // Printable Latin-1 bytes stand for themselves; the others map to 256, 257, ... in byte order.
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? b : next++;
      append_utf8(encoded_[b], cp);
      decoded_[encoded_[b]] = static_cast<uint8_t>(b);
    }
  }

  /// The byte-level form of raw bytes.
  std::string encode(std::string_view bytes) const {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) out += encoded_[c];
    return out;
  }

  /// Raw bytes of a byte-level string; false if it holds a character outside the alphabet.
  bool decode(std::string_view text, std::string& out) const {
    size_t i = 0;
    while (i < text.size()) {
      const auto lead = static_cast<unsigned char>(text[i]);
      const size_t len = utf8_char_length(lead);
      auto it = decoded_.find(std::string(text.substr(i, len)));
      if (it == decoded_.end()) return false;
      out += static_cast<char>(it->second);
      i += len;
    }
    return true;
  }

 private:
  std::array<std::string, 256> encoded_;
  std::unordered_map<std::string, uint8_t> decoded_;
};

}  // namespace lmdecode::detail
