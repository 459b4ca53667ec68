#pragma once
// The fields of a Hugging Face config.json that the reference architectures need, with HF's defaults.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "lmdecode/config.hpp"
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

/// The model families load_pretrained() builds, known by config.json's architectures[0] or, where
/// that is absent, its model_type (detail::kFamilyNames).
enum class ModelFamily { unknown, gpt2, llama, mistral, phi3, qwen2, qwen3, gemma3 };

/// The MLP's activation (HF hidden_act / hidden_activation): SiLU, or GELU with the tanh approximation.
enum class Activation { silu, gelu_tanh };

struct ModelConfig {
  std::string architecture;  ///< architectures[0], e.g. "Qwen2ForCausalLM"
  std::string model_type;    ///< e.g. "qwen2", "gpt2"
  ModelFamily family = ModelFamily::unknown;
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
  /// Gemma 3: the sliding layers' own rotary base and scaling (rope_parameters.sliding_attention);
  /// 0: the sliding layers rotate as the others.
  double sliding_rope_theta = 0.0;
  RopeScaling sliding_rope_scaling;
  int64_t rotary_dim = 0;  ///< the leading dimensions of each head that rotate (Phi-3's partial_rotary_factor); 0: head_dim
  bool tie_word_embeddings = false;
  // Rotary decoders (Llama, Qwen2, Qwen3): which projections carry biases, and Qwen3's per-head
  // RMSNorm of queries and keys before the rotation.
  bool qkv_bias = false;  ///< q/k/v biases: Qwen2 always; Llama and Qwen3 with attention_bias
  bool o_bias = false;    ///< o_proj bias: Llama and Qwen3 with attention_bias
  bool mlp_bias = false;  ///< gate/up/down biases: Llama with mlp_bias
  bool qk_norm = false;   ///< Qwen3: q_norm and k_norm over each head
  bool fused_projections = false;  ///< Phi-3: qkv_proj and gate_up_proj stored as one weight each
  Activation activation = Activation::silu;
  // Gemma 3: embeddings times sqrt(hidden_size); RMSNorms that multiply by (1 + weight) in float32
  // before the cast back; norms around both the attention and the MLP output ("sandwich"); q.k
  // scaled by query_pre_attn_scalar^-0.5; tanh soft-capping of the logits. (Its config's
  // attn_logit_softcapping is ignored, as transformers' Gemma3Attention ignores it.)
  bool scaled_embeddings = false;
  bool unit_offset_norms = false;
  bool sandwich_norms = false;
  double attention_scale = 0.0;        ///< multiplies q.k; 0: head_dim^-0.5
  double final_logit_softcap = 0;      ///< logits = cap * tanh(logits / cap); 0: none
  /// Sliding-window attention: a query at position i sees keys j with i - window < j <= i, on the
  /// layers `sliding_layers` marks (empty: none slides; then sliding_window is 0).
  int64_t sliding_window = 0;
  std::vector<bool> sliding_layers;

  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id;
};

