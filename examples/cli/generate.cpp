// lmdecode-generate: generation from the command line on a Hugging Face checkpoint folder.
// Defaults come from the folder's generation_config.json (and config.json's special tokens); flags
// override them. Run with --help for every flag.
//
//   lmdecode-generate --model DIR --prompt-ids 1,2,3 [--prompt-ids 4,5]... [--num-beams 4] [--json]
//   lmdecode-generate --model DIR --prompt-file FILE [--prompt-lines]          (or --prompt - for stdin)
//   lmdecode-generate --model DIR --prompt TEXT --prompt-lookup-num-tokens 10     (speculative, drafts from the text)
//   lmdecode-generate --model DIR --prompt TEXT --assistant-model DRAFT_DIR      (speculative, drafts from a draft model)
//   lmdecode-generate --model DIR --prompt TEXT --grammar answer.gbnf             (the new text follows a GBNF grammar)

#include <chrono>
#include <memory>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <lmdecode/grammar/json_schema.hpp>
#include <lmdecode/lmdecode.hpp>
#include <lmdecode/text/tokenizer.hpp>

#include "program_flags.hpp"

namespace lmdecode_cli::generate_program {
namespace {

using Clock = std::chrono::steady_clock;

/// The most bytes a prompt file (or stdin) may hold: 64 MiB is millions of tokens, past any context.
constexpr size_t kMaxPromptFileBytes = size_t{64} << 20;

/// The flags a user gave besides the model's and the generation options.
struct Flags {
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_texts;  // "-": stdin
  std::vector<std::string> prompt_files;
  bool prompt_lines = false;    // a file (or stdin) holds one prompt a line
  std::string assistant_model;  // a draft model's checkpoint folder (speculative decoding)
  std::string grammar;          // a GBNF file the new tokens follow
  std::string json_schema;      // a JSON Schema file they follow
  bool json_object = false;     // they are a JSON object
  bool json = false, stream = false;
};

/// All of `path` ("-": stdin), at most kMaxPromptFileBytes; `name` says where it came from in errors.
std::string read_prompt_source(const std::string& path, const std::string& name) {
  std::ifstream file;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) throw lmdecode::file_error(fmt::format("cannot open {}", name));
  }
  std::istream& in = path == "-" ? std::cin : file;
  std::string text;
  std::vector<char> chunk(1 << 16);
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0) {
    text.append(chunk.data(), static_cast<size_t>(in.gcount()));
    lmdecode::detail::check(text.size() <= kMaxPromptFileBytes, "{} is over {} MiB", name, kMaxPromptFileBytes >> 20);
  }
  return text;
}

/// The prompts a file (or stdin) holds: with --prompt-lines each non-empty line; a JSON array of
/// strings, each string; else the whole text less one final newline (as llama.cpp's --file reads it).
std::vector<std::string> prompts_in(std::string text, bool lines, const std::string& name) {
  std::vector<std::string> prompts;
  if (lines) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) prompts.push_back(line);
    }
  } else if (const auto array = nlohmann::json::parse(text, nullptr, false); array.is_array()) {
    for (const auto& item : array) {
      lmdecode::detail::check(item.is_string(), "{} is a JSON array, but not of strings (a prompt is a string)", name);
      prompts.push_back(item.get<std::string>());
    }
  } else {
    if (text.ends_with('\n')) text.pop_back();
    if (text.ends_with('\r')) text.pop_back();
    prompts.push_back(std::move(text));
  }
  lmdecode::detail::check(!prompts.empty(), "{} holds no prompt", name);
  return prompts;
}

/// Every prompt the flags give, as token ids: --prompt-ids, then --prompt, then --prompt-file.
std::vector<lmdecode::TokenIds> collect_prompts(const Flags& f, const lmdecode::Tokenizer* tokenizer, const std::string& tokenizer_path) {
  std::vector<lmdecode::TokenIds> prompts;
  for (const auto& p : f.prompts) prompts.push_back(lmdecode_cli::parse_ids(p, "--prompt-ids"));
  std::vector<std::string> texts;
  const auto add_prompts_of = [&](const std::string& path, const std::string& name) {
    for (auto& p : prompts_in(read_prompt_source(path, name), f.prompt_lines, name)) texts.push_back(std::move(p));
  };
  for (const auto& text : f.prompt_texts) {
    if (text == "-") add_prompts_of("-", "stdin (--prompt -)");
    else texts.push_back(text);
  }
  for (const auto& path : f.prompt_files) add_prompts_of(path, "--prompt-file " + path);
  if (!texts.empty() && !tokenizer)
    throw lmdecode::invalid_argument(fmt::format("text prompts need a tokenizer: {} is missing (give --prompt-ids instead)", tokenizer_path));
  for (const auto& text : texts) prompts.push_back(tokenizer->encode(text));
  if (prompts.empty()) throw lmdecode::invalid_argument("give a prompt: --prompt TEXT, --prompt -, --prompt-file FILE or --prompt-ids IDS");
  if (f.prompt_lines && f.prompt_files.empty() && std::find(f.prompt_texts.begin(), f.prompt_texts.end(), "-") == f.prompt_texts.end())
    std::fputs("lmdecode-generate: warning: --prompt-lines does nothing without --prompt-file or --prompt -\n", stderr);
  return prompts;
}

