#pragma once
// The state beam search carries from step to step, for all prompts at once on the device: the
// running beams and the finished hypotheses of each prompt (DECODING_RULES.md §3.1). Both grow by a
// column a step, so that a step's work follows its length, not max_new_tokens.

#include <ATen/ATen.h>

#include <cstdint>

#include "lmdecode/decoders/detail/hypotheses.hpp"

namespace lmdecode::detail {

/// -1e9 marks "cannot be chosen" exactly as transformers does; it is exact in float32 and absorbs
/// any |x| < 32 added to it (§7).
inline constexpr double kBlocked = -1.0e9;

/// The running beams of every prompt ([B, nb, ...]), best first.
struct RunningBeams {
  at::Tensor seq;    // [B, nb, L0 + steps] the padded prompt, then the tokens
  at::Tensor lp;     // [B, nb, steps] float32 per-token log-probs
  at::Tensor score;  // [B, nb] float32 cumulative log-prob (not length-normalised)
  at::Tensor rows;   // [B, nb, steps] int64: the row each token was chosen on (HF beam_indices); only with output_scores
};

/// The K candidates of a step for every prompt ([B, K, ...]), by cumulative score.
struct Candidates {
  at::Tensor score;  // [B, K] float32
  at::Tensor beam;   // [B, K] int64: the beam it continues
  at::Tensor token;  // [B, K] int64
  at::Tensor seq;    // [B, K, cur + 1] its parent's sequence and its token
  at::Tensor lp;     // [B, K, steps + 1] its parent's log-probs and its token's
  at::Tensor rows;   // [B, K, steps + 1] its parent's rows and its parent's row; only with output_scores
};

/// Hypotheses that join the finished ones at a step ([B, n, ...] each); seq, lp and rows may be wider
/// than the finished ones', which then widen.
struct NewHypotheses {
  at::Tensor seq;     // [B, n, L0 + generated]
  at::Tensor lp;      // [B, n, generated]
  at::Tensor score;   // [B, n] float32 length-normalised score, kBlocked where it is not to be kept
  at::Tensor done;    // [B, n] bool
  at::Tensor len;     // [B, n] int64 generated tokens
  at::Tensor reason;  // [B, n] reason_code(FinishReason)
  at::Tensor stop;    // [B, n] matched stop sequence or -1
  at::Tensor rows;    // [B, n, generated] HF beam_indices; only with output_scores
};

/// The finished hypotheses of every prompt, kept sorted by length-normalised score ([B, H, ...]; H,
/// the hypotheses kept, is num_beams unless a patience other than 1 asks for more or fewer).
struct FinishedHypotheses {
  at::Tensor seq;     // [B, H, L0 + steps] prompt + tokens, `fill` after the end
  at::Tensor lp;      // [B, H, steps] per-token log-probs, 0 after the end
  at::Tensor score;   // [B, H] float32, kBlocked placeholders until filled
  at::Tensor done;    // [B, H] bool: a real hypothesis
  at::Tensor len;     // [B, H] generated tokens, the last one included
  at::Tensor reason;  // [B, H] reason_code(FinishReason)
  at::Tensor stop;    // [B, H] matched stop sequence or -1
  int64_t fill;       // seq's value after a hypothesis' end
  at::Tensor rows;    // [B, H, steps] HF beam_indices, -1 after the end; only with output_scores

  /// `kept` empty slots per prompt of `prompts` ([B, 1, L0]: each prompt's padded prompt).
  static FinishedHypotheses empty(const at::Tensor& prompts, int64_t kept, int64_t fill, bool with_rows) {
    const int64_t batch = prompts.size(0), prompt_length = prompts.size(2);
    const auto longs = prompts.options(), floats = longs.dtype(at::kFloat);
    return {prompts.expand({batch, kept, prompt_length}).contiguous(),
            at::zeros({batch, kept, 0}, floats),
            at::full({batch, kept}, kBlocked, floats),
            at::zeros({batch, kept}, longs.dtype(at::kBool)),
            at::zeros({batch, kept}, longs),
            at::full({batch, kept}, reason_code(FinishReason::length), longs),
            at::full({batch, kept}, -1, longs),
            fill,
            with_rows ? at::full({batch, kept, 0}, -1, longs) : at::Tensor()};
  }

  /// Keeps the best H of the current hypotheses and the new ones. Returns which each kept slot is
  /// [B, H]: i < H the old slot i, else new hypothesis i - H.
  at::Tensor merge(const NewHypotheses& added) {
    const int64_t beams = score.size(1);
    auto widened = [](const at::Tensor& t, int64_t width, int64_t value) {
      return t.size(2) == width ? t : at::constant_pad_nd(t, {0, width - t.size(2)}, value);
    };
    auto [merged_score, pick] = at::cat({score, added.score}, 1).topk(beams, 1);
    auto gather = [&](const at::Tensor& old_part, const at::Tensor& new_part) {
      auto both = at::cat({old_part, new_part}, 1);
      auto index = pick;
      for (int64_t d = 2; d < both.dim(); ++d) index = index.unsqueeze(d);
      auto sizes = both.sizes().vec();
      sizes[1] = beams;
      return both.gather(1, index.expand(sizes));
    };
    seq = gather(widened(seq, added.seq.size(2), fill), added.seq);
    lp = gather(widened(lp, added.lp.size(2), 0), added.lp);
    done = gather(done, added.done);
    len = gather(len, added.len);
    reason = gather(reason, added.reason);
    stop = gather(stop, added.stop);
    if (added.rows.defined()) rows = gather(widened(rows, added.rows.size(2), -1), added.rows);
    score = merged_score;
    return pick;
  }
};

}  // namespace lmdecode::detail
