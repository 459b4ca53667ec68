// lmdecode-demo: text from the bundled demo model, a toy trained on this kind of machine
// (tests/data/hf-reference/fortunes-llama: a 4-layer Llama-style model of 4.2M parameters trained on
// the quotations of Debian's `fortunes` package, see tests/reference/train-demo-model.sh). A prompt, then
// greedy (streamed as it is decoded), 4-beam and sampled continuations, each with its finish reason,
// tokens/s and the KV cache's bytes beside what the formula says; then greedy again, speculative with
// drafts from the text (prompt lookup) and from the demo model's draft (MODEL_DIR-draft, where it
// exists): the same tokens in fewer forwards.
//
//   lmdecode-demo [PROMPT [MODEL_DIR]]

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <utility>
#include <string>

#include <fmt/core.h>

#include <lmdecode/lmdecode.hpp>
#include <lmdecode/text/tokenizer.hpp>

#include "plural.hpp"

namespace {

using lmdecode_examples::plural;

/// The bytes a KV cache of this model holds for one prompt: a position's bytes x positions: the
/// prompt's once, then each row's own, one a step after the prefill (the token of the last step is
/// returned, never fed).
int64_t formula_bytes(const lmdecode::PretrainedModel& model, int64_t prompt_length, int64_t rows, int64_t steps) {
  return model.kv_bytes_per_position() * (prompt_length + rows * (steps - 1));
}

/// `text` with its later lines indented under the first (quotations span lines).
std::string indented(std::string text) {
  for (size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 1)) text.insert(at + 1, "      ");
  return text;
}

struct Run {
  const char* title;
  lmdecode::GenerationConfig config;
  int64_t rows;  // rows decoded for the prompt: beams or 1
};

void print_run(const Run& run, const lmdecode::GenerationResult& result, double seconds, bool streamed,
               const lmdecode::PretrainedModel& model, const lmdecode::Tokenizer& tokenizer, int64_t prompt_length) {
  const auto& hypotheses = result.hypotheses[0];
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const auto& h = hypotheses[i];
    if (!streamed) fmt::print("  [{}] {}\n", i + 1, indented(tokenizer.decode(h.tokens, /*skip_special_tokens=*/true)));
    fmt::print("  [{}] {}, finish reason {}, score {:.3f}\n", i + 1, plural(static_cast<int64_t>(h.tokens.size()), "token"), lmdecode::to_string(h.finish_reason),
               h.score);
  }
  const auto tokens = static_cast<double>(hypotheses[0].tokens.size());
  fmt::print("  {:.1f} ms, {:.0f} tokens/s (first sequence; {} x {}); KV cache {} bytes, formula "
             "{} layers x 2 x {} kv heads x {} dims x {} bytes x ({} + {} x {}) = {} bytes\n\n",
             seconds * 1e3, tokens / seconds, plural(result.steps, "step"), plural(run.rows, "row"), result.cache_bytes, model.config().num_layers,
             model.config().num_kv_heads, model.config().head_dim, c10::elementSize(model.dtype()), prompt_length, run.rows,
             result.steps - 1, formula_bytes(model, prompt_length, run.rows, result.steps));
}

