#pragma once
// What our hand-written CPU kernels share: an x86 compiler that takes per-function targets
// (LMDECODE_X86_KERNELS), the run-time checks for AVX2 and FMA and for AVX-512F, a horizontal sum
// and the exponential of values <= 0 (a log-softmax's sum, attention's weights). Where the compiler
// or AVX2 is missing the callers keep libtorch's operators.

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
/// exp(x) of 8 values x <= 0 within 2 ulp: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by Cephes'
/// expf polynomial, times 2^n. Below -87 it gives exp(-87) ~ 1.6e-38 rather than less: a sum one of
/// whose terms is exp(0) = 1 cannot tell.
__attribute__((target("avx2,fma"))) inline __m256 exp_of_nonpositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 in two parts, the first exact in float
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  for (const float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f})
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i two_to_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(two_to_n));
}

__attribute__((target("avx2,fma"))) inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#endif

}  // namespace lmdecode::detail
