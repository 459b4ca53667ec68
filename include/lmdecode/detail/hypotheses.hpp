#pragma once
// Turning the device-side results of a decoding loop into Hypothesis objects on the host.

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "lmdecode/result.hpp"

namespace lmdecode::detail {

/// One Hypothesis per row: lengths[row] tokens of `tokens` ([rows, >= length], generated tokens
/// only) with their log-probs (`logprobs`, same shape), its score, finish reason code and the
/// matched stop sequence (-1 if none); all [rows] except the first two.
inline std::vector<Hypothesis> collect_hypotheses(const at::Tensor& tokens, const at::Tensor& logprobs,
                                                  const at::Tensor& lengths, const at::Tensor& scores,
                                                  const at::Tensor& reasons, const at::Tensor& stop_indices) {
  auto tok = tokens.to(at::kCPU).contiguous();
  auto lp = logprobs.to(at::kCPU, at::kDouble).contiguous();
  auto len = lengths.to(at::kCPU).contiguous();
  auto sc = scores.to(at::kCPU, at::kDouble).contiguous();
  auto why = reasons.to(at::kCPU).contiguous();
  auto stop = stop_indices.to(at::kCPU).contiguous();
  auto tok_a = tok.accessor<int64_t, 2>();
  auto lp_a = lp.accessor<double, 2>();
  std::vector<Hypothesis> out(static_cast<size_t>(tok.size(0)));
  for (int64_t r = 0; r < tok.size(0); ++r) {
    auto& h = out[r];
    const int64_t n = len[r].item<int64_t>();
    for (int64_t j = 0; j < n; ++j) {
      h.tokens.push_back(tok_a[r][j]);
      h.token_logprobs.push_back(lp_a[r][j]);
    }
    h.score = sc[r].item<double>();
    h.finish_reason = static_cast<FinishReason>(why[r].item<int64_t>());
    h.stop_sequence = stop[r].item<int64_t>();
  }
  return out;
}

/// Groups a flat list of hypotheses by prompt, `per_prompt` each.
inline std::vector<std::vector<Hypothesis>> group_by_prompt(std::vector<Hypothesis> flat, int64_t per_prompt) {
  std::vector<std::vector<Hypothesis>> grouped;
  for (size_t i = 0; i < flat.size(); i += static_cast<size_t>(per_prompt))
    grouped.emplace_back(std::make_move_iterator(flat.begin() + i),
                         std::make_move_iterator(flat.begin() + i + per_prompt));
  return grouped;
}

}  // namespace lmdecode::detail
