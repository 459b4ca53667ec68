#pragma once
// JSON Schema to a grammar: the GBNF whose sentences are the JSON texts a schema accepts, so a
// model writes JSON a program can parse and trust (GenerationConfig::grammar).
//
// Example:
//   auto grammar = lmdecode::grammar_from_json_schema(nlohmann::ordered_json::parse(R"({
//     "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]})"));
//
// What a schema says and the grammar writes:
//   type (one or a list), enum, const, anyOf, oneOf (as anyOf: the grammar cannot count matches),
//   $ref into #/$defs or #/definitions (and "#"), true / {} (any JSON value);
//   string: minLength, maxLength, format date, time, date-time, uuid;
//   integer: minimum, maximum, exclusiveMinimum, exclusiveMaximum (written digit by digit; bounds
//   within +-10^18);
//   number: minimum 0 (no minus sign);
//   array: items, prefixItems, minItems, maxItems;
//   object: properties (written in the schema's order), required, additionalProperties false, true
//   or a schema. An object schema with properties that does not mention additionalProperties takes
//   its listed properties only (as llama.cpp does: a model is not asked to invent keys); one
//   without properties takes any object.
// Annotations (title, description, default, examples, ...) are ignored; every other keyword is an
// error naming it and where it sits, never a grammar that accepts something else than the schema.
// Whitespace between tokens is bounded (a space, or a newline and up to 16 spaces of indent), so a
// model cannot pad forever.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lmdecode/error.hpp"
#include "lmdecode/grammar/grammar.hpp"

namespace lmdecode {

namespace detail {

class JsonSchemaWriter {
 public:
  static constexpr int kMaxDepth = 128;

  explicit JsonSchemaWriter(const nlohmann::ordered_json& root) : root_(root) {}

  std::string gbnf() {
    const std::string top = expression(root_, "#", 0);
    std::string text = "root ::= " + top + "\n";
    for (const auto& [name, body] : rules_) text += name + " ::= " + body + "\n";
    return text + kJsonRules;
  }

 private:
  // The shared pieces of JSON: a value of any kind, and its lexical parts.
  static constexpr const char* kJsonRules =
      "value ::= object | array | string | number | boolean | null\n"
      "object ::= \"{\" ws ( string ws \":\" ws value ( ws \",\" ws string ws \":\" ws value )* )? ws \"}\"\n"
      "array ::= \"[\" ws ( value ( ws \",\" ws value )* )? ws \"]\"\n"
      "string ::= \"\\\"\" char* \"\\\"\"\n"
      "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )\n"
      "number ::= \"-\"? natural ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )?\n"
      "integer ::= \"-\"? natural\n"
      "natural ::= \"0\" | [1-9] [0-9]*\n"
      "boolean ::= \"true\" | \"false\"\n"
      "null ::= \"null\"\n"
      "ws ::= \" \"? | \"\\n\" \" \"{0,16}\n"
      "date ::= [0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"3\" [01] )\n"
      "time ::= ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,9} )? "
      "( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )\n"
      "uuid ::= [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12}\n";

  const nlohmann::ordered_json& root_;
  std::map<std::string, std::string> rules_;     // rules written so far, by name
  std::map<std::string, std::string> ref_rules_;  // a $ref's pointer -> its rule's name
  std::map<std::string, std::string> rule_bodies_;  // a tail's body -> its rule's name
  int next_rule_ = 0;

  template <class... Args>
  [[noreturn]] static void fail(const std::string& where, fmt::format_string<Args...> format, Args&&... args) {
    throw invalid_argument(fmt::format("JSON Schema at {}: {}", where, fmt::format(format, std::forward<Args>(args)...)));
  }

  /// One of `options`, as a group.
  static std::string any_of(const std::vector<std::string>& options) { return fmt::format("( {} )", fmt::join(options, " | ")); }

  std::string new_rule(const std::string& body) {
    const std::string name = fmt::format("s{}", next_rule_++);
    rules_[name] = body;
    return name;
  }

  static std::string literal(const std::string& text) {
    std::string out = "\"";
    for (unsigned char c : text) {
      if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
      else if (c < 0x20) out += fmt::format("\\x{:02X}", c);
      else out += static_cast<char>(c);
    }
    return out + "\"";
  }

