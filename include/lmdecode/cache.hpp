#pragma once
// KVCache: the keys and values of every layer for every row (row = prompt x copy: a beam, or a
// sampled sequence), on the model's device and dtype, in one of two layouts:
//
//   - shared_prompt (the default): what was stored before the rows were expanded into their copies
//     (the prompt) is kept once per prompt, [layers, 2, prompts, kv_heads, P, head_dim]; each row
//     owns only what came after, [layers, 2, rows, kv_heads, G, head_dim]. Attention reads a prompt's
//     keys once for all its copies (detail::cached_attention) and a reorder moves the owned part only.
//   - expanded: every row owns all its positions (the layout of transformers and of HF-style
//     models); kept as the reference path.
//
// Both grow by doubling when an append needs room, so memory follows the positions stored, not a
// maximum length. Bytes held: layers x 2 x kv_heads x head_dim x element size x
// (prompts x P + rows x G); expanded, P is 0 and G every position.
//
// How it is used:
//   - a model's forward calls `append(layer, k, v)` for each layer with this step's keys/values
//     ([rows, kv_heads, T, head_dim]) and gets back a LayerKV over everything stored so far, then calls
//     `advance(T)` once all layers are written;
//   - a decoder calls `expand_rows(copies)` after the prefill (each prompt becomes its copies) and
//     `reorder(row_index)` after each beam step (every surviving beam takes its parent's history).
//     Rows never share what they own, so beams that later diverge cannot corrupt each other.
//
// Example:
//   lmdecode::KVCache cache(/*num_layers=*/2, /*rows=*/1, /*kv_heads=*/2, /*head_dim=*/16,
//                           /*capacity=*/64, at::TensorOptions().dtype(at::kFloat));
//   auto kv = cache.append(0, k, v);  // ... every layer ...
//   cache.advance(k.size(2));
//   cache.expand_rows(4);                      // 4 beams share the prompt
//   cache.reorder(at::tensor({0, 0, 2, 3}));   // beam 1 continues beam 0's history

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "lmdecode/detail/row_index.hpp"
#include "lmdecode/error.hpp"

namespace lmdecode {

enum class CacheLayout { shared_prompt, expanded };

/// One layer's stored keys and values as attention reads them. Positions run prompt first: the
/// `prompt_*` ones (if defined), then each row's own.
struct LayerKV {
  at::Tensor keys, values;                // [rows, kv_heads, own positions, head_dim]
  at::Tensor prompt_keys, prompt_values;  // [prompts, kv_heads, P, head_dim], shared by `copies` consecutive rows
  int64_t copies = 1;                     // rows per prompt (rows = prompts x copies)
  bool shares_prompt() const { return prompt_keys.defined(); }
};

class KVCache {
 public:
  KVCache() = default;

  /// Allocates room for `capacity` positions per row; it grows (doubling) if more are appended.
  KVCache(int64_t num_layers, int64_t rows, int64_t kv_heads, int64_t head_dim, int64_t capacity,
          at::TensorOptions options, CacheLayout layout = CacheLayout::shared_prompt)
      : layout_(layout), rows_(rows), kv_heads_(kv_heads), head_dim_(head_dim) {
    detail::check(num_layers >= 1 && rows >= 1 && kv_heads >= 1 && head_dim >= 1 && capacity >= 0,
                  "KVCache needs positive sizes (layers {}, rows {}, kv_heads {}, head_dim {}, capacity {})",
                  num_layers, rows, kv_heads, head_dim, capacity);
    own_.reset(at::empty({num_layers, 2, rows, kv_heads, capacity, head_dim}, options));
  }

  /// A one-row cache that begins with `prefix` ([num_layers, 2, 1, kv_heads, P, head_dim], another
  /// cache's stored_positions(), a prompt the rows share) without copying it, with room for
  /// `capacity` positions in all. The prefix is read, never written: the row's own positions follow it.
  static KVCache from_prefix(const at::Tensor& prefix, int64_t capacity, CacheLayout layout = CacheLayout::shared_prompt) {
    detail::check(prefix.dim() == 6 && prefix.size(1) == 2 && prefix.size(2) == 1,
                  "KVCache::from_prefix: the prefix has shape [{}], expected [layers, 2, 1, kv_heads, P, head_dim]",
                  fmt::join(prefix.sizes(), ", "));
    const int64_t length = prefix.size(4);
    KVCache cache(prefix.size(0), 1, prefix.size(3), prefix.size(5), std::max<int64_t>(capacity - length, 1), prefix.options(), layout);
    cache.prompt_.reset(prefix, length);
    return cache;
  }

