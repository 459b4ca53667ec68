#pragma once
// A tokenizer.json pre-tokenizer: cuts normalised text into the pieces BPE runs on one by one.
// Split by a regex (behavior Isolated) or by a literal string (any behavior), ByteLevel (GPT-2's
// regex unless use_regex is false; its pieces are then mapped byte by byte, see byte_level()),
// Metaspace (spaces become "▁", one is prepended, pieces start at each "▁"), and Sequence, each
// step cutting every piece of the step before.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmdecode/text/detail/split_regex.hpp"
#include "lmdecode/text/detail/utf8.hpp"

namespace lmdecode::detail {

class PreTokenizer {
 public:
  /// Reads `p` (null: the whole text is one piece); `fail(why)` throws for what is not supported.
  template <class Fail>
  void read(const nlohmann::json& p, const Fail& fail) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence" && p.contains("pretokenizers")) {
      for (const auto& each : p["pretokenizers"]) read(each, fail);
    } else if (type == "Split") {
      read_split(p, fail);
    } else if (type == "ByteLevel") {
      byte_level_ = true;
      Step step;
      step.kind = Step::byte_level;
      step.prepend = p.value("add_prefix_space", false);
      // GPT-2's own pattern.
      if (p.value("use_regex", true))
        step.regex = std::make_shared<Regex>(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
      steps_.push_back(std::move(step));
    } else if (type == "Metaspace") {
      Step step;
      step.kind = Step::metaspace;
      step.literal = p.value("replacement", "\xE2\x96\x81");
      if (step.literal.empty()) fail("a Metaspace pre-tokenizer with an empty replacement");
      const std::string scheme = p.value("prepend_scheme", p.value("add_prefix_space", true) ? "always" : "never");
      if (scheme != "always" && scheme != "first" && scheme != "never")
        fail(fmt::format("Metaspace prepend_scheme \"{}\" is not supported (always, first, never)", scheme));
      step.prepend = scheme != "never";
      step.first_only = scheme == "first";
      step.behavior = p.value("split", true) ? "MergedWithNext" : "";
      steps_.push_back(std::move(step));
    } else {
      fail(fmt::format("pre-tokenizer \"{}\" is not supported (Sequence, Split, ByteLevel, Metaspace)", type));
    }
  }

  /// True with a ByteLevel step: each piece is then mapped through the byte-level alphabet.
  bool byte_level() const { return byte_level_; }

  /// The pieces of `text`, a stretch between added tokens; `at_start`: it begins the input (where
  /// Metaspace's prepend_scheme "first" prepends).
  std::vector<std::string> split(const std::string& text, bool at_start) const {
    std::vector<std::string> pieces{text};
    for (const auto& step : steps_) {
      std::vector<std::string> next;
      for (size_t i = 0; i < pieces.size(); ++i) step.cut(pieces[i], at_start && i == 0, next);
      pieces = std::move(next);
    }
    return pieces;
  }

 private:
  struct Step {
    enum Kind { regex_split, string_split, byte_level, metaspace } kind = regex_split;
    std::shared_ptr<Regex> regex;  // regex_split; byte_level with use_regex
    std::string literal;           // string_split: the delimiter; metaspace: the replacement
    std::string behavior;          // string_split and metaspace (MergedWithNext or none)
    bool prepend = false;          // byte_level: add_prefix_space; metaspace: prepend_scheme not never
    bool first_only = false;       // metaspace: prepend_scheme first

    void cut(std::string piece, bool at_start, std::vector<std::string>& out) const {
      switch (kind) {
        case regex_split:
          for (auto part : regex->split(piece)) out.emplace_back(part);
          return;
        case byte_level:
          if (prepend && (piece.empty() || piece.front() != ' ')) piece.insert(piece.begin(), ' ');
          if (!regex) return out.push_back(std::move(piece));
          for (auto part : regex->split(piece)) out.emplace_back(part);
          return;
        case metaspace:
          piece = replace_all(piece, " ", literal);
          if (prepend && (at_start || !first_only) && piece.compare(0, literal.size(), literal) != 0) piece.insert(0, literal);
          if (behavior.empty()) return out.push_back(std::move(piece));
          return split_on(piece, literal, behavior, out);
        case string_split: return split_on(piece, literal, behavior, out);
      }
    }
  };

  template <class Fail>
  void read_split(const nlohmann::json& p, const Fail& fail) {
    if (p.value("invert", false)) fail("a Split pre-tokenizer with invert true is not supported");
    const std::string behavior = p.value("behavior", "");
    if (!p.contains("pattern") || !p["pattern"].is_object()) fail("Split pre-tokenizer without a pattern");
    const auto& pattern = p["pattern"];
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      if (behavior != "Isolated") fail(fmt::format("a Split by regex with behavior \"{}\" is not supported (Isolated)", behavior));
      Step step;
      step.regex = std::make_shared<Regex>(pattern["Regex"].get<std::string>());
      steps_.push_back(std::move(step));
    } else if (pattern.contains("String") && pattern["String"].is_string() && !pattern["String"].get<std::string>().empty()) {
      if (behavior != "Isolated" && behavior != "Removed" && behavior != "MergedWithPrevious" && behavior != "MergedWithNext")
        fail(fmt::format("Split behavior \"{}\" is not supported", behavior));
      Step step;
      step.kind = Step::string_split;
      step.literal = pattern["String"].get<std::string>();
      step.behavior = behavior;
      steps_.push_back(std::move(step));
    } else {
      fail("Split pre-tokenizer without a \"Regex\" or a non-empty \"String\" pattern");
    }
  }

  /// `text` cut at each `delimiter`, the delimiter kept alone (Isolated), dropped (Removed), or
  /// joined to the piece before or after it.
  static void split_on(const std::string& text, const std::string& delimiter, const std::string& behavior,
                       std::vector<std::string>& out) {
    std::string pending;  // MergedWithNext: the delimiter waiting for its piece
    size_t at = 0;
    auto emit = [&](std::string piece) {
      if (!piece.empty()) out.push_back(std::move(piece));
    };
    for (size_t hit = text.find(delimiter); hit != std::string::npos; hit = text.find(delimiter, at)) {
      std::string before = text.substr(at, hit - at);
      if (behavior == "MergedWithPrevious") {
        emit(before + delimiter);
      } else if (behavior == "MergedWithNext") {
        emit(pending + before);
        pending = delimiter;
      } else {
        emit(before);
        if (behavior == "Isolated") emit(delimiter);
      }
      at = hit + delimiter.size();
    }
    emit(pending + text.substr(at));
  }

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace lmdecode::detail
