#pragma once
// The fields of a Hugging Face config.json that the reference architectures need, with HF's defaults.

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "lmdecode/config.hpp"
#include "lmdecode/io/generation_config_file.hpp"
#include "lmdecode/detail/json_fields.hpp"

namespace lmdecode {

/// How the rotary frequencies are scaled (HF rope_type): "default", "linear" (inv_freq / factor) or
/// "llama3" (Llama 3.1's: long wavelengths / factor, short ones kept, the band between smoothed).
struct RopeScaling {
  std::string type = "default";
  double factor = 1.0;            ///< linear and llama3
  double low_freq_factor = 1.0;   ///< llama3
  double high_freq_factor = 4.0;  ///< llama3
  int64_t original_max_position_embeddings = 0;  ///< llama3: the pretraining context
};

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
  RopeScaling rope_scaling;
  int64_t rotary_dim = 0;  ///< the leading dimensions of each head that rotate (Phi-3's partial_rotary_factor); 0: head_dim
  bool tie_word_embeddings = false;
  // Rotary decoders (Llama, Qwen2, Qwen3): which projections carry biases, and Qwen3's per-head
  // RMSNorm of queries and keys before the rotation.
  bool qkv_bias = false;  ///< q/k/v biases: Qwen2 always; Llama and Qwen3 with attention_bias
  bool o_bias = false;    ///< o_proj bias: Llama and Qwen3 with attention_bias
  bool mlp_bias = false;  ///< gate/up/down biases: Llama with mlp_bias
  bool qk_norm = false;   ///< Qwen3: q_norm and k_norm over each head
  bool fused_projections = false;  ///< Phi-3: qkv_proj and gate_up_proj stored as one weight each
  /// Sliding-window attention: a query at position i sees keys j with i - window < j <= i, on the
  /// layers `sliding_layers` marks (empty: none slides; then sliding_window is 0).
  int64_t sliding_window = 0;
  std::vector<bool> sliding_layers;

  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id;
};

namespace detail {
inline void require_positive(const JsonFields& f, const char* key, int64_t value) {
  check(value >= 1, "{}: \"{}\" must be >= 1 (got {})", f.source(), key, value);
}

/// Which layers attend through a sliding window, as transformers decides it. Mistral: every layer
/// while sliding_window is set (absent: its default 4096; null: none), layer_types ignored; Phi-3 the
/// same with no default. Qwen2 and
/// Qwen3: the layers layer_types names "sliding_attention", or without layer_types, when
/// use_sliding_window is set, those from max_window_layers (default 28) on. Llama: none.
inline void read_attention_windows(const JsonFields& f, ModelConfig& c) {
  const bool mistral = c.model_type == "mistral" || c.architecture == "MistralForCausalLM";
  const bool qwen = c.model_type == "qwen2" || c.architecture == "Qwen2ForCausalLM" || c.model_type == "qwen3" ||
                    c.architecture == "Qwen3ForCausalLM";
  const bool phi3 = c.model_type == "phi3" || c.architecture == "Phi3ForCausalLM";
  if (!mistral && !qwen && !phi3) return;
  std::optional<int64_t> window;
  if (phi3) window = f.integer("sliding_window");
  else if (mistral || f.boolean("use_sliding_window").value_or(false))
    window = f.present("sliding_window") ? f.integer("sliding_window") : std::optional<int64_t>(4096);
  std::vector<bool> slides(static_cast<size_t>(c.num_layers), false);
  const auto types = qwen ? f.string_list("layer_types") : std::nullopt;
  if (types) {
    check(static_cast<int64_t>(types->size()) == c.num_layers, "{}: layer_types has {} entries for {} layers",
          f.source(), types->size(), c.num_layers);
    for (size_t i = 0; i < types->size(); ++i) {
      const auto& type = (*types)[i];
      check(type == "full_attention" || type == "sliding_attention",
            "{}: layer {} has \"{}\" (full_attention or sliding_attention)", f.source(), i, type);
      slides[i] = type == "sliding_attention";
    }
  } else if (window) {
    const int64_t first = qwen ? f.integer("max_window_layers").value_or(28) : 0;
    for (int64_t i = std::max<int64_t>(first, 0); i < c.num_layers; ++i) slides[i] = true;
  }
  if (std::find(slides.begin(), slides.end(), true) == slides.end()) return;
  check(window.has_value(), "{}: layer_types names sliding_attention layers but sliding_window is not set", f.source());
  check(*window >= 1, "{}: sliding_window must be >= 1 (got {})", f.source(), *window);
  c.sliding_window = *window;
  c.sliding_layers = std::move(slides);
}
}  // namespace detail

