#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <type_traits>

#include "lmdecode/config.hpp"
#include "lmdecode/io/generation_config_file.hpp"
#include "lmdecode/models/checkpoint.hpp"
#include "lmdecode/models/model_config.hpp"
#include "lmdecode/threads.hpp"
#include "support/test_data.hpp"

using lmdecode::GenerationConfig;
using Catch::Matchers::Contains;

TEST_CASE("validate rejects each inconsistent GenerationConfig value with the field's name", "[config]") {
  GenerationConfig c;
  REQUIRE_NOTHROW(lmdecode::validate(c));
  auto rejects = [](GenerationConfig bad, const std::string& field) {
    REQUIRE_THROWS_WITH(lmdecode::validate(bad), Contains(field));
    REQUIRE_THROWS_AS(lmdecode::validate(bad), lmdecode::invalid_argument);
  };
  SECTION("lengths") {
    c.max_new_tokens = 0;
    rejects(c, "max_new_tokens must be >= 1");
    c.max_new_tokens = 3;
    c.min_new_tokens = 5;
    rejects(c, "max_new_tokens (3) must be >= min_new_tokens (5)");
    c = {};
    c.min_new_tokens = -1;
    rejects(c, "min_new_tokens");
  }
  SECTION("beams and returned sequences") {
    c.num_beams = 0;
    rejects(c, "num_beams must be >= 1");
    c.num_beams = 2;
    c.num_return_sequences = 3;
    rejects(c, "num_return_sequences (3) must be <= num_beams (2)");
  }
  SECTION("penalties and sampling values") {
    c.repetition_penalty = 0.0;
    rejects(c, "repetition_penalty");
    c = {};
    c.repetition_penalty = -1.5;
    rejects(c, "repetition_penalty");
    c = {};
    c.length_penalty = std::numeric_limits<double>::infinity();
    rejects(c, "length_penalty");
    c = {};
    c.temperature = -1.0;
    rejects(c, "temperature");
    c = {};
    c.temperature = 0.0;
    REQUIRE_NOTHROW(lmdecode::validate(c));  // unused without sampling, as in HF
    c.do_sample = true;
    rejects(c, "temperature must be > 0 when sampling");
    c = {};
    c.min_p = 1.5;
    rejects(c, "min_p");
    c = {};
    c.typical_p = 0.0;
    rejects(c, "typical_p");
    c = {};
    c.max_time = 0.0;
    rejects(c, "max_time");
    c = {};
    c.stop_sequences = {{1, 2}, {}};
    rejects(c, "stop_sequences[1] is empty");
    c = {};
    c.bad_words_ids = {{-1}};
    rejects(c, "bad_words_ids[0]");
    c = {};
    c.top_p = 1.5;
    rejects(c, "top_p");
    c = {};
    c.no_repeat_ngram_size = -2;
    rejects(c, "no_repeat_ngram_size");
  }
  SECTION("token ids") {
    c.eos_token_ids = {2, -1};
    rejects(c, "eos_token_ids");
    c = {};
    c.pad_token_id = -3;
    rejects(c, "pad_token_id");
  }
  SECTION("negative length penalties are valid, as in HF") {
    c.length_penalty = -2.0;
    REQUIRE_NOTHROW(lmdecode::validate(c));
  }
}

namespace {

/// A value of an option's type other than GenerationConfig's default, as JSON.
template <class T>
nlohmann::json sample_value() {
  if constexpr (std::is_same_v<T, bool>) return nullptr;  // the caller flips the default
  else if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, std::optional<int64_t>>) return 3;
  else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, std::optional<double>>) return 0.5;
  else if constexpr (std::is_same_v<T, std::optional<uint64_t>>) return std::numeric_limits<uint64_t>::max();
  else if constexpr (std::is_same_v<T, lmdecode::EarlyStopping>) return "never";
  else if constexpr (std::is_same_v<T, lmdecode::DraftSchedule>) return "heuristic";
  else if constexpr (std::is_same_v<T, std::vector<int64_t>>) return {4, 5};
  else if constexpr (std::is_same_v<T, std::vector<std::vector<int64_t>>>) return {{4, 5}};
  else return {"x"};
}

}  // namespace

