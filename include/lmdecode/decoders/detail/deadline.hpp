#pragma once
// GenerationConfig::max_time as the decoders test it: seconds since generate() began, on a steady clock.

#include <chrono>
#include <optional>

namespace lmdecode::detail {

class Deadline {
 public:
  /// Starts the clock now; no limit when `max_seconds` is empty.
  explicit Deadline(std::optional<double> max_seconds)
      : max_seconds_(max_seconds), start_(std::chrono::steady_clock::now()) {}

  /// True once more than the limit has passed (never without one).
  bool passed() const {
    return max_seconds_ &&
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() > *max_seconds_;
  }

 private:
  std::optional<double> max_seconds_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace lmdecode::detail
