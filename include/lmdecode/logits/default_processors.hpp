#pragma once

#include "lmdecode/config.hpp"
#include "lmdecode/logits/bad_words.hpp"
#include "lmdecode/logits/grammar_processor.hpp"
#include "lmdecode/logits/min_new_tokens.hpp"
#include "lmdecode/logits/no_repeat_ngram.hpp"
#include "lmdecode/logits/processor.hpp"
#include "lmdecode/logits/repetition_penalty.hpp"
#include "lmdecode/logits/sampling_warpers.hpp"
#include "lmdecode/logits/suppress_tokens.hpp"

namespace lmdecode {

/// The processors `config` enables for a padded prompt of `prompt_length` tokens, in transformers'
/// order (DECODING_RULES.md §4): penalties and bans, then the caller's own processors, then the
/// grammar (before the warpers, so that top-k and top-p keep allowed tokens), then (only when
/// sampling) the warpers temperature, top-k, top-p, min-p, typical-p.
inline LogitsProcessorList make_processors(const GenerationConfig& config, int64_t prompt_length,
                                           const LogitsProcessorList& user_processors = {}) {
  LogitsProcessorList list;
  if (config.repetition_penalty != 1.0) list.add(std::make_shared<RepetitionPenalty>(config.repetition_penalty));
  if (config.no_repeat_ngram_size > 0) list.add(std::make_shared<NoRepeatNGram>(config.no_repeat_ngram_size));
  if (!config.bad_words_ids.empty()) list.add(std::make_shared<NoBadWords>(config.bad_words_ids, config.eos_token_ids));
  const int64_t min_new = config.resolved_min_new_tokens(prompt_length);
  if (min_new > 0 && !config.eos_token_ids.empty())
    list.add(std::make_shared<MinNewTokens>(prompt_length, min_new, config.eos_token_ids));
  if (config.forced_bos_token_id)
    list.add(std::make_shared<ForceTokens>(std::vector<int64_t>{*config.forced_bos_token_id}, 1, "forced_bos_token_id"));
  if (config.forced_eos_token_id) {
    const int64_t max_length = prompt_length + config.resolved_max_new_tokens(prompt_length);
    list.add(std::make_shared<ForceTokens>(std::vector<int64_t>{*config.forced_eos_token_id}, max_length - 1,
                                           "forced_eos_token_id"));
  }
  if (!config.suppress_tokens.empty()) list.add(std::make_shared<SuppressTokens>(config.suppress_tokens));
  if (!config.begin_suppress_tokens.empty())
    list.add(std::make_shared<SuppressTokens>(config.begin_suppress_tokens, prompt_length));
  if (!user_processors.empty()) list.add(std::make_shared<LogitsProcessorList>(user_processors));
  if (config.grammar) list.add(std::make_shared<GrammarProcessor>(config.grammar, prompt_length, config.eos_token_ids));
  if (config.do_sample) {
    const int64_t keep = config.num_beams > 1 ? 2 : 1;
    if (config.temperature != 1.0) list.add(std::make_shared<Temperature>(config.temperature));
    if (config.top_k > 0) list.add(std::make_shared<TopK>(config.top_k, keep));
    if (config.top_p < 1.0) list.add(std::make_shared<TopP>(config.top_p, keep));
    if (config.min_p) list.add(std::make_shared<MinP>(*config.min_p, keep));
    if (config.typical_p < 1.0) list.add(std::make_shared<TypicalP>(config.typical_p, keep));
  }
  return list;
}

}  // namespace lmdecode
