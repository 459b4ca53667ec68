#pragma once
// generate(): picks the decoder transformers' generate() would use for `config`
// (HF get_generation_mode): greedy, sampling, beam search or beam sampling, each speculative from
// the prompt with prompt_lookup_num_tokens; with a draft model, AssistedDecoder.
//
// Example:
//   auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
//   auto result = lmdecode::generate(*model, {{1, 2, 3}}, config);

#include "lmdecode/decoders/beam_search.hpp"
#include "lmdecode/decoders/greedy.hpp"
#include "lmdecode/decoders/sampling.hpp"
#include "lmdecode/decoders/speculative.hpp"

namespace lmdecode {

template <CausalLM Model>
GenerationResult generate(Model& model, const std::vector<TokenIds>& prompts, const GenerationConfig& config,
                          const StepCallback& on_step = {}, const LogitsProcessorList& processors = {}) {
  if (config.num_beams > 1) return BeamSearchDecoder<Model>(model, config, processors).generate(prompts, on_step);
  if (config.prompt_lookup_num_tokens) return PromptLookupDecoder<Model>(model, config, processors).generate(prompts, on_step);
  if (config.do_sample) return SamplingDecoder<Model>(model, config, processors).generate(prompts, on_step);
  return GreedyDecoder<Model>(model, config, processors).generate(prompts, on_step);
}

/// Speculative greedy search or sampling with drafts from `draft_model` (AssistedDecoder).
template <CausalLM Model, CausalLM DraftModel>
GenerationResult generate(Model& model, DraftModel& draft_model, const std::vector<TokenIds>& prompts,
                          const GenerationConfig& config, const StepCallback& on_step = {},
                          const LogitsProcessorList& processors = {}) {
  return AssistedDecoder<Model, DraftModel>(model, draft_model, config, processors).generate(prompts, on_step);
}

}  // namespace lmdecode
