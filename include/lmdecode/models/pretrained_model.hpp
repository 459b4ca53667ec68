#pragma once
// PretrainedModel: the common face of the bundled architectures (rotary decoders, GPT-2). They write into
// a KVCache and satisfy CausalLM; load_pretrained() (models/checkpoint.hpp) picks one from config.json.

#include <ATen/ATen.h>

#include <algorithm>
#include <string>
#include <vector>

#include "lmdecode/cache.hpp"
#include "lmdecode/models/detail/eager_attention.hpp"
#include "lmdecode/models/detail/linear_weight.hpp"
#include "lmdecode/models/weight_format.hpp"
#include "lmdecode/error.hpp"
#include "lmdecode/models/model_config.hpp"
#include "lmdecode/model.hpp"

namespace lmdecode {

/// One batch of PretrainedModel::forward_segments and the cache it continues (its own).
struct ForwardSegment {
  ForwardBatch batch;
  KVCache* cache = nullptr;
};

class PretrainedModel {
 public:
  using Cache = KVCache;

  PretrainedModel(ModelConfig config, at::Device device, at::ScalarType dtype,
                  WeightFormat weight_format = WeightFormat::model_dtype)
      : config_(std::move(config)), device_(device), dtype_(dtype), weight_format_(weight_format) {}
  virtual ~PretrainedModel() = default;

  const ModelConfig& config() const { return config_; }
  at::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }
  /// How the weight matrices are kept (models/weight_format.hpp).
  WeightFormat weight_format() const { return weight_format_; }

  /// The layout of the caches make_cache returns (cache.hpp): shared_prompt unless set.
  CacheLayout cache_layout() const { return cache_layout_; }
  void set_cache_layout(CacheLayout layout) { cache_layout_ = layout; }

  KVCache make_cache(int64_t rows, int64_t capacity) const {
    return KVCache(config_.num_layers, rows, config_.num_kv_heads, config_.head_dim, capacity,
                   at::TensorOptions().dtype(dtype_).device(device_), cache_layout_);
  }

  /// How many positions the model has: its max_position_embeddings, a hard limit where positions
  /// are learned (GPT-2: there is no embedding past it), a trained length elsewhere (rotary models
  /// run past it, as transformers lets them, and the decoders say so in GenerationResult::warnings).
  struct PositionLimit {
    int64_t positions;
    bool hard;
  };
  PositionLimit position_limit() const { return {config_.max_position_embeddings, config_.family == ModelFamily::gpt2}; }

  /// Bytes one position of one row takes in a cache of this model: layers x 2 (keys and values) x
  /// kv_heads x head_dim x element size.
  int64_t kv_bytes_per_position() const {
    return config_.num_layers * 2 * config_.num_kv_heads * config_.head_dim * static_cast<int64_t>(c10::elementSize(dtype_));
  }

  /// Bytes of weights one decode step reads: every layer's, the final norm's and the output layer's
  /// (the embedding table only where it is the output layer: a step reads one row of it per token).
  virtual int64_t weight_bytes_per_step() const = 0;

  /// Feeds `batch` after what `cache` holds; logits in the model dtype, [rows, vocab] (or [rows, T, vocab]).
  /// A long prefill runs in blocks of positions, each attending the cache and itself, so that its
  /// attention scores stay under attention_score_bytes() whatever the prompt's length.
  at::Tensor forward(const ForwardBatch& batch, KVCache& cache) {
    check_inputs(batch, cache);
    const int64_t fed = batch.input_ids.size(1), block = positions_per_block(batch, cache);
    at::Tensor hidden;  // [rows, T, hidden] after the final norm (the last block's only without all_logits)
    if (fed <= block) {
      hidden = run_block(batch, cache);
    } else {
      std::vector<at::Tensor> blocks;
      for (int64_t from = 0; from < fed; from += block) {
        const int64_t n = std::min(block, fed - from);
        auto part = run_block({batch.input_ids.narrow(1, from, n), batch.attention_mask.narrow(1, 0, cache.length() + n),
                               batch.position_ids.narrow(1, from, n)}, cache);
        if (batch.all_logits || from + n == fed) blocks.push_back(part);
      }
      hidden = blocks.size() == 1 ? blocks[0] : at::cat(blocks, 1);
    }
    if (!batch.all_logits) hidden = hidden.narrow(1, hidden.size(1) - 1, 1);
    auto logits = lm_head(hidden);
    return batch.all_logits ? logits : logits.squeeze(1);
  }

