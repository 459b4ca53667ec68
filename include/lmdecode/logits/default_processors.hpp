#pragma once

#include "lmdecode/config.hpp"
#include "lmdecode/logits/min_new_tokens.hpp"
#include "lmdecode/logits/no_repeat_ngram.hpp"
#include "lmdecode/logits/processor.hpp"
#include "lmdecode/logits/repetition_penalty.hpp"

namespace lmdecode {

/// The processors `config` enables, in HF's order (HF_SEMANTICS §4), for a padded prompt of
/// `prompt_length` tokens, followed by the caller's own processors.
inline LogitsProcessorList make_processors(const GenerationConfig& config, int64_t prompt_length,
                                           const LogitsProcessorList& user_processors = {}) {
  LogitsProcessorList list;
  if (config.repetition_penalty != 1.0) list.add(std::make_shared<RepetitionPenalty>(config.repetition_penalty));
  if (config.no_repeat_ngram_size > 0) list.add(std::make_shared<NoRepeatNGram>(config.no_repeat_ngram_size));
  const int64_t min_new = config.resolved_min_new_tokens(prompt_length);
  if (min_new > 0 && !config.eos_token_ids.empty())
    list.add(std::make_shared<MinNewTokens>(prompt_length, min_new, config.eos_token_ids));
  if (!user_processors.empty()) list.add(std::make_shared<LogitsProcessorList>(user_processors));
  return list;
}

}  // namespace lmdecode
