// lmdecode-generate: generation from the command line on a Hugging Face checkpoint folder.
// Defaults come from the folder's generation_config.json (and config.json's special tokens); flags
// override them. Run with --help for every flag.
//
//   lmdecode-generate --model DIR --prompt-ids 1,2,3 [--prompt-ids 4,5]... [--num-beams 4] [--json]

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <lmdecode/lmdecode.hpp>
#include <lmdecode/text/tokenizer.hpp>

namespace {

using Clock = std::chrono::steady_clock;

std::vector<int64_t> parse_ids(const std::string& text, const std::string& flag) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size())
      throw lmdecode::invalid_argument(fmt::format("{} expects comma-separated token ids, got \"{}\"", flag, text));
    ids.push_back(value);
    start = end + 1;
  }
  return ids;
}

/// The flags a user gave; unset ones keep the checkpoint's defaults.
struct Flags {
  std::string model;
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_texts;
  std::optional<int64_t> max_new_tokens, min_new_tokens, num_beams, num_return_sequences, no_repeat_ngram_size, top_k,
      pad_token_id;
  std::optional<double> length_penalty, patience, repetition_penalty, temperature, top_p, min_p, max_time;
  std::optional<uint64_t> seed;
  std::optional<int> threads;
  std::optional<std::string> early_stopping, eos_token_ids;
  std::vector<std::string> stop_sequences, stop_strings;
  bool do_sample = false, no_cache = false, json = false, stream = false, output_scores = false;
  std::string dtype = "f32", device = "cpu";
};

lmdecode::GenerationConfig apply_flags(lmdecode::GenerationConfig c, const Flags& f) {
  if (f.max_new_tokens) c.max_new_tokens = *f.max_new_tokens;
  if (f.min_new_tokens) c.min_new_tokens = *f.min_new_tokens;
  if (f.num_beams) c.num_beams = *f.num_beams;
  if (f.length_penalty) c.length_penalty = *f.length_penalty;
  if (f.patience) c.patience = *f.patience;
  if (f.early_stopping) {
    c.early_stopping = *f.early_stopping == "true"    ? lmdecode::EarlyStopping::on_full
                       : *f.early_stopping == "never" ? lmdecode::EarlyStopping::never
                                                      : lmdecode::EarlyStopping::heuristic;
  }
  if (f.num_return_sequences) c.num_return_sequences = *f.num_return_sequences;
  if (f.repetition_penalty) c.repetition_penalty = *f.repetition_penalty;
  if (f.no_repeat_ngram_size) c.no_repeat_ngram_size = *f.no_repeat_ngram_size;
  if (f.do_sample) c.do_sample = true;
  if (f.temperature) c.temperature = *f.temperature;
  if (f.top_k) c.top_k = *f.top_k;
  if (f.top_p) c.top_p = *f.top_p;
  if (f.min_p) c.min_p = *f.min_p;
  if (f.seed) c.seed = *f.seed;
  if (f.eos_token_ids) c.eos_token_ids = parse_ids(*f.eos_token_ids, "--eos-token-ids");
  if (f.pad_token_id) c.pad_token_id = *f.pad_token_id;
  if (f.max_time) c.max_time = *f.max_time;
  for (const auto& s : f.stop_sequences) c.stop_sequences.push_back(parse_ids(s, "--stop-sequence"));
  c.stop_strings.insert(c.stop_strings.end(), f.stop_strings.begin(), f.stop_strings.end());
  if (f.no_cache) c.use_cache = false;
  if (f.output_scores) c.output_scores = true;
  lmdecode::validate(c);
  return c;
}

