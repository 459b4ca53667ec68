#pragma once
// Typed reads of JSON fields that name the key and the file when the type is wrong.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmdecode/error.hpp"

namespace lmdecode::detail {

/// Parses JSON text; any fault (syntax, a number out of range, ...) is a file_error naming `source`.
inline nlohmann::json parse_json(std::string_view text, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw file_error(fmt::format("{} is not valid JSON: {}", source, e.what()));
  }
}

/// Parses a whole JSON file; a missing file or a malformed one is a file_error naming the path.
inline nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error(fmt::format("cannot open {}", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  return parse_json(text.str(), path.string());
}

/// Reads JSON object fields; `source` (a file name) goes into every message.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string source) : object_(object), source_(std::move(source)) {
    if (!object_.is_object()) throw file_error(fmt::format("{}: expected a JSON object", source_));
  }

  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }
  /// The key is there, null included (where null means something else than a missing key).
  bool present(const char* key) const { return object_.contains(key); }
  const nlohmann::json& raw(const char* key) const { return object_.at(key); }

  /// An integer that fits in 64 bits (signed); 2^63 and more is an error, never a wrapped value.
  std::optional<int64_t> integer(const char* key) const {
    if (!has(key)) return std::nullopt;
    const auto& v = object_.at(key);
    if (!fits_int64(v)) type_error(key, "an integer from -2^63 to 2^63 - 1", v);
    return v.get<int64_t>();
  }
  std::optional<double> number(const char* key) const {
    if (!has(key)) return std::nullopt;
    const auto& v = object_.at(key);
    if (!v.is_number()) type_error(key, "a number", v);
    return v.get<double>();
  }
  std::optional<bool> boolean(const char* key) const {
    if (!has(key)) return std::nullopt;
    const auto& v = object_.at(key);
    if (!v.is_boolean()) type_error(key, "true or false", v);
    return v.get<bool>();
  }
  std::optional<std::string> string(const char* key) const {
    if (!has(key)) return std::nullopt;
    const auto& v = object_.at(key);
    if (!v.is_string()) type_error(key, "a string", v);
    return v.get<std::string>();
  }
  static bool fits_int64(const nlohmann::json& v) {
    return v.is_number_integer() &&
           (!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  }

  /// An integer or a list of integers (HF's `eos_token_id`).
  std::optional<std::vector<int64_t>> integer_list(const char* key) const {
    if (!has(key)) return std::nullopt;
    const auto& v = object_.at(key);
    if (fits_int64(v)) return std::vector<int64_t>{v.get<int64_t>()};
    if (!v.is_array()) type_error(key, "an integer or a list of integers", v);
    std::vector<int64_t> out;
    for (const auto& item : v) {
      if (!fits_int64(item)) type_error(key, "an integer or a list of integers", v);
      out.push_back(item.get<int64_t>());
    }
    return out;
  }

  /// A list of strings (e.g. `layer_types`).
  std::optional<std::vector<std::string>> string_list(const char* key) const {
    if (!has(key)) return std::nullopt;
    const auto& v = object_.at(key);
    if (!v.is_array()) type_error(key, "a list of strings", v);
    std::vector<std::string> out;
    for (const auto& item : v) {
      if (!item.is_string()) type_error(key, "a list of strings", v);
      out.push_back(item.get<std::string>());
    }
    return out;
  }

  /// A list of lists of integers (HF's `bad_words_ids`).
  std::optional<std::vector<std::vector<int64_t>>> integer_lists(const char* key) const {
    if (!has(key)) return std::nullopt;
    const auto& v = object_.at(key);
    if (!v.is_array()) type_error(key, "a list of lists of integers", v);
    std::vector<std::vector<int64_t>> out;
    for (const auto& row : v) {
      if (!row.is_array()) type_error(key, "a list of lists of integers", v);
      auto& ids = out.emplace_back();
      for (const auto& item : row) {
        if (!fits_int64(item)) type_error(key, "a list of lists of integers", v);
        ids.push_back(item.get<int64_t>());
      }
    }
    return out;
  }

  [[noreturn]] void type_error(const char* key, const char* expected, const nlohmann::json& got) const {
    throw invalid_argument(fmt::format("{}: \"{}\" must be {} (got {})", source_, key, expected, got.dump()));
  }
  const std::string& source() const { return source_; }

 private:
  const nlohmann::json& object_;
  std::string source_;
};

}  // namespace lmdecode::detail