namespace detail {
struct FamilyName {
  ModelFamily family;
  const char* architecture;
  const char* model_type;
};
inline constexpr FamilyName kFamilyNames[] = {
    {ModelFamily::llama, "LlamaForCausalLM", "llama"},       {ModelFamily::mistral, "MistralForCausalLM", "mistral"},
    {ModelFamily::phi3, "Phi3ForCausalLM", "phi3"},          {ModelFamily::qwen2, "Qwen2ForCausalLM", "qwen2"},
    {ModelFamily::qwen3, "Qwen3ForCausalLM", "qwen3"},       {ModelFamily::gemma3, "Gemma3ForCausalLM", "gemma3_text"},
    {ModelFamily::gpt2, "GPT2LMHeadModel", "gpt2"},
};

/// The family of architectures[0], or without one of model_type; unknown when neither names one.
inline ModelFamily family_of(const std::string& architecture, const std::string& model_type) {
  for (const auto& name : kFamilyNames)
    if (architecture.empty() ? model_type == name.model_type : architecture == name.architecture) return name.family;
  return ModelFamily::unknown;
}

inline void require_positive(const JsonFields& f, const char* key, int64_t value) {
  check(value >= 1, "{}: \"{}\" must be >= 1 (got {})", f.source(), key, value);
}

/// Which layers attend through a sliding window, as transformers decides it. Mistral: every layer
/// while sliding_window is set (absent: its default 4096; null: none), layer_types ignored; Phi-3 the
/// same with no default. Qwen2 and Qwen3: the layers layer_types names "sliding_attention", or
/// without layer_types, when use_sliding_window is set, those from max_window_layers (default 28)
/// on. Gemma 3: layer_types, or without it every layer but each sliding_window_pattern-th (default
/// 6), window 4096 where absent. Llama: none.
inline void read_attention_windows(const JsonFields& f, ModelConfig& c) {
  const bool mistral = c.family == ModelFamily::mistral, phi3 = c.family == ModelFamily::phi3;
  const bool gemma = c.family == ModelFamily::gemma3;
  const bool qwen = c.family == ModelFamily::qwen2 || c.family == ModelFamily::qwen3;
  if (!mistral && !qwen && !phi3 && !gemma) return;
  std::optional<int64_t> window;
  if (phi3) window = f.integer("sliding_window");
  else if (mistral || gemma || f.boolean("use_sliding_window").value_or(false))
    window = f.present("sliding_window") ? f.integer("sliding_window") : std::optional<int64_t>(4096);
  std::vector<bool> slides(static_cast<size_t>(c.num_layers), false);
  const auto types = qwen || gemma ? f.string_list("layer_types") : std::nullopt;
  if (types) {
    check(static_cast<int64_t>(types->size()) == c.num_layers, "{}: layer_types has {} entries for {} layers",
          f.source(), types->size(), c.num_layers);
    for (size_t i = 0; i < types->size(); ++i) {
      const auto& type = (*types)[i];
      check(type == "full_attention" || type == "sliding_attention",
            "{}: layer {} has \"{}\" (full_attention or sliding_attention)", f.source(), i, type);
      slides[i] = type == "sliding_attention";
    }
  } else if (gemma) {
    const int64_t pattern = f.integer("sliding_window_pattern").value_or(6);
    check(pattern >= 1, "{}: sliding_window_pattern must be >= 1 (got {})", f.source(), pattern);
    for (int64_t i = 0; i < c.num_layers; ++i) slides[i] = (i + 1) % pattern != 0;
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

/// One rotary settings dict (rope_parameters, rope_scaling or a layer type's entry of them): its
/// rope_theta where given, and its frequency scaling. Types other than default, linear and llama3 are
/// errors naming them.
inline void read_rope_dict(const JsonFields& rope, const JsonFields& top, const ModelConfig& c, double& theta,
                           RopeScaling& s) {
  if (auto given = rope.number("rope_theta")) theta = *given;
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
          "{}: llama3 needs 0 < low_freq_factor < high_freq_factor (got {} and {})", rope.source(), s.low_freq_factor,
          s.high_freq_factor);
    // As transformers' standardize_rope_params: a top-level value first, then the rope dict's, then
    // max_position_embeddings.
    s.original_max_position_embeddings = top.integer("original_max_position_embeddings")
                                             .value_or(rope.integer("original_max_position_embeddings")
                                                           .value_or(c.max_position_embeddings));
    check(s.original_max_position_embeddings >= 1, "{}: original_max_position_embeddings must be >= 1 (got {})",
          rope.source(), s.original_max_position_embeddings);
  }
  check(theta > 0, "{}: rope_theta must be > 0 (got {})", rope.source(), theta);
}

/// rope_theta and the frequency scaling, from the top level (rope_theta, rope_scaling: transformers
/// 4.x) or rope_parameters (5.x).
inline void read_rotary(const JsonFields& f, ModelConfig& c) {
  const char* key = f.has("rope_parameters") ? "rope_parameters" : f.has("rope_scaling") ? "rope_scaling" : nullptr;
  if (auto theta = f.number("rope_theta")) c.rope_theta = *theta;
  if (key) read_rope_dict(JsonFields(f.raw(key), f.source() + " " + key), f, c, c.rope_theta, c.rope_scaling);
  check(c.rope_theta > 0, "{}: rope_theta must be > 0 (got {})", f.source(), c.rope_theta);
}

/// Gemma 3's two rotary embeddings, as Gemma3TextConfig reads them: rope_parameters holds one dict per
/// layer type (full_attention, sliding_attention); rope_scaling (4.x) updates the full layers'; a
/// missing base is rope_theta's (default 1e6) for the full layers, rope_local_base_freq's (10000)
/// for the sliding ones.
inline void read_gemma_rotary(const JsonFields& f, ModelConfig& c) {
  c.rope_theta = f.number("rope_theta").value_or(1e6);
  c.sliding_rope_theta = f.number("rope_local_base_freq").value_or(10000.0);
  if (f.has("rope_parameters")) {
    JsonFields per_type(f.raw("rope_parameters"), f.source() + " rope_parameters");
    for (const auto& item : f.raw("rope_parameters").items())
      check(item.key() == "full_attention" || item.key() == "sliding_attention",
            "{}: \"{}\" is not a layer type (Gemma 3 has one dict per type: full_attention, sliding_attention)",
            per_type.source(), item.key());
    if (per_type.has("full_attention"))
      read_rope_dict(JsonFields(per_type.raw("full_attention"), per_type.source() + " full_attention"), f, c,
                     c.rope_theta, c.rope_scaling);
    if (per_type.has("sliding_attention"))
      read_rope_dict(JsonFields(per_type.raw("sliding_attention"), per_type.source() + " sliding_attention"), f, c,
                     c.sliding_rope_theta, c.sliding_rope_scaling);
  }
  if (f.has("rope_scaling"))
    read_rope_dict(JsonFields(f.raw("rope_scaling"), f.source() + " rope_scaling"), f, c, c.rope_theta, c.rope_scaling);
  check(c.rope_theta > 0 && c.sliding_rope_theta > 0, "{}: rope_theta and rope_local_base_freq must be > 0 (got {} and {})",
        f.source(), c.rope_theta, c.sliding_rope_theta);
}

/// Phi-3's partial_rotary_factor (at the top or in rope_parameters): the heads' first
/// int(head_dim x factor) dimensions rotate. Other families' modules rotate the whole head.
inline void read_rotary_dim(const JsonFields& f, ModelConfig& c) {
  const bool phi3 = c.family == ModelFamily::phi3;
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
/// transformers module decides it: Qwen2 biases q/k/v always and nothing else; Qwen3 and Gemma 3
/// follow attention_bias, Llama attention_bias and mlp_bias; Mistral and Phi-3 have none (the flags
/// are ignored where the module ignores them).
inline void read_rotary_family(const JsonFields& f, ModelConfig& c) {
  using F = ModelFamily;
  const bool qwen2 = c.family == F::qwen2, qwen3 = c.family == F::qwen3, gemma = c.family == F::gemma3;
  const bool no_biases = c.family == F::mistral || c.family == F::phi3;
  const bool attention_bias = !no_biases && f.boolean("attention_bias").value_or(false);
  c.qkv_bias = qwen2 || attention_bias;
  c.o_bias = !qwen2 && attention_bias;
  c.mlp_bias = (c.family == F::llama || c.family == F::unknown) && f.boolean("mlp_bias").value_or(false);
  c.qk_norm = qwen3 || gemma;
  c.fused_projections = c.family == F::phi3;
}

/// Gemma 3's own settings (Gemma3TextConfig's defaults where a key is absent).
inline void read_gemma(const JsonFields& f, ModelConfig& c) {
  c.scaled_embeddings = c.unit_offset_norms = c.sandwich_norms = true;
  const auto act = f.string("hidden_activation").value_or("gelu_pytorch_tanh");
  check(act == "gelu_pytorch_tanh", "{}: hidden_activation \"{}\" is not supported (gelu_pytorch_tanh)", f.source(), act);
  c.activation = Activation::gelu_tanh;
  const double scalar = f.number("query_pre_attn_scalar").value_or(256.0);
  check(scalar > 0, "{}: query_pre_attn_scalar must be > 0 (got {})", f.source(), scalar);
  c.attention_scale = std::pow(scalar, -0.5);
  c.final_logit_softcap = f.number("final_logit_softcapping").value_or(0.0);
  check(c.final_logit_softcap >= 0, "{}: final_logit_softcapping must be > 0 or null (got {})", f.source(),
        c.final_logit_softcap);
  check(!f.boolean("use_bidirectional_attention").value_or(false),
        "{}: use_bidirectional_attention true is not supported (causal attention only)", f.source());
  read_gemma_rotary(f, c);
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
  c.family = detail::family_of(c.architecture, c.model_type);
  const bool gpt2 = c.family == ModelFamily::gpt2, gemma = c.family == ModelFamily::gemma3;
  auto required = [&](std::initializer_list<const char*> keys) -> int64_t {
    for (const char* k : keys)
      if (auto v = f.integer(k)) {
        detail::require_positive(f, k, *v);
        return *v;
      }
    throw invalid_argument(fmt::format("{}: missing \"{}\"", source, *keys.begin()));
  };
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
    c.max_position_embeddings = f.integer("max_position_embeddings").value_or(gemma ? 131072 : 32768);
    c.norm_eps = f.number("rms_norm_eps").value_or(1e-6);
    c.tie_word_embeddings = f.boolean("tie_word_embeddings").value_or(gemma);
    detail::read_rotary_family(f, c);
    if (gemma) {
      detail::read_gemma(f, c);
    } else {
      detail::read_rotary(f, c);
      if (auto act = f.string("hidden_act"))
        detail::check(*act == "silu" || *act == "swish", "{}: hidden_act \"{}\" is not supported (silu)", source, *act);
    }
    detail::read_attention_windows(f, c);
  }
  detail::require_positive(f, "num_key_value_heads", c.num_kv_heads);
  detail::require_positive(f, "intermediate_size", c.intermediate_size);
  detail::check(c.hidden_size % c.num_heads == 0, "{}: hidden size {} is not a multiple of the {} heads", source,
                c.hidden_size, c.num_heads);
  detail::check(c.num_heads % c.num_kv_heads == 0, "{}: {} attention heads are not a multiple of {} key/value heads",
                source, c.num_heads, c.num_kv_heads);
  c.head_dim = f.integer("head_dim").value_or(gemma ? 256 : c.hidden_size / c.num_heads);
  detail::require_positive(f, "head_dim", c.head_dim);
  if (!gpt2) detail::read_rotary_dim(f, c);
  detail::check(c.norm_eps > 0, "{}: the norm epsilon must be > 0 (got {})", source, c.norm_eps);
  if (auto eos = f.integer_list("eos_token_id")) c.eos_token_ids = *eos;
  c.pad_token_id = f.integer("pad_token_id");
  c.bos_token_id = f.integer("bos_token_id");
  return c;
}

inline ModelConfig load_model_config(const std::filesystem::path& path) {
  return model_config_from_json(detail::read_json_file(path), path.string());
}

}  // namespace lmdecode