at::ScalarType dtype_of(const std::string& name) {
  if (name == "f64") return at::kDouble;
  if (name == "bf16") return at::kBFloat16;
  if (name == "f16") return at::kHalf;
  return at::kFloat;
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

int run(const Flags& f) {
  const at::Device device = f.device == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  std::vector<lmdecode::TokenIds> prompts;
  for (const auto& p : f.prompts) prompts.push_back(parse_ids(p, "--prompt-ids"));
  // With a tokenizer.json in the folder, text prompts work and results are shown as text too.
  std::optional<lmdecode::Tokenizer> tokenizer;
  const auto tokenizer_path = std::filesystem::path(f.model) / "tokenizer.json";
  if (std::filesystem::exists(tokenizer_path)) tokenizer.emplace(lmdecode::Tokenizer::from_file(tokenizer_path));
  for (const auto& text : f.prompt_texts) {
    if (!tokenizer) throw lmdecode::invalid_argument(fmt::format("--prompt needs {}", tokenizer_path.string()));
    prompts.push_back(tokenizer->encode(text));
  }
  if (prompts.empty()) throw lmdecode::invalid_argument("give at least one --prompt-ids or --prompt");
  auto model = lmdecode::load_pretrained(f.model, {device, dtype_of(f.dtype)});
  auto config = apply_flags(lmdecode::load_checkpoint_generation_config(f.model, model->config()), f);
  if (!config.stop_strings.empty()) {  // --stop-string or the checkpoint's stop_strings
    if (!tokenizer) throw lmdecode::invalid_argument(fmt::format("stop strings need {}", tokenizer_path.string()));
    config.token_texts = tokenizer->token_texts();
  }

  const auto start = Clock::now();
  std::optional<Clock::time_point> first_step;
  StreamPrinter printer(f.json, tokenizer ? &*tokenizer : nullptr);
  auto on_step = [&](lmdecode::StepEvent& e) {
    if (!first_step) first_step = Clock::now();
    if (f.stream) printer.print(e);
  };
  auto result = lmdecode::generate(*model, prompts, config, on_step);
  const auto end = Clock::now();
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
    out["timing"] = {{"prompt_ms", prompt_ms}, {"ms_per_token", per_token_ms}, {"tokens_per_s", tokens_per_s},
                     {"steps", result.steps}, {"total_ms", ms(start, end)}, {"threads", at::get_num_threads()}};
    fmt::print("{}\n", out.dump());
    return 0;
  }
  for (size_t p = 0; p < result.hypotheses.size(); ++p)
    for (const auto& h : result.hypotheses[p]) {
      fmt::print("prompt {}: [{}]  score {:.6f}  {}\n", p, fmt::join(h.tokens, " "), h.score, lmdecode::to_string(h.finish_reason));
      if (tokenizer) fmt::print("  text: {}\n", nlohmann::json(tokenizer->decode(h.tokens)).dump());
    }
  fmt::print("timing: prompt {:.1f} ms, {:.2f} ms per new token, {:.1f} tokens/s ({} steps, {} threads)\n", prompt_ms,
             per_token_ms, tokens_per_s, result.steps, at::get_num_threads());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lmdecode-generate: Hugging Face generate() semantics on a checkpoint folder. Defaults come from the "
               "folder's generation_config.json; flags override them.",
               "lmdecode-generate"};
  Flags f;
  app.add_option("--model", f.model, "Checkpoint folder: config.json, model.safetensors[.index.json], generation_config.json")
      ->required();
  app.add_option("--prompt-ids", f.prompts, "Prompt token ids, comma separated; repeat the flag for a batch");
  app.add_option("--prompt", f.prompt_texts, "Prompt text, encoded with the folder's tokenizer.json; repeatable");
  app.add_option("--max-new-tokens", f.max_new_tokens, "New tokens to generate at most");
  app.add_option("--min-new-tokens", f.min_new_tokens, "EOS is banned until this many new tokens");
  app.add_option("--num-beams", f.num_beams, "Beams per prompt (1: greedy or sampling)");
  app.add_option("--length-penalty", f.length_penalty, "Beam score = sum of log-probs / length ** this");
  app.add_option("--early-stopping", f.early_stopping, "Beam search stop rule")->check(CLI::IsMember({"true", "false", "never"}));
  app.add_option("--patience", f.patience,
                 "Beam search keeps round(beams x patience) finished hypotheses and waits for them (1: transformers)");
  app.add_option("--num-return-sequences", f.num_return_sequences, "Sequences returned per prompt");
  app.add_option("--repetition-penalty", f.repetition_penalty, "CTRL repetition penalty (1: off)");
  app.add_option("--no-repeat-ngram-size", f.no_repeat_ngram_size, "Ban repeating n-grams of this size (0: off)");
  app.add_flag("--do-sample", f.do_sample, "Sample instead of taking the arg max");
  app.add_option("--temperature", f.temperature, "Sampling temperature (> 0)");
  app.add_option("--top-k", f.top_k, "Sampling: keep the k best tokens (0: off)");
  app.add_option("--top-p", f.top_p, "Sampling: nucleus mass in (0, 1]");
  app.add_option("--min-p", f.min_p, "Sampling: drop tokens below min-p x the best probability");
  app.add_option("--seed", f.seed, "Sampling seed");
  app.add_option("--eos-token-ids", f.eos_token_ids, "EOS ids, comma separated (replaces the checkpoint's)");
  app.add_option("--pad-token-id", f.pad_token_id, "Pad id");
  app.add_option("--stop-sequence", f.stop_sequences, "A stop token sequence, comma separated; repeatable");
  app.add_option("--stop-string", f.stop_strings,
                 "A stop string (transformers' stop_strings: ends a row once it ends in the newest token's text; "
                 "needs the folder's tokenizer.json); repeatable");
  app.add_option("--max-time", f.max_time, "Wall-clock limit in seconds");
  app.add_flag("--no-cache", f.no_cache, "Recompute the whole sequence every step (slow reference path)");
  app.add_option("--dtype", f.dtype, "Model dtype")->check(CLI::IsMember({"f64", "f32", "bf16", "f16"}));
  app.add_option("--device", f.device, "Where the model runs")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_flag("--json", f.json, "Print one JSON object (sequences hold the new tokens only)");
  app.add_flag("--stream", f.stream,
               "Print tokens as they become final (beam search: the prefix no beam can change), as text with a "
               "tokenizer; with --json one {\"step\", \"committed\"} object a line before the result");
  app.add_flag("--output-scores", f.output_scores,
               "With --json: \"token_scores\", each new token's transformers transition score");
  app.add_option("--threads", f.threads, "libtorch intra-op threads (default: libtorch's choice)")->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "lmdecode-generate: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    if (f.threads) lmdecode::set_threads(*f.threads);
    return run(f);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "lmdecode-generate: libtorch: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
  }
  return 1;
}
