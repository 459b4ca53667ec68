#pragma once
// A JSON Schema validator for the tests, written apart from the grammar writer
// (lmdecode/grammar/json_schema.hpp): it checks parsed values against the keywords that writer
// takes, so a generated text is judged by what the schema means, not by the grammar made from it.

#include <nlohmann/json.hpp>

#include <regex>
#include <string>

namespace lmdecode_test {

/// Empty when `value` satisfies `schema` (whose $ref resolve in `root`), else why not.
inline std::string schema_violation(const nlohmann::json& value, const nlohmann::json& schema, const nlohmann::json& root) {
  if (schema.is_boolean()) return schema.get<bool>() ? "" : "schema false";
  if (schema.contains("$ref")) {
    const auto ref = schema["$ref"].get<std::string>();
    if (ref == "#") return schema_violation(value, root, root);
    const auto slash = ref.rfind('/');
    const auto folder = ref.substr(2, slash - 2);
    return schema_violation(value, root[folder][ref.substr(slash + 1)], root);
  }
  if (schema.contains("const") && value != schema["const"]) return "not the const " + schema["const"].dump();
  if (schema.contains("enum")) {
    bool found = false;
    for (const auto& v : schema["enum"]) found = found || v == value;
    if (!found) return "not in the enum";
  }
  for (const char* key : {"anyOf", "oneOf"})
    if (schema.contains(key)) {
      bool any = false;
      for (const auto& s : schema[key]) any = any || schema_violation(value, s, root).empty();
      if (!any) return std::string("no schema of ") + key + " matches";
    }
  if (schema.contains("type")) {
    auto is = [&](const std::string& t) {
      if (t == "integer") return value.is_number_integer();
      if (t == "number") return value.is_number();
      if (t == "string") return value.is_string();
      if (t == "boolean") return value.is_boolean();
      if (t == "null") return value.is_null();
      if (t == "array") return value.is_array();
      return t == "object" && value.is_object();
    };
    bool typed = false;
    if (schema["type"].is_string()) typed = is(schema["type"].get<std::string>());
    else for (const auto& t : schema["type"]) typed = typed || is(t.get<std::string>());
    if (!typed) return "not of type " + schema["type"].dump();
  }
  if (value.is_string()) {
    const auto text = value.get<std::string>();
    size_t characters = 0;
    for (unsigned char c : text) characters += (c & 0xC0) != 0x80;
    if (schema.contains("minLength") && characters < schema["minLength"].get<size_t>()) return "shorter than minLength";
    if (schema.contains("maxLength") && characters > schema["maxLength"].get<size_t>()) return "longer than maxLength";
    static const std::map<std::string, std::regex> formats{
        {"date", std::regex(R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))")},
        {"time", std::regex(R"(([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))")},
        {"date-time", std::regex(R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))")},
        {"uuid", std::regex(R"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})")}};
    if (schema.contains("format") && !std::regex_match(text, formats.at(schema["format"].get<std::string>())))
      return "not a " + schema["format"].get<std::string>();
  }
  if (value.is_number()) {
    const double v = value.get<double>();
    if (schema.contains("minimum") && v < schema["minimum"].get<double>()) return "below minimum";
    if (schema.contains("maximum") && v > schema["maximum"].get<double>()) return "above maximum";
    if (schema.contains("exclusiveMinimum") && v <= schema["exclusiveMinimum"].get<double>()) return "not above exclusiveMinimum";
    if (schema.contains("exclusiveMaximum") && v >= schema["exclusiveMaximum"].get<double>()) return "not below exclusiveMaximum";
  }
  if (value.is_array()) {
    if (schema.contains("minItems") && value.size() < schema["minItems"].get<size_t>()) return "fewer than minItems";
    if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<size_t>()) return "more than maxItems";
    const size_t prefix = schema.contains("prefixItems") ? schema["prefixItems"].size() : 0;
    for (size_t i = 0; i < value.size(); ++i) {
      const nlohmann::json& s = i < prefix ? schema["prefixItems"][i] : schema.contains("items") ? schema["items"] : nlohmann::json(true);
      if (auto why = schema_violation(value[i], s, root); !why.empty()) return "item " + std::to_string(i) + ": " + why;
    }
  }
  if (value.is_object()) {
    const auto properties = schema.value("properties", nlohmann::json::object());
    for (const auto& name : schema.value("required", nlohmann::json::array()))
      if (!value.contains(name.get<std::string>())) return "lacks the required " + name.get<std::string>();
    for (const auto& [key, v] : value.items()) {
      if (properties.contains(key)) {
        if (auto why = schema_violation(v, properties[key], root); !why.empty()) return key + ": " + why;
        continue;
      }
      // lmdecode's rule: without additionalProperties, listed properties only where some are listed.
      const nlohmann::json additional = schema.value("additionalProperties", nlohmann::json(properties.empty()));
      if (auto why = schema_violation(v, additional, root); !why.empty()) return "the key " + key + ": " + why;
    }
  }
  return "";
}

}  // namespace lmdecode_test