  /// forward() of several batches in one pass, each after what its own cache holds: batches of
  /// different lengths and positions (the requests of an Engine step). Every weight is read once for
  /// all of them; attention runs batch by batch over each one's cache. Returns each batch's logits as
  /// forward() would. A batch too long for one block of attention scores runs alone, through forward().
  std::vector<at::Tensor> forward_segments(const std::vector<ForwardSegment>& segments) {
    std::vector<at::Tensor> logits(segments.size());
    std::vector<LayerSegment> together;
    std::vector<size_t> together_index;
    for (size_t s = 0; s < segments.size(); ++s) {
      const auto& [batch, cache] = segments[s];
      detail::check(cache != nullptr, "forward_segments: segment {} has no cache", s);
      for (size_t earlier = 0; earlier < s; ++earlier)
        detail::check(segments[earlier].cache != cache, "forward_segments: segments {} and {} share one cache", earlier, s);
      check_inputs(batch, *cache);
      if (batch.input_ids.size(1) > positions_per_block(batch, *cache)) {
        logits[s] = forward(batch, *cache);
        continue;
      }
      together.push_back({&batch, detail::attention_blocked(batch.attention_mask, cache->length(), batch.input_ids.size(1)), cache});
      together_index.push_back(s);
    }
    if (together.empty()) return logits;
    const auto hidden = run_layers(together);  // [positions of every segment, hidden]
    std::vector<at::Tensor> last_positions;  // of the segments that want the last position's logits only
    int64_t offset = 0;
    for (const auto& seg : together) {
      const int64_t rows = seg.rows(), fed = seg.fed();
      seg.cache->advance(fed);
      auto mine = hidden.narrow(0, offset, rows * fed).view({rows, fed, -1});
      offset += rows * fed;
      last_positions.push_back(seg.batch->all_logits ? mine : mine.narrow(1, fed - 1, 1));
    }
    std::vector<at::Tensor> last_only;
    for (size_t i = 0; i < together.size(); ++i)
      if (!together[i].batch->all_logits) last_only.push_back(last_positions[i].squeeze(1));
    const auto head = last_only.empty() ? at::Tensor() : lm_head(at::cat(last_only).unsqueeze(1)).squeeze(1);
    int64_t row = 0;
    for (size_t i = 0; i < together.size(); ++i) {
      const int64_t rows = together[i].rows();
      if (together[i].batch->all_logits) {
        logits[together_index[i]] = lm_head(last_positions[i]);
      } else {
        logits[together_index[i]] = head.narrow(0, row, rows);
        row += rows;
      }
    }
    return logits;
  }

  /// The bytes of float32 attention scores one block of a prefill may hold (rows x heads x positions
  /// x keys x 4); 256 MiB unless set.
  int64_t attention_score_bytes() const { return attention_score_bytes_; }
  void set_attention_score_bytes(int64_t bytes) {
    detail::check(bytes >= 1, "attention_score_bytes must be >= 1 (got {})", bytes);
    attention_score_bytes_ = bytes;
  }

 protected:
  /// The rows of an embedding table that `ids` name, in the model dtype (a table kept in a narrower
  /// weight format widens here, exactly).
  at::Tensor embedding_rows(const detail::LinearWeight& table, const at::Tensor& ids) const { return table.rows(ids, dtype_); }

  /// `parts` concatenated along their first dimension (the one part as it is): the segments' positions as one batch.
  static at::Tensor joined(const std::vector<at::Tensor>& parts) { return parts.size() == 1 ? parts[0] : at::cat(parts); }

