#pragma once
// A decode step of 1 to 8 rows is a stream of the weights, but OpenBLAS's sgemm with M <= 8 reads
// them at 4-11 GB/s on one core, and 4 mv calls read them 4 times. This kernel reads each weight row
// once and takes its dot product with every input row while that row sits in L1 (151936x896, one
// thread, AMD EPYC: 4 rows in 40 ms against sgemm's 103 ms, benchmarks/HISTORY.md). It needs AVX2 and
// FMA, checked at run time; elsewhere few_rows_product returns an undefined tensor and the caller
// keeps the GEMM. The weights may be float32, bfloat16 or Q8_0 blocks (detail/linear_weight.hpp):
// bfloat16 is widened in registers (its bits are a float32's upper half, so the widening is exact),
// Q8_0's int8 are widened and each block's sum scaled; the arithmetic is float32's.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "lmdecode/detail/cpu_kernels.hpp"
#include "lmdecode/models/detail/linear_weight.hpp"

namespace lmdecode::detail {

/// The most input rows one pass of the kernel takes: 8 accumulators and the weight vector fit in 16
/// registers.
constexpr int64_t kFewRowsPass = 8;
/// The most input rows few_rows_product takes: past one pass, each tile of weights is read from
/// memory once and from the cache for the next 8 rows (speculative decoding checks up to 15 drafts
/// a forward at about the cost of one weight read, where a GEMM of 9 rows took 5: benchmarks/RESULTS.md).
constexpr int64_t kFewRowsMax = 16;

#ifdef LMDECODE_X86_KERNELS

/// How far ahead of the weight row being read the kernel asks for the weights: 8 KiB.
constexpr int64_t kPrefetchBytes = 8 << 10;

/// A bfloat16 weight as its 16 bits (at::BFloat16's storage).
using Bfloat16Bits = uint16_t;

/// 8 weights from `w` as float32.
__attribute__((target("avx2,fma"))) inline __m256 load_widened(const float* w) { return _mm256_loadu_ps(w); }
__attribute__((target("avx2,fma"))) inline __m256 load_widened(const Bfloat16Bits* w) {
  const __m256i bits = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(bits, 16));
}

inline float widened(float w) { return w; }
inline float widened(Bfloat16Bits w) {
  const uint32_t bits = static_cast<uint32_t>(w) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

/// Independent sums a row keeps: one FMA chain waits 4 cycles a step, so one sum a row reads a weight
/// row 8 weights per 4 cycles whatever the row count, below the memory's pace (0.5B shape, one
/// thread, EPYC with AVX-512: bfloat16 at 0.47 of a plain read at 1 row, 0.5 at 4). 8 rows keep one:
/// two would need 16 of the 16 vector registers for sums alone.
template <int Rows>
constexpr int kChainsPerRow = Rows == 8 ? 1 : Rows <= 2 ? 4 : 2;

/// Adds the block of 8 weights at w_row + k times each row's 8 inputs to chain c of the row's sums.
template <int Rows, int Chains, typename Weight>
__attribute__((target("avx2,fma"), always_inline)) inline void add_block(__m256 (&acc)[Rows][Chains], int c, const Weight* w_row,
                                                                         const float* x, int64_t in, int64_t k) {
  const __m256 wv = load_widened(w_row + k);
  // The hardware prefetcher alone left 2 to 8 rows at 0.5-0.65 of a plain read (Xeon, AVX-512 VM);
  // 8 KiB ahead on the one weight stream brought them to 0.8-1.0 (benchmarks/HISTORY.md). Into L2,
  // not L1: there the weights evicted the rows' inputs (4 rows' 14 KiB at 896 inputs), and 4 and 8
  // rows went from 16 and 11 GB/s to 24 and 18 (EPYC with AVX-512, one thread).
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
      float dot = horizontal_sum(acc[r][0]);
      for (int64_t tail = k; tail < in; ++tail) dot += widened(w_row[tail]) * x[r * in + tail];
      out[r * out_features + j] = bias ? dot + bias[j] : dot;
    }
  }
}

/// A Q8_0 matrix as the kernel reads it: int8 quants [out, in] and a float32 scale per block of 32.
struct Q8Rows {
  const int8_t* quants;
  const float* scales;
};

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
      const float dot = horizontal_sum(acc[r]);
      out[r * out_features + j] = bias ? dot + bias[j] : dot;
    }
  }
}

/// The bytes of one weight row of `in` weights, for the kernel's chunks and tiles.
inline int64_t weight_row_bytes(const float*, int64_t in) { return in * 4; }
inline int64_t weight_row_bytes(const Bfloat16Bits*, int64_t in) { return in * 2; }
inline int64_t weight_row_bytes(Q8Rows, int64_t in) { return in + in / kQ8BlockSize * 4; }

/// `WeightRows` is how the kernel reads a matrix: `const float*`, `const Bfloat16Bits*` or Q8Rows.
template <typename WeightRows>
using FewRowsDots = void (*)(const float*, WeightRows, const float*, float*, int64_t, int64_t, int64_t, int64_t);

