#pragma once
// Tokenizer: a Hugging Face tokenizer.json of the byte-level BPE kind (GPT-2, Qwen, Llama 3):
// added tokens matched first, then NFC (where configured), the Split pre-tokenizer regex (PCRE2,
// Unicode classes), the byte-level alphabet, and BPE merges by rank. Decoding maps back to bytes;
// StreamDecoder holds a token that ends inside a UTF-8 character until the character completes.
// Needs PCRE2 and utf8proc (the lmdecode::tokenizer CMake target); not part of lmdecode.hpp.
//
// Example:
//   auto tokenizer = lmdecode::Tokenizer::from_file("Qwen2.5-0.5B-Instruct/tokenizer.json");
//   auto ids = tokenizer.encode("Hello, world");        // no special tokens added
//   std::string text = tokenizer.decode(ids);

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmdecode/text/detail/byte_level_alphabet.hpp"
#include "lmdecode/detail/json_fields.hpp"
#include "lmdecode/text/detail/split_regex.hpp"
#include "lmdecode/text/detail/utf8.hpp"
#include "lmdecode/error.hpp"
#include "lmdecode/token_ids.hpp"

namespace lmdecode {

class Tokenizer {
 public:
  /// A token matched in the raw text before anything else (`<|im_end|>` and the like).
  struct AddedToken {
    int64_t id;
    std::string content;
    bool special;
  };

  static Tokenizer from_file(const std::filesystem::path& path) {
    return Tokenizer(detail::read_json_file(path), path.string());
  }

  /// Builds from a parsed tokenizer.json; `source` names it in errors.
  Tokenizer(const nlohmann::json& json, const std::string& source) {
    try {
      load(json, source);
    } catch (const nlohmann::json::exception& e) {  // a field of an unexpected type
      throw file_error(fmt::format("{}: {}", source, e.what()));
    }
  }

