#pragma once
// The inner loops of the few-rows kernel (few_rows_product.hpp): out[r, j] = x[r] . w[j] for a range
// of output features j and up to 8 input rows r, each weight row read once while the rows' inputs sit
// in L1. Two builds of each loop: 8 lanes (AVX2 and FMA) and 16 lanes (AVX-512F), the latter where
// the CPU has it, since a pass over several rows is bound by its instructions, not by memory: per 8
// weights and 4 rows, one weight load, its widening, 4 input loads and 4 multiply-adds
// (benchmarks/HISTORY.md). Weights are float32, bfloat16 (widened exactly: its bits are a float32's
// upper half) or Q8_0 blocks; the arithmetic is float32's.

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "lmdecode/detail/cpu_kernels.hpp"
#include "lmdecode/models/detail/linear_weight.hpp"

namespace lmdecode::detail {

/// The most input rows one pass of the kernel takes: 8 rows' sums and the weight vector fit in the
/// 16 vector registers of AVX2.
constexpr int64_t kFewRowsPass = 8;

#ifdef LMDECODE_X86_KERNELS

/// The most bytes of a pass's input rows that count as staying in L1 while the weights stream by.
constexpr int64_t kInputBytesInL1 = 24 << 10;

/// How far ahead of the weight row being read the kernel asks for the weights: 8 KiB.
constexpr int64_t kPrefetchBytes = 8 << 10;

/// A bfloat16 weight as its 16 bits (at::BFloat16's storage).
using Bfloat16Bits = uint16_t;

inline float widened(float w) { return w; }
inline float widened(Bfloat16Bits w) {
  const uint32_t bits = static_cast<uint32_t>(w) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

/// A Q8_0 matrix as the kernel reads it: int8 quants [out, in] and a float32 scale per block of 32.
struct Q8Rows {
  const int8_t* quants;
  const float* scales;
};

// 8 lanes (AVX2 and FMA).

/// 8 weights from `w` as float32.
__attribute__((target("avx2,fma"))) inline __m256 load_widened(const float* w) { return _mm256_loadu_ps(w); }
__attribute__((target("avx2,fma"))) inline __m256 load_widened(const Bfloat16Bits* w) {
  const __m256i bits = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(bits, 16));
}

/// Independent sums a row keeps: one FMA chain waits 4 cycles a step, so one sum a row reads a weight
/// row 8 weights per 4 cycles whatever the row count, below the memory's pace (0.5B shape, one
/// thread, EPYC with AVX-512: bfloat16 at 0.47 of a plain read at 1 row, 0.5 at 4). 8 rows keep one:
/// two would need 16 of the 16 vector registers for sums alone.
template <int Rows>
constexpr int kChainsPerRow = Rows == 8 ? 1 : Rows <= 2 ? 4 : 2;

/// Whether a loop over `Rows` rows asks for its weights ahead: not one float32 row, which the
/// hardware prefetcher alone streamed in 0.86-0.9x the time over the 0.5B shape's matrices (Zen 4;
/// Zen 5 likewise), where one bfloat16 row went either way from session to session and one Q8_0 row
/// took 1.4-2x as long without (benchmarks/HISTORY.md).
template <int Rows, typename Weight>
constexpr bool kAsksAhead = Rows > 1 || !std::is_same_v<Weight, float>;

/// Adds the block of 8 weights at w_row + k times each row's 8 inputs to chain c of the row's sums.
template <int Rows, int Chains, typename Weight>
__attribute__((target("avx2,fma"), always_inline)) inline void add_block(__m256 (&acc)[Rows][Chains], int c, const Weight* w_row,
                                                                         const float* x, int64_t in, int64_t k) {
  const __m256 wv = load_widened(w_row + k);
  // The hardware prefetcher alone left 2 to 8 rows at 0.5-0.65 of a plain read (Xeon, AVX-512 VM);
  // 8 KiB ahead on the one weight stream brought them to 0.8-1.0 (benchmarks/HISTORY.md). Into L2,
  // not L1: there the weights evicted the rows' inputs (4 rows' 14 KiB at 896 inputs), and 4 and 8
  // rows went from 16 and 11 GB/s to 24 and 18 (EPYC with AVX-512, one thread).
  if constexpr (kAsksAhead<Rows, Weight>)
    _mm_prefetch(reinterpret_cast<const char*>(w_row + k + kPrefetchBytes / static_cast<int64_t>(sizeof(Weight))), _MM_HINT_T1);
  _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r) acc[r][c] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + r * in + k), acc[r][c]);
}

