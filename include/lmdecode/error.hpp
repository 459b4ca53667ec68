#pragma once
// Exception types thrown by lmdecode. Every message starts with "lmdecode: ". What fails inside
// libtorch while lmdecode loads or decodes (an allocation, a kernel, a device) comes out as a
// backend_error in these words too (detail/backend_errors.hpp).

#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace lmdecode {

/// A bad value given by the caller: a config field, a prompt, an argument.
class invalid_argument : public std::invalid_argument {
 public:
  explicit invalid_argument(const std::string& what) : std::invalid_argument("lmdecode: " + what) {}
};

/// A model broke its contract: logits of the wrong rank, shape, dtype or device.
class model_error : public std::runtime_error {
 public:
  explicit model_error(const std::string& what) : std::runtime_error("lmdecode: " + what) {}
};

/// libtorch or the machine failed: memory ran out, a device failed, an operation was refused. The
/// message says what lmdecode was doing and keeps libtorch's first line.
class backend_error : public std::runtime_error {
 public:
  explicit backend_error(const std::string& what) : std::runtime_error("lmdecode: " + what) {}
};

/// A file that cannot be read or is malformed (checkpoint, config, JSON). The message names the file.
class file_error : public std::runtime_error {
 public:
  explicit file_error(const std::string& what) : std::runtime_error("lmdecode: " + what) {}
};

namespace detail {

/// Throws `Error` with a formatted message when `condition` is false; formats only on failure.
template <class Error = invalid_argument, class... Args>
void check(bool condition, fmt::format_string<Args...> format, Args&&... args) {
  if (!condition) throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace detail
}  // namespace lmdecode
