#pragma once
// What our hand-written CPU kernels share: an x86 compiler that takes per-function targets
// (LMDECODE_X86_KERNELS), the run-time checks for AVX2 and FMA and for AVX-512F, the operations of 8
// and 16 float32 lanes (Lanes8, Lanes16: horizontal sums, the exponential of values <= 0 for a
// log-softmax's sum and attention's weights) for kernels written once for both widths. Where the
// compiler or AVX2 is missing the callers keep libtorch's operators.

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

/// Whether the CPU runs AVX-512 as two 256-bit halves and loads one 64-byte vector a cycle: AMD's
/// family 19h with AVX-512 (Zen 4); Zen 5 and Intel's AVX-512 cores load two.
inline bool cpu_loads_avx512_in_halves() {
#ifdef LMDECODE_X86_KERNELS
  static const bool halves = cpu_has_avx512f() && __builtin_cpu_is("amdfam19h");
  return halves;
#else
  return false;
#endif
}

#ifdef LMDECODE_X86_KERNELS
// A kernel written once for both vector widths is a template over Lanes8 or Lanes16, which hold the
// width's operations; it takes no target itself, and the function that runs it has the width's
// target and `flatten`, so every operation inlines there (a compiler does not inline a target's
// intrinsic into a function without that target). Vectors pass by value between the template's
// functions only before they inline, hence -Wpsabi is quiet around them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

/// x becomes exp(x), for values x <= 0, within 2 ulp, in the lanes of Lanes: x = n ln2 + r with
/// |r| <= ln2 / 2, exp(r) by Cephes' expf polynomial, times 2^n. Below -87 it gives exp(-87) ~ 1.6e-38
/// rather than less: a sum one of whose terms is exp(0) = 1 cannot tell. (In place: a template that
/// returned a vector would draw -Wpsabi where no pragma reaches, at the end of the file.)
template <class Lanes>
inline void to_exp_of_nonpositive(typename Lanes::Vec& x) {
  using L = Lanes;
  x = L::max(x, L::set(-87.0f));
  const auto n = L::round(L::mul(x, L::set(1.44269504088896341f)));
  auto r = L::fnmadd(n, L::set(0.693359375f), x);  // ln2 in two parts, the first exact in float
  r = L::fnmadd(n, L::set(-2.12194440e-4f), r);
  auto p = L::set(1.9875691500e-4f);
  for (const float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f})
    p = L::fmadd(p, r, L::set(c));
  p = L::fmadd(p, L::mul(r, r), L::add(r, L::set(1.0f)));
  x = L::mul(p, L::two_to_the(n));
}

#define LMDECODE_LANES8 __attribute__((target("avx2,fma"))) static inline
#define LMDECODE_LANES16 __attribute__((target("avx512f,fma"))) static inline

/// 8 float32 lanes: AVX2 and FMA.
struct Lanes8 {
  using Vec = __m256;
  static constexpr int width = 8;
  LMDECODE_LANES8 Vec set(float x) { return _mm256_set1_ps(x); }
  LMDECODE_LANES8 Vec zero() { return _mm256_setzero_ps(); }
  LMDECODE_LANES8 Vec load(const float* p) { return _mm256_loadu_ps(p); }
  LMDECODE_LANES8 void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  LMDECODE_LANES8 Vec broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  LMDECODE_LANES8 Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
  LMDECODE_LANES8 Vec sub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
  LMDECODE_LANES8 Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
  LMDECODE_LANES8 Vec max(Vec a, Vec b) { return _mm256_max_ps(a, b); }
  LMDECODE_LANES8 Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  LMDECODE_LANES8 Vec fnmadd(Vec a, Vec b, Vec c) { return _mm256_fnmadd_ps(a, b, c); }
  LMDECODE_LANES8 Vec round(Vec x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  /// 2^n for whole numbers n in the float range's exponents.
  LMDECODE_LANES8 Vec two_to_the(Vec n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  /// w where x is not -inf, else 0.
  LMDECODE_LANES8 Vec zero_where_minus_infinity(Vec x, Vec w) {
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-__builtin_inff()), _CMP_EQ_OQ), w);
  }
  LMDECODE_LANES8 float sum(Vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  LMDECODE_LANES8 float largest(Vec v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
  }
  /// to_exp_of_nonpositive for callers that are not templates over the lanes (a flattened target
  /// function of their own: chosen_tokens.hpp's log-softmax sum).
  __attribute__((target("avx2,fma"), flatten)) static inline Vec exp_of_nonpositive(Vec x) {
    to_exp_of_nonpositive<Lanes8>(x);
    return x;
  }
};

/// 16 float32 lanes: AVX-512F (whose CPUs all have FMA). The masked (maskz) forms are GCC 12's way to
/// keep -Wmaybe-uninitialized quiet: its unmasked ones start from an undefined register.
struct Lanes16 {
  using Vec = __m512;
  static constexpr int width = 16;
  LMDECODE_LANES16 Vec set(float x) { return _mm512_set1_ps(x); }
  LMDECODE_LANES16 Vec zero() { return _mm512_setzero_ps(); }
  LMDECODE_LANES16 Vec load(const float* p) { return _mm512_loadu_ps(p); }
  LMDECODE_LANES16 void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  LMDECODE_LANES16 Vec broadcast(const float* p) { return _mm512_set1_ps(*p); }
  LMDECODE_LANES16 Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
  LMDECODE_LANES16 Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
  LMDECODE_LANES16 Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
  LMDECODE_LANES16 Vec max(Vec a, Vec b) { return _mm512_maskz_max_ps(0xFFFF, a, b); }
  LMDECODE_LANES16 Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  LMDECODE_LANES16 Vec fnmadd(Vec a, Vec b, Vec c) { return _mm512_fnmadd_ps(a, b, c); }
  LMDECODE_LANES16 Vec round(Vec x) { return _mm512_maskz_roundscale_ps(0xFFFF, x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  LMDECODE_LANES16 Vec two_to_the(Vec n) {
    const __m512i biased = _mm512_add_epi32(_mm512_maskz_cvtps_epi32(0xFFFF, n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, biased, 23));
  }
  LMDECODE_LANES16 Vec zero_where_minus_infinity(Vec x, Vec w) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-__builtin_inff()), _CMP_NEQ_UQ), w);
  }
  /// v's two halves, each in 8 lanes.
  LMDECODE_LANES16 __m256 low_half(Vec v) { return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, _mm512_castps_pd(v), 0)); }
  LMDECODE_LANES16 __m256 high_half(Vec v) { return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, _mm512_castps_pd(v), 1)); }
  LMDECODE_LANES16 float sum(Vec v) { return Lanes8::sum(_mm256_add_ps(low_half(v), high_half(v))); }
  LMDECODE_LANES16 float largest(Vec v) { return Lanes8::largest(_mm256_max_ps(low_half(v), high_half(v))); }
};

#undef LMDECODE_LANES8
#undef LMDECODE_LANES16
#pragma GCC diagnostic pop
#endif

}  // namespace lmdecode::detail
