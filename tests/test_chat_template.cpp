// Chat templates: our Jinja interpreter against transformers' own Jinja environment on template
// cases that exercise each rule (data/jinja-reference.jsonl, made by
// scripts/make-chat-template-reference.sh), the errors that name what they refuse and where, the
// bounds that stop hostile templates, and how a checkpoint's template is found. The real Qwen3,
// Llama 3 and Gemma 3 templates are held to transformers by tokenizer/check_chat_templates.sh.
#include <catch2/catch.hpp>

#include <fstream>

#include "lmdecode/text/chat_template.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;
using Json = nlohmann::ordered_json;

namespace {

std::string render(const std::string& source, Json messages = Json::parse(R"([{"role": "user", "content": "hi"}])"),
                   Json variables = Json::object()) {
  lmdecode::ChatTemplateOptions options;
  options.variables = std::move(variables);
  return lmdecode::ChatTemplate(source).render(messages, options);
}

std::string error_of(const std::string& source) {
  try {
    render(source);
  } catch (const lmdecode::invalid_argument& e) {
    return e.what();
  }
  FAIL("no error for " << source);
  return "";
}

std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("lmdecode-chat-template-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void write(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_CASE("templates render as transformers' Jinja environment renders them", "[chat_template]") {
  std::ifstream in(lmdecode_test::data_dir() / "jinja-reference.jsonl");
  REQUIRE(in);
  int cases = 0, errors = 0;
  std::vector<std::string> failures;
  for (std::string line; std::getline(in, line);) {
    const auto c = Json::parse(line);
    ++cases;
    std::string ours;
    bool refused = false;
    try {
      ours = render(c["template"].get<std::string>(), c["messages"], c["variables"]);
    } catch (const lmdecode::invalid_argument& e) {
      refused = true;
      ours = e.what();
    }
    if (c.contains("error")) {
      ++errors;
      if (!refused) failures.push_back(c["name"].get<std::string>() + ": rendered " + Json(ours).dump() + ", HF raised " + c["error"].dump());
    } else if (refused || ours != c["text"].get<std::string>()) {
      failures.push_back(c["name"].get<std::string>() + ": " + Json(ours).dump() + " vs HF " + c["text"].dump());
    }
  }
  for (const auto& f : failures) UNSCOPED_INFO(f);
  CHECK(failures.empty());
  REQUIRE(cases >= 70);
  REQUIRE(errors >= 10);
}

TEST_CASE("what the interpreter does not support is an error naming it and where it stands", "[chat_template]") {
  REQUIRE_THAT(error_of("ok\n  {{ x | wordwrap(3) }}"), Contains("line 2, column 8") && Contains("unsupported filter 'wordwrap'"));
  REQUIRE_THAT(error_of("{% if x is frobbed %}{% endif %}"), Contains("line 1, column 9") && Contains("unsupported test 'frobbed'"));
  REQUIRE_THAT(error_of("a\nb\n{% include 'other' %}"), Contains("line 3, column 1") && Contains("unsupported statement '{% include %}'"));
  REQUIRE_THAT(error_of("{% for x in y recursive %}{% endfor %}"), Contains("unsupported recursive for loop"));
  REQUIRE_THAT(error_of("{% if true %}never closed"), Contains("never closed") && Contains("endif"));
  REQUIRE_THAT(error_of("{{ '%s' % 'x' }}"), Contains("line 1, column 9") && Contains("printf-style formatting"));
  REQUIRE_THAT(error_of("{{ 'a'.zfill(3) }}"), Contains("'str object' has no attribute 'zfill'"));
  REQUIRE_THAT(error_of("{{ 'unclosed }}"), Contains("string literal is never closed"));
  REQUIRE_THAT(error_of("{{ raise_exception('roles must alternate') }}"), Contains("the template raised an exception: roles must alternate"));
}

TEST_CASE("a hostile template is an error, not a hang, a crash or an exhausted memory", "[chat_template]") {
  REQUIRE_THAT(error_of("{{ 'x' * 100000000 }}"), Contains("too large"));
  REQUIRE_THAT(error_of("{{ [1] * 100000000 }}"), Contains("too large"));
  REQUIRE_THAT(error_of("{{ range(100000000) | length }}"), Contains("too large"));
  REQUIRE_THAT(error_of("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"),
               Contains("too large"));
  REQUIRE_THAT(error_of("{% for i in range(1000) %}{{ 'x' * 100000 }}{% endfor %}"), Contains("64 MiB"));
  REQUIRE_THAT(error_of("{% for a in range(1001) %}{% for b in range(1000) %}{% endfor %}{% endfor %}"), Contains("a million times"));
  REQUIRE_THAT(error_of("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"), Contains("64 deep"));
  REQUIRE_THAT(error_of("{{ " + std::string(2000, '(') + "1" + std::string(2000, ')') + " }}"), Contains("nests deeper"));
  REQUIRE_THAT(error_of(std::string(2000, '-').insert(0, "{{ ") + "1 }}"), Contains("nests deeper"));
  std::string blocks;
  for (int i = 0; i < 2000; ++i) blocks += "{% if true %}";
  REQUIRE_THAT(error_of(blocks), Contains("nests deeper"));
  // Found by fuzz_chat_template: a filter given a value of the wrong kind (here undefined) once aborted.
  REQUIRE_THAT(error_of("{{ 2.ae161 | round }}"), Contains("expected a number, not an undefined value"));
  REQUIRE_THAT(error_of("{{ {'a': 1} | round }}"), Contains("expected a number, not dict"));
  REQUIRE_THAT(error_of("{{ 9223372036854775807 + 1 }}"), Contains("integer overflow"));
  REQUIRE_THAT(error_of("{{ 2 ** 100 }}"), Contains("integer overflow"));
  REQUIRE(render("{{ 1 ** 9223372036854775807 }}") == "1");  // by squaring: no 2^63 steps
  Json deep = Json::array();
  for (int i = 0; i < 1000; ++i) deep = Json::array({deep});
  REQUIRE_THROWS_WITH(render("{{ messages }}", deep), Contains("deeper than 256"));
}

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
  REQUIRE_THROWS_WITH(lmdecode::ChatTemplate("x").render(Json::array(), {}), Contains("at least one message"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("ChatML renders the turns and the generation prompt", "[chat_template]") {
  const auto chatml = lmdecode::ChatTemplate::chatml();
  REQUIRE(chatml.render({{"system", "S"}, {"user", "U"}, {"assistant", "A"}}, false) ==
          "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n");
  REQUIRE(chatml.render({{"user", "U"}}) == "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
}
