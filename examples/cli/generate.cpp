// lmdecode-generate: generation from the command line on a Hugging Face checkpoint folder.
// Defaults come from the folder's generation_config.json (and config.json's special tokens); flags
// override them. Run with --help for every flag.
//
//   lmdecode-generate --model DIR --prompt-ids 1,2,3 [--prompt-ids 4,5]... [--num-beams 4] [--json]
//   lmdecode-generate --model DIR --prompt TEXT --prompt-lookup-num-tokens 10     (speculative, drafts from the text)
//   lmdecode-generate --model DIR --prompt TEXT --assistant-model DRAFT_DIR      (speculative, drafts from a draft model)
//   lmdecode-generate --model DIR --prompt TEXT --grammar answer.gbnf             (the new text follows a GBNF grammar)

#include <chrono>
#include <memory>
#include <cstdio>
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

namespace {

using Clock = std::chrono::steady_clock;

/// The flags a user gave besides the model's and the generation options.
struct Flags {
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_texts;
  std::string assistant_model;  // a draft model's checkpoint folder (speculative decoding)
  std::string grammar;          // a GBNF file the new tokens follow
  std::string json_schema;      // a JSON Schema file they follow
  bool json_object = false;     // they are a JSON object
  bool json = false, stream = false;
};

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

int run(const Flags& f, const lmdecode_cli::ModelFlags& m, const lmdecode_cli::GenerationFlags& generation) {
  std::vector<lmdecode::TokenIds> prompts;
  for (const auto& p : f.prompts) prompts.push_back(lmdecode_cli::parse_ids(p, "--prompt-ids"));
  // With a tokenizer.json in the folder, text prompts work and results are shown as text too.
  std::optional<lmdecode::Tokenizer> tokenizer;
  const auto tokenizer_path = std::filesystem::path(m.folder) / "tokenizer.json";
  if (std::filesystem::exists(tokenizer_path)) tokenizer.emplace(lmdecode::Tokenizer::from_file(tokenizer_path));
  for (const auto& text : f.prompt_texts) {
    if (!tokenizer) throw lmdecode::invalid_argument(fmt::format("--prompt needs {}", tokenizer_path.string()));
    prompts.push_back(tokenizer->encode(text));
  }
  if (prompts.empty()) throw lmdecode::invalid_argument("give at least one --prompt-ids or --prompt");
  auto model = lmdecode::load_pretrained(m.folder, m.load_options());
  auto config = generation.apply(lmdecode::load_checkpoint_generation_config(m.folder, model->config()));
  if (!config.stop_strings.empty()) {  // --stop-string or the checkpoint's stop_strings
    if (!tokenizer) throw lmdecode::invalid_argument(fmt::format("stop strings need {}", tokenizer_path.string()));
    config.token_texts = tokenizer->token_texts();
  }
  if (auto grammar = structured_output(f)) {
    if (!tokenizer) throw lmdecode::invalid_argument(fmt::format("--grammar, --json-schema and --json-object need {}", tokenizer_path.string()));
    std::vector<int64_t> special_ids;
    for (const auto& added : tokenizer->added_tokens())
      if (added.special) special_ids.push_back(added.id);
    config.grammar = std::make_shared<lmdecode::TokenGrammar>(std::move(*grammar), tokenizer->token_texts(), special_ids);
  }

  const auto start = Clock::now();
  std::optional<Clock::time_point> first_step;
  StreamPrinter printer(f.json, tokenizer ? &*tokenizer : nullptr);
  auto on_step = [&](lmdecode::StepEvent& e) {
    if (!first_step) first_step = Clock::now();
    if (f.stream) printer.print(e);
  };
  std::unique_ptr<lmdecode::PretrainedModel> draft;
  if (!f.assistant_model.empty()) draft = lmdecode::load_pretrained(f.assistant_model, m.load_options());
  auto result = draft ? lmdecode::generate(*model, *draft, prompts, config, on_step) : lmdecode::generate(*model, prompts, config, on_step);
  const auto end = Clock::now();
  const bool speculative = draft || config.prompt_lookup_num_tokens;
  const auto& drafts = result.speculation;
  if (f.stream) printer.finish();

  auto ms = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  const double prompt_ms = ms(start, *first_step);  // prefill and the first token
  const double per_token_ms = result.steps > 1 ? ms(*first_step, end) / static_cast<double>(result.steps - 1) : 0.0;
  int64_t new_tokens = 0;
  for (const auto& per_prompt : result.hypotheses)
    for (const auto& h : per_prompt) new_tokens += static_cast<int64_t>(h.tokens.size());
  const double tokens_per_s = new_tokens / (ms(start, end) / 1000.0);

  if (f.json) {
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
    out["timing"] = {{"prompt_ms", prompt_ms}, {"ms_per_token", per_token_ms}, {"tokens_per_s", tokens_per_s},
                     {"steps", result.steps}, {"total_ms", ms(start, end)}, {"threads", at::get_num_threads()}};
    if (speculative)
      out["speculation"] = {{"target_forwards", result.steps}, {"draft_forwards", drafts.draft_forwards},
                            {"drafted", drafts.drafted}, {"accepted", drafts.accepted}};
    fmt::print("{}\n", out.dump());
    return 0;
  }
  for (size_t p = 0; p < result.hypotheses.size(); ++p)
    for (const auto& h : result.hypotheses[p]) {
      fmt::print("prompt {}: [{}]  score {:.6f}  {}\n", p, fmt::join(h.tokens, " "), h.score, lmdecode::to_string(h.finish_reason));
      if (tokenizer) fmt::print("  text: {}\n", nlohmann::json(tokenizer->decode(h.tokens)).dump());
    }
  for (const auto& warning : result.warnings) std::fprintf(stderr, "warning: %s\n", warning.c_str());
  fmt::print("timing: prompt {:.1f} ms, {:.2f} ms per step, {:.1f} tokens/s ({} steps, {} threads)\n", prompt_ms,
             per_token_ms, tokens_per_s, result.steps, at::get_num_threads());
  if (speculative)
    fmt::print("speculation: {} new tokens in {} forwards of the model ({} of the draft model); {} of {} drafts accepted\n",
               new_tokens, result.steps, drafts.draft_forwards, drafts.accepted, drafts.drafted);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lmdecode-generate: Hugging Face generate() semantics on a checkpoint folder. Defaults come from the "
               "folder's generation_config.json; flags override them.",
               "lmdecode-generate"};
  Flags f;
  lmdecode_cli::ModelFlags model_flags(app);
  app.add_option("--prompt-ids", f.prompts, "Prompt token ids, comma separated; repeat the flag for a batch");
  app.add_option("--prompt", f.prompt_texts, "Prompt text, encoded with the folder's tokenizer.json; repeatable");
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