/// A generation and the seconds it took.
template <class Run>
std::pair<lmdecode::GenerationResult, double> timed(Run run) {
  const auto start = std::chrono::steady_clock::now();
  auto result = run();
  return {std::move(result), std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
}

/// A speculative run against the plain greedy one: the same tokens, fewer forwards of the model.
void print_speculative(const lmdecode::GenerationResult& plain, const std::pair<lmdecode::GenerationResult, double>& run) {
  const auto& [result, seconds] = run;
  const auto& tokens = result.hypotheses[0][0].tokens;
  fmt::print("  {} tokens, {} as greedy's, in {} forwards of the model (greedy: {}); {} of {} drafts accepted; "
             "{:.1f} ms, {:.0f} tokens/s\n\n",
             tokens.size(), tokens == plain.hypotheses[0][0].tokens ? "the same" : "NOT the same", result.steps, plain.steps,
             result.speculation.accepted, result.speculation.drafted, seconds * 1e3, static_cast<double>(tokens.size()) / seconds);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 3 || (argc > 1 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h"))) {
    std::puts("usage: lmdecode-demo [PROMPT [MODEL_DIR]]\n"
              "  greedy (streamed), 4-beam, sampled and speculative continuations of PROMPT by the demo model\n"
              "  (default: \"The secret of a happy life is\" and " LMDECODE_DEMO_MODEL ")");
    return argc > 3 ? 2 : 0;
  }
  const std::string prompt_text = argc > 1 ? argv[1] : "The secret of a happy life is";
  const std::string folder = argc > 2 ? argv[2] : LMDECODE_DEMO_MODEL;
  try {
    auto model = lmdecode::load_pretrained(folder, {at::kCPU, at::kFloat});
    auto tokenizer = lmdecode::Tokenizer::from_file(folder + "/tokenizer.json");
    const auto& mc = model->config();
    fmt::print("model   {} ({}): {} layers, hidden {}, {} heads / {} kv heads, vocab {}\n", folder, mc.architecture,
               mc.num_layers, mc.hidden_size, mc.num_heads, mc.num_kv_heads, mc.vocab_size);
    const auto prompt = tokenizer.encode(prompt_text);
    fmt::print("prompt  \"{}\" ({} tokens)\n\n", prompt_text, prompt.size());

    auto greedy = lmdecode::load_checkpoint_generation_config(folder, mc);  // EOS, pad and max_new_tokens
    auto beams = greedy;
    beams.num_beams = 4;
    beams.num_return_sequences = 2;
    auto sampled = greedy;
    sampled.do_sample = true;
    sampled.temperature = 0.8;
    sampled.top_p = 0.95;
    sampled.seed = 7;
    sampled.num_return_sequences = 2;
    const Run runs[] = {{"greedy, streamed", greedy, 1},
                        {"beam search, 4 beams, best 2", beams, 4},
                        {"sampling, temperature 0.8, top_p 0.95, seed 7", sampled, 2}};
    lmdecode::GenerationResult plain;  // the greedy run's
    for (const auto& run : runs) {
      fmt::print("{}:\n", run.title);
      const bool streamed = run.config.num_beams == 1 && !run.config.do_sample;
      lmdecode::Tokenizer::StreamDecoder stream(tokenizer, /*skip_special_tokens=*/true);
      lmdecode::StepCallback on_step;
      if (streamed) {
        std::fputs("  [1] ", stdout);
        on_step = [&](lmdecode::StepEvent& e) {
          for (auto id : e.committed[0]) std::fputs(stream.push(id).c_str(), stdout);
          std::fflush(stdout);
        };
      }
      const auto start = std::chrono::steady_clock::now();
      auto result = lmdecode::generate(*model, {prompt}, run.config, on_step);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (streamed) fmt::print("{}\n", stream.flush());
      print_run(run, result, seconds, streamed, *model, tokenizer, static_cast<int64_t>(prompt.size()));
      if (&run == &runs[0]) plain = std::move(result);
    }
    auto lookup = greedy;
    lookup.prompt_lookup_num_tokens = 10;
    fmt::print("greedy, speculative: 10 drafts a step from the text so far (prompt lookup):\n");
    print_speculative(plain, timed([&] { return lmdecode::generate(*model, {prompt}, lookup); }));
    const std::string draft_folder = folder + "-draft";
    if (std::filesystem::exists(draft_folder + "/config.json")) {
      auto draft = lmdecode::load_pretrained(draft_folder, {at::kCPU, at::kFloat});
      fmt::print("greedy, speculative: drafts from {} ({}, hidden {}):\n", draft_folder, plural(draft->config().num_layers, "layer"),
                 draft->config().hidden_size);
      print_speculative(plain, timed([&] { return lmdecode::generate(*model, *draft, {prompt}, greedy); }));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lmdecode-demo: %s\n", e.what());
    return 1;
  }
}
