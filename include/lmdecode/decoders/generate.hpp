#pragma once
// generate(): picks the decoder transformers' generate() would use for `config`
// (HF get_generation_mode): greedy, sampling, beam search or beam sampling.
//
// Example:
//   auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
//   auto result = lmdecode::generate(*model, {{1, 2, 3}}, config);

#include "lmdecode/decoders/beam_search.hpp"
#include "lmdecode/decoders/greedy.hpp"
#include "lmdecode/decoders/sampling.hpp"

namespace lmdecode {

template <CausalLM Model>
GenerationResult generate(Model& model, const std::vector<TokenIds>& prompts, const GenerationConfig& config,
                          const StepCallback& on_step = {}, const LogitsProcessorList& processors = {}) {
  if (config.num_beams > 1) return BeamSearchDecoder<Model>(model, config, processors).generate(prompts, on_step);
  if (config.do_sample) return SamplingDecoder<Model>(model, config, processors).generate(prompts, on_step);
  return GreedyDecoder<Model>(model, config, processors).generate(prompts, on_step);
}

}  // namespace lmdecode
