#pragma once
// For the CUDA checks ([.cuda]): they pass with a warning where no GPU is present (Catch2 v2 has no SKIP).

#include <catch2/catch.hpp>

#include <ATen/Context.h>

namespace lmdecode_test {

inline bool cuda_present() {
  if (at::hasCUDA()) return true;
  WARN("CUDA unavailable: CUDA checks skipped");
  return false;
}

}  // namespace lmdecode_test
