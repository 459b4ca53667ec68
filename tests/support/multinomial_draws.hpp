#pragma once
// The decoders draw without torch.multinomial's host-side input check (decoders/detail/sampling_draws.hpp); the
// draws must stay its own on every device. Shared by the CPU and the CUDA tests.

#include <catch2/catch.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <functional>
#include <limits>

#include "lmdecode/decoders/detail/sampling_draws.hpp"

namespace lmdecode_test {

/// Draws with ours and with at::multinomial (without replacement) from two generators that
/// `seeded(seed)` makes in the same state, on `device`: 3 seeds, 1 and 8 draws a row, 3 rounds.
inline void require_draws_match_multinomial(at::Device device, const std::function<at::Generator(uint64_t)>& seeded) {
  for (const uint64_t seed : {0u, 1u, 77u}) {
    auto scores = (at::randn({6, 50}, at::detail::createCPUGenerator(seed + 100), at::kFloat) * 3).to(device);
    scores.narrow(1, 0, 10).fill_(-std::numeric_limits<float>::infinity());  // removed tokens, as after top-k
    for (const int64_t n : {1, 8}) {
      auto ours_generator = seeded(seed), torch_generator = seeded(seed);
      for (int draw = 0; draw < 3; ++draw) {
        auto ours = lmdecode::detail::draw_from_softmax(scores, n, ours_generator);
        auto expected = at::multinomial(scores.softmax(-1), n, false, torch_generator);
        INFO("seed " << seed << ", n " << n << ", draw " << draw);
        REQUIRE(at::equal(ours.index, expected));
        REQUIRE_FALSE(ours.invalid.item<bool>());
      }
    }
  }
}

}  // namespace lmdecode_test