  CacheLayout layout() const { return layout_; }
  int64_t num_layers() const { return own_.defined() ? own_.storage.size(0) : 0; }
  int64_t rows() const { return rows_; }
  int64_t kv_heads() const { return kv_heads_; }
  int64_t head_dim() const { return head_dim_; }
  /// Rows per prompt sharing the prompt's positions (1 until expand_rows, and always when expanded).
  int64_t copies() const { return copies_; }
  /// Positions stored per row (the same for every row: prompts are left padded).
  int64_t length() const { return prompt_.length + own_.length; }
  /// Positions that fit before a buffer must grow.
  int64_t capacity() const { return prompt_.length + own_.capacity(); }
  at::Device device() const { return own_.storage.device(); }
  at::ScalarType dtype() const { return own_.storage.scalar_type(); }

  /// Bytes of the filled part: layers x 2 x kv_heads x head_dim x element size x (prompts x P + rows x G).
  int64_t bytes() const { return (prompt_.filled_elements() + own_.filled_elements()) * element_size(); }
  /// Bytes allocated: as bytes() with the capacities in place of the lengths.
  int64_t capacity_bytes() const { return (prompt_.allocated_elements() + own_.allocated_elements()) * element_size(); }
  /// Bytes a reorder that keeps the number of rows copies now: the positions the rows own.
  int64_t reorder_bytes() const { return own_.filled_elements() * element_size(); }

  /// Writes `key`/`value` ([rows, kv_heads, T, head_dim]) for `layer` after the stored positions and
  /// returns all positions of that layer, stored and new (length() + T of them).
  LayerKV append(int64_t layer, const at::Tensor& key, const at::Tensor& value) {
    detail::check(layer >= 0 && layer < num_layers(), "KVCache::append: layer {} out of range [0, {})", layer,
                  num_layers());
    check_block("key", key);
    check_block("value", value);
    const int64_t end = own_.length + key.size(2);
    if (end > own_.capacity()) own_.grow_to(std::max(end, 2 * own_.capacity()));
    own_.keys[layer].narrow(2, own_.length, key.size(2)).copy_(key);
    own_.values[layer].narrow(2, own_.length, value.size(2)).copy_(value);
    LayerKV kv{own_.keys[layer].narrow(2, 0, end), own_.values[layer].narrow(2, 0, end), {}, {}, copies_};
    if (prompt_.defined()) {
      kv.prompt_keys = prompt_.keys[layer].narrow(2, 0, prompt_.length);
      kv.prompt_values = prompt_.values[layer].narrow(2, 0, prompt_.length);
    }
    return kv;
  }

  /// Marks `steps` more positions as stored; call once per forward, after every layer's append().
  void advance(int64_t steps) {
    detail::check(steps >= 0 && own_.length + steps <= own_.capacity(),
                  "KVCache::advance({}) past what was appended (length {}, capacity {})", steps, length(),
                  capacity());
    own_.length += steps;
  }

  /// Each row becomes `copies` consecutive rows with its history (a prompt's beams or sampled
  /// sequences). Shared: the stored positions become the prompts' (no copy); expanded: copied.
  void expand_rows(int64_t copies) {
    detail::check(copies >= 1, "KVCache::expand_rows({}): copies must be >= 1", copies);
    if (copies == 1) return;
    if (!own_.defined()) {  // a default-constructed cache holds nothing to copy
      rows_ *= copies;
      return;
    }
    if (copies_ == 1) materialize();  // a prefix from_prefix() shared: the row's history becomes one block
    const auto repeated = at::arange(rows_, index_options()).repeat_interleave(copies);
    if (layout_ == CacheLayout::expanded) {
      reorder(repeated);
      return;
    }
    if (copies_ > 1) {  // already shared: the owned positions are copied, the prompt stays
      own_.gather_rows(repeated);
    } else {
      const int64_t layers = num_layers();
      prompt_ = std::move(own_);
      own_.reset(at::empty({layers, 2, rows_ * copies, kv_heads_, kInitialOwnCapacity, head_dim_}, prompt_.storage.options()));
    }
    copies_ *= copies;
    rows_ *= copies;
  }

  /// Row i of the result holds what row `row_index[i]` held. Parents may repeat or be dropped; the
  /// number of rows may change. Runs on the device. Indices must lie in [0, rows()), and once rows
  /// share their prompt (copies() > 1), a reorder that keeps the number of rows must keep each row
  /// with its prompt's copies (beam search does). Both are checked for an index on the CPU; on a GPU
  /// the check would cost a device-to-host read every beam step, so there a bad index is a
  /// device-side assert.
  void reorder(const at::Tensor& row_index) {
    detail::check_row_index("KVCache", row_index, rows_, own_.defined() ? std::optional(device()) : std::nullopt);
    const int64_t new_rows = row_index.size(0);
    if (!own_.defined()) {  // a default-constructed cache holds nothing to move
      rows_ = new_rows;
      return;
    }
    if (copies_ > 1 && new_rows == rows_) {
      own_.gather_rows(within_prompts(row_index));
      return;
    }
    if (copies_ > 1 || new_rows != rows_) materialize();
    own_.gather_rows(row_index);
    rows_ = new_rows;
  }