/// out[r, j] = x[r] . w[j] (+ bias[j]) for output features j in [begin, end); x is [Rows, in], w is
/// [out, in] and out is [Rows, out], all row-major.
template <int Rows, typename Weight>
__attribute__((target("avx2,fma"))) void few_rows_dots(const float* x, const Weight* w, const float* bias,
                                                       float* out, int64_t in, int64_t out_features,
                                                       int64_t begin, int64_t end) {
  constexpr int chains = kChainsPerRow<Rows>;
  for (int64_t j = begin; j < end; ++j) {
    const Weight* w_row = w + j * in;
    __m256 acc[Rows][chains];
    _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r)
      _Pragma("GCC unroll 4") for (int c = 0; c < chains; ++c) acc[r][c] = _mm256_setzero_ps();
    // Chain c takes the blocks of 8 at k + 8c; the blocks left after the last full round go to chain 0.
    int64_t k = 0;
    for (; k + 8 * chains <= in; k += 8 * chains)
      _Pragma("GCC unroll 4") for (int c = 0; c < chains; ++c) add_block<Rows>(acc, c, w_row, x, in, k + 8 * c);
    for (; k + 8 <= in; k += 8) add_block<Rows>(acc, 0, w_row, x, in, k);
    _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r) {
      _Pragma("GCC unroll 4") for (int c = 1; c < chains; ++c) acc[r][0] = _mm256_add_ps(acc[r][0], acc[r][c]);
      float dot = Lanes8::sum(acc[r][0]);
      for (int64_t tail = k; tail < in; ++tail) dot += widened(w_row[tail]) * x[r * in + tail];
      out[r * out_features + j] = bias ? dot + bias[j] : dot;
    }
  }
}

/// few_rows_dots over Q8_0 weights (in a multiple of 32): each block's 32 products summed, then
/// scaled by the block's scale into the row's sum.
template <int Rows>
__attribute__((target("avx2,fma"))) void q8_0_dots(const float* x, Q8Rows w, const float* bias, float* out, int64_t in,
                                                   int64_t out_features, int64_t begin, int64_t end) {
  const int64_t blocks = in / kQ8BlockSize;
  for (int64_t j = begin; j < end; ++j) {
    const int8_t* q_row = w.quants + j * in;
    const float* scale_row = w.scales + j * blocks;
    __m256 acc[Rows];
    _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      const int8_t* q = q_row + b * kQ8BlockSize;
      _mm_prefetch(reinterpret_cast<const char*>(q + kPrefetchBytes), _MM_HINT_T1);
      __m256 wv[4];
      _Pragma("GCC unroll 4") for (int i = 0; i < 4; ++i)
        wv[i] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 8 * i))));
      const __m256 scale = _mm256_broadcast_ss(scale_row + b);
      _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r) {
        const float* xr = x + r * in + b * kQ8BlockSize;
        __m256 block = _mm256_mul_ps(wv[0], _mm256_loadu_ps(xr));
        _Pragma("GCC unroll 3") for (int i = 1; i < 4; ++i) block = _mm256_fmadd_ps(wv[i], _mm256_loadu_ps(xr + 8 * i), block);
        acc[r] = _mm256_fmadd_ps(scale, block, acc[r]);
      }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r) {
      const float dot = Lanes8::sum(acc[r]);
      out[r * out_features + j] = bias ? dot + bias[j] : dot;
    }
  }
}


// 16 lanes (AVX-512F; with FMA, which every AVX-512 CPU has, so the 8-lane helpers inline). Twice the registers too: 8 rows keep two sums each. The masked (maskz)
// forms of the widenings are GCC 12's way to keep -Wmaybe-uninitialized quiet: its unmasked ones
// start from an undefined register.

/// 16 weights from `w` as float32.
__attribute__((target("avx512f,fma"))) inline __m512 load_widened16(const float* w) { return _mm512_loadu_ps(w); }
__attribute__((target("avx512f,fma"))) inline __m512 load_widened16(const Bfloat16Bits* w) {
  const __m512i bits = _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, bits, 16));
}

/// Independent sums a row keeps in 16 lanes (each a chain of multiply-adds, as kChainsPerRow); where
/// a pass takes several weight rows at a time, each (weight row, input row) pair's one sum is a chain.
template <int Rows, int Features>
constexpr int kChainsPerRow16 = Features > 1 ? 1 : Rows <= 2 ? 4 : 2;

