#pragma once
// A private random generator for one generate() call, on the model's device, so that a seed gives
// the same tokens run after run whatever else uses torch's global generator.

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <utility>
#include <vector>

namespace lmdecode::detail {

/// Generators kept for reuse, each lent to one holder at a time: a generate() nested in another's
/// step callback gets a generator of its own, so it cannot reseed the outer call's draws.
class GeneratorPool {
 public:
  explicit GeneratorPool(std::function<at::Generator()> make) : make_(std::move(make)) {}

  /// A generator that no one else holds, reseeded with `seed`. It returns to the pool when the last
  /// copy of it is gone.
  at::Generator lend(uint64_t seed) {
    auto idle = std::find_if(kept_.begin(), kept_.end(), [](const Kept& k) {
      return k.generator.getIntrusivePtr().use_count() == k.idle_uses;
    });
    if (idle == kept_.end()) {
      kept_.push_back({make_(), 0});
      idle = std::prev(kept_.end());
      idle->idle_uses = idle->generator.getIntrusivePtr().use_count();
    }
    idle->generator.set_current_seed(seed);
    return idle->generator;
  }

 private:
  struct Kept {
    at::Generator generator;
    size_t idle_uses;  // its use count while only the pool holds it
  };
  std::function<at::Generator()> make_;
  std::vector<Kept> kept_;
};

inline at::Generator make_generator(std::optional<uint64_t> seed, at::Device device) {
  const uint64_t value = seed ? *seed : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  if (device.is_cpu()) return at::detail::createCPUGenerator(value);
  // Other devices have no generator factory outside their own headers, and a clone of the default
  // generator is never freed (AddressSanitizer reported it): clones are kept per thread and device.
  thread_local std::map<std::pair<int, int>, GeneratorPool> pools;
  const auto key = std::make_pair(static_cast<int>(device.type()), static_cast<int>(device.index()));
  auto it = pools.find(key);
  if (it == pools.end())
    it = pools.emplace(key, GeneratorPool([device] { return at::globalContext().defaultGenerator(device).clone(); })).first;
  return it->second.lend(value);
}

}  // namespace lmdecode::detail
