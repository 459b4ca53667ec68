#pragma once
// A compiled PCRE2 pattern (UTF, Unicode properties) that splits text into matches and the gaps
// between them, as the tokenizers library's Split pre-tokenizer with "Isolated" behaviour does.

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmdecode/error.hpp"

namespace lmdecode::detail {

class Regex {
 public:
  explicit Regex(const std::string& pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &error,
                              &offset, nullptr));
    if (!code_) throw invalid_argument(fmt::format("bad pre-tokenizer regex at offset {}: {}", offset, message(error)));
    pcre2_jit_compile(code_.get(), PCRE2_JIT_COMPLETE);  // optional speed-up; matching works without it
  }

  /// The pieces of `text`: every match and every non-empty gap between matches, in order.
  std::vector<std::string_view> split(std::string_view text) const {
    std::vector<std::string_view> pieces;
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
        pcre2_match_data_create_from_pattern(code_.get(), nullptr), &pcre2_match_data_free);
    size_t start = 0, gap = 0;
    // PCRE2 checks the whole subject's UTF-8 on every call unless told not to: once is enough (a
    // check per match made one long line cost the square of its length).
    uint32_t options = 0;
    while (start <= text.size()) {
      const int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start, options,
                                 match.get(), nullptr);
      options = PCRE2_NO_UTF_CHECK;
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
        throw invalid_argument(fmt::format("text is not valid UTF-8 at byte {}: {}", pcre2_get_startchar(match.get()), message(rc)));
      if (rc < 0) throw invalid_argument(fmt::format("pre-tokenizer regex failed: {}", message(rc)));
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
      const size_t begin = ovector[0], end = ovector[1];
      if (end == begin) {  // an empty match: step one character on
        start = begin + 1;
        while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
        continue;
      }
      if (begin > gap) pieces.push_back(text.substr(gap, begin - gap));
      pieces.push_back(text.substr(begin, end - begin));
      gap = start = end;
    }
    if (gap < text.size()) pieces.push_back(text.substr(gap));
    return pieces;
  }

 private:
  /// PCRE2's text for an error code.
  static std::string message(int error) {
    PCRE2_UCHAR text[256];
    pcre2_get_error_message(error, text, sizeof(text));
    return reinterpret_cast<char*>(text);
  }

  struct Free {
    void operator()(pcre2_code* c) const { pcre2_code_free(c); }
  };
  std::unique_ptr<pcre2_code, Free> code_;
};

}  // namespace lmdecode::detail
