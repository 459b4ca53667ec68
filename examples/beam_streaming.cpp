// lmdecode-beam-streaming: beam search that streams the tokens no beam can change any more, waits
// for more finished hypotheses (patience) and returns transformers' per-token scores.
//
//   lmdecode-beam-streaming MODEL_DIR      (a checkpoint folder, e.g. tests/data/hf-reference/qwen2-tiny)

#include <lmdecode/lmdecode.hpp>

#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

int main(int argc, char** argv) try {
  if (argc != 2 || argv[1][0] == '-') {  // also --help
    std::puts("usage: lmdecode-beam-streaming MODEL_DIR   (a checkpoint folder, e.g. tests/data/hf-reference/qwen2-tiny)");
    return argc == 2 && std::string(argv[1]) == "--help" ? 0 : 2;
  }
  auto model = lmdecode::load_pretrained(argv[1]);
  auto config = lmdecode::load_checkpoint_generation_config(argv[1], model->config());
  config.num_beams = 4;
  config.max_new_tokens = 24;
  config.early_stopping = lmdecode::EarlyStopping::on_full;
  config.patience = 2.0;        // end once 8 hypotheses have finished, not 4
  config.output_scores = true;  // token_scores, scores and beam_indices as transformers gives them

  const std::vector<lmdecode::TokenIds> prompts = {{291, 18, 77}, {5, 6}};
  std::vector<lmdecode::TokenIds> shown(prompts.size());
  auto result = lmdecode::generate(*model, prompts, config, [&](const lmdecode::StepEvent& e) {
    for (size_t p = 0; p < e.committed.size(); ++p) {
      if (e.committed[p].empty()) continue;
      fmt::print("step {:2}: prompt {} commits [{}]\n", e.step, p, fmt::join(e.committed[p], " "));
      shown[p].insert(shown[p].end(), e.committed[p].begin(), e.committed[p].end());
    }
  });
  for (size_t p = 0; p < prompts.size(); ++p) {
    const auto& best = result.hypotheses[p][0];
    fmt::print("prompt {}: [{}] ({}, score {:.4f}); streamed the same: {}\n", p, fmt::join(best.tokens, " "),
               lmdecode::to_string(best.finish_reason), best.score, shown[p] == best.tokens ? "yes" : "NO");
    fmt::print("  token scores: [{:.3f}]\n", fmt::join(best.token_scores, " "));
  }
  fmt::print("{} steps; scores kept for each: [{}]; beam_indices {}\n", result.steps,
             fmt::join(result.scores.front().sizes(), "x"), fmt::join(result.beam_indices.sizes(), "x"));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "lmdecode-beam-streaming: %s\n", e.what());
  return 1;
}