/// The most input rows a 16-lane pass over 4 weight rows at a time takes: 24 sums, 4 weight vectors
/// and an input vector in the 32 registers.
constexpr int64_t kFourFeaturesPass = 6;

/// add_block in 16 lanes, for `Features` consecutive weight rows (one every `in` weights from w_rows):
/// each row's 16 inputs at k, loaded once, times each weight row's block into chain c of their sum.
template <int Rows, int Features, int Chains, typename Weight>
__attribute__((target("avx512f,fma"), always_inline)) inline void add_block16(__m512 (&acc)[Features][Rows][Chains], int c,
                                                                          const Weight* w_rows, const float* x, int64_t in, int64_t k) {
  // Ahead by kPrefetchBytes on one weight row; several rows ask for the next group's rows, as far
  // ahead of each as the group is long (8 KiB would land inside the group).
  const int64_t ahead = Features > 1 ? Features * in : kPrefetchBytes / static_cast<int64_t>(sizeof(Weight));
  __m512 wv[Features];
  _Pragma("GCC unroll 4") for (int f = 0; f < Features; ++f) {
    wv[f] = load_widened16(w_rows + f * in + k);
    if constexpr (kAsksAhead<Rows, Weight>) _mm_prefetch(reinterpret_cast<const char*>(w_rows + f * in + k + ahead), _MM_HINT_T1);
  }
  _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r) {
    const __m512 xv = _mm512_loadu_ps(x + r * in + k);
    _Pragma("GCC unroll 4") for (int f = 0; f < Features; ++f) acc[f][r][c] = _mm512_fmadd_ps(wv[f], xv, acc[f][r][c]);
  }
}

/// few_rows_dots in 16 lanes, `Features` output features at a time (the last ones one at a time).
/// Several at a time, each input load serves as many multiply-adds: past 8 rows, where passes
/// over cached weights are bound by their loads, 4 features by 6 rows took 11 and 16 rows' products
/// over a 151936 x 896 matrix 1.25x faster, and 2 to 8 rows over a down projection (4864 inputs,
/// from L2) up to 1.7x; at 1 to 8 rows whose inputs stay in L1 (bound by memory) they were slower
/// (benchmarks/HISTORY.md).
template <int Rows, typename Weight, int Features = 1>
__attribute__((target("avx512f,fma"))) void few_rows_dots16(const float* x, const Weight* w, const float* bias, float* out,
                                                        int64_t in, int64_t out_features, int64_t begin, int64_t end) {
  constexpr int chains = kChainsPerRow16<Rows, Features>;
  int64_t j = begin;
  for (; j + Features <= end; j += Features) {
    const Weight* w_rows = w + j * in;
    __m512 acc[Features][Rows][chains];
    _Pragma("GCC unroll 4") for (int f = 0; f < Features; ++f)
      _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r)
        _Pragma("GCC unroll 4") for (int c = 0; c < chains; ++c) acc[f][r][c] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 * chains <= in; k += 16 * chains)
      _Pragma("GCC unroll 4") for (int c = 0; c < chains; ++c) add_block16<Rows, Features>(acc, c, w_rows, x, in, k + 16 * c);
    for (; k + 16 <= in; k += 16) add_block16<Rows, Features>(acc, 0, w_rows, x, in, k);
    _Pragma("GCC unroll 4") for (int f = 0; f < Features; ++f)
      _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r) {
        _Pragma("GCC unroll 4") for (int c = 1; c < chains; ++c) acc[f][r][0] = _mm512_add_ps(acc[f][r][0], acc[f][r][c]);
        float dot = Lanes16::sum(acc[f][r][0]);
        for (int64_t tail = k; tail < in; ++tail) dot += widened(w_rows[f * in + tail]) * x[r * in + tail];
        out[r * out_features + j + f] = bias ? dot + bias[j + f] : dot;
      }
  }
  if constexpr (Features > 1)
    if (j < end) few_rows_dots16<Rows, Weight>(x, w, bias, out, in, out_features, j, end);
}

/// Whether `rows` rows of `in` inputs outgrow L1, so that a 16-lane pass takes several weight rows at
/// a time (kWideFeatures): each input vector loaded from L2 then serves them all (a down projection
/// of 4 rows: 4 x 4864 floats, 76 KiB); where the inputs stay in L1, more weight rows a pass were
/// slower (benchmarks/HISTORY.md).
inline bool inputs_outgrow_l1(int64_t rows, int64_t in) {
  return rows * in * static_cast<int64_t>(sizeof(float)) > kInputBytesInL1;
}

