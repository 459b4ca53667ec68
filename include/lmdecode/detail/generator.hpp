#pragma once
// A private random generator for one generate() call, on the model's device, so that a seed gives
// the same tokens run after run whatever else uses torch's global generator.

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <map>
#include <optional>
#include <random>

namespace lmdecode::detail {

inline at::Generator make_generator(std::optional<uint64_t> seed, at::Device device) {
  const uint64_t value = seed ? *seed : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  if (device.is_cpu()) return at::detail::createCPUGenerator(value);
  // Other devices have no generator factory outside their own headers, and Generator::clone()
  // leaks the clone (it takes one reference too many): clone once per thread and device, then reseed.
  thread_local std::map<std::pair<int, int>, at::Generator> per_device;
  const auto key = std::make_pair(static_cast<int>(device.type()), static_cast<int>(device.index()));
  auto it = per_device.find(key);
  if (it == per_device.end()) it = per_device.emplace(key, at::globalContext().defaultGenerator(device).clone()).first;
  it->second.set_current_seed(value);
  return it->second;
}

}  // namespace lmdecode::detail
