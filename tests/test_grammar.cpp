// Grammars: GBNF read as llama.cpp reads it, parses that take text byte by byte, the tokens a parse
// can take, and every strategy's output under a grammar, checked by a regular expression written
// apart from the grammar.

#include <catch2/catch.hpp>

#include <regex>
#include <string>
#include <vector>

#include "lmdecode/grammar/json_schema.hpp"
#include "lmdecode/lmdecode.hpp"
#include "support/golden_cases.hpp"
#include "support/json_schema_check.hpp"
#include "support/table_model.hpp"
#include "support/test_data.hpp"

namespace {

using Catch::Contains;
using lmdecode::Grammar;
using lmdecode::GrammarState;

/// Whether `text` is a whole sentence of the grammar.
bool accepts(const Grammar& g, const std::string& text) { return GrammarState::start(g).after_text(g, text).accepts(); }
/// Whether `text` can begin a sentence of the grammar.
bool begins(const Grammar& g, const std::string& text) { return !GrammarState::start(g).after_text(g, text).dead(); }

/// A hypothesis's text: its tokens' texts, the demo model's EOS (id 0) left out.
std::string text_of(const lmdecode::Hypothesis& h, const std::vector<std::string>& texts) {
  std::string text;
  for (int64_t id : h.tokens)
    if (id != 0) text += texts[static_cast<size_t>(id)];
  return text;
}

/// Runs greedy, sampling (six seeds, top-k off) and 4 beams (all four returned) under `config`,
/// giving each returned hypothesis and the run's name to `check`; returns greedy's result.
template <class Model, class Check>
lmdecode::GenerationResult each_strategy(Model& model, const std::vector<lmdecode::TokenIds>& prompts,
                                         const lmdecode::GenerationConfig& config, const Check& check) {
  auto check_all = [&](const lmdecode::GenerationResult& result, const std::string& what) {
    for (const auto& per_prompt : result.hypotheses)
      for (const auto& h : per_prompt) check(h, what);
  };
  const auto greedy = lmdecode::generate(model, prompts, config);
  check_all(greedy, "greedy");
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    auto sampling = config;
    sampling.do_sample = true, sampling.top_k = 0, sampling.seed = seed;
    check_all(lmdecode::generate(model, prompts, sampling), fmt::format("sampling, seed {}", seed));
  }
  auto beams = config;
  beams.num_beams = 4, beams.num_return_sequences = 4;
  check_all(lmdecode::generate(model, prompts, beams), "4 beams");
  return greedy;
}

void check_sentences(const std::string& gbnf, const std::vector<std::string>& accepted, const std::vector<std::string>& refused) {
  INFO(gbnf);
  const auto g = Grammar::from_gbnf(gbnf);
  for (const auto& text : accepted) {
    INFO("accepted: " << text);
    CHECK(accepts(g, text));
  }
  for (const auto& text : refused) {
    INFO("refused: " << text);
    CHECK_FALSE(accepts(g, text));
  }
}

}  // namespace

TEST_CASE("GBNF: each construct takes the sentences llama.cpp's reading gives it", "[grammar]") {
  check_sentences(R"(root ::= "ab" "c")", {"abc"}, {"", "ab", "abcd", "abd"});
  check_sentences(R"(root ::= "a\n\t\"\\\x41\u00e9\U0001F600")", {"a\n\t\"\\A\xc3\xa9\xf0\x9f\x98\x80"}, {"a"});
  check_sentences(R"(root ::= "yes" | "no" | "")", {"yes", "no", ""}, {"yesno", "n"});
  check_sentences("root ::= (\"a\" | \"b\")  \"c\"  # a comment\n", {"ac", "bc"}, {"c", "abc"});
  check_sentences(R"(root ::= "x"* "y"+ "z"?)", {"y", "xxyy", "yz", "xyyyz"}, {"", "x", "xz", "yzz"});
  check_sentences(R"(root ::= "ab"{2} "c"{1,} "d"{0,2} "e"{1,3})", {"ababce", "ababcccdde", "ababceee"},
                  {"abce", "ababe", "ababcddde", "ababceeee"});
  check_sentences(R"(root ::= [a-c0-9_] [^a-z] .)", {"a00", "_Zz", "1\xc3\xa9\xc3\xa9"}, {"d00", "aa0", "a0"});
  check_sentences(R"(root ::= [\]\-\\^]+)", {"]-\\^"}, {"a", "["});
  check_sentences(R"(root ::= [^])", {"x", "\xe2\x82\xac"}, {"", "xy"});
  // A rule on several lines: `|` ends a line, newlines inside groups; names with - and _.
  check_sentences("root ::= item-list |\n  \"none\"\nitem-list ::= (\n  item_a\n  (\",\" item_a)*\n)\nitem_a ::= [a-z]+\n",
                  {"none", "ab", "ab,c,de"}, {"", "ab,", ",ab"});
  // Right recursion nests without bound but the depth limit; "x"* keeps one depth however long.
  check_sentences(R"g(root ::= "(" root ")" | "")g", {"", "()", "((()))"}, {"(()", "())"});
  const auto many = Grammar::from_gbnf(R"(root ::= "x"*)");
  CHECK(accepts(many, std::string(100000, 'x')));
}

