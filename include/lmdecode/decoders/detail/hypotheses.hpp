#pragma once
// The end of every decoding loop: the rows it kept, still on the device, become Hypothesis objects
// and HF's `sequences` tensor on the host. FinishReason travels in those tensors as its int64 code.

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lmdecode/result.hpp"

namespace lmdecode::detail {

/// A FinishReason as it is stored in an int64 tensor, and back.
inline int64_t reason_code(FinishReason reason) { return static_cast<int64_t>(reason); }
inline FinishReason reason_of(int64_t code) { return static_cast<FinishReason>(code); }

/// The returned rows of a generation, `per_prompt` consecutive rows for each prompt, best first.
struct FinishedRows {
  int64_t per_prompt = 1;
  at::Tensor sequences;  // [n, L0 + >= length] int64: the padded prompt, then the generated tokens
  at::Tensor logprobs;   // [n, >= length] float32: each generated token's log-prob
  at::Tensor lengths;    // [n] int64: generated tokens kept (the EOS or stop sequence included)
  at::Tensor scores;     // [n] float32: the hypothesis score
  at::Tensor reasons;    // [n] int64: reason_code(FinishReason)
  at::Tensor stops;      // [n] int64: the matched stop sequence, -1 if none
  at::Tensor token_scores;  // [n, >= length] float32: transformers' transition scores; only with output_scores
  at::Tensor beam_rows;     // [n, >= length] int64: HF beam_indices; beam search with output_scores only
  /// A strategy that takes several tokens a step, with output_scores or output_logits: [n, longest]
  /// int64, the fed position (counted over the run) whose scores chose each token, -1 past the end.
  at::Tensor token_positions;
  SpeculationCounts speculation;  // speculative decoding's drafts
};

/// One Hypothesis per row of `rows` (generated tokens only, from column `prompt_length` on).
inline std::vector<Hypothesis> collect_hypotheses(const FinishedRows& rows, int64_t prompt_length) {
  auto tok = rows.sequences.to(at::kCPU).contiguous();
  auto lp = rows.logprobs.to(at::kCPU, at::kDouble).contiguous();
  auto len = rows.lengths.to(at::kCPU).contiguous();
  auto sc = rows.scores.to(at::kCPU, at::kDouble).contiguous();
  auto why = rows.reasons.to(at::kCPU).contiguous();
  auto stop = rows.stops.to(at::kCPU).contiguous();
  auto ts = rows.token_scores.defined() ? rows.token_scores.to(at::kCPU, at::kDouble).contiguous() : at::Tensor();
  auto tok_a = tok.accessor<int64_t, 2>();
  auto lp_a = lp.accessor<double, 2>();
  std::vector<Hypothesis> out(static_cast<size_t>(tok.size(0)));
  for (int64_t r = 0; r < tok.size(0); ++r) {
    auto& h = out[r];
    const int64_t n = len[r].item<int64_t>();
    for (int64_t j = 0; j < n; ++j) {
      h.tokens.push_back(tok_a[r][prompt_length + j]);
      h.token_logprobs.push_back(lp_a[r][j]);
      if (ts.defined()) h.token_scores.push_back(ts[r][j].item<double>());
    }
    h.score = sc[r].item<double>();
    h.finish_reason = reason_of(why[r].item<int64_t>());
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

/// The GenerationResult of `rows`: hypotheses grouped by prompt, and `sequences` (and beam_indices)
/// cropped to the padded prompt plus the longest returned row, as transformers crops them.
inline GenerationResult assemble_result(const FinishedRows& rows, int64_t prompt_length, int64_t steps) {
  GenerationResult result;
  auto flat = collect_hypotheses(rows, prompt_length);
  size_t longest = 0;
  for (const auto& h : flat) longest = std::max(longest, h.tokens.size());
  result.hypotheses = group_by_prompt(std::move(flat), rows.per_prompt);
  result.sequences = rows.sequences.narrow(1, 0, prompt_length + static_cast<int64_t>(longest)).to(at::kCPU);
  if (rows.beam_rows.defined()) result.beam_indices = rows.beam_rows.narrow(1, 0, static_cast<int64_t>(longest)).to(at::kCPU);
  result.prompt_length = prompt_length;
  result.steps = steps;
  result.speculation = rows.speculation;
  return result;
}

}  // namespace lmdecode::detail
