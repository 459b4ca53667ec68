// The Jinja interpreter (lmdecode/jinja/), through ChatTemplate: against transformers' own Jinja
// environment on template cases that exercise each rule (data/jinja-reference.jsonl, made by
// reference/make_jinja_reference.py), the errors that name what they refuse and where, and the
// bounds that stop hostile templates.
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

}  // namespace

TEST_CASE("templates render as transformers' Jinja environment renders them", "[jinja]") {
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

TEST_CASE("what the interpreter does not support is an error naming it and where it stands", "[jinja]") {
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

TEST_CASE("a hostile template is an error, not a hang, a crash or an exhausted memory", "[jinja]") {
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
  // Flat chains build trees as deep as they are long: bounded like nesting, whatever the operator.
  auto chain = [](const std::string& head, const std::string& link, int n) {
    std::string text = "{{ " + head;
    for (int i = 0; i < n; ++i) text += link;
    return text + " }}";
  };
  for (const auto& [head, link] : std::vector<std::pair<std::string, std::string>>{
           {"1", "+1"}, {"'a'", "~'a'"}, {"x", " and x"}, {"x", ".x"}, {"x", "[0]"}, {"'a'", ".strip()"}, {"'a'", "|upper"},
           {"x", " is defined and x"}})
    REQUIRE_THAT(error_of(chain(head, link, 50000)), Contains("nests deeper than 256 levels") && Contains("line 1, column"));
  REQUIRE(render(chain("1", "+1", 200)) == "201");  // a long but legal chain still works
  // Calls that fan out: the depth is bounded, and so is the work.
  REQUIRE_THAT(error_of("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"),
               Contains("more than 1000000 steps"));
  REQUIRE_THAT(error_of("{% set ns = namespace(s='a') %}{% for i in range(30) %}{% set ns.s = ns.s.replace('a', 'aa') %}"
                        "{% endfor %}{{ ns.s | length }}"),
               Contains("too large"));
  REQUIRE_THAT(error_of("{{ ('a' * 1000000) | replace('a', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa') }}"),
               Contains("too large"));
  REQUIRE_THAT(error_of("{{ (['x' * 1000000] * 100) | join('y') }}"), Contains("too large"));
  REQUIRE_THAT(error_of("{{ ('a\n' * 1000000) | indent(200, true) }}"), Contains("too large"));
  REQUIRE_THAT(error_of(std::string(1100000, 'x')), Contains("over the 1 MiB"));
  // Floats to integers as Jinja's int filter: nan its default, infinity and what 64 bits cannot hold errors.
  REQUIRE(render("{{ ('nan' | float) | int }}|{{ 'nan' | int(7) }}|{{ 2.9 | int }}|{{ '1e-999' | int }}") == "0|7|2|0");
  REQUIRE_THAT(error_of("{{ ('inf' | float) | int }}"), Contains("cannot convert float infinity"));
  REQUIRE_THAT(error_of("{{ 'inf' | int }}"), Contains("cannot convert float infinity"));
  REQUIRE_THAT(error_of("{{ '99999999999999999999' | int }}"), Contains("integer overflow"));
  REQUIRE_THAT(error_of("{{ 1e300 | int }}"), Contains("integer overflow"));
  Json deep = Json::array();
  for (int i = 0; i < 1000; ++i) deep = Json::array({deep});
  REQUIRE_THROWS_WITH(render("{{ messages }}", deep), Contains("deeper than 256"));
}
