#pragma once
// Matching config.stop_sequences against the newest tokens of many rows at once, on the device.

#include <ATen/ATen.h>

#include <vector>

namespace lmdecode::detail {

class StopSequenceMatcher {
 public:
  StopSequenceMatcher(const std::vector<std::vector<int64_t>>& sequences, at::Device device) {
    for (const auto& s : sequences) sequences_.push_back(at::tensor(s, at::TensorOptions().dtype(at::kLong).device(device)));
  }

  bool empty() const { return sequences_.empty(); }
  int64_t size() const { return static_cast<int64_t>(sequences_.size()); }

  /// For generated tokens `generated` [..., n] (only what was generated: a stop sequence never
  /// reaches into the prompt), the index of the first stop sequence the rows end with, else -1.
  at::Tensor match(const at::Tensor& generated) const {
    auto found = at::full(generated.sizes().slice(0, generated.dim() - 1), -1, generated.options());
    const int64_t n = generated.size(-1);
    for (int64_t i = static_cast<int64_t>(sequences_.size()) - 1; i >= 0; --i) {  // the lowest index wins
      const int64_t len = sequences_[i].size(0);
      if (len > n) continue;
      found.masked_fill_(generated.narrow(-1, n - len, len).eq(sequences_[i]).all(-1), i);
    }
    return found;
  }

 private:
  std::vector<at::Tensor> sequences_;
};

}  // namespace lmdecode::detail
