#pragma once
// The fields of a Hugging Face config.json that the reference architectures need, with HF's defaults.

#include <filesystem>
#include <string>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/io/generation_config_file.hpp"
#include "lmdecode/detail/json_fields.hpp"

namespace lmdecode {

struct ModelConfig {
  std::string architecture;  ///< architectures[0], e.g. "Qwen2ForCausalLM"
  std::string model_type;    ///< e.g. "qwen2", "gpt2"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;
  double norm_eps = 1e-6;  ///< rms_norm_eps (Qwen2) or layer_norm_epsilon (GPT-2)
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id;
};

namespace detail {
inline void require_positive(const JsonFields& f, const char* key, int64_t value) {
  check(value >= 1, "{}: \"{}\" must be >= 1 (got {})", f.source(), key, value);
}

/// Rejects sliding-window attention, which the reference models do not apply. As HF Qwen2 decides it:
/// explicit `layer_types` name each layer's attention; without them, layers from `max_window_layers`
/// (default 28) on slide when `use_sliding_window` is set with a `sliding_window`.
inline void require_full_attention(const JsonFields& f, int64_t num_layers) {
  if (auto types = f.string_list("layer_types")) {
    for (size_t i = 0; i < types->size(); ++i)
      check((*types)[i] == "full_attention", "{}: layer {} has \"{}\": only full attention is supported", f.source(), i,
            (*types)[i]);
    return;
  }
  if (!f.boolean("use_sliding_window").value_or(false) || !f.has("sliding_window")) return;
  const int64_t first_sliding = f.integer("max_window_layers").value_or(28);
  check(first_sliding >= num_layers,
        "{}: use_sliding_window makes layers {} to {} slide (sliding_window {}): only full attention is supported",
        f.source(), first_sliding, num_layers - 1, f.raw("sliding_window").dump());
}
}  // namespace detail

/// Reads config.json. Missing required sizes and non-positive values are errors naming the key.
inline ModelConfig model_config_from_json(const nlohmann::json& json, const std::string& source = "config.json") {
  detail::JsonFields f(json, source);
  ModelConfig c;
  if (f.has("architectures")) {
    const auto& a = f.raw("architectures");
    if (!a.is_array() || a.empty() || !a[0].is_string()) f.type_error("architectures", "a list of strings", a);
    c.architecture = a[0].get<std::string>();
  }
  c.model_type = f.string("model_type").value_or("");
  auto required = [&](std::initializer_list<const char*> keys) -> int64_t {
    for (const char* k : keys)
      if (auto v = f.integer(k)) {
        detail::require_positive(f, k, *v);
        return *v;
      }
    throw invalid_argument(fmt::format("{}: missing \"{}\"", source, *keys.begin()));
  };
  const bool gpt2 = c.model_type == "gpt2" || c.architecture == "GPT2LMHeadModel";
  c.vocab_size = required({"vocab_size"});
  if (gpt2) {
    c.hidden_size = required({"n_embd", "hidden_size"});
    c.num_layers = required({"n_layer", "num_hidden_layers"});
    c.num_heads = required({"n_head", "num_attention_heads"});
    c.num_kv_heads = c.num_heads;
    c.intermediate_size = f.integer("n_inner").value_or(4 * c.hidden_size);
    c.max_position_embeddings = required({"n_positions", "max_position_embeddings"});
    c.norm_eps = f.number("layer_norm_epsilon").value_or(1e-5);
    c.tie_word_embeddings = f.boolean("tie_word_embeddings").value_or(true);
    if (auto act = f.string("activation_function"))
      detail::check(*act == "gelu_new" || *act == "gelu_pytorch_tanh",
                    "{}: activation_function \"{}\" is not supported (gelu_new, gelu_pytorch_tanh)", source, *act);
    // Other scalings of the attention scores than HF's default 1 / sqrt(head_dim).
    detail::check(f.boolean("scale_attn_weights").value_or(true), "{}: scale_attn_weights false is not supported", source);
    detail::check(!f.boolean("scale_attn_by_inverse_layer_idx").value_or(false),
                  "{}: scale_attn_by_inverse_layer_idx true is not supported", source);
  } else {
    c.hidden_size = required({"hidden_size"});
    c.num_layers = required({"num_hidden_layers"});
    c.num_heads = required({"num_attention_heads"});
    c.num_kv_heads = f.integer("num_key_value_heads").value_or(c.num_heads);
    c.intermediate_size = required({"intermediate_size"});
    c.max_position_embeddings = f.integer("max_position_embeddings").value_or(32768);
    c.norm_eps = f.number("rms_norm_eps").value_or(1e-6);
    c.tie_word_embeddings = f.boolean("tie_word_embeddings").value_or(false);
    if (auto theta = f.number("rope_theta")) {
      c.rope_theta = *theta;
    } else if (f.has("rope_parameters")) {
      detail::JsonFields rope(f.raw("rope_parameters"), source + " rope_parameters");
      c.rope_theta = rope.number("rope_theta").value_or(10000.0);
      if (auto type = rope.string("rope_type"))
        detail::check(*type == "default", "{}: rope_type \"{}\" is not supported (default)", source, *type);
    }
    if (f.has("rope_scaling")) {
      detail::JsonFields scaling(f.raw("rope_scaling"), source + " rope_scaling");
      auto type = scaling.string("rope_type").value_or(scaling.string("type").value_or("default"));
      detail::check(type == "default", "{}: rope_scaling type \"{}\" is not supported (default)", source, type);
    }
    detail::check(c.rope_theta > 0, "{}: rope_theta must be > 0 (got {})", source, c.rope_theta);
    if (auto act = f.string("hidden_act"))
      detail::check(*act == "silu" || *act == "swish", "{}: hidden_act \"{}\" is not supported (silu)", source, *act);
    // Llama's biases on o_proj (attention_bias also biases q/k/v) and on the MLP projections.
    for (const char* key : {"attention_bias", "mlp_bias"})
      detail::check(!f.boolean(key).value_or(false), "{}: {} true is not supported", source, key);
    detail::require_full_attention(f, c.num_layers);
  }
  detail::require_positive(f, "num_key_value_heads", c.num_kv_heads);
  detail::require_positive(f, "intermediate_size", c.intermediate_size);
  detail::check(c.hidden_size % c.num_heads == 0, "{}: hidden size {} is not a multiple of the {} heads", source,
                c.hidden_size, c.num_heads);
  detail::check(c.num_heads % c.num_kv_heads == 0, "{}: {} attention heads are not a multiple of {} key/value heads",
                source, c.num_heads, c.num_kv_heads);
  c.head_dim = f.integer("head_dim").value_or(c.hidden_size / c.num_heads);
  detail::require_positive(f, "head_dim", c.head_dim);
  detail::check(c.norm_eps > 0, "{}: the norm epsilon must be > 0 (got {})", source, c.norm_eps);
  if (auto eos = f.integer_list("eos_token_id")) c.eos_token_ids = *eos;
  c.pad_token_id = f.integer("pad_token_id");
  c.bos_token_id = f.integer("bos_token_id");
  return c;
}

inline ModelConfig load_model_config(const std::filesystem::path& path) {
  return model_config_from_json(detail::read_json_file(path), path.string());
}

/// The generation defaults of a checkpoint folder: the model config's special tokens, overlaid by
/// generation_config.json where present (HF merges them the same way).
inline GenerationConfig load_checkpoint_generation_config(const std::filesystem::path& folder,
                                                          const ModelConfig& model) {
  GenerationConfig base;
  base.eos_token_ids = model.eos_token_ids;
  base.pad_token_id = model.pad_token_id;
  base.bos_token_id = model.bos_token_id;
  const auto path = folder / "generation_config.json";
  if (!std::filesystem::exists(path)) return base;
  return load_generation_config(path, base);
}

}  // namespace lmdecode