TEST_CASE("every option of the table is read from JSON under its key, and its own rule is validated", "[config]") {
  using nlohmann::json;
  for (const auto& option : lmdecode::generation_options()) {
    INFO(option.name);
    std::visit([&](auto member) {
      using T = std::remove_reference_t<decltype(std::declval<GenerationConfig&>().*member)>;
      GenerationConfig defaults;
      if (std::string(option.name) != "prompt_lookup_num_tokens") defaults.num_beams = 4;  // 3 return sequences; drafts need 1 beam
      json value = sample_value<T>();
      if constexpr (std::is_same_v<T, bool>) value = !(defaults.*member);
      const json one{{option.json_key(), value}};
      // lmdecode's own options (patience, stop_sequences) are not read from generation_config.json.
      const auto from_file = lmdecode::generation_config_from_json(one, defaults);
      CHECK((from_file.*member == defaults.*member) == !option.transformers);
      CHECK_FALSE(lmdecode::generation_config_overrides(one, defaults, "flags").*member == defaults.*member);
      // A value below an option's lower bound names the option and the rule.
      if (std::isfinite(option.bounds.min)) {
        json low = option.bounds.min - 1;
        if constexpr (std::is_same_v<T, std::vector<int64_t>>) low = {-1};
        if constexpr (std::is_same_v<T, std::vector<std::vector<int64_t>>>) low = {{-1}};
        if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, std::optional<int64_t>>) low = static_cast<int64_t>(option.bounds.min) - 1;
        REQUIRE_THROWS_WITH(lmdecode::generation_config_overrides({{option.json_key(), low}}, defaults, "flags"),
                            Contains(std::string(option.name)));
      }
    }, option.field);
  }
}

TEST_CASE("GenerationConfig resolves lengths the way transformers does", "[config]") {
  GenerationConfig c;
  REQUIRE(c.resolved_max_new_tokens(7) == 20);
  c.max_length = 30;
  REQUIRE(c.resolved_max_new_tokens(7) == 23);
  c.max_new_tokens = 5;
  REQUIRE(c.resolved_max_new_tokens(7) == 5);  // max_new_tokens wins over max_length
  c.min_length = 10;
  c.min_new_tokens = 2;
  REQUIRE(c.resolved_min_new_tokens(7) == 3);
  REQUIRE(c.resolved_pad_token_id() == 0);
  c.eos_token_ids = {151645, 151643};
  REQUIRE(c.resolved_pad_token_id() == 151645);  // HF: pad := eos[0]
}