/// --stream: prints each step's committed tokens (StepEvent::committed), which add up to the
/// returned best sequence: with --json one object a line, else the ids, or with a tokenizer the
/// text (each prompt's on its own line when there are several).
class StreamPrinter {
 public:
  StreamPrinter(bool json, const lmdecode::Tokenizer* tokenizer) : json_(json), tokenizer_(tokenizer) {}

  void print(const lmdecode::StepEvent& e) {
    if (json_) {
      fmt::print("{}\n", nlohmann::ordered_json{{"step", e.step}, {"committed", e.committed}}.dump());
    } else if (tokenizer_) {
      print_text(e.committed);
    } else {
      std::vector<std::string> parts;
      for (const auto& ids : e.committed) parts.push_back(fmt::format("[{}]", fmt::join(ids, " ")));
      fmt::print("step {}: {}\n", e.step, fmt::join(parts, " "));
    }
    std::fflush(stdout);
  }

  /// Ends the streamed text: what the decoders still hold, then a newline.
  void finish() {
    for (size_t p = 0; p < decoders_.size(); ++p) show(p, decoders_.size(), decoders_[p].flush());
    if (decoders_.size() == 1) fmt::print("\n");
  }

 private:
  void print_text(const std::vector<lmdecode::TokenIds>& committed) {
    while (decoders_.size() < committed.size()) decoders_.emplace_back(*tokenizer_);
    for (size_t p = 0; p < committed.size(); ++p) {
      std::string fresh;
      for (int64_t id : committed[p]) fresh += decoders_[p].push(id);
      show(p, committed.size(), fresh);
    }
  }

  static void show(size_t prompt, size_t prompts, const std::string& text) {
    if (text.empty()) return;
    if (prompts == 1) fmt::print("{}", text);
    else fmt::print("prompt {}: {}\n", prompt, nlohmann::json(text).dump());
  }

  bool json_;
  const lmdecode::Tokenizer* tokenizer_;
  std::vector<lmdecode::Tokenizer::StreamDecoder> decoders_;  // per prompt
};

/// The grammar of --grammar, --json-schema or --json-object (at most one of them), if any.
std::optional<lmdecode::Grammar> structured_output(const Flags& f) {
  if (!f.grammar.empty() + !f.json_schema.empty() + f.json_object > 1)
    throw lmdecode::invalid_argument("give one of --grammar, --json-schema and --json-object");
  if (!f.grammar.empty()) return lmdecode::Grammar::from_gbnf_file(f.grammar);
  if (!f.json_schema.empty()) return lmdecode::grammar_from_json_schema_file(f.json_schema);
  if (f.json_object) return lmdecode::grammar_from_json_schema(nlohmann::ordered_json{{"type", "object"}});
  return std::nullopt;
}

/// The folder's tokenizer.json, where it has one (text prompts, text output, stop strings, grammars).
std::optional<lmdecode::Tokenizer> folder_tokenizer(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  return lmdecode::Tokenizer::from_file(path);
}

/// The checkpoint's defaults with the flags applied, and what the tokenizer gives: stop strings'
/// token texts and the grammar of --grammar, --json-schema or --json-object.
lmdecode::GenerationConfig generation_config(const Flags& f, const lmdecode_cli::ModelFlags& m, const lmdecode_cli::GenerationFlags& generation,
                                             const lmdecode::ModelConfig& model, const lmdecode::Tokenizer* tokenizer,
                                             const std::string& tokenizer_path) {
  auto config = generation.apply(lmdecode::load_checkpoint_generation_config(m.folder, model));
  generation.warn_unused("lmdecode-generate", config, !f.assistant_model.empty());
  if (!config.stop_strings.empty()) {  // --stop-string or the checkpoint's stop_strings
    if (!tokenizer) throw lmdecode::invalid_argument(fmt::format("stop strings need {}", tokenizer_path));
    config.token_texts = tokenizer->token_texts();
  }
  if (auto grammar = structured_output(f)) {
    if (!tokenizer) throw lmdecode::invalid_argument(fmt::format("--grammar, --json-schema and --json-object need {}", tokenizer_path));
    std::vector<int64_t> special_ids;
    for (const auto& added : tokenizer->added_tokens())
      if (added.special) special_ids.push_back(added.id);
    config.grammar = std::make_shared<lmdecode::TokenGrammar>(std::move(*grammar), tokenizer->token_texts(), special_ids);
  }
  return config;
}

