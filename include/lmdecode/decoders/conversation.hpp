#pragma once
// Conversation: a multi-turn chat that keeps its KV cache between turns. Each turn gives the whole
// conversation so far as tokens (every message, then the generation prompt); the cache keeps what
// was fed before, so a turn prefills only what follows the longest common prefix of its tokens with
// the cached ones. The reply is what generate() on the whole history gives (greedy or sampling, one
// sequence).
//
// Example:
//   lmdecode::Conversation chat(*model);
//   auto first = chat.reply(tokenizer.encode(template_of({user_1})), config);
//   auto second = chat.reply(tokenizer.encode(template_of({user_1, reply_1, user_2})), config);
//   chat.last_prefill_tokens();  // the tokens of reply_1's end and user_2's turn, not the history

#include <algorithm>
#include <optional>

#include "lmdecode/config.hpp"
#include "lmdecode/decoders/greedy.hpp"
#include "lmdecode/decoders/sampling.hpp"

namespace lmdecode {

template <CausalLM Model>
  requires requires(typename Model::Cache& c) { c.crop(int64_t{0}); }
class Conversation {
 public:
  explicit Conversation(Model& model) : model_(model) {}

  /// The reply to `history`, decoded with `config` (num_beams 1, num_return_sequences 1).
  GenerationResult reply(const TokenIds& history, const GenerationConfig& config, const StepCallback& on_step = {}) {
    detail::check(config.num_beams == 1 && config.num_return_sequences == 1,
                  "a Conversation decodes one sequence (num_beams {}, num_return_sequences {}): greedy or sampling",
                  config.num_beams, config.num_return_sequences);
    detail::check(config.use_cache, "a Conversation keeps the cache: use_cache must be true");
    detail::check(!history.empty(), "a conversation turn needs at least one token");
    // One token at least is fed, for the logits of the first new token.
    const auto common = std::mismatch(cached_.begin(), cached_.end(), history.begin(), history.end()).first - cached_.begin();
    const int64_t keep = std::min<int64_t>(common, static_cast<int64_t>(history.size()) - 1);
    if (!cache_) cache_.emplace(model_.make_cache(1, static_cast<int64_t>(history.size())));
    cache_->crop(keep);
    last_prefill_ = static_cast<int64_t>(history.size()) - keep;
    auto result = config.do_sample ? SamplingDecoder<Model>(model_, config).continue_from(history, *cache_, on_step)
                                   : GreedyDecoder<Model>(model_, config).continue_from(history, *cache_, on_step);
    // The cache now holds the history and every new token but the last.
    cached_ = history;
    const auto& tokens = result.hypotheses[0][0].tokens;
    cached_.insert(cached_.end(), tokens.begin(), tokens.end());
    cached_.resize(static_cast<size_t>(cache_->length()));
    return result;
  }

  /// Forgets everything: the next turn prefills all of its history.
  void reset() {
    cache_.reset();
    cached_.clear();
  }

  /// Tokens the cache holds (the conversation so far, less the last reply's last token).
  int64_t cached_tokens() const { return static_cast<int64_t>(cached_.size()); }
  /// Tokens the last turn's prefill fed: its history past the common prefix with the cache.
  int64_t last_prefill_tokens() const { return last_prefill_; }

 private:
  Model& model_;
  std::optional<typename Model::Cache> cache_;
  TokenIds cached_;  // the tokens whose keys and values the cache holds, in order
  int64_t last_prefill_ = 0;
};

}  // namespace lmdecode