TEST_CASE("generation_config.json loads HF keys, ignores unknown ones and names wrongly typed ones", "[config]") {
  using nlohmann::json;
  SECTION("an int or a list for eos_token_id; early_stopping true/false/never") {
    auto c = lmdecode::generation_config_from_json(json::parse(R"({"eos_token_id": 7, "early_stopping": true,
        "num_beams": 4, "unknown_key": [1, 2], "pad_token_id": null, "transformers_version": "5.17.0"})"));
    REQUIRE(c.eos_token_ids == std::vector<int64_t>{7});
    REQUIRE(c.early_stopping == lmdecode::EarlyStopping::on_full);
    REQUIRE(c.num_beams == 4);
    REQUIRE_FALSE(c.pad_token_id.has_value());
    c = lmdecode::generation_config_from_json(json::parse(R"({"eos_token_id": [151645, 151643], "early_stopping": "never",
        "repetition_penalty": 1.05, "top_k": 20, "top_p": 0.8, "temperature": 0.7, "do_sample": true})"));
    REQUIRE(c.eos_token_ids == std::vector<int64_t>{151645, 151643});
    REQUIRE(c.early_stopping == lmdecode::EarlyStopping::never);
    REQUIRE(c.repetition_penalty == 1.05);
    REQUIRE(c.do_sample);
  }
  SECTION("wrong types name the key") {
    REQUIRE_THROWS_WITH(lmdecode::generation_config_from_json(json::parse(R"({"num_beams": "4"})")),
                        Contains("\"num_beams\" must be an integer"));
    REQUIRE_THROWS_WITH(lmdecode::generation_config_from_json(json::parse(R"({"eos_token_id": [2, "x"]})")),
                        Contains("eos_token_id"));
    REQUIRE_THROWS_WITH(lmdecode::generation_config_from_json(json::parse(R"({"early_stopping": "sometimes"})")),
                        Contains("early_stopping"));
    REQUIRE_THROWS_WITH(lmdecode::generation_config_from_json(json::parse(R"({"do_sample": 1})")),
                        Contains("do_sample"));
    // Integers past 64 bits are errors, never wrapped (2^64 - 1 once became num_beams -1).
    REQUIRE_THROWS_WITH(lmdecode::generation_config_from_json(json::parse(R"({"num_beams": 18446744073709551615})")),
                        Contains("\"num_beams\" must be an integer from -2^63 to 2^63 - 1"));
    REQUIRE_THROWS_WITH(lmdecode::generation_config_from_json(json::parse(R"({"seed": -1})")), Contains("\"seed\" must be an integer from 0"));
    REQUIRE(lmdecode::generation_config_from_json(json::parse(R"({"seed": 18446744073709551615})")).seed ==
            std::numeric_limits<uint64_t>::max());
  }
  SECTION("options transformers would apply but lmdecode does not implement are errors, unless neutral") {
    auto rejects = [](const char* text, const std::string& message) {
      REQUIRE_THROWS_WITH(lmdecode::generation_config_from_json(json::parse(text), {}, "gen.json"), Contains(message));
    };
    rejects(R"({"renormalize_logits": true})",
            R"(gen.json: "renormalize_logits": true changes decoding in transformers and is not implemented here; )"
            "remove it or set it to false");
    rejects(R"({"epsilon_cutoff": 0.0003})", R"("epsilon_cutoff": 0.0003 changes decoding)");
    rejects(R"({"token_healing": true})", R"("token_healing": true changes decoding in transformers and is not )"
                                         "implemented here; remove it or set it to false");
    rejects(R"({"sequence_bias": [[[5], -1.0]]})", R"("sequence_bias")");
    rejects(R"({"num_beam_groups": 2, "diversity_penalty": 0.5})", R"("num_beam_groups": 2)");
    REQUIRE_NOTHROW(lmdecode::generation_config_from_json(json::parse(R"({"renormalize_logits": false,
        "epsilon_cutoff": 0, "eta_cutoff": 0.0, "num_beam_groups": 1, "diversity_penalty": 0.0, "guidance_scale": null,
        "sequence_bias": null, "stop_strings": [], "constraints": [], "encoder_repetition_penalty": 1.0})")));
  }
  SECTION("stop_strings: one string or a list of them, none empty") {
    REQUIRE(lmdecode::generation_config_from_json(json::parse(R"({"stop_strings": "###"})")).stop_strings ==
            std::vector<std::string>{"###"});
    REQUIRE(lmdecode::generation_config_from_json(json::parse(R"({"stop_strings": ["a", "\n\n"]})")).stop_strings ==
            std::vector<std::string>{"a", "\n\n"});
    REQUIRE_THROWS_WITH(lmdecode::generation_config_from_json(json::parse(R"({"stop_strings": ["a", ""]})")),
                        Contains("stop_strings[1] is empty"));
    REQUIRE_THROWS_WITH(lmdecode::generation_config_from_json(json::parse(R"({"stop_strings": [1]})")),
                        Contains("stop_strings"));
  }
  SECTION("values that fail validate() are rejected with the source named") {
    REQUIRE_THROWS_WITH(lmdecode::generation_config_from_json(json::parse(R"({"num_beams": 0})"), {}, "gen.json"),
                        Contains("gen.json") && Contains("num_beams must be >= 1"));
  }
  SECTION("the vendored checkpoints' files") {
    auto folder = lmdecode_test::reference_dir() / "qwen2-tiny";
    auto model = lmdecode::load_model_config(folder / "config.json");
    auto c = lmdecode::load_checkpoint_generation_config(folder, model);
    REQUIRE(c.eos_token_ids == std::vector<int64_t>{2, 3});
    REQUIRE(c.pad_token_id == 3);
    REQUIRE(c.bos_token_id == 1);
  }
  SECTION("a corrupt file is a file_error naming it") {
    auto path = std::filesystem::temp_directory_path() / "lmdecode_bad_generation_config.json";
    std::ofstream(path) << "{\"num_beams\": 4,";
    REQUIRE_THROWS_AS(lmdecode::load_generation_config(path), lmdecode::file_error);
    REQUIRE_THROWS_WITH(lmdecode::load_generation_config(path), Contains(path.string()));
    REQUIRE_THROWS_AS(lmdecode::load_generation_config("/nonexistent/generation_config.json"), lmdecode::file_error);
    // Found by fuzz_config: a number too large for a double is nlohmann's out_of_range, not a parse_error.
    std::ofstream(path) << "333e333";
    REQUIRE_THROWS_AS(lmdecode::load_generation_config(path), lmdecode::file_error);
    std::ofstream(path) << R"({"num_beams": 1e999})";
    REQUIRE_THROWS_AS(lmdecode::load_generation_config(path), lmdecode::file_error);
  }
}

TEST_CASE("config.json reads both architectures with HF defaults", "[config]") {
  auto qwen = lmdecode::load_model_config(lmdecode_test::reference_dir() / "qwen2-tiny" / "config.json");
  REQUIRE(qwen.architecture == "Qwen2ForCausalLM");
  REQUIRE(qwen.num_kv_heads == 2);
  REQUIRE(qwen.head_dim == 16);
  REQUIRE(qwen.rope_theta == 10000.0);  // from rope_parameters
  REQUIRE_FALSE(qwen.tie_word_embeddings);
  REQUIRE(qwen.eos_token_ids == std::vector<int64_t>{2, 3});
  auto gpt2 = lmdecode::load_model_config(lmdecode_test::reference_dir() / "gpt2-tiny" / "config.json");
  REQUIRE(gpt2.intermediate_size == 256);  // n_inner null -> 4 * n_embd
  REQUIRE(gpt2.tie_word_embeddings);
  REQUIRE(gpt2.eos_token_ids == std::vector<int64_t>{2});
  using nlohmann::json;
  auto top_level = lmdecode::model_config_from_json(json::parse(R"({"architectures": ["Qwen2ForCausalLM"],
      "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
      "intermediate_size": 16, "rope_theta": 1000000.0})"));
  REQUIRE(top_level.rope_theta == 1000000.0);
  REQUIRE(top_level.num_kv_heads == 2);
  REQUIRE_THROWS_WITH(lmdecode::model_config_from_json(json::parse(R"({"vocab_size": 10, "hidden_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 3, "intermediate_size": 16})")), Contains("multiple"));
  REQUIRE_THROWS_WITH(lmdecode::model_config_from_json(json::parse(R"({"vocab_size": 0})")), Contains("vocab_size"));
}

TEST_CASE("config.json gives each rotary family its biases, query/key norms and RoPE scaling", "[config]") {
  using nlohmann::json;
  auto read = [](const char* text) { return lmdecode::model_config_from_json(json::parse(text)); };
  // transformers' Qwen2 always biases q/k/v and never o_proj or the MLP, whatever the flags say.
  auto qwen2 = read(R"({"model_type": "qwen2", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 2, "intermediate_size": 16, "attention_bias": true, "mlp_bias": true})");
  REQUIRE((qwen2.qkv_bias && !qwen2.o_bias && !qwen2.mlp_bias && !qwen2.qk_norm));
  // Llama 3.1 as its config.json has it: rope_theta at the top, rope_scaling beside it.
  auto llama = read(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16, "head_dim": 8,
      "attention_bias": true, "mlp_bias": true, "max_position_embeddings": 131072, "rope_theta": 500000.0,
      "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                       "original_max_position_embeddings": 8192, "rope_type": "llama3"}})");
  REQUIRE((llama.qkv_bias && llama.o_bias && llama.mlp_bias && !llama.qk_norm));
  REQUIRE(llama.head_dim == 8);
  REQUIRE(llama.rope_theta == 500000.0);
  REQUIRE(llama.rope_scaling.type == "llama3");
  REQUIRE(llama.rope_scaling.factor == 8.0);
  REQUIRE(llama.rope_scaling.original_max_position_embeddings == 8192);
  // Qwen3: q_norm / k_norm; transformers 5.x writes rope_parameters.
  auto qwen3 = read(R"({"model_type": "qwen3", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 2, "intermediate_size": 16, "mlp_bias": true,
      "rope_parameters": {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 2.0}})");
  REQUIRE((qwen3.qk_norm && !qwen3.qkv_bias && !qwen3.mlp_bias));
  REQUIRE(qwen3.rope_theta == 1000000.0);
  REQUIRE((qwen3.rope_scaling.type == "linear" && qwen3.rope_scaling.factor == 2.0));
  // Phi-3: fused projections, no biases, int(head_dim x partial_rotary_factor) rotating dimensions.
  auto phi3 = read(R"({"architectures": ["Phi3ForCausalLM"], "vocab_size": 10, "hidden_size": 24,
      "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16, "attention_bias": true,
      "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.4}})");
  REQUIRE((phi3.fused_projections && !phi3.qkv_bias && !phi3.o_bias));
  REQUIRE(phi3.rotary_dim == 4);  // int(12 x 0.4) = 4
  REQUIRE(phi3.sliding_layers.empty());  // no default window, unlike Mistral
  REQUIRE(qwen3.rotary_dim == qwen3.head_dim);
  REQUIRE_THROWS_WITH(read(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 2, "intermediate_size": 16, "partial_rotary_factor": 0.5})"),
      Contains("partial_rotary_factor 0.5 is not supported for this family"));
  REQUIRE_THROWS_WITH(read(R"({"model_type": "phi3", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 2, "intermediate_size": 16, "rope_scaling": {"rope_type": "longrope", "short_factor": [1.0]}})"),
      Contains(R"(rope_type "longrope" is not supported)"));
}

TEST_CASE("config.json says which layers slide and over how many positions, as transformers decides it", "[config]") {
  using nlohmann::json;
  auto read = [](const char* extra) {
    auto config = json::parse(R"({"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 3, "num_attention_heads": 2,
        "intermediate_size": 16})");
    config.update(json::parse(extra));
    return lmdecode::model_config_from_json(config);
  };
  // Qwen2: use_sliding_window, from max_window_layers on; or layer_types as written.
  auto qwen = read(R"({"model_type": "qwen2", "use_sliding_window": true, "sliding_window": 4, "max_window_layers": 1})");
  REQUIRE(qwen.sliding_window == 4);
  REQUIRE(qwen.sliding_layers == std::vector<bool>{false, true, true});
  auto typed = read(R"({"model_type": "qwen3", "use_sliding_window": true, "sliding_window": 5,
      "layer_types": ["sliding_attention", "full_attention", "sliding_attention"]})");
  REQUIRE(typed.sliding_layers == std::vector<bool>{true, false, true});
  // Mistral: every layer, 4096 where the key is absent, none where it is null; layer_types ignored.
  REQUIRE(read(R"({"model_type": "mistral"})").sliding_window == 4096);
  REQUIRE(read(R"({"model_type": "mistral"})").sliding_layers == std::vector<bool>{true, true, true});
  REQUIRE(read(R"({"model_type": "mistral", "sliding_window": null})").sliding_layers.empty());
  REQUIRE(read(R"({"model_type": "mistral", "sliding_window": 7, "layer_types": ["full_attention"]})").sliding_window == 7);
  // Llama never slides.
  REQUIRE(read(R"({"model_type": "llama", "use_sliding_window": true, "sliding_window": 4})").sliding_layers.empty());
}

