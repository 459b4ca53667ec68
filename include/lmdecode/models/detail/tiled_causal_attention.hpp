#pragma once
// Causal attention of a long float32 prefill on the CPU, in tiles (FlashAttention's scheme): a tile of
// queries meets the keys a block at a time, and a running maximum and sum per query (the online
// softmax) rescale what the tile has summed so far, so no more than a tile's scores ever exist. The
// eager path (attention_in_chunks, eager_attention.hpp) writes each chunk's scores to memory, masks,
// softmaxes and reads them back; at 20,000 positions that traffic, more than the arithmetic, was the
// time. Only for a plain causal mask (no padding, no holes, no sliding window): the mask is then the
// queries' positions, and nothing is read for it. Its sums run in another order than the eager
// matmuls', so its results differ from theirs in the last bits; only prefills whose scores outgrow
// the eager chunk take it (golden cases never do). Written once for 8 and 16 lanes (cpu_kernels.hpp).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "lmdecode/detail/cpu_kernels.hpp"

namespace lmdecode::detail {

#ifdef LMDECODE_X86_KERNELS

constexpr int64_t kTileQueries = 64;  // query rows of a tile: positions x the query heads of one KV head
constexpr int64_t kTileKeys = 64;     // keys a tile meets at once (two vectors of 16 lanes, a multiple of 32)
constexpr int64_t kTileMaxHeadDim = 256;

/// One tile's working memory: scaled queries, scores, the output so far, running sums and maxima.
struct AttentionTile {
  int64_t d;
  std::vector<float> queries, scores, out, running_max, running_sum;
  explicit AttentionTile(int64_t head_dim)
      : d(head_dim), queries(kTileQueries * d), scores(kTileQueries * kTileKeys), out(kTileQueries * d),
        running_max(kTileQueries), running_sum(kTileQueries) {}
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // see cpu_kernels.hpp: these inline into attend_tile_in_lanes

/// acc[u][v] += a[u, c] * b[c, W v ... W v + W - 1] over c < n (W: the lanes), for 4 rows of `a` (a
/// row every `a_stride` floats) and W x Vecs columns of `b` (a row every `b_stride`): both products
/// of a tile.
template <class L, int Vecs>
inline void four_rows_times(typename L::Vec (&acc)[4][Vecs], const float* a, int64_t a_stride, const float* b, int64_t b_stride,
                            int64_t n) {
  for (int64_t c = 0; c < n; ++c) {
    typename L::Vec column[Vecs];
#pragma GCC unroll 4
    for (int v = 0; v < Vecs; ++v) column[v] = L::load(b + c * b_stride + L::width * v);
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
      const auto x = L::broadcast(a + u * a_stride + c);
#pragma GCC unroll 4
      for (int v = 0; v < Vecs; ++v) acc[u][v] = L::fmadd(x, column[v], acc[u][v]);
    }
  }
}

/// scores[i, j] = queries[i] . keys_t[:, j] (the block's keys as columns, a row every `keys_stride`),
/// 4 query rows and two vectors of keys at a time.
template <class L>
inline void tile_scores(AttentionTile& t, int64_t query_rows, const float* keys_t, int64_t keys_stride) {
  for (int64_t i = 0; i < query_rows; i += 4) {
    for (int64_t j = 0; j < kTileKeys; j += 2 * L::width) {
      typename L::Vec acc[4][2] = {};
      four_rows_times<L, 2>(acc, &t.queries[i * t.d], t.d, keys_t + j, keys_stride, t.d);
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u)
        for (int v = 0; v < 2; ++v) L::store(&t.scores[(i + u) * kTileKeys + j + L::width * v], acc[u][v]);
    }
  }
}

/// Query row i's scores become its weights against the running maximum (those at and past `visible`
/// are masked: exactly 0; a weight below e^-87 is e^-87, to_exp_of_nonpositive's floor, which a sum
/// holding the maximum's 1 cannot tell); its sum and output so far are rescaled to that maximum.
template <class L>
inline void tile_softmax_row(AttentionTile& t, int64_t i, int64_t visible) {
  float* s = &t.scores[i * kTileKeys];
  for (int64_t j = visible; j < kTileKeys; ++j) s[j] = -std::numeric_limits<float>::infinity();
  auto m = L::load(s);
  for (int64_t j = L::width; j < kTileKeys; j += L::width) m = L::max(m, L::load(s + j));
  const float new_max = std::max(t.running_max[i], L::largest(m));
  const float rescale = std::exp(t.running_max[i] - new_max);  // 0 on the first block (max -inf)
  const auto shift = L::set(new_max);
  auto sum = L::zero();
  for (int64_t j = 0; j < kTileKeys; j += L::width) {
    const auto x = L::load(s + j);
    auto w = L::sub(x, shift);
    to_exp_of_nonpositive<L>(w);
    w = L::zero_where_minus_infinity(x, w);
    L::store(s + j, w);
    sum = L::add(sum, w);
  }
  t.running_sum[i] = t.running_sum[i] * rescale + L::sum(sum);
  t.running_max[i] = new_max;
  if (rescale != 1.0f)
    for (int64_t c = 0; c < t.d; ++c) t.out[i * t.d + c] *= rescale;
}

