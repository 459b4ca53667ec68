#pragma once
// Tokenizer: a Hugging Face tokenizer.json with a BPE model, of either kind: byte-level (GPT-2,
// Qwen, Llama 3: the ByteLevel pre-tokenizer maps bytes to printable characters) or SentencePiece-
// style (Llama 2, Mistral, Gemma: "▁" for spaces by a Replace + Prepend normalizer or a Metaspace
// pre-tokenizer, characters as symbols, bytes as "<0xNN>" tokens where a character is not in the
// vocabulary (byte_fallback), unk otherwise). Encoding: added tokens matched in the raw text first,
// then each stretch between them normalised (detail/normalizer.hpp), cut into pieces
// (detail/pre_tokenizer.hpp), and each piece merged by rank; with special tokens, the
// TemplateProcessing post-processor's tokens around them (Llama 2's and Gemma's BOS). Decoding
// follows the decoder (detail/token_decoder.hpp); StreamDecoder holds a token that ends inside a
// UTF-8 character until the character completes. Needs PCRE2 and utf8proc (the lmdecode::tokenizer
// CMake target); not part of lmdecode.hpp.
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
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmdecode/detail/json_fields.hpp"
#include "lmdecode/text/detail/byte_level_alphabet.hpp"
#include "lmdecode/text/detail/normalizer.hpp"
#include "lmdecode/text/detail/pre_tokenizer.hpp"
#include "lmdecode/text/detail/token_decoder.hpp"
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
    // Ids number the entries (densely in every real file): one far beyond their count is an error,
    // not a table of that size. Found by fuzz_tokenizer.
    const size_t added = json.contains("added_tokens") && json["added_tokens"].is_array() ? json["added_tokens"].size() : 0;
    id_limit_ = 2 * static_cast<int64_t>(model["vocab"].size() + added) + 1024;
    for (const auto& [token, id] : model["vocab"].items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) fail(fmt::format("vocab entry \"{}\" has no valid id", token));
      if (id.get<int64_t>() >= id_limit_)
        fail(fmt::format("vocab entry \"{}\" has id {}, far beyond the {} entries", token, id.get<int64_t>(), model["vocab"].size()));
      const auto at = static_cast<size_t>(id.get<int64_t>());
      if (at < tokens_.size() && !tokens_[at].empty())
        fail(fmt::format("vocab entries \"{}\" and \"{}\" share id {}: decoding it would be ambiguous", tokens_[at], token, at));
      add_vocab(token, id.get<int64_t>());
    }
    read_merges(model, fail);
    read_added_tokens(json, fail);
    normalizer_.read(json.contains("normalizer") ? json["normalizer"] : nlohmann::json(), fail);
    pre_tokenizer_.read(json.contains("pre_tokenizer") ? json["pre_tokenizer"] : nlohmann::json(), fail);
    decoder_.read(json.contains("decoder") ? json["decoder"] : nlohmann::json(), fail);
    read_post_processor(json.contains("post_processor") ? json["post_processor"] : nlohmann::json(), fail);
    read_symbols(model, fail);
  }

  template <class Fail>
  void read_merges(const nlohmann::json& model, const Fail& fail) {
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
  }

  template <class Fail>
  void read_added_tokens(const nlohmann::json& json, const Fail& fail) {
    if (!json.contains("added_tokens") || !json["added_tokens"].is_array()) return;
    for (const auto& t : json["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
          !t["content"].is_string() || t["content"].get<std::string>().empty())
        fail("an added token lacks an integer id or a non-empty content");
      AddedToken added{t["id"].get<int64_t>(), t["content"].get<std::string>(), t.value("special", false)};
      if (added.id < 0 || added.id >= id_limit_)
        fail(fmt::format("added token \"{}\" has id {}, outside the vocabulary's range", added.content, added.id));
      add_vocab(added.content, added.id);
      added_ids_[added.id] = added_.size();
      added_.push_back(std::move(added));
    }
    for (size_t i = 0; i < added_.size(); ++i)
      added_by_first_byte_[static_cast<unsigned char>(added_[i].content[0])].push_back(i);
    // At one position the longest added token wins.
    for (auto& bucket : added_by_first_byte_)
      std::sort(bucket.begin(), bucket.end(), [&](size_t a, size_t b) { return added_[a].content.size() > added_[b].content.size(); });
  }

  /// The tokens added around a text when special tokens are asked for: TemplateProcessing's
  /// "single" template (alone or in a Sequence); ByteLevel post-processing adds none.
  template <class Fail>
  void read_post_processor(const nlohmann::json& p, const Fail& fail) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence" && p.contains("processors")) {
      for (const auto& each : p["processors"]) read_post_processor(each, fail);
    } else if (type == "TemplateProcessing" && p.contains("single") && p["single"].is_array()) {
      bool after_text = false;
      for (const auto& item : p["single"]) {
        if (item.contains("Sequence")) {
          after_text = true;
          continue;
        }
        if (!item.contains("SpecialToken")) fail("a TemplateProcessing item is neither SpecialToken nor Sequence");
        const auto name = item["SpecialToken"].value("id", "");
        if (!p.contains("special_tokens") || !p["special_tokens"].contains(name))
          fail(fmt::format("TemplateProcessing names \"{}\", which its special_tokens lack", name));
        for (const auto& id : p["special_tokens"][name].at("ids")) {
          const auto value = id.get<int64_t>();
          if (value < 0 || value >= vocab_size() || tokens_[value].empty())
            fail(fmt::format("TemplateProcessing's \"{}\" has id {}, which is not in the vocabulary", name, value));
          (after_text ? special_suffix_ : special_prefix_).push_back(value);
        }
      }
    } else if (type != "ByteLevel") {
      fail(fmt::format("post-processor \"{}\" is not supported (TemplateProcessing, ByteLevel, Sequence)", type));
    }
  }

  /// The first symbols of a piece: its bytes' tokens (byte-level), or its characters' tokens with
  /// "<0xNN>" byte tokens or unk for characters outside the vocabulary (SentencePiece).
  template <class Fail>
  void read_symbols(const nlohmann::json& model, const Fail& fail) {
    ignore_merges_ = model.value("ignore_merges", false);
    if (pre_tokenizer_.byte_level()) {
      for (int b = 0; b < 256; ++b) {
        auto it = token_ids_.find(alphabet_.encode(std::string(1, static_cast<char>(b))));
        if (it == token_ids_.end()) fail(fmt::format("the vocabulary lacks the byte-level token of byte {}", b));
        byte_ids_[b] = it->second;
      }
      return;
    }
    byte_fallback_ = model.value("byte_fallback", false);
    fuse_unk_ = model.value("fuse_unk", false);
    for (int b = 0; byte_fallback_ && b < 256; ++b) {
      auto it = token_ids_.find(fmt::format("<0x{:02X}>", b));
      if (it == token_ids_.end()) fail(fmt::format("byte_fallback is set but the vocabulary lacks <0x{:02X}>", b));
      byte_ids_[b] = it->second;
    }
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      auto it = token_ids_.find(model["unk_token"].get<std::string>());
      if (it == token_ids_.end()) fail(fmt::format("unk_token \"{}\" is not in the vocabulary", model["unk_token"].get<std::string>()));
      unk_id_ = it->second;
    }
  }

 public:
  /// Token ids of `text` (UTF-8; invalid UTF-8 is an error naming its offset, as Hugging Face's
  /// tokenizers take only valid text); with `add_special_tokens`, the post-processor's tokens around
  /// them (transformers' add_special_tokens=True: Llama 2's and Gemma's BOS; nothing for Qwen or Llama 3).
  TokenIds encode(std::string_view text, bool add_special_tokens = false) const {
    detail::check_utf8(text);
    TokenIds ids = add_special_tokens ? special_prefix_ : TokenIds{};
    size_t pos = 0, plain = 0;
    while (pos < text.size()) {
      const AddedToken* match = added_at(text, pos);
      if (!match) {
        ++pos;
        continue;
      }
      encode_plain(text.substr(plain, pos - plain), plain == 0, ids);
      ids.push_back(match->id);
      pos += match->content.size();
      plain = pos;
    }
    encode_plain(text.substr(plain), plain == 0, ids);
    if (add_special_tokens) ids.insert(ids.end(), special_suffix_.begin(), special_suffix_.end());
    return ids;
  }

  /// The UTF-8 text of `ids` (invalid byte sequences become U+FFFD); special tokens kept unless skipped.
  std::string decode(const TokenIds& ids, bool skip_special_tokens = false) const {
    std::string bytes;
    for (int64_t id : ids) append_bytes(id, skip_special_tokens, bytes);
    return detail::to_valid_utf8(std::string_view(bytes).substr(decoder_.leading_strip(bytes)));
  }

  /// Decodes one token at a time; text is released only once its UTF-8 characters are complete.
  class StreamDecoder {
   public:
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
        : tokenizer_(tokenizer), skip_special_(skip_special_tokens), to_strip_(tokenizer.decoder_.strip_leading()) {}
    /// The text that `id` completes (possibly empty).
    std::string push(int64_t id) {
      tokenizer_.append_bytes(id, skip_special_, pending_);
      // The decoder's leading strip applies to the start of the whole text, however it arrives.
      for (; to_strip_ > 0 && !pending_.empty(); --to_strip_) {
        if (pending_.front() != ' ') {
          to_strip_ = 0;
          break;
        }
        pending_.erase(0, 1);
      }
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
    int64_t to_strip_;  // leading spaces still to drop
    std::string pending_;
  };

  /// Each id's bytes in the middle of a text (no leading strip, special tokens as their content,
  /// a "<0xNN>" token its byte, a byte-level token its raw bytes, whole characters or not): what
  /// transformers' stop-string matching compares (GenerationConfig::token_texts). Ids with no token: "".
  std::shared_ptr<const std::vector<std::string>> token_texts() const {
    auto texts = std::make_shared<std::vector<std::string>>(tokens_.size());
    for (size_t id = 0; id < tokens_.size(); ++id)
      if (!tokens_[id].empty()) append_bytes(static_cast<int64_t>(id), /*skip_special=*/false, (*texts)[id]);
    return texts;
  }

  /// Number of ids (the largest id + 1).
  int64_t vocab_size() const { return static_cast<int64_t>(tokens_.size()); }
  const std::vector<AddedToken>& added_tokens() const { return added_; }

 private:
  void add_vocab(const std::string& token, int64_t id) {
    if (id >= static_cast<int64_t>(tokens_.size())) tokens_.resize(static_cast<size_t>(id) + 1);
    tokens_[id] = token;
    token_ids_[token] = id;
  }

  const AddedToken* added_at(std::string_view text, size_t pos) const {
    for (size_t i : added_by_first_byte_[static_cast<unsigned char>(text[pos])])
      if (text.compare(pos, added_[i].content.size(), added_[i].content) == 0) return &added_[i];
    return nullptr;
  }

  /// A stretch of text between added tokens; `at_start`: it begins the input.
  void encode_plain(std::string_view raw, bool at_start, TokenIds& ids) const {
    if (raw.empty()) return;
    for (const auto& piece : pre_tokenizer_.split(normalizer_.apply(raw), at_start))
      if (!piece.empty()) bpe(piece, ids);
  }

  /// BPE of one pre-tokenized piece: start from its symbols' tokens and merge adjacent pairs, the
  /// lowest rank first (the leftmost of equal ranks), as Hugging Face's tokenizers do. With
  /// ignore_merges (Llama 3), a piece that is a token of its own is that token.
  void bpe(const std::string& piece, TokenIds& ids) const {
    {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      auto hit = cache_->ids.find(piece);
      if (hit != cache_->ids.end()) {
        ids.insert(ids.end(), hit->second.begin(), hit->second.end());
        return;
      }
    }
    const TokenIds symbols = first_symbols(piece);
    const bool cuttable = symbols.size() >= kLongPiece && !pre_tokenizer_.byte_level() && !ignore_merges_;
    TokenIds parts = cuttable ? merged_between_cuts(symbols) : merged(symbols);
    ids.insert(ids.end(), parts.begin(), parts.end());
    std::lock_guard<std::mutex> lock(cache_->mutex);
    if (cache_->ids.size() < kCacheLimit) cache_->ids.emplace(piece, std::move(parts));
  }

  /// `symbols` merged: a queue holds every adjacent pair that has a merge, by (rank, position); a
  /// merge joins the pair into its left symbol and queues the pairs it forms with its neighbours; an
  /// entry whose pair has changed since it was queued is dropped. Time O(n log n) in the symbols, so
  /// that a megabyte-long piece costs what it costs in lines.
  TokenIds merged(const TokenIds& symbols) const {
    struct Symbol {
      int64_t id;
      int32_t prev, next;  // neighbours, -1 at the ends
      bool alive;
    };
    struct Candidate {  // 16 bytes: a long piece's queue is large, and its traffic is the cost
      int32_t rank;
      uint32_t left;  // the pair's left symbol
      int64_t joined;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    const auto n = static_cast<std::ptrdiff_t>(symbols.size());
    detail::check(symbols.size() < (size_t{1} << 31), "a piece of {} symbols is too long to merge", symbols.size());
    std::vector<Symbol> word;
    word.reserve(symbols.size());
    for (std::ptrdiff_t i = 0; i < n; ++i)
      word.push_back({symbols[static_cast<size_t>(i)], static_cast<int32_t>(i - 1), static_cast<int32_t>(i + 1 < n ? i + 1 : -1), true});
    auto candidate = [&](std::ptrdiff_t left) -> std::optional<Candidate> {
      if (left < 0 || word[static_cast<size_t>(left)].next < 0) return std::nullopt;
      const auto& l = word[static_cast<size_t>(left)];
      auto it = merges_.find(pair_key(l.id, word[static_cast<size_t>(l.next)].id));
      if (it == merges_.end()) return std::nullopt;
      return Candidate{it->second.rank, static_cast<uint32_t>(left), it->second.merged};
    };
    std::vector<Candidate> initial;  // heapified at once: linear, where pushing them one by one is not
    initial.reserve(symbols.size());
    for (std::ptrdiff_t i = 0; i + 1 < n; ++i)
      if (auto c = candidate(i)) initial.push_back(*c);
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue(std::greater<>(), std::move(initial));
    auto offer = [&](std::ptrdiff_t left) {
      if (auto c = candidate(left)) queue.push(*c);
    };
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = word[top.left];
      if (!left.alive || left.next < 0) continue;
      Symbol& right = word[static_cast<size_t>(left.next)];
      auto it = merges_.find(pair_key(left.id, right.id));
      if (it == merges_.end() || it->second.merged != top.joined) continue;  // stale: the pair changed
      left.id = top.joined;
      right.alive = false;
      left.next = right.next;
      if (left.next >= 0) word[static_cast<size_t>(left.next)].prev = static_cast<int32_t>(top.left);
      offer(left.prev);
      offer(static_cast<std::ptrdiff_t>(top.left));
    }
    TokenIds out;
    for (const auto& symbol : word)
      if (symbol.alive) out.push_back(symbol.id);
    return out;
  }

  /// A long piece of a SentencePiece-style tokenizer (a whole line, where no pre-tokenizer splits
  /// it) merged in stretches: cut between two symbols that are one character each and that no token
  /// of the vocabulary holds side by side, since a merge across the cut would make such a token.
  /// The merges are the whole piece's, and a megabyte line costs about what its lines cost (in
  /// Llama 2's vocabulary a word's last character never joins the "▁" after it). Byte-level pieces
  /// come pre-tokenized into words; with ignore_merges a stretch that is a token would be taken whole.
  TokenIds merged_between_cuts(const TokenIds& symbols) const {
    const CharacterPairs& pairs = character_pairs();
    auto one_character = [&](int64_t id) { return pairs.one_character[static_cast<size_t>(id)]; };
    TokenIds out;
    size_t start = 0;
    auto merge_stretch = [&](size_t end) {
      const TokenIds stretch = merged(TokenIds(symbols.begin() + static_cast<std::ptrdiff_t>(start), symbols.begin() + static_cast<std::ptrdiff_t>(end)));
      out.insert(out.end(), stretch.begin(), stretch.end());
      start = end;
    };
    for (size_t i = 1; i < symbols.size(); ++i)
      if (one_character(symbols[i - 1]) && one_character(symbols[i]) && !pairs.side_by_side.count(pair_key(symbols[i - 1], symbols[i])))
        merge_stretch(i);
    merge_stretch(symbols.size());
    return out;
  }

  /// Which tokens are one character, and which pairs of them some token holds side by side; made
  /// for the first long piece (a pass over the vocabulary: 30 ms for Llama 2's).
  struct CharacterPairs {
    std::once_flag made;
    std::vector<bool> one_character;             // by id
    std::unordered_set<uint64_t> side_by_side;  // pair_key of the two one-character tokens
  };
  const CharacterPairs& character_pairs() const {
    std::call_once(character_pairs_->made, [&] {
      auto& pairs = *character_pairs_;
      pairs.one_character.assign(tokens_.size(), false);
      for (size_t id = 0; id < tokens_.size(); ++id) {
        const std::string& token = tokens_[id];
        int64_t previous = -1;  // the previous character's own token
        size_t count = 0;
        for (size_t i = 0; i < token.size(); ++count) {
          const size_t len = std::min(token.size() - i, detail::utf8_char_length(static_cast<unsigned char>(token[i])));
          auto it = token_ids_.find(token.substr(i, len));
          const int64_t own = it == token_ids_.end() ? -1 : it->second;
          if (previous >= 0 && own >= 0) pairs.side_by_side.insert(pair_key(previous, own));
          previous = own;
          i += len;
        }
        pairs.one_character[id] = count == 1;
      }
    });
    return *character_pairs_;
  }

  TokenIds first_symbols(const std::string& piece) const {
    TokenIds parts;
    parts.reserve(piece.size());
    if (pre_tokenizer_.byte_level()) {
      if (ignore_merges_) {
        auto whole = token_ids_.find(alphabet_.encode(piece));
        if (whole != token_ids_.end()) return {whole->second};
      }
      for (unsigned char c : piece) parts.push_back(byte_ids_[c]);
      return parts;
    }
    if (ignore_merges_) {
      auto whole = token_ids_.find(piece);
      if (whole != token_ids_.end()) return {whole->second};
    }
    for (size_t i = 0; i < piece.size();) {
      const auto lead = static_cast<unsigned char>(piece[i]);
      const size_t len = std::min(piece.size() - i, detail::utf8_char_length(lead));
      auto it = token_ids_.find(piece.substr(i, len));
      if (it != token_ids_.end()) {
        parts.push_back(it->second);
      } else if (byte_fallback_) {
        for (size_t b = i; b < i + len; ++b) parts.push_back(byte_ids_[static_cast<unsigned char>(piece[b])]);
      } else {
        detail::check(unk_id_ >= 0, "\"{}\" is not in the vocabulary, which has no unk_token", piece.substr(i, len));
        if (!(fuse_unk_ && !parts.empty() && parts.back() == unk_id_)) parts.push_back(unk_id_);
      }
      i += len;
    }
    return parts;
  }

  static uint64_t pair_key(int64_t left, int64_t right) {
    return (static_cast<uint64_t>(left) << 32) | static_cast<uint64_t>(right);
  }

  void append_bytes(int64_t id, bool skip_special, std::string& out) const {
    detail::check(id >= 0 && id < vocab_size() && !tokens_[id].empty(), "token id {} is not in the vocabulary", id);
    if (auto added = added_ids_.find(id); added != added_ids_.end()) {
      const auto& t = added_[added->second];
      if (!(skip_special && t.special)) decoder_.append_added(t.content, out);
      return;
    }
    detail::check(decoder_.append(tokens_[id], out), "token {} is not a byte-level token", id);
  }

  static constexpr size_t kCacheLimit = 1 << 18;
  /// Symbols from which a piece is merged in stretches (merged_between_cuts).
  static constexpr size_t kLongPiece = 256;

  std::vector<std::string> tokens_;  // by id
  std::unordered_map<std::string, int64_t> token_ids_;
  struct Merge {
    int32_t rank;
    int64_t merged;  // the id of the joined token
  };
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> merge
  std::array<int64_t, 256> byte_ids_{};           // the token of each byte: byte-level, or "<0xNN>" (byte_fallback)
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int64_t unk_id_ = -1;
  int64_t id_limit_ = 0;  // ids at or above it are refused (see load())
  std::vector<AddedToken> added_;
  std::unordered_map<int64_t, size_t> added_ids_;              // id -> index in added_
  std::array<std::vector<size_t>, 256> added_by_first_byte_;  // indices into added_, longest first
  TokenIds special_prefix_, special_suffix_;                   // what add_special_tokens puts around a text
  detail::Normalizer normalizer_;
  detail::PreTokenizer pre_tokenizer_;
  detail::TokenDecoder decoder_;
  detail::ByteLevelAlphabet alphabet_;
  /// Encoded pieces, shared by the threads that encode with this tokenizer.
  struct Cache {
    std::mutex mutex;
    std::unordered_map<std::string, TokenIds> ids;  // raw piece -> ids
  };
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
  std::unique_ptr<CharacterPairs> character_pairs_ = std::make_unique<CharacterPairs>();
};

}  // namespace lmdecode
