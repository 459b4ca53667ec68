#pragma once
// GenerationConfig: the decoding options, with Hugging Face `generate()` names and meanings, so that a
// generation_config.json or a Python call maps onto it field for field.

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmdecode/error.hpp"

namespace lmdecode {

/// When beam search may stop before `max_new_tokens` (HF `early_stopping`).
enum class EarlyStopping {
  heuristic,  ///< HF `False`: stop once the best running beam, ended now, cannot beat the worst kept hypothesis.
  on_full,    ///< HF `True`: stop as soon as `num_beams` hypotheses are finished.
  never,      ///< HF `"never"`: with length_penalty > 0, bound the running beam at max length (canonical beam search).
};

/// Options of one generation. Defaults are HF's global defaults.
struct GenerationConfig {
  /// New tokens to generate at most. Unset: `max_length` if set, else 20 (HF's default `max_length = L0 + 20`).
  std::optional<int64_t> max_new_tokens;
  /// Total length (padded prompt + new tokens); used only when `max_new_tokens` is unset.
  std::optional<int64_t> max_length;
  /// EOS is banned (-inf) until this many tokens have been generated.
  int64_t min_new_tokens = 0;
  /// EOS is banned while the total length (padded prompt + new) is below this.
  int64_t min_length = 0;
  /// Beams per prompt; 1 means greedy (or plain sampling with do_sample).
  int64_t num_beams = 1;
  /// Beam hypothesis score = sum of token log-probs / (generated length ** length_penalty).
  double length_penalty = 1.0;
  EarlyStopping early_stopping = EarlyStopping::heuristic;
  /// Beam search patience (CTranslate2's, arXiv 2204.05424): each prompt keeps round(num_beams x
  /// patience) finished hypotheses instead of num_beams, so every early-stopping rule waits for that
  /// many to finish (early_stopping true: until they have). 1 is transformers exactly.
  double patience = 1.0;
  /// Hypotheses returned per prompt, best first (at most num_beams).
  int64_t num_return_sequences = 1;
  /// Any of these ends a row (Qwen chat models: <|im_end|> and <|endoftext|>). Empty: run to the length limit.
  std::vector<int64_t> eos_token_ids;
  /// Fills finished rows and left padding. Unset: the first EOS id.
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id;
  /// CTRL penalty on every token already in the row: logit / p if positive, logit * p if negative. 1 = off.
  double repetition_penalty = 1.0;
  /// Bans any token that would repeat an n-gram of this size already in the row. 0 = off.
  int64_t no_repeat_ngram_size = 0;
  /// Banned token sequences: a one-token entry is never produced; a longer one cannot be completed.
  std::vector<std::vector<int64_t>> bad_words_ids;
  /// Tokens never produced.
  std::vector<int64_t> suppress_tokens;
  /// Tokens not produced as the first new token.
  std::vector<int64_t> begin_suppress_tokens;
  /// Forced as the token after a one-token input (HF ForcedBOSTokenLogitsProcessor).
  std::optional<int64_t> forced_bos_token_id;
  /// Forced as the last token when max_length is reached (HF ForcedEOSTokenLogitsProcessor).
  std::optional<int64_t> forced_eos_token_id;
  /// Sample from the processed distribution instead of taking the arg max (beam sampling with num_beams > 1).
  bool do_sample = false;
  /// Sampling only: scores / temperature. Must be > 0 when sampling.
  double temperature = 1.0;
  /// Sampling only: keep the k best tokens (ties at the boundary kept). 0 = off.
  int64_t top_k = 50;
  /// Sampling only: keep the smallest set of best tokens whose probability reaches top_p. 1 = off.
  double top_p = 1.0;
  /// Sampling only: drop tokens less likely than min_p x the best token's probability. Unset = off.
  std::optional<double> min_p;
  /// Sampling only: locally typical sampling mass. 1 = off.
  double typical_p = 1.0;
  /// Seed of the sampler's own generator; unset: a random seed. Same seed, device and inputs: same tokens.
  std::optional<uint64_t> seed;
  /// Token sequences that end a row once its newest tokens equal one of them (all of it generated).
  std::vector<std::vector<int64_t>> stop_sequences;
  /// transformers' stop_strings: a row ends once one of them ends inside its newest token's text,
  /// across token boundaries (the prompt's tokens included). Needs token_texts.
  std::vector<std::string> stop_strings;
  /// Each token id's text in the middle of a text (Tokenizer::token_texts()); what stop_strings are
  /// matched against, as transformers needs the tokenizer for them.
  std::shared_ptr<const std::vector<std::string>> token_texts;
  /// Wall-clock limit in seconds for the decoding loop; rows still running end with FinishReason::time.
  std::optional<double> max_time;
  /// false: recompute the whole sequence every step (slow reference path).
  bool use_cache = true;
  /// Keep each step's processed scores (GenerationResult::scores, beam_indices in beam search) and
  /// each returned token's score (Hypothesis::token_scores), as transformers' output_scores.
  bool output_scores = false;
  /// Keep each step's raw logits (GenerationResult::logits), as transformers' output_logits.
  bool output_logits = false;

  /// Finished hypotheses beam search keeps per prompt: round(num_beams x patience).
  int64_t finished_hypotheses_kept() const { return std::llround(static_cast<double>(num_beams) * patience); }

  /// The pad id actually used: `pad_token_id`, else the first EOS id, else 0.
  int64_t resolved_pad_token_id() const {
    if (pad_token_id) return *pad_token_id;
    return eos_token_ids.empty() ? 0 : eos_token_ids.front();
  }

