#pragma once
// Turning prompts into the left-padded inputs transformers builds (DECODING_RULES.md §1.4-1.5).

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "lmdecode/error.hpp"
#include "lmdecode/token_ids.hpp"

namespace lmdecode::detail {

struct PaddedBatch {
  at::Tensor input_ids;       // [B, L0] int64, left padded
  at::Tensor attention_mask;  // [B, L0] int64
  at::Tensor position_ids;    // [B, L0] int64: cumsum(mask) - 1, pads at 0

  /// Each row `copies` times in a row (row b * copies + k is copy k of row b): a prompt's beams, or
  /// its sampled sequences, as StepRunner expects them.
  PaddedBatch repeated(int64_t copies) const {
    return {input_ids.repeat_interleave(copies, 0), attention_mask.repeat_interleave(copies, 0),
            position_ids.repeat_interleave(copies, 0)};
  }
};

/// HF positions: each real token counts the real tokens before it; pads get 0.
inline at::Tensor positions_from_mask(const at::Tensor& attention_mask) {
  return (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0);
}

inline PaddedBatch pad_prompts(const std::vector<TokenIds>& prompts, int64_t pad_token_id, at::Device device) {
  check(!prompts.empty(), "generate needs at least one prompt");
  size_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    check(!prompts[i].empty(), "prompt {} is empty: every prompt needs at least one token", i);
    longest = std::max(longest, prompts[i].size());
  }
  const auto rows = static_cast<int64_t>(prompts.size());
  const auto width = static_cast<int64_t>(longest);
  const auto host = at::TensorOptions().dtype(at::kLong).device(at::kCPU);  // filled here, then moved
  auto ids = at::full({rows, width}, pad_token_id, host);
  auto mask = at::zeros({rows, width}, host);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  for (int64_t r = 0; r < rows; ++r) {
    const auto& p = prompts[r];
    const int64_t offset = width - static_cast<int64_t>(p.size());
    for (size_t j = 0; j < p.size(); ++j) {
      check(p[j] >= 0, "prompt {} holds a negative token id ({}) at position {}", r, p[j], j);
      ids_a[r][offset + j] = p[j];
      mask_a[r][offset + j] = 1;
    }
  }
  ids = ids.to(device);
  mask = mask.to(device);
  return {ids, mask, positions_from_mask(mask)};
}

/// Checks user-given inputs; the mask must mark at least one real token per row.
inline PaddedBatch batch_from_tensors(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                      at::Device device) {
  check(input_ids.dim() == 2 && input_ids.size(0) >= 1 && input_ids.size(1) >= 1,
        "input_ids must be [batch, length] with both >= 1 (got [{}])", fmt::join(input_ids.sizes(), ", "));
  check(input_ids.scalar_type() == at::kLong, "input_ids must be int64 (got {})",
        c10::toString(input_ids.scalar_type()));
  check(attention_mask.sizes() == input_ids.sizes(), "attention_mask shape [{}] differs from input_ids [{}]",
        fmt::join(attention_mask.sizes(), ", "), fmt::join(input_ids.sizes(), ", "));
  check(input_ids.device() == device && attention_mask.device() == device,
        "input_ids ({}) and attention_mask ({}) must be on the model's device {}", input_ids.device().str(),
        attention_mask.device().str(), device.str());
  auto mask = attention_mask.to(at::kLong);
  return {input_ids, mask, positions_from_mask(mask)};
}

}  // namespace lmdecode::detail