TEST_CASE("GBNF: a parse takes UTF-8 byte by byte and keeps a half character only where it can end well", "[grammar]") {
  const auto accented = Grammar::from_gbnf(R"(root ::= [a\u00e9]+)");
  const auto start = GrammarState::start(accented);
  CHECK_FALSE(start.after_byte(accented, 0xC3).dead());          // é begins with C3
  CHECK(start.after_byte(accented, 0xC4).dead());                // U+0100 and on: none allowed
  CHECK(start.after_byte(accented, 0xA9).dead());                // a continuation byte cannot start
  CHECK_FALSE(start.after_byte(accented, 0xC3).accepts());       // half a character is not a sentence
  CHECK(start.after_text(accented, "a\xc3\xa9").accepts());
  CHECK(start.after_text(accented, "\xc3\xa8").dead());          // è
  const auto not_accented = Grammar::from_gbnf(R"(root ::= [^\u00e9])");
  CHECK_FALSE(GrammarState::start(not_accented).after_byte(not_accented, 0xC3).dead());  // C3 begins other characters too
  CHECK(GrammarState::start(not_accented).after_text(not_accented, "\xc3\xa9").dead());
  CHECK(begins(accented, "a\xc3"));
}

TEST_CASE("GBNF: bad and hostile grammars are refused with the line and column, in bounded time", "[grammar]") {
  auto refused = [](const std::string& gbnf, const std::string& message) {
    INFO(gbnf.substr(0, 200));
    REQUIRE_THROWS_WITH(Grammar::from_gbnf(gbnf), Contains("lmdecode: grammar") && Contains(message));
  };
  refused("root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule 'root' is defined twice");
  refused("root ::= item", "line 1, column 10: rule 'item' is used but never defined");
  refused("item ::= \"a\"", "no rule 'root'");
  refused("root ::= \"a", "a literal that is not closed");
  refused("root ::= [a-", "a character class that is not closed");
  refused("root ::= [z-a]", "ends (U+0061) before it starts (U+007A)");
  refused("root ::= []", "an empty character class matches nothing");
  refused("root ::= \"\\q\"", "unknown escape '\\q'");
  refused("root ::= \"\\u12\"", "needs 4 hex digits");
  refused("root ::= * \"a\"", "'*' with nothing before it to repeat");
  refused("root ::= \"a\"{3,2}", "largest count below its smallest");
  refused("root ::= \"a\"{100000}", "a repetition count above 10000");
  refused("root ::= \"a\" )", "line 1, column 14: unexpected ')' in rule 'root'");
  refused("root = \"a\"", "expected '::=' after the rule name 'root'");
  refused("root ::= (\"a\"", "expected ')' to close the group");
  refused("root ::= \"\xff\"", "not valid UTF-8");
  refused("root ::= root \"a\" | \"b\"", "rule 'root' reaches itself before reading a character");
  refused("root ::= a\na ::= b? root\nb ::= \"b\"", "loop 'root' -> 'a' -> 'root'");
  refused("root ::= (\"a\"?)*", "left recursion, or a repetition of something that can be empty");
  // Sizes: a repetition written out past the item bound, groups nested too deep, a huge text.
  refused("root ::= \"" + std::string(200, 'a') + "\"{10000}", "more than 1048576 items");
  // A group is one rule however often it is repeated: 10^8 characters of text in 90,000 items.
  const auto nested = Grammar::from_gbnf(R"(root ::= ("abcdefgh"{10000}){10000})");
  CHECK(nested.item_count() < 100000);
  CHECK(begins(nested, "abcdefghabcdefgh"));
  refused("root ::= " + std::string(300, '(') + "\"a\"" + std::string(300, ')'), "groups nested more than 256 deep");
  REQUIRE_THROWS_WITH(Grammar::from_gbnf(std::string(Grammar::kMaxTextBytes + 1, ' ')), Contains("1048577 bytes, more than the 1048576 a grammar may have"));
  // A long flat chain of rules is read without deep recursion.
  std::string chain = "root ::= r0\n";
  for (int i = 0; i < 20000; ++i) chain += fmt::format("r{} ::= r{}\n", i, i + 1);
  chain += "r20000 ::= \"z\"\n";
  CHECK(accepts(Grammar::from_gbnf(chain), "z"));
  // An ambiguous grammar keeps one parse per distinct stack.
  CHECK(accepts(Grammar::from_gbnf(R"(root ::= ("a" | "a" | [a-z])*)"), std::string(2000, 'a')));
}

