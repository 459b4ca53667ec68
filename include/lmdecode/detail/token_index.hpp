#pragma once
// Token ids that a logits processor writes into the scores, as an index tensor on the scores' device.
// An id the vocabulary lacks must never reach index_fill_: on the CPU that throws an IndexError that
// names no config field, and on a GPU it is a device-side assert that leaves the CUDA context unusable.

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace lmdecode::detail {

/// Whether `id` is a token of a `vocab`-token model.
inline bool is_token(int64_t id, int64_t vocab) { return id >= 0 && id < vocab; }

/// The first of `ids` outside [0, vocab), if any.
inline std::optional<int64_t> first_outside_vocabulary(const std::vector<int64_t>& ids, int64_t vocab) {
  for (int64_t id : ids)
    if (!is_token(id, vocab)) return id;
  return std::nullopt;
}

class TokenIndex {
 public:
  explicit TokenIndex(std::vector<int64_t> ids) : ids_(std::move(ids)) {}

  const std::vector<int64_t>& ids() const { return ids_; }

  /// The ids in [0, vocab) of `scores` [rows, vocab], on its device, in their order; undefined when
  /// there are none. Remade only when the device or the vocabulary changes.
  const at::Tensor& in_vocabulary(const at::Tensor& scores) {
    const int64_t vocab = scores.size(1);
    if (vocab != vocab_ || device_ != scores.device()) {
      std::vector<int64_t> kept;
      for (int64_t id : ids_)
        if (is_token(id, vocab)) kept.push_back(id);
      index_ = kept.empty() ? at::Tensor() : at::tensor(kept, scores.options().dtype(at::kLong));
      vocab_ = vocab;
      device_ = scores.device();
    }
    return index_;
  }

 private:
  std::vector<int64_t> ids_;
  int64_t vocab_ = -1;
  std::optional<at::Device> device_;
  at::Tensor index_;
};

}  // namespace lmdecode::detail
