#pragma once
// Loading GenerationConfig from a Hugging Face generation_config.json.

#include <filesystem>
#include <string>
#include <utility>

#include "lmdecode/config.hpp"
#include "lmdecode/detail/json_fields.hpp"

namespace lmdecode {

namespace detail {

/// transformers' generation options that change the tokens but that lmdecode does not implement, each
/// with the value that leaves decoding as it is (null: only leaving it out or null does). Ignoring
/// one set to anything else would decode differently from transformers without a word.
inline void reject_unimplemented_generation_options(const JsonFields& f) {
  const std::pair<const char*, nlohmann::json> options[] = {
      // warpers and processors
      {"epsilon_cutoff", 0.0}, {"eta_cutoff", 0.0}, {"top_h", nullptr}, {"renormalize_logits", false},
      {"remove_invalid_values", false}, {"exponential_decay_length_penalty", nullptr}, {"sequence_bias", nullptr},
      {"encoder_repetition_penalty", 1.0}, {"encoder_no_repeat_ngram_size", 0}, {"guidance_scale", 1.0},
      {"watermarking_config", nullptr},
      // prompt handling that needs the tokenizer
      {"token_healing", false},
      // other decoding methods (contrastive search, DoLa, group and constrained beam search)
      {"penalty_alpha", 0.0}, {"dola_layers", nullptr}, {"num_beam_groups", 1}, {"diversity_penalty", 0.0},
      {"constraints", nullptr}, {"force_words_ids", nullptr}};
  for (const auto& [key, neutral] : options) {
    if (!f.has(key)) continue;
    const auto& value = f.raw(key);
    if (value == neutral || ((value.is_array() || value.is_object()) && value.empty())) continue;
    throw invalid_argument(fmt::format(
        "{}: \"{}\": {} changes decoding in transformers and is not implemented here; {} to decode without it",
        f.source(), key, value.dump(),
        neutral.is_null() ? std::string("remove it") : fmt::format("remove it or set it to {}", neutral.dump())));
  }
}

}  // namespace detail

/// Overlays the HF generation-config keys found in `json` on `base`. Unknown keys are ignored, null
/// means "unset"; a key of the wrong type throws invalid_argument naming it, and so does an option
/// that transformers would apply but lmdecode does not implement. The result is validated.
inline GenerationConfig generation_config_from_json(const nlohmann::json& json, GenerationConfig base = {},
                                                    const std::string& source = "generation config") {
  detail::JsonFields f(json, source);
  detail::reject_unimplemented_generation_options(f);
  if (auto v = f.integer("max_new_tokens")) base.max_new_tokens = *v;
  if (auto v = f.integer("max_length")) base.max_length = *v;
  if (auto v = f.integer("min_new_tokens")) base.min_new_tokens = *v;
  if (auto v = f.integer("min_length")) base.min_length = *v;
  if (auto v = f.integer("num_beams")) base.num_beams = *v;
  if (auto v = f.number("length_penalty")) base.length_penalty = *v;
  if (f.has("early_stopping")) {
    const auto& v = f.raw("early_stopping");
    if (v.is_boolean())
      base.early_stopping = v.get<bool>() ? EarlyStopping::on_full : EarlyStopping::heuristic;
    else if (v.is_string() && v.get<std::string>() == "never")
      base.early_stopping = EarlyStopping::never;
    else
      f.type_error("early_stopping", "true, false or \"never\"", v);
  }
  if (auto v = f.integer("num_return_sequences")) base.num_return_sequences = *v;
  if (auto v = f.integer_list("eos_token_id")) base.eos_token_ids = *v;
  if (auto v = f.integer("pad_token_id")) base.pad_token_id = *v;
  if (auto v = f.integer("bos_token_id")) base.bos_token_id = *v;
  if (auto v = f.number("repetition_penalty")) base.repetition_penalty = *v;
  if (auto v = f.integer("no_repeat_ngram_size")) base.no_repeat_ngram_size = *v;
  if (auto v = f.integer_lists("bad_words_ids")) base.bad_words_ids = *v;
  if (auto v = f.integer_list("suppress_tokens")) base.suppress_tokens = *v;
  if (auto v = f.integer_list("begin_suppress_tokens")) base.begin_suppress_tokens = *v;
  if (auto v = f.integer("forced_bos_token_id")) base.forced_bos_token_id = *v;
  if (auto v = f.integer("forced_eos_token_id")) base.forced_eos_token_id = *v;
  if (auto v = f.number("min_p")) base.min_p = *v;
  if (auto v = f.number("typical_p")) base.typical_p = *v;
  if (auto v = f.number("max_time")) base.max_time = *v;
  if (auto v = f.boolean("do_sample")) base.do_sample = *v;
  if (auto v = f.number("temperature")) base.temperature = *v;
  if (auto v = f.integer("top_k")) base.top_k = *v;
  if (auto v = f.number("top_p")) base.top_p = *v;
  if (auto v = f.integer("seed")) base.seed = static_cast<uint64_t>(*v);
  if (f.has("stop_strings")) {  // a string or a list of strings
    const auto& v = f.raw("stop_strings");
    if (v.is_string()) base.stop_strings = {v.get<std::string>()};
    else if (auto list = f.string_list("stop_strings")) base.stop_strings = *list;
  }
  if (auto v = f.boolean("use_cache")) base.use_cache = *v;
  if (auto v = f.boolean("output_scores")) base.output_scores = *v;
  if (auto v = f.boolean("output_logits")) base.output_logits = *v;
  try {
    validate(base);
  } catch (const invalid_argument& e) {
    // Re-thrown with the source named; the inner message's own "lmdecode: " prefix is dropped.
    const std::string_view inner(e.what());
    throw invalid_argument(fmt::format("{}: {}", source, inner.substr(inner.find(": ") + 2)));
  }
  return base;
}

/// Reads a generation_config.json file (see generation_config_from_json).
inline GenerationConfig load_generation_config(const std::filesystem::path& path, GenerationConfig base = {}) {
  return generation_config_from_json(detail::read_json_file(path), std::move(base), path.string());
}

}  // namespace lmdecode