  /// One batch of a layer pass: its inputs, its attention mask (detail::attention_blocked's,
  /// [rows, 1, T, cached + T], true where a query may not look) and the cache it appends to.
  struct LayerSegment {
    const ForwardBatch* batch;
    at::Tensor blocked;
    KVCache* cache;
    int64_t rows() const { return batch->input_ids.size(0); }
    int64_t fed() const { return batch->input_ids.size(1); }
  };

  /// Runs every layer over every segment's positions (each segment appending to its cache, not yet
  /// advanced) and the final norm: [positions, hidden], segment by segment, row by row.
  virtual at::Tensor run_layers(const std::vector<LayerSegment>& segments) = 0;
  virtual at::Tensor lm_head(const at::Tensor& hidden) = 0;

 private:
  /// Runs the layers over `batch`'s positions, after what `cache` holds, and stores them in it: [rows, T, hidden].
  at::Tensor run_block(const ForwardBatch& batch, KVCache& cache) {
    const int64_t rows = batch.input_ids.size(0), fed = batch.input_ids.size(1);
    auto hidden = run_layers({{&batch, detail::attention_blocked(batch.attention_mask, cache.length(), fed), &cache}});
    cache.advance(fed);
    return hidden.view({rows, fed, -1});
  }

  /// Positions a block feeds so that its scores fit attention_score_bytes() (at least one).
  int64_t positions_per_block(const ForwardBatch& batch, const KVCache& cache) const {
    const int64_t rows = batch.input_ids.size(0), keys = cache.length() + batch.input_ids.size(1);
    const int64_t per_position = rows * config_.num_heads * keys * 4;
    return std::max<int64_t>(1, attention_score_bytes_ / std::max<int64_t>(per_position, 1));
  }

  void check_inputs(const ForwardBatch& batch, const KVCache& cache) const {
    const auto& ids = batch.input_ids;
    detail::check(ids.dim() == 2 && ids.size(1) >= 1 && ids.scalar_type() == at::kLong,
                  "input_ids must be a [rows, T >= 1] int64 tensor (got {}-D {})", ids.dim(),
                  c10::toString(ids.scalar_type()));
    detail::check(ids.device() == device_ && batch.attention_mask.device() == device_ &&
                      batch.position_ids.device() == device_,
                  "inputs must be on the model's device {} (input_ids on {}, attention_mask on {}, position_ids on {})",
                  device_.str(), ids.device().str(), batch.attention_mask.device().str(),
                  batch.position_ids.device().str());
    detail::check(ids.size(0) == cache.rows(), "input_ids has {} rows but the cache has {}", ids.size(0), cache.rows());
    detail::check(batch.attention_mask.dim() == 2 && batch.attention_mask.size(0) == ids.size(0) &&
                      batch.attention_mask.size(1) == cache.length() + ids.size(1),
                  "attention_mask must be [{}, {}] (cached + fed), got [{}]", ids.size(0),
                  cache.length() + ids.size(1), fmt::join(batch.attention_mask.sizes(), ", "));
    detail::check(batch.position_ids.sizes() == ids.sizes(), "position_ids must be shaped like input_ids [{}], got [{}]",
                  fmt::join(ids.sizes(), ", "), fmt::join(batch.position_ids.sizes(), ", "));
    detail::check(cache.num_layers() == config_.num_layers && cache.kv_heads() == config_.num_kv_heads &&
                      cache.head_dim() == config_.head_dim && cache.dtype() == dtype_ && cache.device() == device_,
                  "the cache was not made for this model (use make_cache)");
    const int64_t last = cache.length() + ids.size(1);
    detail::check(last <= config_.max_position_embeddings || config_.family != ModelFamily::gpt2,
                  "sequence length {} exceeds the model's {} positions", last, config_.max_position_embeddings);
    if (cache.length() == 0) detail::check_prompt_in_vocabulary(ids, config_.vocab_size);
  }

  ModelConfig config_;
  at::Device device_;
  at::ScalarType dtype_;
  WeightFormat weight_format_;
  CacheLayout cache_layout_ = CacheLayout::shared_prompt;
  int64_t attention_score_bytes_ = int64_t{256} << 20;
};

}  // namespace lmdecode