TEST_CASE("a TokenGrammar allows the tokens whose whole bytes a parse can take, split characters included", "[grammar]") {
  auto texts = std::make_shared<std::vector<std::string>>(std::vector<std::string>{
      "<eos>", "a", "b", "ab", "ba", "\xc3", "\xa9", "\xc3\xa9", "\xc3\xa9" "a", "", "\"", "<special>"});
  const lmdecode::TokenGrammar tokens(Grammar::from_gbnf(R"(root ::= [a\u00e9<>a-z]+)"), texts, {0, 11});
  auto allowed_ids = [&](const GrammarState& state) {
    const auto mask = tokens.allowed_tokens(state);
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < mask.size(0); ++i)
      if (mask[i].item<bool>()) ids.push_back(i);
    return ids;
  };
  const auto start = tokens.start();
  CHECK(allowed_ids(start) == std::vector<int64_t>{1, 2, 3, 4, 5, 7, 8});  // not the excluded ids 0 and 11, nor "" or \xa9
  const auto half = tokens.after_token(start, 5);
  CHECK(allowed_ids(half) == std::vector<int64_t>{6});  // only the byte that ends é
  CHECK(tokens.after_token(half, 6).accepts());
  CHECK(allowed_ids(start).size() == 7);  // the cached answer is the same
  CHECK(tokens.after_token(start, 10).dead());
}