  /// A JSON value written exactly (enum and const): its compact form.
  static std::string json_literal(const nlohmann::ordered_json& value) { return literal(value.dump()); }

  std::string expression(const nlohmann::ordered_json& schema, const std::string& where, int depth) {
    if (depth > kMaxDepth) fail(where, "schemas nested more than {} deep", kMaxDepth);
    if (schema.is_boolean()) {
      if (!schema.get<bool>()) fail(where, "the schema false accepts nothing");
      return "value";
    }
    if (!schema.is_object()) fail(where, "a schema is an object or a boolean, not {}", schema.type_name());
    refuse_unknown_keywords(schema, where);
    if (schema.contains("$ref")) return reference(schema.at("$ref"), where, depth);
    if (schema.contains("const")) return json_literal(schema.at("const"));
    if (schema.contains("enum")) {
      const auto& values = schema.at("enum");
      if (!values.is_array() || values.empty()) fail(where, "enum must be a non-empty array");
      std::vector<std::string> options;
      for (const auto& v : values) options.push_back(json_literal(v));
      return any_of(options);
    }
    for (const char* key : {"anyOf", "oneOf"})
      if (schema.contains(key)) {
        const auto& list = schema.at(key);
        if (!list.is_array() || list.empty()) fail(where, "{} must be a non-empty array", key);
        std::vector<std::string> options;
        for (size_t i = 0; i < list.size(); ++i) options.push_back(expression(list[i], fmt::format("{}/{}/{}", where, key, i), depth + 1));
        return any_of(options);
      }
    if (!schema.contains("type")) {
      for (const char* key : {"properties", "additionalProperties", "required"})
        if (schema.contains(key)) return typed(schema, "object", where, depth);
      for (const char* key : {"items", "prefixItems", "minItems", "maxItems"})
        if (schema.contains(key)) return typed(schema, "array", where, depth);
      return "value";
    }
    const auto& type = schema.at("type");
    if (type.is_string()) return typed(schema, type.get<std::string>(), where, depth);
    if (!type.is_array() || type.empty()) fail(where, "type must be a string or a non-empty array of strings");
    std::vector<std::string> options;
    for (const auto& t : type) {
      if (!t.is_string()) fail(where, "type must be a string or a non-empty array of strings");
      options.push_back(typed(schema, t.get<std::string>(), where, depth));
    }
    return any_of(options);
  }

  static void refuse_unknown_keywords(const nlohmann::ordered_json& schema, const std::string& where) {
    static const std::set<std::string> known{
        "type", "enum", "const", "anyOf", "oneOf", "$ref", "$defs", "definitions", "properties", "required",
        "additionalProperties", "items", "prefixItems", "minItems", "maxItems", "minLength", "maxLength", "format",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        // annotations: they say nothing about which texts are valid
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly"};
    for (const auto& [key, value] : schema.items())
      if (!known.count(key)) fail(where, "the keyword '{}' cannot be written as a grammar", key);
  }

  std::string reference(const nlohmann::ordered_json& ref, const std::string& where, int depth) {
    if (!ref.is_string()) fail(where, "$ref must be a string");
    const auto pointer = ref.get<std::string>();
    if (auto it = ref_rules_.find(pointer); it != ref_rules_.end()) return it->second;
    const nlohmann::ordered_json* target = nullptr;
    if (pointer == "#") {
      target = &root_;
    } else {
      for (const char* defs : {"#/$defs/", "#/definitions/"}) {
        const std::string prefix = defs;
        if (pointer.rfind(prefix, 0) != 0) continue;
        const std::string key = prefix.substr(2, prefix.size() - 3);
        const std::string name = pointer.substr(prefix.size());
        if (root_.contains(key) && root_.at(key).is_object() && root_.at(key).contains(name)) target = &root_.at(key).at(name);
      }
    }
    if (!target) fail(where, "$ref \"{}\" does not name an entry of #/$defs or #/definitions", pointer);
    const std::string name = fmt::format("s{}", next_rule_++);
    ref_rules_[pointer] = name;  // before its body: a schema may refer to itself
    rules_[name] = expression(*target, pointer, depth + 1);
    return name;
  }

  std::string typed(const nlohmann::ordered_json& schema, const std::string& type, const std::string& where, int depth) {
    if (type == "string") return string_of(schema, where);
    if (type == "integer") return integer_of(schema, where);
    if (type == "number") return number_of(schema, where);
    if (type == "boolean") return "boolean";
    if (type == "null") return "null";
    if (type == "array") return array_of(schema, where, depth);
    if (type == "object") return object_of(schema, where, depth);
    fail(where, "unknown type \"{}\"", type);
  }

  static std::optional<int64_t> count(const nlohmann::ordered_json& schema, const char* key, const std::string& where) {
    if (!schema.contains(key)) return std::nullopt;
    const auto& v = schema.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < 0) fail(where, "{} must be a non-negative integer", key);
    if (v.get<int64_t>() > Grammar::kMaxRepetition) fail(where, "{} {} is past the {} a grammar can count", key, v.get<int64_t>(), Grammar::kMaxRepetition);
    return v.get<int64_t>();
  }

