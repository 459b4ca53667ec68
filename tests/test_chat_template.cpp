// Chat templates: how a checkpoint's template is found, and ChatML. The Jinja rules are
// test_jinja.cpp's; the real Qwen3, Llama 3 and Gemma 3 templates are held to transformers by
// test_tokenizer_reference.cpp.
#include <catch2/catch.hpp>

#include <fstream>

#include "lmdecode/text/chat_template.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;
using Json = nlohmann::ordered_json;

namespace {

std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("lmdecode-chat-template-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void write(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_CASE("a checkpoint's template is found in tokenizer_config.json or chat_template.jinja, else ChatML", "[chat_template]") {
  const auto dir = scratch_dir("find");
  const Json chat = Json::parse(R"([{"role": "user", "content": "hi"}])");
  REQUIRE(lmdecode::ChatTemplate::for_model(dir).render(chat, {}) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  REQUIRE(lmdecode::ChatTemplate::for_model(dir).origin() == "the ChatML template");
  write(dir / "tokenizer_config.json", R"({"bos_token": {"content": "<B>", "lstrip": false}, "eos_token": "<E>",
    "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}"})");
  REQUIRE(lmdecode::ChatTemplate::for_model(dir).render(chat, {}) == "<B>user:hi<E>");
  write(dir / "chat_template.jinja", "jinja {{ bos_token }}{{ messages | length }}\n");
  REQUIRE(lmdecode::ChatTemplate::for_model(dir).render(chat, {}) == "jinja <B>1");  // the .jinja file wins, as in transformers 5
  REQUIRE(lmdecode::ChatTemplate::from_file(dir / "chat_template.jinja").render(chat, {}) == "jinja <B>1");
  std::filesystem::remove(dir / "chat_template.jinja");

  write(dir / "tokenizer_config.json", R"({"chat_template": [{"name": "default", "template": "plain"},
    {"name": "tool_use", "template": "tools: {{ tools | length }}"}, {"name": "rag", "template": "{{ documents[0].title }}"}]})");
  const auto named = lmdecode::ChatTemplate::from_file(dir / "tokenizer_config.json");
  lmdecode::ChatTemplateOptions options;
  REQUIRE(named.render(chat, options) == "plain");
  options.tools = Json::parse(R"([{"type": "function"}])");
  REQUIRE(named.render(chat, options) == "tools: 1");
  options.template_name = "rag";
  options.documents = Json::parse(R"([{"title": "T", "text": "x"}])");
  REQUIRE(named.render(chat, options) == "T");
  options.template_name = "nope";
  REQUIRE_THROWS_WITH(named.render(chat, options), Contains("no template named 'nope'"));

  write(dir / "tokenizer_config.json", R"({"eos_token": "<E>"})");
  REQUIRE_THROWS_WITH(lmdecode::ChatTemplate::from_file(dir / "tokenizer_config.json"), Contains("has no chat_template"));
  write(dir / "tokenizer_config.json", R"({"chat_template": "{% for %}"})");
  REQUIRE_THROWS_WITH(lmdecode::ChatTemplate::from_file(dir / "tokenizer_config.json"),
                      Contains("tokenizer_config.json chat_template, line 1, column 1") && Contains("expected a name"));
  write(dir / "tokenizer_config.json", R"({"chat_template": 7})");
  REQUIRE_THROWS_AS(lmdecode::ChatTemplate::from_file(dir / "tokenizer_config.json"), lmdecode::file_error);
  REQUIRE_THROWS_WITH(lmdecode::ChatTemplate("x").render(Json::object(), {}), Contains("JSON array"));

  // Files are told apart by content, whatever their names; a folder is a model's.
  write(dir / "tokenizer_config.json", R"({"eos_token": "<E>"})");
  write(dir / "template.j2", "{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}");
  REQUIRE(lmdecode::ChatTemplate::from_file(dir / "template.j2").render(chat, {}) == "hi<E>");
  write(dir / "settings.txt", R"({"chat_template": "[{{ messages[0].content }}]"})");
  REQUIRE(lmdecode::ChatTemplate::from_file(dir / "settings.txt").render(chat, {}) == "[hi]");
  REQUIRE(lmdecode::ChatTemplate::from_file(dir).origin() == "the ChatML template");
  write(dir / "huge.jinja", std::string((size_t{1} << 20) + 1, 'x'));
  REQUIRE_THROWS_WITH(lmdecode::ChatTemplate::from_file(dir / "huge.jinja"), Contains("over the 1 MiB a chat template may hold"));
  REQUIRE_THROWS_WITH(lmdecode::ChatTemplate("x").render(Json::array(), {}), Contains("at least one message"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("ChatML renders the turns and the generation prompt", "[chat_template]") {
  const auto chatml = lmdecode::ChatTemplate::chatml();
  REQUIRE(chatml.render({{"system", "S"}, {"user", "U"}, {"assistant", "A"}}, false) ==
          "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n");
  REQUIRE(chatml.render({{"user", "U"}}) == "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
}
