#pragma once
// What speculative decoding's drafters have in common: what they are asked at each step, what they
// answer, and how they hear back. The drafters: prompt_lookup.hpp (n-grams of the text so far) and
// draft_model.hpp (a smaller model); the strategy that checks their drafts: speculative_strategy.hpp.

#include <ATen/ATen.h>

#include <concepts>
#include <cstdint>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/token_ids.hpp"

namespace lmdecode::detail {

/// What a drafter is asked at a step.
struct DraftRequest {
  const std::vector<TokenIds>& tokens;  // per row: its prompt (no padding) and new tokens, the newest not yet fed
  const std::vector<int64_t>& limits;   // per row: the most drafts it may take (0: none, a row that has ended)
};

/// A drafter's answer: per row, tokens that likely follow it.
struct Drafts {
  std::vector<TokenIds> tokens;
  /// Drafts a draft model sampled: per row, [tokens[r].size(), vocab] float32 on the device, the
  /// distribution each draft was drawn from (speculative sampling weighs the model's against it).
  /// Empty where the drafts were not drawn from a distribution.
  std::vector<at::Tensor> probs;
};

template <class D>
concept Drafter = requires(D& d, const DraftRequest& request, const std::vector<int64_t>& counts) {
  typename D::Shared;  // what the drafter keeps across a decoder's calls (the decoder holds it)
  { d.draft(request) } -> std::same_as<Drafts>;
  d.accepted(counts);  // of each row's drafts just checked, how many the model kept
  { d.forwards() } -> std::convertible_to<int64_t>;  // forward calls of a draft model so far
  { D::max_drafts(GenerationConfig{}) } -> std::convertible_to<int64_t>;  // drafts a row takes a step at most
};

}  // namespace lmdecode::detail
