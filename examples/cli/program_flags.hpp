#pragma once
// The flags the command-line programs share, declared once: the model's (--model, --device, --dtype,
// --threads) and one flag for every generation option of lmdecode::generation_options(). A flag's
// text is read as what its option is (an integer out of range, a number that is not one, is an
// error naming the flag) and becomes the option's generation_config.json value, which the one
// reader then applies and validates. A flag given where it does nothing (--top-p without
// --do-sample) is warned about on stderr.

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <lmdecode/config.hpp>
#include <lmdecode/io/generation_config_file.hpp>
#include <lmdecode/models/checkpoint.hpp>
#include <lmdecode/threads.hpp>

#include "../plural.hpp"

namespace lmdecode_cli {

/// `text` as a whole number of type T; anything else (a sign it cannot hold, a fraction, a value out
/// of T's range, trailing text) is an error naming `flag`.
template <class T>
T parse_number(const std::string& text, const std::string& flag) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || stop != end) {
    const char* what = std::is_floating_point_v<T> ? "a number" : std::is_signed_v<T> ? "an integer" : "a non-negative integer";
    throw lmdecode::invalid_argument(fmt::format("{} expects {}{}, got \"{}\"", flag, what,
                                                 error == std::errc::result_out_of_range ? " in range" : "", text));
  }
  return value;
}

using lmdecode_examples::plural;

/// Comma-separated token ids.
inline std::vector<int64_t> parse_ids(const std::string& text, const std::string& flag) {
  std::vector<int64_t> ids;
  for (size_t start = 0; start <= text.size();) {
    const size_t end = std::min(text.find(',', start), text.size());
    ids.push_back(parse_number<int64_t>(text.substr(start, end - start), flag));
    start = end + 1;
  }
  return ids;
}

/// One flag for each option of lmdecode::generation_options() that has one.
class GenerationFlags {
 public:
  explicit GenerationFlags(CLI::App& app) {
    for (const auto& option : lmdecode::generation_options()) {
      const std::string flag = option.flag_name();
      if (flag.empty()) continue;
      Given& given = given_.emplace_back(Given{&option, {}});
      const bool is_switch = std::holds_alternative<bool lmdecode::GenerationConfig::*>(option.field);
      if (is_switch)
        app.add_flag_callback(flag, [&given] { given.values.push_back(""); }, option.help);
      else
        app.add_option(flag, given.values, option.help)
            ->expected(1)
            ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
            ->type_name(type_name(option));
    }
  }

  /// The options the flags gave, as generation_config.json values (lmdecode's own names included).
  nlohmann::json overrides() const {
    auto json = nlohmann::json::object();
    for (const auto& given : given_)
      if (!given.values.empty()) json[given.option->json_key()] = value_of(*given.option, given.values);
    return json;
  }

  /// `base` (the checkpoint's defaults) with the flags' options applied; validated.
  lmdecode::GenerationConfig apply(lmdecode::GenerationConfig base) const {
    return lmdecode::generation_config_overrides(overrides(), std::move(base), "the command line");
  }

  /// Prints "PROGRAM: warning: --FLAG does nothing ..." on stderr for each flag given that `config`
  /// (the flags applied) leaves unused: a sampling flag without --do-sample, a beam flag with one
  /// beam, a prompt-lookup or draft-model flag without drafts of that kind, and the options in
  /// `unused_by_program` (named as generation_options() names them), which the program never reads.
  void warn_unused(const char* program, const lmdecode::GenerationConfig& config, bool draft_model,
                   std::initializer_list<std::string_view> unused_by_program = {}) const {
    for (const auto& given : given_) {
      if (given.values.empty()) continue;
      const std::string_view name = given.option->name;
      std::string why = unused_because(name, config, draft_model);
      if (why.empty() && std::find(unused_by_program.begin(), unused_by_program.end(), name) != unused_by_program.end())
        why = fmt::format("in {}", program);
      if (!why.empty()) std::fprintf(stderr, "%s: warning: %s does nothing %s\n", program, given.option->flag_name().c_str(), why.c_str());
    }
  }

 private:
  struct Given {
    const lmdecode::GenerationOption* option;
    std::vector<std::string> values;  // one a use of the flag ("" for a switch)
  };
  std::deque<Given> given_;  // stable addresses for the callbacks

