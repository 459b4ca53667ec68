#pragma once
// The JSON targets' first step: fuzz bytes to a JSON document, or nothing where they are not JSON
// (lmdecode's file_error; anything else escaping is a finding).
#include <cstdint>
#include <optional>
#include <string_view>

#include "lmdecode/detail/json_fields.hpp"
#include "lmdecode/error.hpp"

inline std::optional<nlohmann::json> fuzz_json(const uint8_t* data, size_t size) {
  try {
    return lmdecode::detail::parse_json(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
  } catch (const lmdecode::file_error&) {
    return std::nullopt;
  }
}