/// How long a generation took: the prefill with the first token, each later step, the whole.
struct Timing {
  double prompt_ms = 0, per_step_ms = 0, total_ms = 0;
  int64_t new_tokens = 0;

  double tokens_per_s() const { return new_tokens / (total_ms / 1000.0); }
};

/// --json: one object with every hypothesis, the warnings, the timing and the drafts' counts.
void print_json(const lmdecode::GenerationResult& result, const lmdecode::GenerationConfig& config, const lmdecode::Tokenizer* tokenizer,
                const Timing& timing, bool speculative) {
  nlohmann::json out = {{"sequences", nlohmann::json::array()}, {"scores", nlohmann::json::array()},
                        {"token_logprobs", nlohmann::json::array()}, {"finish_reasons", nlohmann::json::array()}};
  for (const auto& per_prompt : result.hypotheses)
    for (const auto& h : per_prompt) {
      out["sequences"].push_back(h.tokens);
      out["scores"].push_back(h.score);
      out["token_logprobs"].push_back(h.token_logprobs);
      out["finish_reasons"].push_back(std::string(lmdecode::to_string(h.finish_reason)));
      if (config.output_scores) out["token_scores"].push_back(h.token_scores);
      if (tokenizer) out["texts"].push_back(tokenizer->decode(h.tokens));
    }
  if (!result.warnings.empty()) out["warnings"] = result.warnings;
  out["timing"] = {{"prompt_ms", timing.prompt_ms}, {"ms_per_token", timing.per_step_ms}, {"tokens_per_s", timing.tokens_per_s()},
                   {"steps", result.steps}, {"total_ms", timing.total_ms}, {"threads", at::get_num_threads()}};
  if (speculative)
    out["speculation"] = {{"target_forwards", result.steps}, {"draft_forwards", result.speculation.draft_forwards},
                          {"drafted", result.speculation.drafted}, {"accepted", result.speculation.accepted}};
  fmt::print("{}\n", out.dump());
}

/// Text output: each hypothesis's ids, score and finish reason, its text and (--output-scores) its
/// transition scores. After --stream the streamed text is the result: the rest goes to stderr,
/// and only the texts that were not streamed (a prompt's later sequences) are shown.
void print_text(const lmdecode::GenerationResult& result, const lmdecode::Tokenizer* tokenizer, bool streamed, bool scores) {
  std::FILE* out = streamed ? stderr : stdout;
  for (size_t p = 0; p < result.hypotheses.size(); ++p)
    for (size_t i = 0; i < result.hypotheses[p].size(); ++i) {
      const auto& h = result.hypotheses[p][i];
      fmt::print(out, "prompt {}: [{}]  score {:.6f}  {}\n", p, fmt::join(h.tokens, " "), h.score, lmdecode::to_string(h.finish_reason));
      if (tokenizer && !(streamed && i == 0)) fmt::print(out, "  text: {}\n", nlohmann::json(tokenizer->decode(h.tokens)).dump());
      if (scores) fmt::print(out, "  scores: [{:.6f}]\n", fmt::join(h.token_scores, ", "));
    }
}

/// The timing line (and the drafts' line) on stderr.
void print_timing(const lmdecode::GenerationResult& result, const Timing& timing, bool speculative) {
  for (const auto& warning : result.warnings) std::fprintf(stderr, "warning: %s\n", warning.c_str());
  fmt::print(stderr, "timing: prompt {:.1f} ms, {:.2f} ms per step, {:.1f} tokens/s ({}, {})\n", timing.prompt_ms, timing.per_step_ms,
             timing.tokens_per_s(), lmdecode_cli::plural(result.steps, "step"), lmdecode_cli::plural(at::get_num_threads(), "thread"));
  if (speculative)
    fmt::print(stderr, "speculation: {} in {} of the model ({} of the draft model); {} of {} drafts accepted\n",
               lmdecode_cli::plural(timing.new_tokens, "new token"), lmdecode_cli::plural(result.steps, "forward"),
               result.speculation.draft_forwards, result.speculation.accepted, result.speculation.drafted);
}

