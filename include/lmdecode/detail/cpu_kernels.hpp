#pragma once
// What our hand-written CPU kernels share: an x86 compiler that takes per-function targets
// (LMDECODE_X86_KERNELS), the run-time checks for AVX2 and FMA and for AVX-512F, and a horizontal
// sum. Where the compiler or AVX2 is missing the callers keep libtorch's operators.

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LMDECODE_X86_KERNELS 1
#endif

namespace lmdecode::detail {

inline bool cpu_has_avx2_fma() {
#ifdef LMDECODE_X86_KERNELS
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

inline bool cpu_has_avx512f() {
#ifdef LMDECODE_X86_KERNELS
  static const bool has = cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
  return has;
#else
  return false;
#endif
}

#ifdef LMDECODE_X86_KERNELS
__attribute__((target("avx2,fma"))) inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#endif

}  // namespace lmdecode::detail
