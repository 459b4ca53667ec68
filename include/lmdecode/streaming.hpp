#pragma once
// Streaming: a decoder calls a StepCallback after every decoding step.

#include <cstdint>
#include <functional>
#include <vector>

#include "lmdecode/token_ids.hpp"

namespace lmdecode {

/// What a decoder shows after each step.
struct StepEvent {
  int64_t step = 0;  ///< 0-based index of the step just decided
  /// Per prompt, the tokens generated so far by its only row (greedy) or its current best running
  /// beam (beam search). Greedy rows that finished keep their tokens up to the EOS.
  std::vector<TokenIds> tokens;
  std::vector<bool> finished;  ///< per prompt: greedy: the row has ended; beam: the prompt's search has ended
  /// Per prompt (greedy and sampling: per row, as `tokens`), the new tokens that became final at this
  /// step, each shown once: greedy and sampling, the step's token; beam search, what every running
  /// beam and every finished hypothesis that can still come first now share, and when the prompt's
  /// search ends, the rest of its best hypothesis. Over all steps they add up to the returned
  /// (best) sequence, unless the callback stops the generation (then the result has the rest).
  std::vector<TokenIds> committed;
  /// Set by the callback to end the generation now; rows still running end with FinishReason::callback.
  bool stop_requested = false;
};

/// Called after every step. The step's new tokens come to the host with the step's one
/// device-to-host read; the decoder keeps the history on the host (only when a callback is set).
using StepCallback = std::function<void(StepEvent&)>;

}  // namespace lmdecode