/// out[i, c ... c + W Vecs - 1] += weights[i, :keys] . values[:keys, the same columns], for 4 query rows.
template <class L, int Vecs>
inline void add_weighted_values(AttentionTile& t, int64_t i, int64_t c, const float* values, int64_t value_stride, int64_t keys) {
  typename L::Vec acc[4][Vecs];
#pragma GCC unroll 4
  for (int u = 0; u < 4; ++u)
    for (int v = 0; v < Vecs; ++v) acc[u][v] = L::load(&t.out[(i + u) * t.d + c + L::width * v]);
  four_rows_times<L, Vecs>(acc, &t.scores[i * kTileKeys], kTileKeys, values + c, value_stride, keys);
#pragma GCC unroll 4
  for (int u = 0; u < 4; ++u)
    for (int v = 0; v < Vecs; ++v) L::store(&t.out[(i + u) * t.d + c + L::width * v], acc[u][v]);
}

/// out[i] += weights[i, :keys] . values, 4 query rows and two vectors (the last one) of output
/// features at a time.
template <class L>
inline void tile_weighted_values(AttentionTile& t, int64_t query_rows, const float* values, int64_t value_stride, int64_t keys) {
  for (int64_t i = 0; i < query_rows; i += 4) {
    int64_t c = 0;
    for (; c + 2 * L::width <= t.d; c += 2 * L::width) add_weighted_values<L, 2>(t, i, c, values, value_stride, keys);
    if (c < t.d) add_weighted_values<L, 1>(t, i, c, values, value_stride, keys);
  }
}

/// Where one tile's queries and keys are: `q` rows g * fed + first + u (query head g of the KV head,
/// position cached + first + u, u < positions); the keys transposed, a feature every `keys_stride`
/// floats (zeros past the last key up to a multiple of kTileKeys); values a position every `values_stride`.
struct TileSource {
  const float *q, *keys_t, *values;
  float* out;
  int64_t fed, cached, first, positions, group, keys_stride, values_stride;
};

/// One tile: its queries (scaled) against the keys up to its last position, a block at a time, the
/// normalised result written to src.out.
template <class L>
inline void attend_tile(AttentionTile& t, const TileSource& src, float scale) {
  const int64_t d = t.d, rows = src.group * src.positions, padded_rows = (rows + 3) / 4 * 4;
  std::fill(t.queries.begin(), t.queries.end(), 0.0f);
  std::fill(t.out.begin(), t.out.end(), 0.0f);
  std::fill(t.running_max.begin(), t.running_max.end(), -std::numeric_limits<float>::infinity());
  std::fill(t.running_sum.begin(), t.running_sum.end(), 0.0f);
  for (int64_t g = 0; g < src.group; ++g)
    for (int64_t u = 0; u < src.positions; ++u)
      for (int64_t c = 0; c < d; ++c)
        t.queries[(g * src.positions + u) * d + c] = src.q[(g * src.fed + src.first + u) * d + c] * scale;
  const int64_t seen = src.cached + src.first + src.positions;  // the keys the tile's last position sees
  for (int64_t from = 0; from < seen; from += kTileKeys) {
    const int64_t keys = std::min(kTileKeys, seen - from);
    tile_scores<L>(t, padded_rows, src.keys_t + from, src.keys_stride);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t visible = std::min(keys, src.cached + src.first + i % src.positions + 1 - from);
      if (visible > 0) tile_softmax_row<L>(t, i, visible);
      else std::fill_n(&t.scores[i * kTileKeys], kTileKeys, 0.0f);
    }
    tile_weighted_values<L>(t, padded_rows, src.values + from * src.values_stride, src.values_stride, keys);
  }
  for (int64_t g = 0; g < src.group; ++g)
    for (int64_t u = 0; u < src.positions; ++u) {
      const int64_t i = g * src.positions + u;
      for (int64_t c = 0; c < d; ++c) src.out[(g * src.fed + src.first + u) * d + c] = t.out[i * d + c] / t.running_sum[i];
    }
}

