#pragma once
// A decode step of 1 to 8 rows is a stream of the weights, but OpenBLAS's sgemm with M <= 8 reads
// them at 4-11 GB/s on one core, and 4 mv calls read them 4 times. This kernel reads each weight row
// once and takes its dot product with every input row while that row sits in L1 (151936x896, one
// thread, AMD EPYC: 4 rows in 40 ms against sgemm's 103 ms, benchmarks/HISTORY.md). It needs AVX2 and
// FMA, checked at run time; elsewhere few_rows_product returns an undefined tensor and the caller
// keeps the GEMM. The weights may be float32 or bfloat16: bfloat16 is widened in registers (its
// bits are a float32's upper half, so the widening is exact) and the arithmetic is float32's.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LMDECODE_FEW_ROWS_KERNEL 1
#endif

namespace lmdecode::detail {

/// The most input rows one pass of the kernel takes: 8 accumulators and the weight vector fit in 16
/// registers.
constexpr int64_t kFewRowsPass = 8;
/// The most input rows few_rows_product takes: past one pass, each tile of weights is read from
/// memory once and from the cache for the next 8 rows (speculative decoding checks up to 15 drafts
/// a forward at about the cost of one weight read, where a GEMM of 9 rows took 5: benchmarks/RESULTS.md).
constexpr int64_t kFewRowsMax = 16;

#ifdef LMDECODE_FEW_ROWS_KERNEL

__attribute__((target("avx2,fma"))) inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

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

template <typename Weight>
using FewRowsDots = void (*)(const float*, const Weight*, const float*, float*, int64_t, int64_t, int64_t, int64_t);

template <typename Weight>
FewRowsDots<Weight> few_rows_dots_for(int64_t rows) {
  static constexpr FewRowsDots<Weight> by_rows[] = {
      few_rows_dots<1, Weight>, few_rows_dots<2, Weight>, few_rows_dots<3, Weight>, few_rows_dots<4, Weight>,
      few_rows_dots<5, Weight>, few_rows_dots<6, Weight>, few_rows_dots<7, Weight>, few_rows_dots<8, Weight>};
  return by_rows[rows - 1];
}

/// few_rows_product's work over weights of one type: output features in tiles of 32 KiB of weights,
/// each tile through every pass of at most 8 rows.
template <typename Weight>
void few_rows_product_of(const float* x, const Weight* w, const float* bias, float* out, int64_t rows, int64_t in,
                         int64_t out_features) {
  const int64_t row_bytes = in * static_cast<int64_t>(sizeof(Weight));
  // Chunks of at least 64 KiB of weights, so a thread's share outweighs its handoff.
  const int64_t grain = std::max<int64_t>(1, (64 << 10) / row_bytes), tile = std::max<int64_t>(1, (32 << 10) / row_bytes);
  // Passes of equal size: 9 rows as 5 + 4 took 0.9x the time of 8 + 1 (151936x896, one thread, EPYC
  // with AVX-512), where the one-row pass over cached tiles cost half a pass from memory.
  const int64_t passes = (rows + kFewRowsPass - 1) / kFewRowsPass, pass_rows = (rows + passes - 1) / passes;
  at::parallel_for(0, out_features, grain, [&](int64_t begin, int64_t end) {
    const int64_t step = passes > 1 ? tile : end - begin;  // one pass: no tiles
    for (int64_t from = begin; from < end; from += step)
      for (int64_t r = 0; r < rows; r += pass_rows)
        few_rows_dots_for<Weight>(std::min(pass_rows, rows - r))(x + r * in, w, bias, out + r * out_features, in,
                                                                 out_features, from, std::min(end, from + step));
  });
}

inline bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

#endif

/// Where the kernel also takes one row: on the CPU measured with AVX-512 (a Xeon VM) OpenBLAS's sgemv
/// read 151936x896 at 7 GB/s against the kernel's 11-12; on the AVX2-only AMD EPYC sgemv was 1.14x
/// faster than the kernel without its prefetch (not measured with it), so there one row keeps sgemv.
inline bool kernel_outruns_gemv() {
#ifdef LMDECODE_FEW_ROWS_KERNEL
  static const bool outruns = cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
  return outruns;
#else
  return false;
#endif
}

/// x [rows, in] @ weight[out, in]^T (+ bias [out]) for 1 to kFewRowsMax contiguous float32 CPU rows
/// and float32 or bfloat16 weights, or an undefined tensor where the kernel does not apply (then the
/// caller takes the GEMM).
inline at::Tensor few_rows_product(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
#ifdef LMDECODE_FEW_ROWS_KERNEL
  const int64_t rows = x.size(0);
  const auto weight_type = weight.scalar_type();
  const bool applies = cpu_has_avx2_fma() && rows >= 1 && rows <= kFewRowsMax && x.is_cpu() &&
                       x.scalar_type() == at::kFloat && (weight_type == at::kFloat || weight_type == at::kBFloat16) &&
                       x.is_contiguous() && weight.is_contiguous() &&
                       (!bias.defined() || (bias.scalar_type() == at::kFloat && bias.is_contiguous()));
  if (!applies) return {};
  const int64_t in = weight.size(1), out_features = weight.size(0);
  auto out = at::empty({rows, out_features}, x.options());
  const float* bias_data = bias.defined() ? bias.data_ptr<float>() : nullptr;
  if (weight_type == at::kFloat)
    few_rows_product_of(x.data_ptr<float>(), weight.data_ptr<float>(), bias_data, out.data_ptr<float>(), rows, in, out_features);
  else
    few_rows_product_of(x.data_ptr<float>(), reinterpret_cast<const Bfloat16Bits*>(weight.data_ptr<at::BFloat16>()), bias_data,
                        out.data_ptr<float>(), rows, in, out_features);
  return out;
#else
  (void)x, (void)weight, (void)bias;
  return {};
#endif
}

}  // namespace lmdecode::detail