  static nlohmann::json value_of(const lmdecode::GenerationOption& option, const std::vector<std::string>& values) {
    const std::string flag = option.flag_name();
    const std::string& last = values.back();
    return std::visit(
        [&](auto member) -> nlohmann::json {
          using T = std::remove_reference_t<decltype(std::declval<lmdecode::GenerationConfig&>().*member)>;
          if constexpr (std::is_same_v<T, bool>) return option.flag_sets;
          else if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, std::optional<int64_t>>) return parse_number<int64_t>(last, flag);
          else if constexpr (std::is_same_v<T, std::optional<uint64_t>>) return parse_number<uint64_t>(last, flag);
          else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, std::optional<double>>) return parse_number<double>(last, flag);
          else if constexpr (std::is_same_v<T, lmdecode::EarlyStopping>) return early_stopping(last, flag);
          else if constexpr (std::is_same_v<T, lmdecode::DraftSchedule>) return last;  // named as in the JSON
          else if constexpr (std::is_same_v<T, std::vector<int64_t>>) return parse_ids(last, flag);
          else if constexpr (std::is_same_v<T, std::vector<std::string>>) return values;
          else {  // lists of id lists: one a use of the flag
            auto lists = nlohmann::json::array();
            for (const auto& v : values) lists.push_back(parse_ids(v, flag));
            return lists;
          }
        },
        option.field);
  }

  /// What --help shows for the option's value.
  static std::string type_name(const lmdecode::GenerationOption& option) {
    return std::visit(
        [](auto member) -> std::string {
          using T = std::remove_reference_t<decltype(std::declval<lmdecode::GenerationConfig&>().*member)>;
          if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, std::optional<int64_t>>) return "INT";
          else if constexpr (std::is_same_v<T, std::optional<uint64_t>>) return "UINT";
          else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, std::optional<double>>) return "NUMBER";
          else if constexpr (std::is_same_v<T, lmdecode::EarlyStopping>) return "true|false|never";
          else if constexpr (std::is_same_v<T, lmdecode::DraftSchedule>) return "constant|heuristic|heuristic_transient";
          else if constexpr (std::is_same_v<T, std::vector<std::string>>) return "TEXT";
          else return "IDS";
        },
        option.field);
  }

  /// Why option `name` does nothing under `c` ("without --do-sample"), or "" where it may act.
  static std::string unused_because(std::string_view name, const lmdecode::GenerationConfig& c, bool draft_model) {
    const auto one_of = [&](std::initializer_list<std::string_view> names) {
      return std::find(names.begin(), names.end(), name) != names.end();
    };
    if (!c.do_sample && one_of({"temperature", "top_k", "top_p", "min_p", "typical_p", "seed"})) return "without --do-sample";
    if (c.num_beams == 1 && one_of({"length_penalty", "early_stopping", "patience"})) return "with one beam (--num-beams 1)";
    if (!c.prompt_lookup_num_tokens && name == "max_matching_ngram_size") return "without --prompt-lookup-num-tokens";
    if (!draft_model && one_of({"num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold"}))
      return "without a draft model (--assistant-model)";
    return "";
  }

  static nlohmann::json early_stopping(const std::string& text, const std::string& flag) {
    if (text == "true") return true;
    if (text == "false") return false;
    if (text == "never") return "never";
    throw lmdecode::invalid_argument(fmt::format("{} expects true, false or never, got \"{}\"", flag, text));
  }
};

/// Runs a program's work after its flags are parsed; what fails is printed on one line (libtorch's
/// own errors, which lmdecode does not wrap outside loading and generating, named as such) and the
/// program exits 1.
template <class Work>
int report_failures(const char* program, Work&& work) {
  try {
    return work();
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "%s: libtorch: %s\n", program, e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
  }
  return 1;
}

/// Refuses a tokenizer with ids the model has no row for: the two come from different checkpoints (a
/// model may have more rows than its tokenizer has ids, padded to a multiple of 64 or 128).
inline void check_tokenizer_fits(int64_t tokenizer_ids, const lmdecode::ModelConfig& model) {
  lmdecode::detail::check(tokenizer_ids <= model.vocab_size, "the tokenizer has {} ids but the model only {}: they do not belong together",
                          tokenizer_ids, model.vocab_size);
}

/// The model flags of the programs that load a checkpoint.
struct ModelFlags {
  std::string folder;
  std::string device = "cpu";
  std::string dtype = "f32";
  std::string weights = "f32";
  int threads = lmdecode::max_threads();

  explicit ModelFlags(CLI::App& app) {
    app.add_option("--model", folder, "Checkpoint folder: config.json, model.safetensors[.index.json], generation_config.json")
        ->required();
    app.add_option("--device", device, "Where the model runs")->check(CLI::IsMember({"cpu", "cuda"}));
    app.add_option("--dtype", dtype, "Model dtype")->check(CLI::IsMember({"f64", "f32", "bf16", "f16"}));
    app.add_option("--weights", weights,
                   "How a float32 CPU model keeps its weight matrices: f32, bf16 (half the bytes a step, the same "
                   "float32 arithmetic on bfloat16-rounded weights) or q8_0 (llama.cpp's 8-bit blocks, quantized at load)")
        ->check(CLI::IsMember({"f32", "bf16", "q8_0"}));
    app.add_option("--threads", threads,
                   fmt::format("CPU threads of libtorch and OpenBLAS (default: this machine's {}; give several programs "
                               "running at once a share each)", plural(lmdecode::max_threads(), "core")))
        ->check(CLI::Range(1, lmdecode::max_threads()));
  }

  at::Device torch_device() const { return device == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU); }
  at::ScalarType torch_dtype() const {
    if (dtype == "f64") return at::kDouble;
    if (dtype == "bf16") return at::kBFloat16;
    if (dtype == "f16") return at::kHalf;
    return at::kFloat;
  }
  /// --dtype, --device and --weights as load_pretrained() takes them.
  lmdecode::LoadOptions load_options() const { return {torch_device(), torch_dtype(), *lmdecode::parse_weight_format(weights)}; }
  /// Applies --threads (the machine's cores unless given).
  void apply_threads() const { lmdecode::set_threads(threads); }
};

}  // namespace lmdecode_cli
