#pragma once
// An error a request gets back: an HTTP status and OpenAI's error object,
//   {"error": {"message", "type", "param", "code"}}
// (type "invalid_request_error" for what the client can fix, "server_error" for what it cannot).

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace lmdecode_serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string code = {},
           std::string type = "invalid_request_error")
      : std::runtime_error(message), status(status), param(std::move(param)), code(std::move(code)), type(std::move(type)) {}

  nlohmann::json body() const { return error_body(what(), type, param, code); }

  /// OpenAI's error object; an empty param or code is null.
  static nlohmann::json error_body(const std::string& message, const std::string& type, const std::string& param = {},
                                   const std::string& code = {}) {
    const auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
    return {{"error", {{"message", message}, {"type", type}, {"param", or_null(param)}, {"code", or_null(code)}}}};
  }

  int status;
  std::string param, code, type;
};

/// A 400 about one request field.
inline ApiError bad_field(const std::string& param, const std::string& message) { return ApiError(400, message, param); }

}  // namespace lmdecode_serve