 private:
  void load(const nlohmann::json& json, const std::string& source) {
    auto fail = [&](const std::string& why) { throw file_error(fmt::format("{}: {}", source, why)); };
    if (!json.is_object() || !json.contains("model") || !json["model"].is_object()) fail("no \"model\" object");
    const auto& model = json["model"];
    if (model.value("type", "") != "BPE") fail(fmt::format("model type \"{}\" is not supported (BPE)", model.value("type", "")));
    if (!model.contains("vocab") || !model["vocab"].is_object()) fail("model.vocab must be an object");
    for (const auto& [token, id] : model["vocab"].items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) fail(fmt::format("vocab entry \"{}\" has no valid id", token));
      add_vocab(token, id.get<int64_t>());
    }
    if (!model.contains("merges") || !model["merges"].is_array()) fail("model.merges must be an array");
    int32_t rank = 0;
    for (const auto& m : model["merges"]) {
      std::string left, right;
      if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else if (m.is_string() && m.get<std::string>().find(' ') != std::string::npos) {
        const auto s = m.get<std::string>();
        left = s.substr(0, s.find(' '));
        right = s.substr(s.find(' ') + 1);
      } else {
        fail(fmt::format("merge {} is neither [\"a\", \"b\"] nor \"a b\"", rank));
      }
      auto l = token_ids_.find(left), r = token_ids_.find(right), merged = token_ids_.find(left + right);
      if (l == token_ids_.end() || r == token_ids_.end() || merged == token_ids_.end())
        fail(fmt::format("merge {} (\"{}\" \"{}\") uses a token missing from the vocabulary", rank, left, right));
      merges_.emplace(pair_key(l->second, r->second), Merge{rank++, merged->second});
    }
    for (int b = 0; b < 256; ++b) {
      auto it = token_ids_.find(alphabet_.encode(std::string(1, static_cast<char>(b))));
      if (it == token_ids_.end()) fail(fmt::format("the vocabulary lacks the byte-level token of byte {}", b));
      byte_ids_[b] = it->second;
    }
    if (json.contains("added_tokens") && json["added_tokens"].is_array()) {
      for (const auto& t : json["added_tokens"]) {
        if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
            !t["content"].is_string() || t["content"].get<std::string>().empty())
          fail("an added token lacks an integer id or a non-empty content");
        AddedToken added{t["id"].get<int64_t>(), t["content"].get<std::string>(), t.value("special", false)};
        add_vocab(added.content, added.id);
        added_.push_back(std::move(added));
      }
      // At one position the longest added token wins.
      std::sort(added_.begin(), added_.end(), [](const auto& a, const auto& b) { return a.content.size() > b.content.size(); });
    }
    read_normalizer(json.contains("normalizer") ? json["normalizer"] : nlohmann::json(), fail);
    read_pre_tokenizer(json.contains("pre_tokenizer") ? json["pre_tokenizer"] : nlohmann::json(), fail);
    if (json.contains("decoder") && !json["decoder"].is_null() && json["decoder"].value("type", "") != "ByteLevel")
      fail(fmt::format("decoder type \"{}\" is not supported (ByteLevel)", json["decoder"].value("type", "")));
    if (!split_) fail("no pre-tokenizer regex (Split or ByteLevel with use_regex) found");
  }

 public:

  /// Token ids of `text` (UTF-8), no special tokens added around it.
  TokenIds encode(std::string_view text) const {
    TokenIds ids;
    size_t pos = 0, plain = 0;
    while (pos < text.size()) {
      const AddedToken* match = added_at(text, pos);
      if (!match) {
        ++pos;
        continue;
      }
      encode_plain(text.substr(plain, pos - plain), ids);
      ids.push_back(match->id);
      pos += match->content.size();
      plain = pos;
    }
    encode_plain(text.substr(plain), ids);
    return ids;
  }

  /// The UTF-8 text of `ids` (invalid byte sequences become U+FFFD); special tokens kept unless skipped.
  std::string decode(const TokenIds& ids, bool skip_special_tokens = false) const {
    std::string bytes;
    for (int64_t id : ids) append_bytes(id, skip_special_tokens, bytes);
    return detail::to_valid_utf8(bytes);
  }

  /// Decodes one token at a time; text is released only once its UTF-8 characters are complete.
  class StreamDecoder {
   public:
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
        : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}
    /// The text that `id` completes (possibly empty).
    std::string push(int64_t id) {
      tokenizer_.append_bytes(id, skip_special_, pending_);
      const size_t ready = detail::complete_utf8_prefix(pending_);
      std::string out = detail::to_valid_utf8(std::string_view(pending_).substr(0, ready));
      pending_.erase(0, ready);
      return out;
    }
    /// Whatever is still held (an incomplete character, as U+FFFD).
    std::string flush() {
      auto out = detail::to_valid_utf8(pending_);
      pending_.clear();
      return out;
    }

   private:
    const Tokenizer& tokenizer_;
    bool skip_special_;
    std::string pending_;
  };

  /// Number of ids (the largest id + 1).
  int64_t vocab_size() const { return static_cast<int64_t>(tokens_.size()); }
  const std::vector<AddedToken>& added_tokens() const { return added_; }

 private:
  void add_vocab(const std::string& token, int64_t id) {
    if (id >= static_cast<int64_t>(tokens_.size())) tokens_.resize(static_cast<size_t>(id) + 1);
    tokens_[id] = token;
    token_ids_[token] = id;
  }

  template <class Fail>
  void read_normalizer(const nlohmann::json& n, const Fail& fail) {
    if (n.is_null()) return;
    const std::string type = n.value("type", "");
    if (type == "NFC") {
      nfc_ = true;
    } else if (type == "Sequence" && n.contains("normalizers")) {
      for (const auto& each : n["normalizers"]) read_normalizer(each, fail);
    } else {
      fail(fmt::format("normalizer \"{}\" is not supported (NFC, Sequence)", type));
    }
  }

  template <class Fail>
  void read_pre_tokenizer(const nlohmann::json& p, const Fail& fail) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence" && p.contains("pretokenizers")) {
      for (const auto& each : p["pretokenizers"]) read_pre_tokenizer(each, fail);
    } else if (type == "Split") {
      if (split_) fail("more than one Split pre-tokenizer is not supported");
      if (p.value("behavior", "") != "Isolated" || p.value("invert", false))
        fail("only Split with behavior \"Isolated\" and invert false is supported");
      if (!p.contains("pattern") || !p["pattern"].contains("Regex") || !p["pattern"]["Regex"].is_string())
        fail("Split pre-tokenizer without a \"Regex\" pattern");
      split_.emplace(p["pattern"]["Regex"].get<std::string>());
    } else if (type == "ByteLevel") {
      add_prefix_space_ = p.value("add_prefix_space", false);
      if (p.value("use_regex", true)) {
        if (split_) fail("a ByteLevel pre-tokenizer with use_regex after a Split is not supported");
        // GPT-2's own pattern.
        split_.emplace(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
      }
    } else {
      fail(fmt::format("pre-tokenizer \"{}\" is not supported (Sequence, Split, ByteLevel)", type));
    }
  }

  const AddedToken* added_at(std::string_view text, size_t pos) const {
    for (const auto& t : added_)
      if (text.compare(pos, t.content.size(), t.content) == 0) return &t;
    return nullptr;
  }

  void encode_plain(std::string_view raw, TokenIds& ids) const {
    if (raw.empty()) return;
    std::string text = nfc_ ? detail::nfc(raw) : std::string(raw);
    if (add_prefix_space_ && text.front() != ' ') text.insert(text.begin(), ' ');
    for (auto piece : split_->split(text)) bpe(piece, ids);
  }

  /// BPE of one pre-tokenized piece: start from its bytes' tokens and merge the adjacent pair of
  /// lowest rank (every occurrence, left to right) until no pair has a merge.
  void bpe(std::string_view piece, TokenIds& ids) const {
    const std::string key(piece);
    {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      auto hit = cache_->ids.find(key);
      if (hit != cache_->ids.end()) {
        ids.insert(ids.end(), hit->second.begin(), hit->second.end());
        return;
      }
    }
    TokenIds parts;
    parts.reserve(piece.size());
    for (unsigned char c : piece) parts.push_back(byte_ids_[c]);
    while (parts.size() > 1) {
      const Merge* best = nullptr;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        auto it = merges_.find(pair_key(parts[i], parts[i + 1]));
        if (it != merges_.end() && (!best || it->second.rank < best->rank)) best = &it->second;
      }
      if (!best) break;
      size_t out = 0;
      for (size_t i = 0; i < parts.size(); ++i) {
        if (i + 1 < parts.size()) {
          auto it = merges_.find(pair_key(parts[i], parts[i + 1]));
          if (it != merges_.end() && &it->second == best) {
            parts[out++] = best->merged;
            ++i;
            continue;
          }
        }
        parts[out++] = parts[i];
      }
      parts.resize(out);
    }
    ids.insert(ids.end(), parts.begin(), parts.end());
    std::lock_guard<std::mutex> lock(cache_->mutex);
    if (cache_->ids.size() < kCacheLimit) cache_->ids.emplace(key, std::move(parts));
  }

  static uint64_t pair_key(int64_t left, int64_t right) {
    return (static_cast<uint64_t>(left) << 32) | static_cast<uint64_t>(right);
  }

  void append_bytes(int64_t id, bool skip_special, std::string& out) const {
    detail::check(id >= 0 && id < vocab_size() && !tokens_[id].empty(), "token id {} is not in the vocabulary", id);
    for (const auto& t : added_)
      if (t.id == id) {
        if (!(skip_special && t.special)) out += t.content;
        return;
      }
    detail::check(alphabet_.decode(tokens_[id], out), "token {} is not a byte-level token", id);
  }

  static constexpr size_t kCacheLimit = 1 << 18;

  std::vector<std::string> tokens_;  // by id
  std::unordered_map<std::string, int64_t> token_ids_;
  struct Merge {
    int32_t rank;
    int64_t merged;  // the id of the joined token
  };
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> merge
  std::array<int64_t, 256> byte_ids_{};           // the token of each single byte
  std::vector<AddedToken> added_;                       // longest first
  bool nfc_ = false;
  bool add_prefix_space_ = false;
  std::optional<detail::Regex> split_;
  detail::ByteLevelAlphabet alphabet_;
  /// Encoded pieces, shared by the threads that encode with this tokenizer.
  struct Cache {
    std::mutex mutex;
    std::unordered_map<std::string, TokenIds> ids;  // raw piece -> ids
  };
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
};

}  // namespace lmdecode