TEST_CASE("under a grammar, greedy, sampling, beams and both speculative decoders write only its sentences", "[grammar][models]") {
  lmdecode_test::GoldenModels models(lmdecode_test::reference_dir(), at::kCPU);
  auto& loaded = models.get("fortunes-llama", "f32");
  const auto gbnf = R"(# a record of the demo model's choosing
root   ::= "{" ws "\"name\": " string "," ws "\"pet\": " pet "," ws "\"age\": " age ws "}"
string ::= "\"" [a-zA-Z ]{1,12} "\""
pet    ::= "\"cat\"" | "\"dog\"" | "null"
age    ::= [1-9] [0-9]?
ws     ::= [ \n]?
)";
  // Written apart from the grammar, to check its sentences.
  const std::regex sentence(R"(\{[ \n]?"name": "[a-zA-Z ]{1,12}",[ \n]?"pet": ("cat"|"dog"|null),[ \n]?"age": [1-9][0-9]?[ \n]?\})");
  auto config = loaded.defaults;
  config.grammar = std::make_shared<lmdecode::TokenGrammar>(Grammar::from_gbnf(gbnf), config.token_texts, std::vector<int64_t>{0});
  config.max_new_tokens = 80;
  const std::vector<lmdecode::TokenIds> prompts{{318, 3424, 289, 259, 2101, 681, 300}, {120, 44}};
  auto check_sentence = [&](const lmdecode::Hypothesis& h, const std::string& what) {
    const std::string text = text_of(h, *config.token_texts);
    INFO(what << ": " << text);
    CHECK(h.finish_reason == lmdecode::FinishReason::eos);
    CHECK(std::regex_match(text, sentence));
  };
  const auto greedy = each_strategy(*loaded.model, prompts, config, check_sentence);
  auto beam_sampling = config;
  beam_sampling.num_beams = 4, beam_sampling.do_sample = true, beam_sampling.seed = 7;
  for (const auto& h : lmdecode::generate(*loaded.model, prompts, beam_sampling).hypotheses) check_sentence(h[0], "beam sampling");
  // Drafts past the grammar are rejected; the tokens are plain greedy's.
  auto lookup = config;
  lookup.prompt_lookup_num_tokens = 4;
  const auto speculative = lmdecode::generate(*loaded.model, prompts, lookup);
  for (const auto& h : speculative.hypotheses) check_sentence(h[0], "prompt lookup");
  // A draft model (the model itself here) drafts under the grammar too.
  auto assisted_config = config;
  assisted_config.num_assistant_tokens = 3;
  const auto assisted = lmdecode::generate(*loaded.model, *loaded.model, prompts, assisted_config);
  for (const auto& h : assisted.hypotheses) check_sentence(h[0], "assisted");
  CHECK(assisted.speculation.accepted > 0);
  for (size_t p = 0; p < prompts.size(); ++p) {
    CHECK(speculative.hypotheses[p][0].tokens == greedy.hypotheses[p][0].tokens);
    CHECK(assisted.hypotheses[p][0].tokens == greedy.hypotheses[p][0].tokens);
  }
}

TEST_CASE("a grammar needs EOS ids; a vocabulary that cannot write what it needs ends the row with its own reason", "[grammar]") {
  const std::vector<std::vector<double>> uniform(3, std::vector<double>(3, 1.0 / 3));
  lmdecode_test::TableModel model(uniform);
  auto texts = std::make_shared<std::vector<std::string>>(std::vector<std::string>{"<eos>", "a", "b"});
  lmdecode::GenerationConfig config;
  config.max_new_tokens = 5;
  config.grammar = std::make_shared<lmdecode::TokenGrammar>(Grammar::from_gbnf(R"(root ::= "a" "c")"), texts, std::vector<int64_t>{0});
  REQUIRE_THROWS_WITH(lmdecode::generate(model, {{1}}, config), Contains("a grammar needs eos_token_ids"));
  config.eos_token_ids = {0};
  for (const int64_t beams : {1, 2}) {
    config.num_beams = beams;
    const auto dead_end = lmdecode::generate(model, {{1}}, config);
    CHECK(dead_end.hypotheses[0][0].tokens == lmdecode::TokenIds{1, 0});
    CHECK(dead_end.hypotheses[0][0].finish_reason == lmdecode::FinishReason::grammar);
  }
  config.num_beams = 1;
  config.grammar = std::make_shared<lmdecode::TokenGrammar>(Grammar::from_gbnf(R"(root ::= "a" "b"?)"), texts, std::vector<int64_t>{0});
  const auto result = lmdecode::generate(model, {{1}}, config);
  const auto& tokens = result.hypotheses[0][0].tokens;
  CHECK((tokens == lmdecode::TokenIds{1, 0} || tokens == lmdecode::TokenIds{1, 2, 0}));
}

namespace {

/// Checks that the schema's grammar takes each of `valid` and none of `invalid`, and that the
/// test's own validator agrees on each text that is JSON.
void check_schema(const std::string& schema_text, const std::vector<std::string>& valid, const std::vector<std::string>& invalid) {
  INFO(schema_text);
  const auto schema = nlohmann::ordered_json::parse(schema_text);
  const auto g = lmdecode::grammar_from_json_schema(schema);
  for (const auto& text : valid) {
    INFO("valid: " << text);
    CHECK(accepts(g, text));
    CHECK(lmdecode_test::schema_violation(nlohmann::json::parse(text), schema, schema).empty());
  }
  for (const auto& text : invalid) {
    INFO("invalid: " << text);
    CHECK_FALSE(accepts(g, text));
    const auto parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) CHECK_FALSE(lmdecode_test::schema_violation(parsed, schema, schema).empty());
  }
}

}  // namespace