TEST_CASE("config.json reads Gemma 3 with Gemma3TextConfig's defaults", "[config]") {
  using nlohmann::json;
  auto read = [](const char* extra) {
    auto config = json::parse(R"({"architectures": ["Gemma3ForCausalLM"], "vocab_size": 10, "hidden_size": 8,
        "num_hidden_layers": 7, "num_attention_heads": 2, "intermediate_size": 16})");
    config.update(json::parse(extra));
    return lmdecode::model_config_from_json(config);
  };
  // As Gemma 3 1B's config.json (transformers 4.x) has it: no layer_types, a pattern of 6.
  auto gemma = read(R"({"rope_local_base_freq": 10000.0, "rope_scaling": null, "sliding_window": 512,
      "sliding_window_pattern": 6, "final_logit_softcapping": null, "attn_logit_softcapping": null})");
  REQUIRE(gemma.family == lmdecode::ModelFamily::gemma3);
  REQUIRE((gemma.scaled_embeddings && gemma.unit_offset_norms && gemma.sandwich_norms && gemma.qk_norm));
  REQUIRE((!gemma.qkv_bias && !gemma.o_bias && !gemma.mlp_bias));
  REQUIRE(gemma.activation == lmdecode::Activation::gelu_tanh);
  REQUIRE(gemma.head_dim == 256);  // not hidden / heads
  REQUIRE(gemma.attention_scale == std::pow(256.0, -0.5));
  REQUIRE(gemma.tie_word_embeddings);
  REQUIRE(gemma.max_position_embeddings == 131072);
  REQUIRE(gemma.final_logit_softcap == 0.0);
  REQUIRE(gemma.sliding_window == 512);
  REQUIRE(gemma.sliding_layers == std::vector<bool>{true, true, true, true, true, false, true});
  REQUIRE((gemma.rope_theta == 1e6 && gemma.sliding_rope_theta == 10000.0));
  // Gemma 3 4B's: linear scaling on the full layers only; transformers 5.x's rope_parameters per type.
  auto scaled = read(R"({"rope_theta": 1000000.0, "rope_scaling": {"rope_type": "linear", "factor": 8.0},
      "query_pre_attn_scalar": 168, "final_logit_softcapping": 30.0, "tie_word_embeddings": false,
      "layer_types": ["full_attention", "sliding_attention", "full_attention", "sliding_attention",
                      "full_attention", "sliding_attention", "full_attention"]})");
  REQUIRE((scaled.rope_scaling.type == "linear" && scaled.rope_scaling.factor == 8.0));
  REQUIRE(scaled.sliding_rope_scaling.type == "default");
  REQUIRE(scaled.sliding_window == 4096);
  REQUIRE(scaled.sliding_layers == std::vector<bool>{false, true, false, true, false, true, false});
  REQUIRE(scaled.attention_scale == std::pow(168.0, -0.5));
  REQUIRE(scaled.final_logit_softcap == 30.0);
  REQUIRE_FALSE(scaled.tie_word_embeddings);
  auto per_type = read(R"({"rope_parameters": {"full_attention": {"rope_type": "linear", "rope_theta": 500.0, "factor": 2.0},
      "sliding_attention": {"rope_type": "default", "rope_theta": 20.0}}})");
  REQUIRE((per_type.rope_theta == 500.0 && per_type.rope_scaling.factor == 2.0 && per_type.sliding_rope_theta == 20.0));
  auto rejects = [&](const char* extra, const std::string& message) { REQUIRE_THROWS_WITH(read(extra), Contains(message)); };
  rejects(R"({"hidden_activation": "gelu"})", R"(hidden_activation "gelu" is not supported)");
  rejects(R"({"use_bidirectional_attention": true})", "use_bidirectional_attention true is not supported");
  rejects(R"({"rope_parameters": {"rope_type": "default", "rope_theta": 10.0}})", "is not a layer type (Gemma 3 has one dict per type");
  rejects(R"({"rope_parameters": {"sliding_attention": {"rope_type": "yarn", "factor": 2.0}}})",
          R"(sliding_attention: rope_type "yarn" is not supported)");
  rejects(R"({"query_pre_attn_scalar": 0})", "query_pre_attn_scalar must be > 0");
  rejects(R"({"sliding_window_pattern": 0})", "sliding_window_pattern must be >= 1");
  // The multimodal checkpoint is another architecture.
  auto multimodal = json::parse(R"({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
      "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16})");
  REQUIRE(lmdecode::model_config_from_json(multimodal).family == lmdecode::ModelFamily::unknown);
}

