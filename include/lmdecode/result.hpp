#pragma once
// What a decoder returns: for each prompt, its hypotheses (best first), plus the HF-layout
// `sequences` tensor that transformers' generate() would return.

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lmdecode/token_ids.hpp"

namespace lmdecode {

/// Why a returned sequence ended.
enum class FinishReason : int64_t {
  eos = 0,            ///< it produced one of the EOS ids (kept as its last token)
  stop_sequence = 1,  ///< its newest tokens equal one of config.stop_sequences, or a stop string ended in its newest token (kept)
  length = 2,         ///< it reached max_new_tokens / max_length
  callback = 3,       ///< the step callback asked to stop
  time = 4,           ///< config.max_time ran out
  /// config.grammar allowed no token where its text is not a whole sentence of it (the vocabulary
  /// cannot write what it needs next): the row took EOS, kept as its last token
  grammar = 5,
  cancelled = 6,  ///< its Engine request was cancelled (RequestHandle::cancel)
};

inline std::string_view to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::eos: return "eos";
    case FinishReason::stop_sequence: return "stop_sequence";
    case FinishReason::length: return "length";
    case FinishReason::callback: return "callback";
    case FinishReason::time: return "time";
    case FinishReason::grammar: return "grammar";
    case FinishReason::cancelled: return "cancelled";
  }
  return "unknown";
}

/// One returned sequence.
struct Hypothesis {
  TokenIds tokens;                    ///< new tokens only, the final EOS included
  std::vector<double> token_logprobs; ///< log-prob of each new token under the processed scores
  /// With config.output_scores, each new token's score as transformers' compute_transition_scores(
  /// sequences, scores, beam_indices, normalize_logits=False) gives it: greedy and sampling, the
  /// token's processed score (a logit after the processors); beam search, its processed log-prob
  /// along the beam's path (then equal to token_logprobs). Empty otherwise.
  std::vector<double> token_scores;
  /// Greedy: sum of token_logprobs. Beam: HF `sequences_scores`, sum / (tokens.size() ** length_penalty).
  double score = 0.0;
  FinishReason finish_reason = FinishReason::length;
  /// With FinishReason::stop_sequence: the index in config.stop_sequences that matched, or
  /// config.stop_sequences.size() + the index in config.stop_strings; else -1.
  int64_t stop_sequence = -1;
};

/// What speculative decoding drafted and the target model accepted in one generate() call.
struct SpeculationCounts {
  int64_t drafted = 0;         ///< draft tokens fed to the target model to check
  int64_t accepted = 0;        ///< of them, those kept (equal to the target's own choice, or accepted by speculative sampling)
  int64_t draft_forwards = 0;  ///< forward calls of the draft model (0 for prompt lookup)
};

/// The result of one generate() call.
struct GenerationResult {
  /// hypotheses[prompt][rank]: num_return_sequences per prompt, best first.
  std::vector<std::vector<Hypothesis>> hypotheses;
  /// As transformers returns it: [prompts * num_return_sequences, L0 + longest], the left-padded
  /// prompt then the new tokens, shorter rows right-padded. On the CPU.
  at::Tensor sequences;
  int64_t prompt_length = 0;  ///< L0, the padded prompt length
  int64_t steps = 0;          ///< decoding steps run, each one forward call of the model (the first is the prefill)
  SpeculationCounts speculation;  ///< speculative decoding only: its drafts
  /// Bytes the KV cache held when decoding ended (its most: it only grows), for a model whose cache
  /// can say (KVCache::bytes(): each prompt's positions once, each row's own after them); else 0.
  int64_t cache_bytes = 0;
  /// With config.output_scores: each step's processed scores [rows, vocab] float32, on the model's
  /// device (transformers' `scores`: beam search, the processed log-probs of each running beam,
  /// row b * num_beams + k; greedy and sampling, the processed logits of each row). Speculative
  /// decoding: one entry per new token, row r's the scores that chose its token there (as
  /// transformers' assisted generation), -inf past a row's end.
  std::vector<at::Tensor> scores;
  /// With config.output_logits: each step's raw logits [rows, vocab] float32 (transformers' `logits`).
  std::vector<at::Tensor> logits;
  /// What the caller should know about this result, in words (a sequence that ran past the
  /// positions the model was trained for); empty when all is well.
  std::vector<std::string> warnings;
  /// Beam search with config.output_scores: [prompts * num_return_sequences, longest] int64, the
  /// row each returned token was chosen on at its step (index into scores[step]), -1 after a
  /// hypothesis's end (transformers' `beam_indices`). On the CPU.
  at::Tensor beam_indices;
};

}  // namespace lmdecode
