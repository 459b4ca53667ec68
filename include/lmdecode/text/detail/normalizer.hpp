#pragma once
// A tokenizer.json normalizer, applied to each stretch of text between added tokens: NFC, Prepend
// (the SentencePiece "▁" before a non-empty stretch) and Replace of a literal string, alone or in a
// Sequence, in the order given.

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmdecode/text/detail/utf8.hpp"

namespace lmdecode::detail {

class Normalizer {
 public:
  /// Reads `n` (null: none); `fail(why)` throws for what is not supported.
  template <class Fail>
  void read(const nlohmann::json& n, const Fail& fail) {
    if (n.is_null()) return;
    const std::string type = n.value("type", "");
    if (type == "Sequence" && n.contains("normalizers")) {
      for (const auto& each : n["normalizers"]) read(each, fail);
    } else if (type == "NFC") {
      steps_.push_back({Step::nfc, {}, {}});
    } else if (type == "Prepend" && n.contains("prepend") && n["prepend"].is_string()) {
      steps_.push_back({Step::prepend, n["prepend"].get<std::string>(), {}});
    } else if (type == "Replace" && n.contains("pattern") && n["pattern"].contains("String")) {
      steps_.push_back({Step::replace, n["pattern"]["String"].get<std::string>(), n.value("content", "")});
      if (steps_.back().text.empty()) fail("a Replace normalizer with an empty pattern");
    } else {
      fail(fmt::format("normalizer \"{}\" is not supported (NFC, Prepend, Replace of a String, Sequence)", type));
    }
  }

  std::string apply(std::string_view raw) const {
    std::string text(raw);
    for (const auto& step : steps_) {
      switch (step.kind) {
        case Step::nfc: text = nfc(text); break;
        case Step::prepend:
          if (!text.empty()) text.insert(0, step.text);
          break;
        case Step::replace: text = replace_all(text, step.text, step.content); break;
      }
    }
    return text;
  }

 private:
  struct Step {
    enum Kind { nfc, prepend, replace } kind;
    std::string text;     // prepend: what; replace: the pattern
    std::string content;  // replace: what replaces it
  };

  std::vector<Step> steps_;
};

}  // namespace lmdecode::detail