template <typename WeightRows>
FewRowsDots<WeightRows> few_rows_dots_for(int64_t rows) {
  if constexpr (std::is_same_v<WeightRows, Q8Rows>) {
    static constexpr FewRowsDots<Q8Rows> by_rows[] = {q8_0_dots<1>, q8_0_dots<2>, q8_0_dots<3>, q8_0_dots<4>,
                                                      q8_0_dots<5>, q8_0_dots<6>, q8_0_dots<7>, q8_0_dots<8>};
    return by_rows[rows - 1];
  } else {
    using Element = std::remove_const_t<std::remove_pointer_t<WeightRows>>;
    static constexpr FewRowsDots<WeightRows> by_rows[] = {
        few_rows_dots<1, Element>, few_rows_dots<2, Element>, few_rows_dots<3, Element>, few_rows_dots<4, Element>,
        few_rows_dots<5, Element>, few_rows_dots<6, Element>, few_rows_dots<7, Element>, few_rows_dots<8, Element>};
    return by_rows[rows - 1];
  }
}

/// few_rows_product's work over weights of one format: output features in tiles of 32 KiB of weights,
/// each tile through every pass of at most 8 rows.
template <typename WeightRows>
void few_rows_product_of(const float* x, WeightRows w, const float* bias, float* out, int64_t rows, int64_t in,
                         int64_t out_features) {
  const int64_t row_bytes = weight_row_bytes(w, in);
  // Chunks of at least 64 KiB of weights, so a thread's share outweighs its handoff.
  const int64_t grain = std::max<int64_t>(1, (64 << 10) / row_bytes), tile = std::max<int64_t>(1, (32 << 10) / row_bytes);
  // Passes of equal size: 9 rows as 5 + 4 took 0.9x the time of 8 + 1 (151936x896, one thread, EPYC
  // with AVX-512), where the one-row pass over cached tiles cost half a pass from memory.
  const int64_t passes = (rows + kFewRowsPass - 1) / kFewRowsPass, pass_rows = (rows + passes - 1) / passes;
  at::parallel_for(0, out_features, grain, [&](int64_t begin, int64_t end) {
    const int64_t step = passes > 1 ? tile : end - begin;  // one pass: no tiles
    for (int64_t from = begin; from < end; from += step)
      for (int64_t r = 0; r < rows; r += pass_rows)
        few_rows_dots_for<WeightRows>(std::min(pass_rows, rows - r))(x + r * in, w, bias, out + r * out_features, in,
                                                                     out_features, from, std::min(end, from + step));
  });
}

#endif

/// Where the kernel also takes one row: on the CPU measured with AVX-512 (a Xeon VM) OpenBLAS's sgemv
/// read 151936x896 at 7 GB/s against the kernel's 11-12; on the AVX2-only AMD EPYC sgemv was 1.14x
/// faster than the kernel without its prefetch (not measured with it), so there one row keeps sgemv.
inline bool kernel_outruns_gemv() {
#ifdef LMDECODE_X86_KERNELS
  static const bool outruns = cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
  return outruns;
#else
  return false;
#endif
}

/// x [rows, in] @ weight^T (+ bias [out]) for 1 to kFewRowsMax contiguous float32 CPU rows and a
/// float32, bfloat16 or Q8_0 weight [out, in], or an undefined tensor where the kernel does not apply
/// (then the caller takes the GEMM).
inline at::Tensor few_rows_product(const at::Tensor& x, const LinearWeight& weight, const at::Tensor& bias) {
#ifdef LMDECODE_X86_KERNELS
  const int64_t rows = x.size(0);
  const auto& matrix = weight.matrix;
  const auto weight_type = matrix.scalar_type();
  const bool known_format = weight.quantized() || weight_type == at::kFloat || weight_type == at::kBFloat16;
  const bool applies = cpu_has_avx2_fma() && rows >= 1 && rows <= kFewRowsMax && x.is_cpu() &&
                       x.scalar_type() == at::kFloat && known_format && x.is_contiguous() && matrix.is_contiguous() &&
                       (!bias.defined() || (bias.scalar_type() == at::kFloat && bias.is_contiguous()));
  if (!applies) return {};
  const int64_t in = weight.in_features(), out_features = weight.out_features();
  auto out = at::empty({rows, out_features}, x.options());
  const float* x_data = x.data_ptr<float>();
  const float* bias_data = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* out_data = out.data_ptr<float>();
  if (weight.quantized())
    few_rows_product_of(x_data, Q8Rows{matrix.data_ptr<int8_t>(), weight.block_scales.data_ptr<float>()}, bias_data, out_data,
                        rows, in, out_features);
  else if (weight_type == at::kFloat)
    few_rows_product_of(x_data, static_cast<const float*>(matrix.data_ptr<float>()), bias_data, out_data, rows, in, out_features);
  else
    few_rows_product_of(x_data, reinterpret_cast<const Bfloat16Bits*>(matrix.data_ptr<at::BFloat16>()), bias_data, out_data,
                        rows, in, out_features);
  return out;
#else
  (void)x, (void)weight, (void)bias;
  return {};
#endif
}

}  // namespace lmdecode::detail