#pragma GCC diagnostic pop

/// attend_tile in 8 lanes (AVX2) or 16 (AVX-512F, head sizes a multiple of 16): the one place each
/// width's target is, into which everything above inlines.
__attribute__((target("avx2,fma"), flatten)) inline void attend_tile_in_lanes8(AttentionTile& t, const TileSource& src, float scale) {
  attend_tile<Lanes8>(t, src, scale);
}
__attribute__((target("avx512f,fma"), flatten)) inline void attend_tile_in_lanes16(AttentionTile& t, const TileSource& src,
                                                                                  float scale) {
  attend_tile<Lanes16>(t, src, scale);
}

#endif  // LMDECODE_X86_KERNELS

/// Whether tiled_causal_attention takes these tensors: float32 on a CPU with AVX2 and FMA, a head size
/// that is a multiple of 8 up to kTileMaxHeadDim, values contiguous along the head.
inline bool tiled_causal_attention_applies(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values, int64_t group) {
#ifdef LMDECODE_X86_KERNELS
  const int64_t d = q.size(3);
  return cpu_has_avx2_fma() && q.is_cpu() && q.scalar_type() == at::kFloat && keys.scalar_type() == at::kFloat &&
         values.scalar_type() == at::kFloat && d % 8 == 0 && d <= kTileMaxHeadDim && group <= kTileQueries &&
         values.stride(3) == 1;
#else
  return false;
#endif
}

/// softmax(q k^T * scale, causal) v: `q` [rows, kv_heads, group * T, d] (row g * T + t: query head g of
/// that KV head at cache position cached + t, cached = S - T), keys and values [rows, kv_heads, S, d];
/// every query sees the keys up to its own position. Callers check tiled_causal_attention_applies().
/// In 16 lanes where the CPU has AVX-512F and the head size allows (`lanes16` false: 8 lanes).
inline at::Tensor tiled_causal_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values, double scale,
                                         int64_t group, bool lanes16 = cpu_has_avx512f()) {
#ifdef LMDECODE_X86_KERNELS
  const auto queries = q.contiguous();
  const int64_t rows = q.size(0), kv_heads = q.size(1), fed = q.size(2) / group, d = q.size(3);
  const int64_t stored = keys.size(2), cached = stored - fed, padded = (stored + kTileKeys - 1) / kTileKeys * kTileKeys;
  // The keys as columns, once: every tile reads its blocks of them (zeros past the last key).
  auto keys_t = at::empty({rows, kv_heads, d, padded}, keys.options());
  keys_t.narrow(3, 0, stored).copy_(keys.transpose(2, 3));
  keys_t.narrow(3, stored, padded - stored).zero_();
  auto out = at::empty_like(queries);
  const int64_t positions = std::max<int64_t>(1, kTileQueries / group), tiles = (fed + positions - 1) / positions;
  const float *q_data = queries.data_ptr<float>(), *k_data = keys_t.data_ptr<float>(), *v_data = values.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  const auto attend = lanes16 && d % 16 == 0 ? attend_tile_in_lanes16 : attend_tile_in_lanes8;
  // Tiles alternate from both ends of the prompt, so that the threads' contiguous shares (a later tile
  // meets more keys) hold about the same work.
  at::parallel_for(0, rows * kv_heads * tiles, 1, [&](int64_t begin, int64_t end) {
    AttentionTile t(d);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t head = task / tiles, k = task % tiles, r = head / kv_heads, h = head % kv_heads;
      const int64_t tile = k % 2 == 0 ? k / 2 : tiles - 1 - k / 2;
      const int64_t first = tile * positions, head_offset = head * group * fed * d;
      const TileSource src{q_data + head_offset, k_data + head * d * padded, v_data + r * values.stride(0) + h * values.stride(1),
                           out_data + head_offset, fed, cached, first, std::min(positions, fed - first), group, padded,
                           values.stride(2)};
      attend(t, src, static_cast<float>(scale));
    }
  });
  return out;
#else
  (void)q, (void)keys, (void)values, (void)scale, (void)group, (void)lanes16;
  throw std::logic_error("lmdecode: tiled_causal_attention needs an x86 compiler (check tiled_causal_attention_applies)");
#endif
}

}  // namespace lmdecode::detail
