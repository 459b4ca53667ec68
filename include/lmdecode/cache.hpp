#pragma once
// KVCache: the keys and values of every layer for every row (row = prompt x beam), stored in one
// preallocated buffer [num_layers, 2 (keys, values), rows, kv_heads, capacity, head_dim] on the
// model's device and dtype.
//
// How it is used:
//   - a model's forward calls `append(layer, k, v)` for each layer with this step's keys/values
//     ([rows, kv_heads, T, head_dim]) and gets back views of everything stored so far, then calls
//     `advance(T)` once all layers are written;
//   - a beam decoder calls `reorder(row_index)` after each step so that every surviving beam takes its
//     parent's history. Rows never share storage, so beams that later diverge cannot corrupt each other.
//     One buffer lets a reorder be a few large gathers (one per slice of layers) instead of two per
//     layer: on a GPU each gather is a kernel launch.
// The decoders only call reorder(); how rows are stored is this class's business, which leaves room for
// a layout where a prompt's prefix is stored once for all its beams.
//
// Example:
//   lmdecode::KVCache cache(/*num_layers=*/2, /*rows=*/4, /*kv_heads=*/2, /*head_dim=*/16,
//                           /*capacity=*/64, at::TensorOptions().dtype(at::kFloat));
//   auto [keys, values] = cache.append(0, k, v);  // ... every layer ...
//   cache.advance(k.size(2));
//   cache.reorder(at::tensor({0, 0, 2, 3}));       // beam 1 continues beam 0's history

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "lmdecode/detail/row_index.hpp"
#include "lmdecode/error.hpp"

namespace lmdecode {

class KVCache {
 public:
  KVCache() = default;

  /// Allocates room for `capacity` positions per row; it grows (doubling) if more are appended.
  KVCache(int64_t num_layers, int64_t rows, int64_t kv_heads, int64_t head_dim, int64_t capacity,
          at::TensorOptions options)
      : rows_(rows), kv_heads_(kv_heads), head_dim_(head_dim) {
    detail::check(num_layers >= 1 && rows >= 1 && kv_heads >= 1 && head_dim >= 1 && capacity >= 0,
                  "KVCache needs positive sizes (layers {}, rows {}, kv_heads {}, head_dim {}, capacity {})",
                  num_layers, rows, kv_heads, head_dim, capacity);
    set_storage(at::empty({num_layers, 2, rows, kv_heads, capacity, head_dim}, options));
  }

  int64_t num_layers() const { return storage_.defined() ? storage_.size(0) : 0; }
  int64_t rows() const { return rows_; }
  int64_t kv_heads() const { return kv_heads_; }
  int64_t head_dim() const { return head_dim_; }
  /// Positions stored per row (the same for every row: prompts are left padded).
  int64_t length() const { return length_; }
  /// Positions that fit before the buffers must grow.
  int64_t capacity() const { return storage_.defined() ? storage_.size(4) : 0; }
  at::Device device() const { return storage_.device(); }
  at::ScalarType dtype() const { return storage_.scalar_type(); }

  /// Bytes of the filled part: layers x 2 x rows x kv_heads x length x head_dim x element size.
  int64_t bytes() const { return filled_elements(length_) * element_size(); }
  /// Bytes allocated: as bytes() with capacity in place of length.
  int64_t capacity_bytes() const { return filled_elements(capacity()) * element_size(); }

  /// Writes `key`/`value` ([rows, kv_heads, T, head_dim]) for `layer` after the stored positions and
  /// returns views of all positions of that layer, stored and new: [rows, kv_heads, length + T, head_dim].
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& key, const at::Tensor& value) {
    detail::check(layer >= 0 && layer < num_layers(), "KVCache::append: layer {} out of range [0, {})", layer,
                  num_layers());
    check_block("key", key);
    check_block("value", value);
    const int64_t end = length_ + key.size(2);
    if (end > capacity()) grow_to(std::max(end, 2 * capacity()));
    keys_[layer].narrow(2, length_, key.size(2)).copy_(key);
    values_[layer].narrow(2, length_, value.size(2)).copy_(value);
    return {keys_[layer].narrow(2, 0, end), values_[layer].narrow(2, 0, end)};
  }

  /// Marks `steps` more positions as stored; call once per forward, after every layer's append().
  void advance(int64_t steps) {
    detail::check(steps >= 0 && length_ + steps <= capacity(),
                  "KVCache::advance({}) past what was appended (length {}, capacity {})", steps, length_,
                  capacity());
    length_ += steps;
  }

