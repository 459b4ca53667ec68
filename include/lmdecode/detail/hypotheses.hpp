#pragma once
// Turning the device-side results of a decoding loop into Hypothesis objects on the host.

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lmdecode/result.hpp"

namespace lmdecode::detail {

inline bool is_eos(int64_t token, const std::vector<int64_t>& eos_ids) {
  return std::find(eos_ids.begin(), eos_ids.end(), token) != eos_ids.end();
}

/// One Hypothesis per row of `tokens` ([rows, >= max length], generated tokens only), keeping
/// lengths[row] tokens and their log-probs (`logprobs` [rows, >= max length]); `scores` [rows].
inline std::vector<Hypothesis> collect_hypotheses(const at::Tensor& tokens, const at::Tensor& logprobs,
                                                  const at::Tensor& lengths, const at::Tensor& scores,
                                                  const std::vector<int64_t>& eos_ids) {
  auto tok = tokens.to(at::kCPU).contiguous();
  auto lp = logprobs.to(at::kCPU, at::kDouble).contiguous();
  auto len = lengths.to(at::kCPU).contiguous();
  auto sc = scores.to(at::kCPU, at::kDouble).contiguous();
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
    h.finish_reason = (n > 0 && is_eos(h.tokens.back(), eos_ids)) ? FinishReason::eos : FinishReason::length;
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

/// Rows of `tokens` ([rows, n] generated ids, CPU) as token lists, each cut after its first EOS.
inline std::vector<std::vector<int64_t>> rows_up_to_eos(const at::Tensor& tokens, const std::vector<int64_t>& eos_ids) {
  auto tok = tokens.to(at::kCPU).contiguous();
  auto a = tok.accessor<int64_t, 2>();
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(tok.size(0)));
  for (int64_t r = 0; r < tok.size(0); ++r)
    for (int64_t j = 0; j < tok.size(1); ++j) {
      rows[r].push_back(a[r][j]);
      if (is_eos(a[r][j], eos_ids)) break;
    }
  return rows;
}

}  // namespace lmdecode::detail