int run(const Flags& f, const lmdecode_cli::ModelFlags& m, const lmdecode_cli::GenerationFlags& generation) {
  lmdecode::check_model_folder(m.folder);
  const auto tokenizer_path = (std::filesystem::path(m.folder) / "tokenizer.json").string();
  const auto tokenizer = folder_tokenizer(tokenizer_path);
  const lmdecode::Tokenizer* text = tokenizer ? &*tokenizer : nullptr;
  const auto prompts = collect_prompts(f, text, tokenizer_path);
  auto model = lmdecode::load_pretrained(m.folder, m.load_options());
  if (text) lmdecode_cli::check_tokenizer_fits(text->vocab_size(), model->config());
  const auto config = generation_config(f, m, generation, model->config(), text, tokenizer_path);
  std::unique_ptr<lmdecode::PretrainedModel> draft;
  if (!f.assistant_model.empty()) draft = lmdecode::load_pretrained(f.assistant_model, m.load_options());

  const auto start = Clock::now();
  std::optional<Clock::time_point> first_step;
  StreamPrinter printer(f.json, text);
  auto on_step = [&](lmdecode::StepEvent& e) {
    if (!first_step) first_step = Clock::now();
    if (f.stream) printer.print(e);
  };
  auto result = draft ? lmdecode::generate(*model, *draft, prompts, config, on_step) : lmdecode::generate(*model, prompts, config, on_step);
  const auto end = Clock::now();
  if (f.stream) printer.finish();
  if (!config.max_new_tokens && !config.max_length)
    std::fprintf(stderr, "lmdecode-generate: note: neither %s/generation_config.json nor a flag sets a length: at most 20 new "
                         "tokens (transformers' default; --max-new-tokens N)\n", m.folder.c_str());

  auto ms = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  Timing timing{.prompt_ms = ms(start, first_step.value_or(end)), .total_ms = ms(start, end)};
  if (result.steps > 1) timing.per_step_ms = ms(first_step.value_or(end), end) / static_cast<double>(result.steps - 1);
  for (const auto& per_prompt : result.hypotheses)
    for (const auto& h : per_prompt) timing.new_tokens += static_cast<int64_t>(h.tokens.size());
  const bool speculative = draft || config.prompt_lookup_num_tokens;
  if (f.json) {
    print_json(result, config, text, timing, speculative);
    return 0;
  }
  print_text(result, text, f.stream, config.output_scores);
  print_timing(result, timing, speculative);
  return 0;
}

}  // namespace

// lmdecode-generate's main (program_main.cpp).
int program_main(int argc, char** argv) {
  CLI::App app{"lmdecode-generate: Hugging Face generate() semantics on a checkpoint folder. Defaults come from the "
               "folder's generation_config.json; flags override them.",
               "lmdecode-generate"};
  Flags f;
  lmdecode_cli::ModelFlags model_flags(app);
  app.add_option("--prompt-ids", f.prompts, "Prompt token ids, comma separated; repeat the flag for a batch");
  app.add_option("--prompt", f.prompt_texts, "Prompt text, encoded with the folder's tokenizer.json; repeatable; - reads stdin");
  app.add_option("--prompt-file", f.prompt_files,
                 "A file holding the prompt (less one final newline), or several: a JSON array of strings, or one a line "
                 "with --prompt-lines; at most 64 MiB; repeatable")
      ->check(CLI::ExistingFile);
  app.add_flag("--prompt-lines", f.prompt_lines, "Each non-empty line of --prompt-file (or of stdin with --prompt -) is a prompt");
  app.add_option("--assistant-model", f.assistant_model,
                 "Speculative decoding with drafts from this checkpoint folder (a smaller model with the same vocabulary; "
                 "--num-assistant-tokens and its schedule)");
  app.add_option("--grammar", f.grammar,
                 "A GBNF grammar file (llama.cpp's format, start rule `root`): the new text follows it, under every "
                 "strategy; EOS only where the text is a whole sentence of it. Needs the folder's tokenizer.json");
  app.add_option("--json-schema", f.json_schema,
                 "A JSON Schema file: the new text is JSON that satisfies it (properties in the schema's order; "
                 "see README for the keywords a grammar can say)");
  app.add_flag("--json-object", f.json_object, "The new text is one JSON object");
  lmdecode_cli::GenerationFlags generation_flags(app);
  app.add_flag("--json", f.json, "Print one JSON object (sequences hold the new tokens only; with --output-scores also "
                                 "\"token_scores\", each new token's transformers transition score)");
  app.add_flag("--stream", f.stream,
               "Print tokens as they become final (beam search: the prefix no beam can change), as text with a "
               "tokenizer; with --json one {\"step\", \"committed\"} object a line before the result");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "lmdecode-generate: %s (see --help)\n", e.what());
    return 2;
  }
  return lmdecode_cli::report_failures("lmdecode-generate", [&] {
    model_flags.apply_threads();
    return run(f, model_flags, generation_flags);
  });
}

}  // namespace lmdecode_cli::generate_program