TEST_CASE("JSON Schema: each keyword's grammar takes the texts the schema accepts and no other", "[grammar][json-schema]") {
  check_schema(R"({"type": "string", "minLength": 2, "maxLength": 3})", {R"("ab")", R"("abc")", R"("\n\u00e9")", "\"\xc3\xa9\xc3\xa9\""},
               {R"("a")", R"("abcd")", "ab", R"("a\")"});
  check_schema(R"({"type": "integer", "minimum": -15, "maximum": 120})", {"-15", "-9", "0", "7", "99", "100", "120"},
               {"-16", "121", "007", "1.5", "200", "-100"});
  check_schema(R"({"type": "integer", "exclusiveMinimum": 99})", {"100", "12345"}, {"99", "5", "-100"});
  check_schema(R"({"type": "integer", "maximum": -3})", {"-3", "-1000"}, {"-2", "0", "3"});
  check_schema(R"({"type": "integer", "minimum": 1234, "maximum": 5678})", {"1234", "1999", "2000", "5000", "5678"},
               {"1233", "5679", "999", "10000"});
  check_schema(R"({"type": "number", "minimum": 0})", {"0", "1.5", "2e10"}, {"-1", "-0.5"});
  check_schema(R"({"type": "number"})", {"-0.25", "3", "1E-7"}, {"01", ".5", "1."});
  check_schema(R"({"type": ["string", "null"]})", {R"("x")", "null"}, {"1", "true"});
  check_schema(R"({"enum": ["red", 1, null, {"a": [1]}]})", {R"("red")", "1", "null", R"({"a":[1]})"}, {R"("blue")", "2"});
  check_schema(R"({"const": "x"})", {R"("x")"}, {R"("y")"});
  check_schema(R"({"anyOf": [{"type": "boolean"}, {"type": "integer", "minimum": 0, "maximum": 9}]})", {"true", "5"}, {"10", "null"});
  check_schema(R"({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3})", {"[1]", "[1, 2,3]"},
               {"[]", "[1,2,3,4]", R"(["a"])"});
  check_schema(R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false})",
               {R"(["a", 1])", R"(["a"])", "[]"}, {"[1]", R"(["a",1,2])"});
  check_schema(R"({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "boolean"}, "minItems": 2})",
               {R"(["a", true])", R"(["a", true, false])"}, {R"(["a"])", "[]", R"(["a", 1])"});
  check_schema(R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["b"]})",
               {R"({"a": 1, "b": "x"})", R"({"b":"x"})", "{ \"b\" : \"x\" }", "{\n    \"b\": \"x\"\n}"},
               {R"({"a":1})", "{}", R"({"b":"x","c":1})"});
  check_schema(R"({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "boolean"}})",
               {R"({"a":1,"x":true})", R"({"x":false})", "{}"}, {R"({"x":1})"});
  check_schema(R"({"type": "object"})", {R"({"k": [1, {"z": null}]})", "{}"}, {"[]"});
  check_schema(R"({"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                   "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}, "required": ["v", "next"]}},
                   "$ref": "#/$defs/node"})",
               {R"({"v":1,"next":{"v":2,"next":null}})"}, {R"({"v":1})", R"({"v":1,"next":{"v":2}})"});
  check_schema(R"({"type": "string", "format": "date"})", {R"("2026-12-06")"}, {R"("2026-13-01")", R"("26-12-06")"});
  check_schema(R"({"type": "string", "format": "time"})", {R"("12:30:00Z")", R"("12:30:00.123+01:00")"}, {R"("24:00:00Z")", R"("12:30")"});
  check_schema(R"({"type": "string", "format": "date-time"})", {R"("2026-12-06T12:30:00Z")"}, {R"("2026-12-06 12:30:00Z")"});
  check_schema(R"({"type": "string", "format": "uuid"})", {R"("123e4567-e89b-12d3-a456-426614174000")"}, {R"("123e4567")"});
  check_schema("true", {R"([1, "a", {"b": false}])", "-2.5e3"}, {"[1,]", "nul"});
  // A grammar lists properties in the schema's order; the other order is valid JSON Schema but not written.
  CHECK_FALSE(accepts(lmdecode::grammar_from_json_schema(nlohmann::ordered_json::parse(
                          R"({"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}})")),
                      R"({"b":1,"a":2})"));
}