  static std::string repeat(const std::string& what, int64_t min, std::optional<int64_t> max) {
    if (!max) return min == 0 ? what + "*" : fmt::format("{}{{{},}}", what, min);
    return fmt::format("{}{{{},{}}}", what, min, *max);
  }

  static std::string string_of(const nlohmann::ordered_json& schema, const std::string& where) {
    const auto min = count(schema, "minLength", where), max = count(schema, "maxLength", where);
    if (schema.contains("format")) {
      if (min || max) fail(where, "format with minLength or maxLength");
      const auto format = schema.at("format").is_string() ? schema.at("format").get<std::string>() : "";
      if (format == "date" || format == "time" || format == "uuid") return "\"\\\"\" " + format + " \"\\\"\"";
      if (format == "date-time") return "\"\\\"\" date \"T\" time \"\\\"\"";
      fail(where, "the format \"{}\" cannot be written as a grammar (date, time, date-time and uuid can)", format);
    }
    if (min && max && *max < *min) fail(where, "maxLength {} is below minLength {}", *max, *min);
    if (!min && !max) return "string";
    return "\"\\\"\" " + repeat("char", min.value_or(0), max) + " \"\\\"\"";
  }

  static std::optional<int64_t> bound(const nlohmann::ordered_json& schema, const char* key, const std::string& where) {
    if (!schema.contains(key)) return std::nullopt;
    const auto& v = schema.at(key);
    constexpr int64_t kLargest = 1'000'000'000'000'000'000;
    if (v.is_number_integer() && !v.is_number_unsigned() && std::abs(v.get<int64_t>()) <= kLargest) return v.get<int64_t>();
    if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(kLargest)) return static_cast<int64_t>(v.get<uint64_t>());
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::abs(d) <= 1e18 && d == std::floor(d)) return static_cast<int64_t>(d);
    }
    fail(where, "{} must be an integer within +-10^18 here, not {}", key, v.dump());
  }

  static std::string integer_of(const nlohmann::ordered_json& schema, const std::string& where) {
    std::optional<int64_t> low = bound(schema, "minimum", where), high = bound(schema, "maximum", where);
    if (const auto e = bound(schema, "exclusiveMinimum", where)) low = std::max(low.value_or(INT64_MIN), *e + 1);
    if (const auto e = bound(schema, "exclusiveMaximum", where)) high = std::min(high.value_or(INT64_MAX), *e - 1);
    if (!low && !high) return "integer";
    if (low && high && *high < *low) fail(where, "no integer lies between the minimum {} and the maximum {}", *low, *high);
    std::vector<std::string> parts;
    if (!low || *low < 0) {  // the negative ones: a minus sign and their magnitude
      const int64_t smallest_magnitude = high && *high < 0 ? -*high : 1;
      parts.push_back("\"-\" " + naturals(smallest_magnitude, low ? std::optional<int64_t>(-*low) : std::nullopt));
    }
    if (!high || *high >= 0) parts.push_back(naturals(std::max<int64_t>(low.value_or(0), 0), high));
    return any_of(parts);
  }

  static std::string number_of(const nlohmann::ordered_json& schema, const std::string& where) {
    for (const char* key : {"maximum", "exclusiveMinimum", "exclusiveMaximum"})
      if (schema.contains(key)) fail(where, "{} on a number (not an integer) cannot be written as a grammar", key);
    if (!schema.contains("minimum")) return "number";
    if (bound(schema, "minimum", where) != 0) fail(where, "a number's minimum other than 0 cannot be written as a grammar");
    return "( natural ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )? )";
  }

  /// The decimal numerals (no leading zeros) of the integers from `low` (>= 0) to `high`, or up
  /// without end.
  static std::string naturals(int64_t low, std::optional<int64_t> high) {
    const auto digits = [](int64_t v) { return static_cast<int>(std::to_string(v).size()); };
    std::vector<std::string> parts;
    const int top = high ? digits(*high) : digits(low);
    for (int d = digits(low); d <= top; ++d) {
      const int64_t first = d == 1 ? 0 : power_of_ten(d - 1), last = d >= 19 ? INT64_MAX : power_of_ten(d) - 1;
      const int64_t from = std::max(low, first), to = high ? std::min(*high, last) : last;
      if (from <= to) parts.push_back(same_length(std::to_string(from), std::to_string(to)));
    }
    if (!high) parts.push_back(fmt::format("[1-9] [0-9]{{{},}}", digits(low)));  // every longer numeral
    return any_of(parts);
  }

  static int64_t power_of_ten(int n) {
    int64_t p = 1;
    for (int i = 0; i < n; ++i) p *= 10;
    return p;
  }

  /// The numerals from `a` to `b`, both of the same length, digit by digit.
  static std::string same_length(const std::string& a, const std::string& b) {
    if (a == b) return literal(a);
    const auto digit_range = [](char from, char to) { return from == to ? literal(std::string(1, from)) : fmt::format("[{}-{}]", from, to); };
    if (a.size() == 1) return digit_range(a[0], b[0]);
    const std::string rest_a = a.substr(1), rest_b = b.substr(1);
    if (a[0] == b[0]) return literal(std::string(1, a[0])) + " " + same_length(rest_a, rest_b);
    std::vector<std::string> parts;
    parts.push_back(literal(std::string(1, a[0])) + " " + same_length(rest_a, std::string(rest_a.size(), '9')));
    if (a[0] + 1 <= b[0] - 1) parts.push_back(digit_range(static_cast<char>(a[0] + 1), static_cast<char>(b[0] - 1)) + fmt::format(" [0-9]{{{}}}", rest_a.size()));
    parts.push_back(literal(std::string(1, b[0])) + " " + same_length(std::string(rest_b.size(), '0'), rest_b));
    return any_of(parts);
  }

  std::string array_of(const nlohmann::ordered_json& schema, const std::string& where, int depth) {
    const int64_t min = count(schema, "minItems", where).value_or(0);
    const auto max = count(schema, "maxItems", where);
    if (max && *max < min) fail(where, "maxItems {} is below minItems {}", *max, min);
    std::vector<std::string> prefix;
    if (schema.contains("prefixItems")) {
      const auto& list = schema.at("prefixItems");
      if (!list.is_array()) fail(where, "prefixItems must be an array");
      for (size_t i = 0; i < list.size(); ++i) prefix.push_back(expression(list[i], fmt::format("{}/prefixItems/{}", where, i), depth + 1));
    }
    std::optional<std::string> rest = "value";  // unset: no items past the prefix
    if (schema.contains("items")) {
      if (schema.at("items") == false) rest.reset();
      else rest = expression(schema.at("items"), where + "/items", depth + 1);
    }
    const auto total = static_cast<int64_t>(prefix.size());
    if (!rest && min > total) fail(where, "minItems {} is more than the {} prefixItems and items is false", min, total);
    // Element i, with the comma before it when it is not the first; the elements from i on.
    std::string tail;
    if (rest) {
      const int64_t at_least = std::max<int64_t>(0, min - total);
      const auto at_most = max ? std::optional<int64_t>(std::max<int64_t>(0, *max - total)) : std::nullopt;
      if (!at_most || *at_most > 0) {
        const std::string next = "( ws \",\" ws " + *rest + " )";
        if (total > 0) tail = repeat(next, at_least, at_most);
        else if (at_least > 0) tail = *rest + " " + repeat(next, at_least - 1, at_most ? std::optional<int64_t>(*at_most - 1) : std::nullopt);
        else tail = "( " + *rest + " " + repeat(next, 0, at_most ? std::optional<int64_t>(*at_most - 1) : std::nullopt) + " )?";
      }
    }
    const int64_t written = max ? std::min<int64_t>(total, *max) : total;
    for (int64_t i = written - 1; i >= 0; --i) {
      const std::string element = (i > 0 ? "ws \",\" ws " : "") + prefix[static_cast<size_t>(i)] + (tail.empty() ? "" : " " + tail);
      tail = i < min ? element : "( " + element + " )?";
    }
    return "( \"[\" ws " + tail + " ws \"]\" )";
  }

  std::string object_of(const nlohmann::ordered_json& schema, const std::string& where, int depth) {
    struct Property {
      std::string key_value;
      bool required;
    };
    std::set<std::string> required;
    if (schema.contains("required")) {
      if (!schema.at("required").is_array()) fail(where, "required must be an array of names");
      for (const auto& name : schema.at("required")) {
        if (!name.is_string()) fail(where, "required must be an array of names");
        required.insert(name.get<std::string>());
      }
    }
    std::vector<Property> properties;
    std::set<std::string> listed;
    if (schema.contains("properties")) {
      if (!schema.at("properties").is_object()) fail(where, "properties must be an object");
      for (const auto& [name, sub] : schema.at("properties").items()) {
        const auto value = expression(sub, where + "/properties/" + name, depth + 1);
        properties.push_back({literal(nlohmann::ordered_json(name).dump()) + " ws \":\" ws " + value, required.count(name) > 0});
        listed.insert(name);
      }
    }
    for (const auto& name : required)
      if (!listed.count(name)) fail(where, "required names \"{}\", which properties does not list", name);
    std::optional<std::string> additional;  // the value of a key not listed, if one may appear
    if (schema.contains("additionalProperties")) {
      if (schema.at("additionalProperties") != false)
        additional = expression(schema.at("additionalProperties"), where + "/additionalProperties", depth + 1);
    } else if (properties.empty()) {
      additional = "value";
    }
    // tails[i][first]: the properties from i on; `first`: none written yet (no comma before the next).
    std::vector<std::array<std::string, 2>> tails(properties.size() + 1);
    const std::string extra = additional ? "string ws \":\" ws " + *additional : "";
    tails.back()[0] = additional ? "( ws \",\" ws " + extra + " )*" : "";
    tails.back()[1] = additional ? "( " + extra + " ( ws \",\" ws " + extra + " )* )?" : "";
    for (size_t i = properties.size(); i-- > 0;) {
      for (int first = 0; first < 2; ++first) {
        const std::string written = (first ? "" : "ws \",\" ws ") + properties[i].key_value + " " + rule_of(tails[i + 1][0]);
        tails[i][static_cast<size_t>(first)] = properties[i].required ? written : "( " + written + " | " + rule_of(tails[i + 1][static_cast<size_t>(first)]) + " )";
      }
    }
    return "( \"{\" ws " + rule_of(tails[0][1]) + " ws \"}\" )";
  }

  /// A rule standing for `body` (so that shared tails are written once), or nothing for nothing.
  std::string rule_of(const std::string& body) {
    if (body.empty()) return "";
    auto [it, inserted] = rule_bodies_.try_emplace(body);
    if (inserted) it->second = new_rule(body);
    return it->second;
  }
};

}  // namespace detail

/// The GBNF text of a JSON Schema (see the top of this file for what it can say). Ordered JSON, so
/// that properties are written in the schema's order (a nlohmann::json converts, in its key order).
inline std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema) { return detail::JsonSchemaWriter(schema).gbnf(); }

/// The grammar of a JSON Schema.
inline Grammar grammar_from_json_schema(const nlohmann::ordered_json& schema) { return Grammar::from_gbnf(json_schema_to_gbnf(schema)); }

/// The grammar of a JSON Schema file (at most Grammar::kMaxTextBytes); errors name the file.
inline Grammar grammar_from_json_schema_file(const std::filesystem::path& path) {
  const std::string text = detail::read_at_most(path, Grammar::kMaxTextBytes, "JSON Schema");
  if (text.size() > Grammar::kMaxTextBytes)
    throw file_error(fmt::format("{}: a JSON Schema of more than {} bytes", path.string(), Grammar::kMaxTextBytes));
  const auto schema = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) throw file_error(fmt::format("{} is not valid JSON", path.string()));
  return detail::naming_file(path, [&] { return grammar_from_json_schema(schema); });
}

}  // namespace lmdecode