  /// Row i of the result holds what row `row_index[i]` held. Parents may repeat or be dropped; the
  /// number of rows may change (e.g. expanding each prompt into its beams). Runs on the device.
  /// Indices must lie in [0, rows()). That is checked for an index on the CPU; on a GPU the check
  /// would cost a device-to-host read every beam step, so there a bad index is a device-side assert.
  void reorder(const at::Tensor& row_index) {
    detail::check_row_index("KVCache", row_index, rows_,
                            storage_.defined() ? std::optional(device()) : std::nullopt);
    const int64_t new_rows = row_index.size(0);
    if (!storage_.defined()) {  // a default-constructed cache holds nothing to move
      rows_ = new_rows;
      return;
    }
    // The gather reads rows that may be overwritten, so it goes through a temporary: one slice of
    // layers at a time, which bounds the temporary to 1/kReorderSlices of the cache. (Gathering into
    // a whole second buffer halves the reorder's time but doubles beam search's memory: measured
    // and declined, benchmarks/RESULTS.md.)
    auto target = new_rows == rows_ ? storage_ : at::empty({num_layers(), 2, new_rows, kv_heads_, capacity(), head_dim_}, storage_.options());
    // Rows lead in the gathered views: libtorch's CPU index_select is several times slower on dim 1.
    auto from = storage_.flatten(0, 1).narrow(3, 0, length_).transpose(0, 1);  // [rows, layers * 2, kv_heads, length, head_dim]
    auto to = target.flatten(0, 1).narrow(3, 0, length_).transpose(0, 1);
    const int64_t slabs = from.size(1), per_slice = (slabs + kReorderSlices - 1) / kReorderSlices;
    for (int64_t first = 0; first < slabs; first += per_slice) {
      const int64_t n = std::min(per_slice, slabs - first);
      to.narrow(1, first, n).copy_(from.narrow(1, first, n).index_select(0, row_index));
    }
    if (new_rows != rows_) set_storage(target);
    rows_ = new_rows;
  }

  /// Forgets every position from `length` on (e.g. to re-run from a shorter prefix).
  void crop(int64_t length) {
    detail::check(length >= 0 && length <= length_, "KVCache::crop({}) outside [0, {}]", length, length_);
    length_ = length;
  }

  /// Ensures room for `capacity` positions without further growth.
  void reserve(int64_t capacity) {
    if (capacity > this->capacity()) grow_to(capacity);
  }

  /// A copy on another device and/or dtype (same length; capacity trimmed to the length).
  KVCache to(at::Device device, at::ScalarType dtype) const {
    KVCache out;
    out.rows_ = rows_;
    out.kv_heads_ = kv_heads_;
    out.head_dim_ = head_dim_;
    out.length_ = length_;
    out.set_storage(storage_.narrow(4, 0, length_).to(device, dtype, false, true).contiguous());
    return out;
  }

  /// The stored keys / values of one layer: [rows, kv_heads, length, head_dim] views.
  at::Tensor keys(int64_t layer) const { return keys_.at(layer).narrow(2, 0, length_); }
  at::Tensor values(int64_t layer) const { return values_.at(layer).narrow(2, 0, length_); }

 private:
  static constexpr int64_t kReorderSlices = 16;

  /// Takes `storage` and the per-layer views into it (kept so that a step does not rebuild them).
  void set_storage(at::Tensor storage) {
    storage_ = std::move(storage);
    keys_.clear();
    values_.clear();
    for (int64_t l = 0; l < storage_.size(0); ++l) {
      keys_.push_back(storage_[l][0]);
      values_.push_back(storage_[l][1]);
    }
  }

  int64_t element_size() const { return storage_.defined() ? static_cast<int64_t>(storage_.element_size()) : 0; }
  int64_t filled_elements(int64_t positions) const {
    return num_layers() * 2 * rows_ * kv_heads_ * positions * head_dim_;
  }

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

  void grow_to(int64_t capacity) {
    auto bigger = at::empty({num_layers(), 2, rows_, kv_heads_, capacity, head_dim_}, storage_.options());
    bigger.narrow(4, 0, length_).copy_(storage_.narrow(4, 0, length_));
    set_storage(bigger);
  }

  at::Tensor storage_;              // [num_layers, 2, rows, kv_heads, capacity, head_dim]
  std::vector<at::Tensor> keys_;    // per layer: storage_[layer][0], [rows, kv_heads, capacity, head_dim]
  std::vector<at::Tensor> values_;  // per layer: storage_[layer][1]
  int64_t rows_ = 0;
  int64_t kv_heads_ = 0;
  int64_t head_dim_ = 0;
  int64_t length_ = 0;
};

}  // namespace lmdecode