namespace detail {

/// rope_theta and the frequency scaling, from the top level (rope_theta, rope_scaling: transformers
/// 4.x) or rope_parameters (5.x). Types other than default, linear and llama3 are errors naming them.
inline void read_rotary(const JsonFields& f, ModelConfig& c) {
  const char* key = f.has("rope_parameters") ? "rope_parameters" : f.has("rope_scaling") ? "rope_scaling" : nullptr;
  if (auto theta = f.number("rope_theta")) c.rope_theta = *theta;
  if (key && !f.raw(key).is_null()) {
    JsonFields rope(f.raw(key), f.source() + " " + key);
    if (auto theta = rope.number("rope_theta")) c.rope_theta = *theta;
    auto& s = c.rope_scaling;
    s.type = rope.string("rope_type").value_or(rope.string("type").value_or("default"));
    check(s.type == "default" || s.type == "linear" || s.type == "llama3",
          "{}: rope_type \"{}\" is not supported (default, linear, llama3)", rope.source(), s.type);
    if (s.type != "default") {
      s.factor = rope.number("factor").value_or(0.0);
      check(s.factor > 0, "{}: factor must be > 0 for rope_type {} (got {})", rope.source(), s.type, s.factor);
    }
    if (s.type == "llama3") {
      s.low_freq_factor = rope.number("low_freq_factor").value_or(s.low_freq_factor);
      s.high_freq_factor = rope.number("high_freq_factor").value_or(s.high_freq_factor);
      check(s.low_freq_factor > 0 && s.high_freq_factor > s.low_freq_factor,
            "{}: llama3 needs 0 < low_freq_factor < high_freq_factor (got {} and {})", rope.source(),
            s.low_freq_factor, s.high_freq_factor);
      // As transformers' standardize_rope_params: a top-level value first, then the rope dict's,
      // then max_position_embeddings.
      s.original_max_position_embeddings = f.integer("original_max_position_embeddings")
                                               .value_or(rope.integer("original_max_position_embeddings")
                                                             .value_or(c.max_position_embeddings));
      check(s.original_max_position_embeddings >= 1, "{}: original_max_position_embeddings must be >= 1 (got {})",
            rope.source(), s.original_max_position_embeddings);
    }
  }
  check(c.rope_theta > 0, "{}: rope_theta must be > 0 (got {})", f.source(), c.rope_theta);
}

/// Phi-3's partial_rotary_factor (at the top or in rope_parameters): the heads' first
/// int(head_dim x factor) dimensions rotate. Other families' modules rotate the whole head.
inline void read_rotary_dim(const JsonFields& f, ModelConfig& c, bool phi3) {
  std::optional<double> factor = f.number("partial_rotary_factor");
  if (f.has("rope_parameters") && f.raw("rope_parameters").is_object()) {
    JsonFields rope(f.raw("rope_parameters"), f.source() + " rope_parameters");
    if (auto inner = rope.number("partial_rotary_factor")) factor = inner;
  }
  const double value = factor.value_or(1.0);
  check(phi3 || value == 1.0, "{}: partial_rotary_factor {} is not supported for this family (1.0)", f.source(), value);
  check(value > 0.0 && value <= 1.0, "{}: partial_rotary_factor must be in (0, 1] (got {})", f.source(), value);
  c.rotary_dim = static_cast<int64_t>(static_cast<double>(c.head_dim) * value);  // Python's int(): truncation
  check(c.rotary_dim >= 2 && c.rotary_dim % 2 == 0, "{}: partial_rotary_factor {} leaves {} rotary dimensions of {} (an "
        "even number >= 2 is needed)", f.source(), value, c.rotary_dim, c.head_dim);
}

/// Which projections have biases and whether queries and keys are normalised, as each family's
/// transformers module decides it: Qwen2 biases q/k/v always and nothing else; Qwen3 follows
/// attention_bias, Llama attention_bias and mlp_bias; Mistral has none (the flags are ignored where
/// the module ignores them).
inline void read_rotary_family(const JsonFields& f, ModelConfig& c) {
  const bool qwen2 = c.model_type == "qwen2" || c.architecture == "Qwen2ForCausalLM";
  const bool qwen3 = c.model_type == "qwen3" || c.architecture == "Qwen3ForCausalLM";
  const bool mistral = c.model_type == "mistral" || c.architecture == "MistralForCausalLM";
  const bool phi3 = c.model_type == "phi3" || c.architecture == "Phi3ForCausalLM";
  const bool attention_bias = !mistral && !phi3 && f.boolean("attention_bias").value_or(false);
  c.qkv_bias = qwen2 || attention_bias;
  c.o_bias = !qwen2 && attention_bias;
  c.mlp_bias = !qwen2 && !qwen3 && !mistral && !phi3 && f.boolean("mlp_bias").value_or(false);
  c.qk_norm = qwen3;
  c.fused_projections = phi3;
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
    detail::read_rotary(f, c);
    detail::read_rotary_family(f, c);
    if (auto act = f.string("hidden_act"))
      detail::check(*act == "silu" || *act == "swish", "{}: hidden_act \"{}\" is not supported (silu)", source, *act);
    detail::read_attention_windows(f, c);
  }
  detail::require_positive(f, "num_key_value_heads", c.num_kv_heads);
  detail::require_positive(f, "intermediate_size", c.intermediate_size);
  detail::check(c.hidden_size % c.num_heads == 0, "{}: hidden size {} is not a multiple of the {} heads", source,
                c.hidden_size, c.num_heads);
  detail::check(c.num_heads % c.num_kv_heads == 0, "{}: {} attention heads are not a multiple of {} key/value heads",
                source, c.num_heads, c.num_kv_heads);
  c.head_dim = f.integer("head_dim").value_or(c.hidden_size / c.num_heads);
  detail::require_positive(f, "head_dim", c.head_dim);
  if (!gpt2) detail::read_rotary_dim(f, c, c.fused_projections);  // Phi-3 alone has fused projections
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
