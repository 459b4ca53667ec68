#pragma once
// GenerationConfig: the decoding options, with Hugging Face `generate()` names and meanings, so that a
// generation_config.json or a Python call maps onto it field for field; generation_options(), the
// one table of them that validate(), the generation_config.json reader and the programs' flags walk.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "lmdecode/error.hpp"

namespace lmdecode {

class TokenGrammar;  // grammar/token_grammar.hpp

/// When beam search may stop before `max_new_tokens` (HF `early_stopping`).
enum class EarlyStopping {
  heuristic,  ///< HF `False`: stop once the best running beam, ended now, cannot beat the worst kept hypothesis.
  on_full,    ///< HF `True`: stop as soon as `num_beams` hypotheses are finished.
  never,      ///< HF `"never"`: with length_penalty > 0, bound the running beam at max length (canonical beam search).
};

/// How the draft model's number of drafts changes between steps (HF num_assistant_tokens_schedule).
enum class DraftSchedule {
  constant,             ///< num_assistant_tokens every step
  heuristic,            ///< +2 after a step that accepted every draft, else -1 (at least 1); kept by the decoder across calls
  heuristic_transient,  ///< as heuristic, from num_assistant_tokens again at every call
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
  /// Structured output: every row's new tokens follow this grammar (a GBNF Grammar over the
  /// tokenizer's vocabulary, grammar/token_grammar.hpp), under every strategy; EOS only where the
  /// text is a whole sentence of it, so it needs eos_token_ids. Unset: off.
  std::shared_ptr<const TokenGrammar> grammar;
  /// Wall-clock limit in seconds for the decoding loop; rows still running end with FinishReason::time.
  std::optional<double> max_time;
  /// false: recompute the whole sequence every step (slow reference path).
  bool use_cache = true;
  /// Keep each step's processed scores (GenerationResult::scores, beam_indices in beam search) and
  /// each returned token's score (Hypothesis::token_scores), as transformers' output_scores.
  bool output_scores = false;
  /// Keep each step's raw logits (GenerationResult::logits), as transformers' output_logits.
  bool output_logits = false;
  /// Speculative decoding from the prompt (transformers' prompt lookup): each step drafts up to this
  /// many tokens that followed an earlier occurrence of the newest n-gram, and the model checks them
  /// in one forward. Unset: off. Greedy and sampling only.
  std::optional<int64_t> prompt_lookup_num_tokens;
  /// Prompt lookup: the longest n-gram searched for (then shorter ones).
  int64_t max_matching_ngram_size = 2;
  /// Speculative decoding with a draft model (AssistedDecoder): drafts a step at first.
  int64_t num_assistant_tokens = 20;
  DraftSchedule num_assistant_tokens_schedule = DraftSchedule::constant;
  /// A draft model stops drafting for a step after a draft it gives less than this probability.
  double assistant_confidence_threshold = 0.4;

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

/// Where the value of a numeric option (or each id of a list) must lie.
struct OptionBounds {
  double min = -std::numeric_limits<double>::infinity();
  bool min_open = false;  // min itself is outside
  double max = std::numeric_limits<double>::infinity();
  bool max_open = false;
  bool finite = false;  // nan and +-inf are outside
  size_t max_items = 0;        // lists: at most this many entries (0: any number)
  size_t max_item_length = 0;  // lists of lists or strings: each entry at most this long (0: any length)

  bool holds(double v) const {
    if (finite && !std::isfinite(v)) return false;
    return (min_open ? v > min : v >= min) && (max_open ? v < max : v <= max);
  }
  /// "must be >= 1", "must be in (0, 1]", "must be a finite number > 0", ...
  std::string rule() const {
    const bool has_min = std::isfinite(min), has_max = std::isfinite(max);
    if (has_min && has_max)
      return fmt::format("must be in {}{}, {}{}", min_open ? '(' : '[', min, max, max_open ? ')' : ']');
    const std::string bound = has_min ? fmt::format("{} {}", min_open ? ">" : ">=", min)
                              : has_max ? fmt::format("{} {}", max_open ? "<" : "<=", max) : "";
    if (finite) return bound.empty() ? "must be finite" : "must be a finite number " + bound;
    return "must be " + bound;
  }
};

/// A member of GenerationConfig, of one of the types options have.
using OptionField =
    std::variant<int64_t GenerationConfig::*, std::optional<int64_t> GenerationConfig::*, double GenerationConfig::*,
                 std::optional<double> GenerationConfig::*, bool GenerationConfig::*, std::optional<uint64_t> GenerationConfig::*,
                 EarlyStopping GenerationConfig::*, DraftSchedule GenerationConfig::*, std::vector<int64_t> GenerationConfig::*,
                 std::vector<std::vector<int64_t>> GenerationConfig::*, std::vector<std::string> GenerationConfig::*>;

/// One generation option: what validate() checks, what generation_config.json calls it and what
/// the command-line programs' flag is (examples/cli/program_flags.hpp). A new option is a field
/// of GenerationConfig and an entry of generation_options().
struct GenerationOption {
  const char* name;          // the GenerationConfig field, as validate()'s messages name it
  OptionField field;
  const char* help;
  OptionBounds bounds = {};  // numbers, and each id of an id list
  const char* key = nullptr;   // its generation_config.json key where not `name`
  bool transformers = true;    // a key of transformers' generation_config.json (else lmdecode's own)
  const char* flag = nullptr;  // its command-line flag where not --name with dashes; "" for none
  bool flag_sets = true;       // a boolean flag sets the option to this
  bool repeatable = false;     // a list flag given again adds an element (else a comma-separated list)

