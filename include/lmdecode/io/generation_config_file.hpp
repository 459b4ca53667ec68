#pragma once
// Loading GenerationConfig from a Hugging Face generation_config.json.

#include <filesystem>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

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

namespace detail {

/// Sets `value` from the JSON field `key` of `f`, as an option of that type is written there.
template <class T>
void read_option(const JsonFields& f, const char* key, T& value) {
  if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, std::optional<int64_t>>) {
    if (auto v = f.integer(key)) value = *v;
  } else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, std::optional<double>>) {
    if (auto v = f.number(key)) value = *v;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (auto v = f.boolean(key)) value = *v;
  } else if constexpr (std::is_same_v<T, std::optional<uint64_t>>) {  // a seed: any unsigned 64-bit integer
    if (!f.has(key)) return;
    const auto& v = f.raw(key);
    if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
      f.type_error(key, "an integer from 0 to 2^64 - 1", v);
    value = v.get<uint64_t>();
  } else if constexpr (std::is_same_v<T, EarlyStopping>) {
    if (!f.has(key)) return;
    const auto& v = f.raw(key);
    if (v.is_boolean()) value = v.get<bool>() ? EarlyStopping::on_full : EarlyStopping::heuristic;
    else if (v.is_string() && v.get<std::string>() == "never") value = EarlyStopping::never;
    else f.type_error(key, "true, false or \"never\"", v);
  } else if constexpr (std::is_same_v<T, DraftSchedule>) {
    if (!f.has(key)) return;
    const auto& v = f.raw(key);
    const std::string name = v.is_string() ? v.get<std::string>() : "";
    if (name == "constant") value = DraftSchedule::constant;
    else if (name == "heuristic") value = DraftSchedule::heuristic;
    else if (name == "heuristic_transient") value = DraftSchedule::heuristic_transient;
    else f.type_error(key, "\"constant\", \"heuristic\" or \"heuristic_transient\"", v);
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    if (auto v = f.integer_list(key)) value = *v;
  } else if constexpr (std::is_same_v<T, std::vector<std::vector<int64_t>>>) {
    if (auto v = f.integer_lists(key)) value = *v;
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {  // a string or a list of strings
    if (f.has(key) && f.raw(key).is_string()) value = {f.raw(key).get<std::string>()};
    else if (auto v = f.string_list(key)) value = *v;
  }
}

/// Overlays the options found in `json` on `base`: transformers' keys, and with `own_keys` lmdecode's
/// own (patience, stop_sequences) too. The result is validated, with `source` named.
inline GenerationConfig read_generation_options(const nlohmann::json& json, GenerationConfig base, const std::string& source,
                                                bool own_keys) {
  JsonFields f(json, source);
  reject_unimplemented_generation_options(f);
  for (const auto& option : generation_options())
    if (option.transformers || own_keys)
      std::visit([&](auto member) { read_option(f, option.json_key(), base.*member); }, option.field);
  try {
    validate(base);
  } catch (const invalid_argument& e) {
    // Re-thrown with the source named; the inner message's own "lmdecode: " prefix is dropped.
    const std::string_view inner(e.what());
    throw invalid_argument(fmt::format("{}: {}", source, inner.substr(inner.find(": ") + 2)));
  }
  return base;
}

}  // namespace detail

/// Overlays the HF generation-config keys found in `json` on `base` (generation_options() lists
/// them). Unknown keys are ignored, null means "unset"; a key of the wrong type throws
/// invalid_argument naming it, and so does an option that transformers would apply but lmdecode
/// does not implement. The result is validated.
inline GenerationConfig generation_config_from_json(const nlohmann::json& json, GenerationConfig base = {},
                                                    const std::string& source = "generation config") {
  return detail::read_generation_options(json, std::move(base), source, false);
}

/// As generation_config_from_json, and lmdecode's own options too, under their names in
/// generation_options() (patience, stop_sequences): what a program's flags or a request set.
inline GenerationConfig generation_config_overrides(const nlohmann::json& json, GenerationConfig base,
                                                    const std::string& source) {
  return detail::read_generation_options(json, std::move(base), source, true);
}

/// Reads a generation_config.json file (see generation_config_from_json).
inline GenerationConfig load_generation_config(const std::filesystem::path& path, GenerationConfig base = {}) {
  return generation_config_from_json(detail::read_json_file(path), std::move(base), path.string());
}

}  // namespace lmdecode