/// 16 quants of a Q8_0 block as float32.
__attribute__((target("avx512f,fma"))) inline __m512 load_widened16(const int8_t* q) {
  return _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_cvtepi8_epi32(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q))));
}

/// Adds Q8_0 block b of `Features` consecutive weight rows to each sum, its halves into chains 2p and
/// 2p + 1. The quants times the block's scale are the weights' exact float32 values (8 bits times a
/// float16's 11), so they are scaled once for every row. One row sums the block's products first and
/// scales the sum, into chain 2p: three multiplies a block instead of four, which took 0.82x the time
/// over the 0.5B shape's matrices on Zen 4 (AVX-512 in two halves, where the multiplies bound the
/// loop), and neither faster nor slower on Zen 5 (benchmarks/HISTORY.md).
template <int Rows, int Features, int Chains>
__attribute__((target("avx512f,fma"), always_inline)) inline void add_q8_0_block16(__m512 (&acc)[Features][Rows][Chains], int p,
                                                                               Q8Rows w_rows, const float* x, int64_t in,
                                                                               int64_t b) {
  const int64_t blocks = in / kQ8BlockSize;
  if constexpr (Rows == 1 && Features == 1) {
    const int8_t* q = w_rows.quants + b * kQ8BlockSize;
    _mm_prefetch(reinterpret_cast<const char*>(q + kPrefetchBytes), _MM_HINT_T1);
    const float* xb = x + b * kQ8BlockSize;
    const __m512 products = _mm512_fmadd_ps(load_widened16(q + 16), _mm512_loadu_ps(xb + 16),
                                            _mm512_mul_ps(load_widened16(q), _mm512_loadu_ps(xb)));
    acc[0][0][2 * p] = _mm512_fmadd_ps(_mm512_set1_ps(w_rows.scales[b]), products, acc[0][0][2 * p]);
    return;
  }
  __m512 wv[Features][2];
  _Pragma("GCC unroll 2") for (int f = 0; f < Features; ++f) {
    const int8_t* q = w_rows.quants + f * in + b * kQ8BlockSize;
    _mm_prefetch(reinterpret_cast<const char*>(q + kPrefetchBytes), _MM_HINT_T1);
    const __m512 scale = _mm512_set1_ps(w_rows.scales[f * blocks + b]);
    _Pragma("GCC unroll 2") for (int h = 0; h < 2; ++h) wv[f][h] = _mm512_mul_ps(scale, load_widened16(q + 16 * h));
  }
  _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r)
    _Pragma("GCC unroll 2") for (int h = 0; h < 2; ++h) {
      const __m512 xv = _mm512_loadu_ps(x + r * in + b * kQ8BlockSize + 16 * h);
      _Pragma("GCC unroll 2") for (int f = 0; f < Features; ++f) acc[f][r][2 * p + h] = _mm512_fmadd_ps(wv[f][h], xv, acc[f][r][2 * p + h]);
    }
}

/// Output features j .. j + Features - 1 of q8_0_dots in 16 lanes.
template <int Rows, int Features>
__attribute__((target("avx512f,fma"), always_inline)) inline void q8_0_dot_features16(const float* x, Q8Rows w, const float* bias,
                                                                                  float* out, int64_t in, int64_t out_features,
                                                                                  int64_t j) {
  constexpr int pairs = Features == 2 ? 1 : kChainsPerRow16<Rows, 1> / 2;
  const int64_t blocks = in / kQ8BlockSize;
  const Q8Rows w_rows{w.quants + j * in, w.scales + j * blocks};
  __m512 acc[Features][Rows][2 * pairs];
  _Pragma("GCC unroll 2") for (int f = 0; f < Features; ++f)
    _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r)
      _Pragma("GCC unroll 4") for (int c = 0; c < 2 * pairs; ++c) acc[f][r][c] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + pairs <= blocks; b += pairs)
    _Pragma("GCC unroll 2") for (int p = 0; p < pairs; ++p) add_q8_0_block16<Rows, Features>(acc, p, w_rows, x, in, b + p);
  for (; b < blocks; ++b) add_q8_0_block16<Rows, Features>(acc, 0, w_rows, x, in, b);
  _Pragma("GCC unroll 2") for (int f = 0; f < Features; ++f)
    _Pragma("GCC unroll 8") for (int r = 0; r < Rows; ++r) {
      _Pragma("GCC unroll 4") for (int c = 1; c < 2 * pairs; ++c) acc[f][r][0] = _mm512_add_ps(acc[f][r][0], acc[f][r][c]);
      const float dot = Lanes16::sum(acc[f][r][0]);
      out[r * out_features + j + f] = bias ? dot + bias[j + f] : dot;
    }
}

