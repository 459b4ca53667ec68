#pragma once
// A decode step of 1 to 8 rows is a stream of the weights, but OpenBLAS's sgemm with M <= 8 reads
// them at 4-11 GB/s on one core, and 4 mv calls read them 4 times. This kernel reads each weight row
// once and takes its dot product with every input row while that row sits in L1 (151936x896, one
// thread, AMD EPYC: 4 rows in 40 ms against sgemm's 103 ms, benchmarks/HISTORY.md). It needs AVX2 and
// FMA, checked at run time; elsewhere few_rows_product returns an undefined tensor and the caller
// keeps the GEMM. The weights may be float32, bfloat16 or Q8_0 blocks (detail/linear_weight.hpp);
// its inner loops are in few_rows_dots.hpp.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "lmdecode/detail/cpu_kernels.hpp"
#include "lmdecode/models/detail/few_rows_dots.hpp"
#include "lmdecode/models/detail/linear_weight.hpp"

namespace lmdecode::detail {

/// The most input rows few_rows_product takes: past one pass, each tile of weights is read from
/// memory once and from the cache for the passes after it, so 16 rows cost about one weight read
/// (speculative decoding checks up to 15 drafts a forward, where a GEMM of 9 rows took 5 reads:
/// benchmarks/RESULTS.md). In 16 lanes, 32: there 17 to 32 rows, bound by their multiply-adds, took
/// 0.6-0.66x of OpenBLAS's sgemm time over the 0.5B shape's matrices (a short prompt's prefill, an
/// engine step of 16 rows and a prompt chunk; HISTORY.md); 8 lanes were not measured past 16.
inline int64_t few_rows_max() { return cpu_has_avx512f() ? 32 : 16; }

#ifdef LMDECODE_X86_KERNELS

/// The bytes of one weight row of `in` weights, for the kernel's chunks and tiles.
inline int64_t weight_row_bytes(const float*, int64_t in) { return in * 4; }
inline int64_t weight_row_bytes(const Bfloat16Bits*, int64_t in) { return in * 2; }
inline int64_t weight_row_bytes(Q8Rows, int64_t in) { return in + in / kQ8BlockSize * 4; }

/// Whether `rows` rows take the 16-lane loops: where the CPU has AVX-512F, but for one float32 or
/// bfloat16 row where AVX-512 loads come one a cycle (cpu_loads_avx512_in_halves): there the 8-lane
/// loop read one bfloat16 row through the 0.5B shape's matrices in 0.88x the time of the 16-lane one
/// and one float32 row in 0.92-1.0x, where Q8_0's took 1.07x (Zen 4, HISTORY.md).
template <typename WeightRows>
bool in_16_lanes(int64_t rows) {
  return cpu_has_avx512f() && !(rows == 1 && !std::is_same_v<WeightRows, Q8Rows> && cpu_loads_avx512_in_halves());
}

/// The weight rows a 16-lane pass of `rows` rows over `in` inputs takes at a time (1: one). Wide
/// passes (kWideFeatures) for 2 rows and more whose inputs outgrow L1 even in a pass of kWidePass (a
/// down projection's 4864 inputs: each input load, from L2, then serves every weight row of the
/// pass), and for float32 and bfloat16 past 8 rows. Q8_0 past 4 such rows keeps them as passes of 4
/// (5 to 8 rows at 4864 inputs took 0.55x the time of one pass a weight row at a time, HISTORY.md).
/// Where AVX-512 loads come one a cycle (cpu_loads_avx512_in_halves), 2 to kWidePass float32 or
/// bfloat16 rows whose inputs stay in L1 also go wide: two float32 or four bfloat16 weight rows at a
/// time took 0.9x and 0.85x the time over the 0.5B shape's matrices on Zen 4 (the other count of each
/// was slower); on Zen 5, four float32 weight rows at a time were slower at 1 to 8 rows (the one
/// count tried there, HISTORY.md).
template <typename WeightRows>
int pass_features(int64_t rows, int64_t in, bool lanes16) {
  constexpr bool q8_0 = std::is_same_v<WeightRows, Q8Rows>;
  if (!lanes16 || rows == 1) return 1;
  if (inputs_outgrow_l1(std::min(rows, kWidePass<WeightRows>), in) || (!q8_0 && rows > kFewRowsPass)) return kWideFeatures<WeightRows>;
  if (!q8_0 && rows <= kWidePass<WeightRows> && cpu_loads_avx512_in_halves()) return std::is_same_v<WeightRows, const float*> ? 2 : 4;
  return 1;
}

/// few_rows_product's work over weights of one format: output features in tiles, each tile through
/// every pass of at most 8 rows, or in wide passes of at most kWidePass rows and pass_features weight
/// rows at a time.
template <typename WeightRows>
void few_rows_product_of(const float* x, WeightRows w, const float* bias, float* out, int64_t rows, int64_t in,
                         int64_t out_features) {
  const int64_t row_bytes = weight_row_bytes(w, in);
  const bool lanes16 = in_16_lanes<WeightRows>(rows);
  const int features = pass_features<WeightRows>(rows, in, lanes16);
  const bool wide = features > 1;
  // Tiles of 32 KiB of weights (L1), or of 128 KiB (L2) where 4 weight rows at a time take them: 11
  // and 16 rows over a 151936 x 896 matrix took 0.8x the time with tiles of 32 features (115 KiB)
  // than with 12 (benchmarks/HISTORY.md).
  const int64_t tile_bytes = features == 4 ? 128 << 10 : 32 << 10;
  // Chunks of at least 64 KiB of weights, so a thread's share outweighs its handoff.
  const int64_t grain = std::max<int64_t>(1, (64 << 10) / row_bytes), tile_rows = std::max<int64_t>(1, tile_bytes / row_bytes);
  const int64_t tile = wide ? (tile_rows + features - 1) / features * features : tile_rows;  // whole groups of weight rows
  // Passes of equal size: 9 rows as 5 + 4 took 0.9x the time of 8 + 1 (151936x896, one thread, EPYC
  // with AVX-512), where the one-row pass over cached tiles cost half a pass from memory.
  const int64_t pass_max = wide ? kWidePass<WeightRows> : kFewRowsPass;
  const int64_t passes = (rows + pass_max - 1) / pass_max, pass_rows = (rows + passes - 1) / passes;
  at::parallel_for(0, out_features, grain, [&](int64_t begin, int64_t end) {
    const int64_t step = passes > 1 ? tile : end - begin;  // one pass: no tiles
    for (int64_t from = begin; from < end; from += step)
      for (int64_t r = 0; r < rows; r += pass_rows)
        few_rows_dots_for<WeightRows>(std::min(pass_rows, rows - r), lanes16, features)(
            x + r * in, w, bias, out + r * out_features, in, out_features, from, std::min(end, from + step));
  });
}

#endif

/// Where the kernel also takes one row: on the CPU measured with AVX-512 (a Xeon VM) OpenBLAS's sgemv
/// read 151936x896 at 7 GB/s against the kernel's 11-12; on the AVX2-only AMD EPYC sgemv was 1.14x
/// faster than the kernel without its prefetch (not measured with it), so there one row keeps sgemv.
inline bool kernel_outruns_gemv() { return cpu_has_avx512f(); }

/// x [rows, in] @ weight^T (+ bias [out]) for 1 to few_rows_max() contiguous float32 CPU rows and a
/// float32, bfloat16 or Q8_0 weight [out, in], or an undefined tensor where the kernel does not apply
/// (then the caller takes the GEMM).
inline at::Tensor few_rows_product(const at::Tensor& x, const LinearWeight& weight, const at::Tensor& bias) {
#ifdef LMDECODE_X86_KERNELS
  const int64_t rows = x.size(0);
  const auto& matrix = weight.matrix;
  const auto weight_type = matrix.scalar_type();
  const bool known_format = weight.quantized() || weight_type == at::kFloat || weight_type == at::kBFloat16;
  const bool applies = cpu_has_avx2_fma() && rows >= 1 && rows <= few_rows_max() && x.is_cpu() &&
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