TEST_CASE("JSON Schema: what a grammar cannot say is an error naming the keyword and where it is", "[grammar][json-schema]") {
  auto refused = [](const std::string& schema, const std::string& message) {
    INFO(schema.substr(0, 200));
    REQUIRE_THROWS_WITH(lmdecode::grammar_from_json_schema(nlohmann::ordered_json::parse(schema)), Contains("lmdecode: ") && Contains(message));
  };
  refused(R"({"properties": {"a": {"type": "string", "pattern": "^x"}}})",
          "JSON Schema at #/properties/a: the keyword 'pattern' cannot be written as a grammar");
  refused(R"({"type": "string", "format": "email"})", "the format \"email\" cannot be written as a grammar");
  refused(R"({"type": "number", "maximum": 3.5})", "maximum on a number (not an integer) cannot be written as a grammar");
  refused(R"({"type": "integer", "minimum": 1e30})", "minimum must be an integer within +-10^18");
  refused(R"({"$ref": "#/$defs/missing"})", "$ref \"#/$defs/missing\" does not name an entry");
  refused(R"({"$ref": "https://example.com/schema"})", "does not name an entry of #/$defs or #/definitions");
  refused(R"({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})", "reaches itself before reading a character");
  refused(R"({"type": "array", "maxItems": 100000})", "maxItems 100000 is past the 10000 a grammar can count");
  refused(R"({"type": "array", "minItems": 3, "maxItems": 2})", "maxItems 2 is below minItems 3");
  refused(R"({"type": "object", "properties": {}, "required": ["x"]})", "required names \"x\", which properties does not list");
  refused("false", "the schema false accepts nothing");
  refused(R"({"type": 5})", "type must be a string or a non-empty array of strings");
  refused(R"({"type": "text"})", "unknown type \"text\"");
  refused(R"({"type": "integer", "minimum": 5, "maximum": 4})", "no integer lies between the minimum 5 and the maximum 4");
  std::string deep = "true";
  for (int i = 0; i < 200; ++i) deep = R"({"type": "array", "items": )" + deep + "}";
  refused(deep, "schemas nested more than 128 deep");
}

TEST_CASE("under a JSON Schema, every strategy's output parses and satisfies the schema", "[grammar][json-schema][models]") {
  lmdecode_test::GoldenModels models(lmdecode_test::reference_dir(), at::kCPU);
  auto& loaded = models.get("fortunes-llama", "f32");
  const auto schema = nlohmann::ordered_json::parse(R"({"type": "object", "properties": {
      "name": {"type": "string", "minLength": 1, "maxLength": 10},
      "age": {"type": "integer", "minimum": 0, "maximum": 120},
      "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
      "ok": {"type": "boolean"}}, "required": ["name", "age", "ok"]})");
  auto config = loaded.defaults;
  config.grammar = std::make_shared<lmdecode::TokenGrammar>(lmdecode::grammar_from_json_schema(schema), config.token_texts,
                                                            std::vector<int64_t>{0});
  config.max_new_tokens = 256;
  const std::vector<lmdecode::TokenIds> prompts{{318, 3424, 289, 259, 2101, 681, 300}, {120, 44}};
  each_strategy(*loaded.model, prompts, config, [&](const lmdecode::Hypothesis& h, const std::string& what) {
    const std::string text = text_of(h, *config.token_texts);
    INFO(what << ": " << text);
    CHECK(h.finish_reason == lmdecode::FinishReason::eos);
    const auto parsed = nlohmann::json::parse(text, nullptr, false);
    REQUIRE_FALSE(parsed.is_discarded());
    CHECK(lmdecode_test::schema_violation(parsed, schema, schema) == "");
  });
}