  const char* json_key() const { return key ? key : name; }
  std::string flag_name() const {
    if (flag) return flag;
    std::string f = std::string("--") + name;
    std::replace(f.begin(), f.end(), '_', '-');
    return f;
  }
};

/// The most drafts a step checks (each costs a position of every row's scores over the vocabulary).
inline constexpr int64_t kMaxDrafts = 128;

/// Every option of GenerationConfig but token_texts and grammar (objects built from the tokenizer, not settings).
inline const std::vector<GenerationOption>& generation_options() {
  using C = GenerationConfig;
  constexpr OptionBounds at_least_0{.min = 0}, at_least_1{.min = 1}, id{.min = 0}, unit_open_closed{.min = 0, .min_open = true, .max = 1};
  static const std::vector<GenerationOption> options = {
      {"max_new_tokens", &C::max_new_tokens, "New tokens to generate at most", at_least_1},
      {"max_length", &C::max_length, "Total length (padded prompt + new tokens), used without max_new_tokens", at_least_1},
      {"min_new_tokens", &C::min_new_tokens, "EOS is banned until this many new tokens", at_least_0},
      {"min_length", &C::min_length, "EOS is banned while the total length is below this", at_least_0},
      {"num_beams", &C::num_beams, "Beams per prompt (1: greedy or sampling)", at_least_1},
      {"length_penalty", &C::length_penalty, "Beam score = sum of log-probs / length ** this", {.finite = true}},
      {"early_stopping", &C::early_stopping, "Beam search stop rule: true, false or never"},
      {"patience", &C::patience, "Beam search keeps round(beams x patience) finished hypotheses and waits for them (1: transformers)",
       {.min = 0, .min_open = true, .max = 64, .finite = true}, nullptr, false},
      {"num_return_sequences", &C::num_return_sequences, "Sequences returned per prompt", at_least_1},
      {"eos_token_ids", &C::eos_token_ids, "EOS ids, comma separated (replaces the checkpoint's)",
       {.min = 0, .max_items = 1024}, "eos_token_id"},
      {"pad_token_id", &C::pad_token_id, "Pad id (default: the first EOS id)", id},
      {"bos_token_id", &C::bos_token_id, "BOS id", id},
      {"repetition_penalty", &C::repetition_penalty, "CTRL repetition penalty (1: off)", {.min = 0, .min_open = true, .finite = true}},
      {"no_repeat_ngram_size", &C::no_repeat_ngram_size, "Ban repeating n-grams of this size (0: off)", at_least_0},
      {"bad_words_ids", &C::bad_words_ids, "A banned token sequence, comma separated; repeatable",
       {.min = 0, .max_items = 65536, .max_item_length = 1024}, nullptr, true, "--bad-words", true, true},
      {"suppress_tokens", &C::suppress_tokens, "Tokens never produced, comma separated", {.min = 0, .max_items = 1 << 20}},
      {"begin_suppress_tokens", &C::begin_suppress_tokens, "Tokens not produced first, comma separated",
       {.min = 0, .max_items = 1 << 20}},
      {"forced_bos_token_id", &C::forced_bos_token_id, "Token forced after a one-token input", id},
      {"forced_eos_token_id", &C::forced_eos_token_id, "Token forced last at the length limit", id},
      {"do_sample", &C::do_sample, "Sample instead of taking the arg max"},
      {"temperature", &C::temperature, "Sampling temperature (> 0 when sampling)", {.min = 0, .finite = true}},
      {"top_k", &C::top_k, "Sampling: keep the k best tokens (0: off)", at_least_0},
      {"top_p", &C::top_p, "Sampling: nucleus mass in (0, 1]", unit_open_closed},
      {"min_p", &C::min_p, "Sampling: drop tokens below min-p x the best probability", {.min = 0, .max = 1}},
      {"typical_p", &C::typical_p, "Sampling: locally typical mass in (0, 1] (1: off)", unit_open_closed},
      {"seed", &C::seed, "Sampling seed (0 to 2^64 - 1)"},
      {"stop_sequences", &C::stop_sequences, "A stop token sequence, comma separated; repeatable",
       {.min = 0, .max_items = 1024, .max_item_length = 1024}, nullptr, false, "--stop-sequence", true, true},
      {"stop_strings", &C::stop_strings,
       "A stop string (transformers' stop_strings: ends a row once it ends in the newest token's text; needs the "
       "tokenizer); repeatable", {.max_items = 128, .max_item_length = 512}, nullptr, true, "--stop-string", true, true},
      {"max_time", &C::max_time, "Wall-clock limit in seconds", {.min = 0, .min_open = true}},
      {"use_cache", &C::use_cache, "Recompute the whole sequence every step (slow reference path)", {}, nullptr, true,
       "--no-cache", false},
      {"output_scores", &C::output_scores, "Keep each new token's transformers transition score"},
      {"output_logits", &C::output_logits, "Keep each step's raw logits", {}, nullptr, true, ""},
      {"prompt_lookup_num_tokens", &C::prompt_lookup_num_tokens, "Speculative decoding: draft up to this many tokens a "
       "step from earlier text (prompt lookup)", {.min = 1, .max = kMaxDrafts}},
      {"max_matching_ngram_size", &C::max_matching_ngram_size, "Prompt lookup: the longest n-gram matched",
       {.min = 1, .max = kMaxDrafts}},
      {"num_assistant_tokens", &C::num_assistant_tokens, "Draft model: drafts a step at first", {.min = 1, .max = kMaxDrafts}},
      {"num_assistant_tokens_schedule", &C::num_assistant_tokens_schedule,
       "Draft model: constant, heuristic or heuristic_transient"},
      {"assistant_confidence_threshold", &C::assistant_confidence_threshold,
       "Draft model: stop drafting after a draft less likely than this", {.min = 0, .max = 1}},
  };
  return options;
}

namespace detail {

inline void check_count(const GenerationOption& o, size_t count) {
  check(o.bounds.max_items == 0 || count <= o.bounds.max_items, "{} holds {} entries, more than the {} allowed", o.name,
        count, o.bounds.max_items);
}

inline void check_length(const GenerationOption& o, size_t i, size_t length, const char* unit) {
  check(o.bounds.max_item_length == 0 || length <= o.bounds.max_item_length, "{}[{}] is {} {} long, over the {} allowed",
        o.name, i, length, unit, o.bounds.max_item_length);
}

/// One option's own rule (its bounds, ids >= 0, no empty entries); `value` is the field's value.
template <class T>
void check_option(const GenerationOption& o, const T& value) {
  auto in_bounds = [&](double v, const auto& shown) {
    check(o.bounds.holds(v), "{} {} (got {})", o.name, o.bounds.rule(), shown);
  };
  if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double>) {
    in_bounds(static_cast<double>(value), value);
  } else if constexpr (std::is_same_v<T, std::optional<int64_t>> || std::is_same_v<T, std::optional<double>>) {
    if (value) in_bounds(static_cast<double>(*value), *value);
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    check_count(o, value.size());
    for (int64_t id : value) in_bounds(static_cast<double>(id), id);
  } else if constexpr (std::is_same_v<T, std::vector<std::vector<int64_t>>>) {
    check_count(o, value.size());
    for (size_t i = 0; i < value.size(); ++i) {
      check(!value[i].empty(), "{}[{}] is empty", o.name, i);
      check_length(o, i, value[i].size(), "token ids");
      for (int64_t id : value[i]) check(o.bounds.holds(static_cast<double>(id)), "{}[{}] holds a negative token id ({})", o.name, i, id);
    }
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    check_count(o, value.size());
    for (size_t i = 0; i < value.size(); ++i) {
      check(!value[i].empty(), "{}[{}] is empty", o.name, i);
      check_length(o, i, value[i].size(), "bytes");
    }
  }
}

}  // namespace detail

/// Rejects out-of-range values (each option's rule in generation_options()) and inconsistent ones
/// with a message naming the field and the rule.
inline void validate(const GenerationConfig& c) {
  using detail::check;
  for (const auto& option : generation_options())
    std::visit([&](auto member) { detail::check_option(option, c.*member); }, option.field);
  if (c.max_new_tokens)
    check(*c.max_new_tokens >= c.min_new_tokens, "max_new_tokens ({}) must be >= min_new_tokens ({})",
          *c.max_new_tokens, c.min_new_tokens);
  if (c.max_length && !c.max_new_tokens)
    check(*c.max_length >= c.min_length, "max_length ({}) must be >= min_length ({})", *c.max_length, c.min_length);
  if (!c.do_sample)
    check(c.num_return_sequences <= c.num_beams,
          "num_return_sequences ({}) must be <= num_beams ({}) without sampling", c.num_return_sequences,
          c.num_beams);
  if (c.num_beams > 1)
    check(c.finished_hypotheses_kept() >= c.num_return_sequences,
          "beam search keeps round(num_beams x patience) = round({} x {}) = {} finished hypotheses, fewer than "
          "num_return_sequences ({})", c.num_beams, c.patience, c.finished_hypotheses_kept(), c.num_return_sequences);
  check(c.num_beams == 1 || !c.prompt_lookup_num_tokens,
        "prompt_lookup_num_tokens (speculative decoding) works with greedy search and sampling, not beam search (num_beams {})",
        c.num_beams);
  check(!c.grammar || !c.eos_token_ids.empty(),
        "a grammar needs eos_token_ids: a row ends where its text is a whole sentence of the grammar by taking EOS");
  check(!c.do_sample || c.temperature > 0.0,
        "temperature must be > 0 when sampling (got {}); for the arg max use do_sample = false", c.temperature);
}

}  // namespace lmdecode