/// q8_0_dots in 16 lanes, `Features` output features at a time (the last ones one at a time).
template <int Rows, int Features = 1>
__attribute__((target("avx512f,fma"))) void q8_0_dots16(const float* x, Q8Rows w, const float* bias, float* out, int64_t in,
                                                    int64_t out_features, int64_t begin, int64_t end) {
  int64_t j = begin;
  if constexpr (Features > 1)
    for (; j + Features <= end; j += Features) q8_0_dot_features16<Rows, Features>(x, w, bias, out, in, out_features, j);
  for (; j < end; ++j) q8_0_dot_features16<Rows, 1>(x, w, bias, out, in, out_features, j);
}

/// The weight rows a wide 16-lane pass takes at a time past 8 rows and where the inputs outgrow L1:
/// four of float32 or bfloat16, two of Q8_0 (its widened blocks take twice the registers).
template <typename WeightRows>
constexpr int kWideFeatures = std::is_same_v<WeightRows, Q8Rows> ? 2 : 4;

/// The most input rows a wide pass takes: Q8_0's was measured at 2 to 4 rows (past 4, passes of 4
/// were faster than one pass, benchmarks/HISTORY.md).
template <typename WeightRows>
constexpr int64_t kWidePass = std::is_same_v<WeightRows, Q8Rows> ? 4 : kFourFeaturesPass;

/// `WeightRows` is how the kernel reads a matrix: `const float*`, `const Bfloat16Bits*` or Q8Rows.
template <typename WeightRows>
using FewRowsDots = void (*)(const float*, WeightRows, const float*, float*, int64_t, int64_t, int64_t, int64_t);

/// The loop for `Rows` rows of weights read as WeightRows, in 16 lanes or 8 (16 lanes: `Features`
/// weight rows at a time).
template <int Rows, bool Lanes16, typename WeightRows, int Features = 1>
void few_rows_dots_of(const float* x, WeightRows w, const float* bias, float* out, int64_t in, int64_t out_features,
                      int64_t begin, int64_t end) {
  if constexpr (std::is_same_v<WeightRows, Q8Rows>) {
    (Lanes16 ? q8_0_dots16<Rows, Features> : q8_0_dots<Rows>)(x, w, bias, out, in, out_features, begin, end);
  } else {
    using Element = std::remove_const_t<std::remove_pointer_t<WeightRows>>;
    (Lanes16 ? few_rows_dots16<Rows, Element, Features> : few_rows_dots<Rows, Element>)(x, w, bias, out, in, out_features, begin, end);
  }
}

template <typename WeightRows, bool Lanes16, int Features, size_t... RowsLess1>
constexpr std::array<FewRowsDots<WeightRows>, sizeof...(RowsLess1)> few_rows_dots_table(std::index_sequence<RowsLess1...>) {
  return {few_rows_dots_of<static_cast<int>(RowsLess1) + 1, Lanes16, WeightRows, Features>...};
}

/// The loop for 1 to kFewRowsPass rows, in 16 lanes where the CPU has AVX-512F (the tests ask for each);
/// `features` 2 or 4 (16 lanes only; Q8_0 has no 4): 1 to kWidePass rows, that many weight rows at a time.
template <typename WeightRows>
FewRowsDots<WeightRows> few_rows_dots_for(int64_t rows, bool lanes16 = cpu_has_avx512f(), int features = 1) {
  static constexpr auto lanes8_loops = few_rows_dots_table<WeightRows, false, 1>(std::make_index_sequence<kFewRowsPass>());
  static constexpr auto lanes16_loops = few_rows_dots_table<WeightRows, true, 1>(std::make_index_sequence<kFewRowsPass>());
  static constexpr auto pair_loops = few_rows_dots_table<WeightRows, true, 2>(std::make_index_sequence<kWidePass<WeightRows>>());
  if (features == 2) return pair_loops[rows - 1];
  if constexpr (!std::is_same_v<WeightRows, Q8Rows>) {
    static constexpr auto quad_loops = few_rows_dots_table<WeightRows, true, 4>(std::make_index_sequence<kWidePass<WeightRows>>());
    if (features == 4) return quad_loops[rows - 1];
  }
  return (lanes16 ? lanes16_loops : lanes8_loops)[rows - 1];
}

#endif

}  // namespace lmdecode::detail
