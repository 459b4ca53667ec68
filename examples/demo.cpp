// lmdecode-demo: a real generation on a Hugging Face checkpoint (by default the bundled qwen2-tiny,
// random weights, vocabulary of 320 ids): greedy with streaming, then beam search.
//
//   lmdecode-demo [MODEL_DIR]

#include <chrono>
#include <cstdio>

#include <fmt/ranges.h>

#include <lmdecode/lmdecode.hpp>

int main(int argc, char** argv) {
  const std::string folder = argc > 1 ? argv[1] : LMDECODE_BUNDLED_MODEL;
  try {
    auto model = lmdecode::load_pretrained(folder, {at::kCPU, at::kFloat});
    const auto& mc = model->config();
    fmt::print("model  {} ({}): {} layers, hidden {}, {} heads / {} kv heads, vocab {}\n", folder, mc.architecture,
               mc.num_layers, mc.hidden_size, mc.num_heads, mc.num_kv_heads, mc.vocab_size);
    auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
    config.max_new_tokens = 24;
    const std::vector<lmdecode::TokenIds> prompts = {{208, 141, 227, 125, 139}, {17, 240, 5}};
    fmt::print("eos    [{}], pad {}\n\n", fmt::join(config.eos_token_ids, ", "), config.resolved_pad_token_id());

    fmt::print("greedy, streamed (prompt 0):");
    auto start = std::chrono::steady_clock::now();
    auto greedy = lmdecode::GreedyDecoder(*model, config).generate(prompts, [](const lmdecode::StepEvent& e) {
      if (!e.finished[0] || e.tokens[0].size() == static_cast<size_t>(e.step + 1))
        fmt::print(" {}", e.tokens[0].back());
      std::fflush(stdout);
    });
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    fmt::print("\n");
    for (size_t p = 0; p < prompts.size(); ++p) {
      const auto& h = greedy.hypotheses[p][0];
      fmt::print("  prompt [{}] -> [{}]  logprob {:.3f}  ({})\n", fmt::join(prompts[p], " "), fmt::join(h.tokens, " "),
                 h.score, lmdecode::to_string(h.finish_reason));
    }
    fmt::print("  {} steps in {:.1f} ms\n\n", greedy.steps, ms);

    config.num_beams = 4;
    config.num_return_sequences = 2;
    config.length_penalty = 1.0;
    start = std::chrono::steady_clock::now();
    auto beams = lmdecode::BeamSearchDecoder(*model, config).generate(prompts);
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    fmt::print("beam search, 4 beams, best 2 per prompt:\n");
    for (size_t p = 0; p < prompts.size(); ++p)
      for (const auto& h : beams.hypotheses[p])
        fmt::print("  prompt [{}] -> [{}]  score {:.4f}  ({})\n", fmt::join(prompts[p], " "), fmt::join(h.tokens, " "),
                   h.score, lmdecode::to_string(h.finish_reason));
    fmt::print("  {} steps in {:.1f} ms\n", beams.steps, ms);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lmdecode-demo: %s\n", e.what());
    return 1;
  }
}