  /// Forgets every position from `length` on (e.g. to re-run from a shorter prefix).
  void crop(int64_t length) {
    detail::check(length >= 0 && length <= this->length(), "KVCache::crop({}) outside [0, {}]", length, this->length());
    if (length < prompt_.length) materialize();
    own_.length = length - prompt_.length;
  }

  /// Ensures room for `capacity` positions without further growth.
  void reserve(int64_t capacity) {
    if (capacity > this->capacity()) own_.grow_to(capacity - prompt_.length);
  }

  /// A copy on another device and/or dtype (same layout and length; capacities trimmed to the lengths).
  KVCache to(at::Device device, at::ScalarType dtype) const {
    KVCache out = *this;
    out.own_ = own_.trimmed_to(device, dtype);
    if (prompt_.defined()) out.prompt_ = prompt_.trimmed_to(device, dtype);
    return out;
  }

  /// Row 0's first `length` stored positions, every layer, as one new tensor [num_layers, 2, 1,
  /// kv_heads, length, head_dim] (what from_prefix() takes).
  at::Tensor stored_positions(int64_t length) const {
    detail::check(length >= 0 && length <= this->length(), "KVCache::stored_positions({}) outside [0, {}]", length, this->length());
    auto row = [&](const Segment& s, int64_t n) { return s.storage.narrow(2, 0, 1).narrow(4, 0, n); };
    const int64_t shared = std::min(length, prompt_.length);
    if (shared == 0) return row(own_, length).clone();
    return at::cat({row(prompt_, shared), row(own_, length - shared)}, 4);
  }

  /// The stored keys / values of one layer, [rows, kv_heads, length, head_dim]: views, or copies
  /// once rows share their prompt.
  at::Tensor keys(int64_t layer) const { return positions_of(prompt_.keys, own_.keys, layer); }
  at::Tensor values(int64_t layer) const { return positions_of(prompt_.values, own_.values, layer); }

 private:
  static constexpr int64_t kReorderSlices = 16;
  static constexpr int64_t kOneGatherBytes = 4 << 20;
  static constexpr int64_t kInitialOwnCapacity = 16;  // positions per row after expand_rows, then doubling

  /// One buffer [num_layers, 2 (keys, values), rows, kv_heads, capacity, head_dim] and its filled length.
  struct Segment {
    at::Tensor storage;
    std::vector<at::Tensor> keys, values;  // per layer: storage[layer][0 | 1], [rows, kv_heads, capacity, head_dim]
    int64_t length = 0;

    bool defined() const { return storage.defined(); }
    int64_t capacity() const { return defined() ? storage.size(4) : 0; }
    int64_t filled_elements() const { return capacity() == 0 ? 0 : storage.numel() / capacity() * length; }
    int64_t allocated_elements() const { return defined() ? storage.numel() : 0; }

    /// Takes `buffer` and the per-layer views into it (kept so that a step does not rebuild them).
    void reset(at::Tensor buffer, int64_t filled = 0) {
      storage = std::move(buffer);
      length = filled;
      keys.clear();
      values.clear();
      for (int64_t l = 0; l < storage.size(0); ++l) {
        keys.push_back(storage[l][0]);
        values.push_back(storage[l][1]);
      }
    }

    void grow_to(int64_t new_capacity) {
      auto sizes = storage.sizes().vec();
      sizes[4] = new_capacity;
      auto bigger = at::empty(sizes, storage.options());
      bigger.narrow(4, 0, length).copy_(storage.narrow(4, 0, length));
      reset(bigger, length);
    }

