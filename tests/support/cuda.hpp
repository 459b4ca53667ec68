#pragma once
// For the CUDA checks ([.cuda], run by ctest as lmdecode_cuda_tests). Without a GPU the run ends
// at the first of them with exit code kSkippedExitCode, which ctest reports as "Skipped" (Catch2 v2
// has no SKIP); with LMDECODE_REQUIRE_CUDA=1 (scripts/gpu-check.sh sets it) a missing GPU fails.

#include <catch2/catch.hpp>

#include <ATen/Context.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lmdecode_test {

inline constexpr int kSkippedExitCode = 77;

/// Returns only where a GPU is present; otherwise fails (LMDECODE_REQUIRE_CUDA=1) or skips the run.
inline void require_cuda() {
  if (at::hasCUDA()) return;
  const char* required = std::getenv("LMDECODE_REQUIRE_CUDA");
  if (required && std::strcmp(required, "1") == 0) FAIL("LMDECODE_REQUIRE_CUDA=1 but libtorch sees no GPU");
  std::printf("skipped: CUDA unavailable (set LMDECODE_REQUIRE_CUDA=1 to make that a failure)\n");
  std::fflush(stdout);
  std::_Exit(kSkippedExitCode);  // no exit handlers: the run ends here, before any CUDA call
}

}  // namespace lmdecode_test
