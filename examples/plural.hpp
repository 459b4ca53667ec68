#pragma once
// "1 token", "2 tokens": the count and its noun the example programs print.

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace lmdecode_examples {

/// `count` and `noun`, with an "s" unless the count is one (regular plurals only).
inline std::string plural(int64_t count, std::string_view noun) { return fmt::format("{} {}{}", count, noun, count == 1 ? "" : "s"); }

}  // namespace lmdecode_examples
