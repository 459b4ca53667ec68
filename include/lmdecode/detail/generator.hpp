#pragma once
// A private random generator for one generate() call, on the model's device, so that a seed gives
// the same tokens run after run whatever else uses torch's global generator.

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <optional>
#include <random>

namespace lmdecode::detail {

inline at::Generator make_generator(std::optional<uint64_t> seed, at::Device device) {
  auto generator = at::globalContext().defaultGenerator(device).clone();
  generator.set_current_seed(seed ? *seed : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}());
  return generator;
}

}  // namespace lmdecode::detail