TEST_CASE("config.json settings the reference models do not implement are errors naming the key", "[config]") {
  using nlohmann::json;
  const auto qwen = json::parse(R"({"model_type": "qwen2", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 2,
      "num_attention_heads": 2, "intermediate_size": 16})");
  const auto gpt2 = json::parse(R"({"model_type": "gpt2", "vocab_size": 10, "n_embd": 8, "n_layer": 2, "n_head": 2,
      "n_positions": 16})");
  auto with = [](json base, const char* extra) {
    base.update(json::parse(extra));
    return base;
  };
  auto rejects = [](const json& config, const std::string& message) {
    REQUIRE_THROWS_WITH(lmdecode::model_config_from_json(config), Contains(message));
  };
  rejects(with(qwen, R"({"hidden_act": "gelu"})"), R"(hidden_act "gelu" is not supported)");
  rejects(with(qwen, R"({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}})"), R"(rope_type "yarn" is not supported)");
  rejects(with(qwen, R"({"rope_parameters": {"rope_type": "dynamic", "factor": 2.0}})"), R"(rope_type "dynamic" is not supported)");
  rejects(with(qwen, R"({"rope_scaling": {"rope_type": "linear"}})"), "factor must be > 0 for rope_type linear");
  rejects(with(qwen, R"({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0}})"),
          "llama3 needs 0 < low_freq_factor < high_freq_factor");
  rejects(with(qwen, R"({"layer_types": ["full_attention", "chunked_attention"]})"),
          R"(layer 1 has "chunked_attention" (full_attention or sliding_attention))");
  rejects(with(qwen, R"({"layer_types": ["full_attention", "sliding_attention"]})"),
          "names sliding_attention layers but sliding_window is not set");
  rejects(with(qwen, R"({"layer_types": ["full_attention"]})"), "layer_types has 1 entries for 2 layers");
  rejects(with(gpt2, R"({"scale_attn_by_inverse_layer_idx": true})"), "scale_attn_by_inverse_layer_idx true");
  rejects(with(gpt2, R"({"scale_attn_weights": false})"), "scale_attn_weights false");
  // What HF also decodes with full attention, SiLU and plain scaling.
  for (const char* fine : {R"({"hidden_act": "swish", "attention_bias": false})",
                           R"({"use_sliding_window": false, "sliding_window": 4, "max_window_layers": 0})",
                           R"({"use_sliding_window": true, "sliding_window": 4})",  // max_window_layers 28 > 2 layers
                           R"({"use_sliding_window": true, "sliding_window": null, "max_window_layers": 0})",
                           R"({"layer_types": ["full_attention", "full_attention"]})"})
    REQUIRE(lmdecode::model_config_from_json(with(qwen, fine)).sliding_layers.empty());
  REQUIRE_NOTHROW(lmdecode::model_config_from_json(with(gpt2, R"({"reorder_and_upcast_attn": true})")));  // HF's sdpa ignores it
}

TEST_CASE("set_threads sets libtorch's intra-op threads and refuses fewer than one", "[config]") {
  const int before = at::get_num_threads();
  lmdecode::set_threads(1);
  CHECK(at::get_num_threads() == 1);
  REQUIRE_THROWS_WITH(lmdecode::set_threads(0), Catch::Contains("threads must be >= 1 (got 0)"));
  REQUIRE_THROWS_WITH(lmdecode::set_threads(lmdecode::max_threads() + 1), Catch::Contains("cores of this machine"));
  REQUIRE_THROWS_WITH(lmdecode::set_threads(1000000), Catch::Contains("cores of this machine"));
  lmdecode::set_threads(before);
}