    /// Row i takes what row `row_index[i]` held. The gather reads rows that may be overwritten, so it
    /// goes through a temporary: one slice of layers at a time, which bounds the temporary to
    /// 1/kReorderSlices of the buffer (benchmarks/HISTORY.md: a whole second buffer was declined), or
    /// to kOneGatherBytes in one gather when the filled part is small (each slice costs 4 calls).
    void gather_rows(const at::Tensor& row_index) {
      auto sizes = storage.sizes().vec();
      const bool same_rows = sizes[2] == row_index.size(0);
      sizes[2] = row_index.size(0);
      auto target = same_rows ? storage : at::empty(sizes, storage.options());
      // Rows lead in the gathered views: libtorch's CPU index_select is several times slower on dim 1.
      auto from = storage.flatten(0, 1).narrow(3, 0, length).transpose(0, 1);  // [rows, layers * 2, kv_heads, length, head_dim]
      auto to = target.flatten(0, 1).narrow(3, 0, length).transpose(0, 1);
      const int64_t filled_bytes = filled_elements() * static_cast<int64_t>(storage.element_size());
      const int64_t slabs = from.size(1), slices = filled_bytes <= kOneGatherBytes ? 1 : std::min(kReorderSlices, slabs);
      const int64_t per_slice = (slabs + slices - 1) / slices;
      for (int64_t first = 0; first < slabs; first += per_slice) {
        const int64_t n = std::min(per_slice, slabs - first);
        to.narrow(1, first, n).copy_(from.narrow(1, first, n).index_select(0, row_index));
      }
      if (!same_rows) reset(target, length);
    }

    Segment trimmed_to(at::Device device, at::ScalarType dtype) const {
      Segment out;
      out.reset(storage.narrow(4, 0, length).to(device, dtype, false, true).contiguous(), length);
      return out;
    }
  };

  at::TensorOptions index_options() const { return at::TensorOptions().dtype(at::kLong).device(device()); }

  /// [rows] int64 on the device: the prompt each row belongs to, row / copies.
  at::Tensor prompt_of_row() const { return at::arange(rows_, index_options()).div(copies_, "floor"); }

  /// `row_index` with every parent outside its row's prompt replaced by rows(), which no gather
  /// accepts (a device-side assert on a GPU). On the CPU it is an error naming the row.
  at::Tensor within_prompts(const at::Tensor& row_index) const {
    if (row_index.is_cpu()) {
      const auto index = row_index.accessor<int64_t, 1>();  // host memory: no kernel, no sync
      for (int64_t i = 0; i < rows_; ++i)
        detail::check(index[i] / copies_ == i / copies_,
                      "KVCache::reorder: row {} would continue row {}, a copy of another prompt; rows that share their "
                      "prompt stay with it (make the cache with CacheLayout::expanded to move rows freely)",
                      i, index[i]);
      return row_index;
    }
    return at::where(row_index.div(copies_, "floor").eq(prompt_of_row()), row_index, at::full_like(row_index, rows_));
  }

  /// Gives every row its own copy of its prompt's positions (back to copies() == 1).
  void materialize() {
    if (!prompt_.defined()) return;
    auto prompt = prompt_.storage.narrow(4, 0, prompt_.length).index_select(2, prompt_of_row());
    own_.reset(at::cat({prompt, own_.storage.narrow(4, 0, own_.length)}, 4), prompt_.length + own_.length);
    prompt_ = Segment{};
    copies_ = 1;
  }

  at::Tensor positions_of(const std::vector<at::Tensor>& prompt, const std::vector<at::Tensor>& own, int64_t layer) const {
    auto mine = own.at(static_cast<size_t>(layer)).narrow(2, 0, own_.length);
    if (!prompt_.defined()) return mine;
    auto shared = prompt.at(static_cast<size_t>(layer)).narrow(2, 0, prompt_.length).repeat_interleave(copies_, 0);
    return at::cat({shared, mine}, 2);
  }

  int64_t element_size() const { return own_.defined() ? static_cast<int64_t>(own_.storage.element_size()) : 0; }

  void check_block(const char* name, const at::Tensor& t) const {
    detail::check<model_error>(t.dim() == 4 && t.size(0) == rows_ && t.size(1) == kv_heads_ &&
                                   t.size(3) == head_dim_,
                               "KVCache::append: {} has shape [{}], expected [{}, {}, T, {}]", name,
                               fmt::join(t.sizes(), ", "), rows_, kv_heads_, head_dim_);
    detail::check<model_error>(t.device() == device() && t.scalar_type() == dtype(),
                               "KVCache::append: {} is {} on {}, the cache is {} on {}", name,
                               c10::toString(t.scalar_type()), t.device().str(), c10::toString(dtype()),
                               device().str());
  }

  CacheLayout layout_ = CacheLayout::shared_prompt;
  Segment prompt_;  // shared layout after expand_rows: [num_layers, 2, prompts, kv_heads, P, head_dim]
  Segment own_;     // [num_layers, 2, rows, kv_heads, capacity, head_dim]: what each row owns
  int64_t rows_ = 0;
  int64_t kv_heads_ = 0;
  int64_t head_dim_ = 0;
  int64_t copies_ = 1;
};

}  // namespace lmdecode
