#pragma once
// GenerationConfig: the decoding options, with Hugging Face `generate()` names and meanings, so that a
// generation_config.json or a Python call maps onto it field for field.

#include <cmath>
#include <cstdint>
#include <optional>
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
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 50;
  double top_p = 1.0;
  std::optional<uint64_t> seed;
  /// false: recompute the whole sequence every step (slow reference path).
  bool use_cache = true;

  /// The pad id actually used: `pad_token_id`, else the first EOS id, else 0.
  int64_t effective_pad_token_id() const {
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
  check(std::isfinite(c.repetition_penalty) && c.repetition_penalty > 0.0,
        "repetition_penalty must be a finite number > 0 (got {})", c.repetition_penalty);
  check(c.no_repeat_ngram_size >= 0, "no_repeat_ngram_size must be >= 0 (got {})", c.no_repeat_ngram_size);
  check(std::isfinite(c.temperature) && c.temperature > 0.0,
        "temperature must be a finite number > 0 (got {}); use do_sample=false for greedy", c.temperature);
  check(c.top_k >= 0, "top_k must be >= 0 (got {})", c.top_k);
  check(c.top_p > 0.0 && c.top_p <= 1.0, "top_p must be in (0, 1] (got {})", c.top_p);
  for (int64_t id : c.eos_token_ids) check(id >= 0, "eos_token_ids must be >= 0 (got {})", id);
  if (c.pad_token_id) check(*c.pad_token_id >= 0, "pad_token_id must be >= 0 (got {})", *c.pad_token_id);
  if (c.bos_token_id) check(*c.bos_token_id >= 0, "bos_token_id must be >= 0 (got {})", *c.bos_token_id);
}

}  // namespace lmdecode