  /// New tokens allowed after a padded prompt of `prompt_length` tokens (HF `_prepare_generated_length`).
  int64_t resolved_max_new_tokens(int64_t prompt_length) const {
    if (max_new_tokens) return *max_new_tokens;
    if (max_length) return *max_length - prompt_length;
    return 20;
  }

  /// EOS stays banned while fewer than this many tokens have been generated (min_length folded in).
  int64_t resolved_min_new_tokens(int64_t prompt_length) const {
    int64_t from_min_length = min_length - prompt_length;
    return from_min_length > min_new_tokens ? from_min_length : min_new_tokens;
  }
};

/// Rejects inconsistent or out-of-range values with a message naming the field and the rule.
inline void validate(const GenerationConfig& c) {
  using detail::check;
  if (c.max_new_tokens) check(*c.max_new_tokens >= 1, "max_new_tokens must be >= 1 (got {})", *c.max_new_tokens);
  if (c.max_length) check(*c.max_length >= 1, "max_length must be >= 1 (got {})", *c.max_length);
  check(c.min_new_tokens >= 0, "min_new_tokens must be >= 0 (got {})", c.min_new_tokens);
  check(c.min_length >= 0, "min_length must be >= 0 (got {})", c.min_length);
  if (c.max_new_tokens)
    check(*c.max_new_tokens >= c.min_new_tokens, "max_new_tokens ({}) must be >= min_new_tokens ({})",
          *c.max_new_tokens, c.min_new_tokens);
  if (c.max_length && !c.max_new_tokens)
    check(*c.max_length >= c.min_length, "max_length ({}) must be >= min_length ({})", *c.max_length, c.min_length);
  check(c.num_beams >= 1, "num_beams must be >= 1 (got {})", c.num_beams);
  check(c.num_return_sequences >= 1, "num_return_sequences must be >= 1 (got {})", c.num_return_sequences);
  if (!c.do_sample)
    check(c.num_return_sequences <= c.num_beams,
          "num_return_sequences ({}) must be <= num_beams ({}) without sampling", c.num_return_sequences,
          c.num_beams);
  check(std::isfinite(c.length_penalty), "length_penalty must be finite (got {})", c.length_penalty);
  // The kept hypotheses are slots allocated up front: 64 times num_beams is already far past any use.
  check(std::isfinite(c.patience) && c.patience > 0.0 && c.patience <= 64.0, "patience must be in (0, 64] (got {})",
        c.patience);
  if (c.num_beams > 1)
    check(c.finished_hypotheses_kept() >= c.num_return_sequences,
          "beam search keeps round(num_beams x patience) = round({} x {}) = {} finished hypotheses, fewer than "
          "num_return_sequences ({})", c.num_beams, c.patience, c.finished_hypotheses_kept(), c.num_return_sequences);
  check(std::isfinite(c.repetition_penalty) && c.repetition_penalty > 0.0,
        "repetition_penalty must be a finite number > 0 (got {})", c.repetition_penalty);
  check(c.no_repeat_ngram_size >= 0, "no_repeat_ngram_size must be >= 0 (got {})", c.no_repeat_ngram_size);
  check(std::isfinite(c.temperature) && c.temperature >= 0.0, "temperature must be a finite number >= 0 (got {})",
        c.temperature);
  check(!c.do_sample || c.temperature > 0.0,
        "temperature must be > 0 when sampling (got {}); for the arg max use do_sample = false", c.temperature);
  check(c.top_k >= 0, "top_k must be >= 0 (got {})", c.top_k);
  check(c.top_p > 0.0 && c.top_p <= 1.0, "top_p must be in (0, 1] (got {})", c.top_p);
  if (c.min_p) check(*c.min_p >= 0.0 && *c.min_p <= 1.0, "min_p must be in [0, 1] (got {})", *c.min_p);
  check(c.typical_p > 0.0 && c.typical_p <= 1.0, "typical_p must be in (0, 1] (got {})", c.typical_p);
  if (c.max_time) check(*c.max_time > 0.0, "max_time must be > 0 seconds (got {})", *c.max_time);
  auto check_sequences = [](const std::vector<std::vector<int64_t>>& sequences, const char* field) {
    for (size_t i = 0; i < sequences.size(); ++i) {
      check(!sequences[i].empty(), "{}[{}] is empty", field, i);
      for (int64_t id : sequences[i]) check(id >= 0, "{}[{}] holds a negative token id ({})", field, i, id);
    }
  };
  check_sequences(c.bad_words_ids, "bad_words_ids");
  check_sequences(c.stop_sequences, "stop_sequences");
  for (size_t i = 0; i < c.stop_strings.size(); ++i) check(!c.stop_strings[i].empty(), "stop_strings[{}] is empty", i);
  for (int64_t id : c.suppress_tokens) check(id >= 0, "suppress_tokens must be >= 0 (got {})", id);
  for (int64_t id : c.begin_suppress_tokens) check(id >= 0, "begin_suppress_tokens must be >= 0 (got {})", id);
  if (c.forced_bos_token_id) check(*c.forced_bos_token_id >= 0, "forced_bos_token_id must be >= 0 (got {})", *c.forced_bos_token_id);
  if (c.forced_eos_token_id) check(*c.forced_eos_token_id >= 0, "forced_eos_token_id must be >= 0 (got {})", *c.forced_eos_token_id);
  for (int64_t id : c.eos_token_ids) check(id >= 0, "eos_token_ids must be >= 0 (got {})", id);
  if (c.pad_token_id) check(*c.pad_token_id >= 0, "pad_token_id must be >= 0 (got {})", *c.pad_token_id);
  if (c.bos_token_id) check(*c.bos_token_id >= 0, "bos_token_id must be >= 0 (got {})", *c.bos_token_id);
}

}  // namespace lmdecode
