#include <lmdecode/lmdecode.hpp>

#include <fmt/ranges.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) try {
  if (argc != 2 || argv[1][0] == '-') {  // also --help
    std::puts("usage: lmdecode-quickstart MODEL_DIR   (a Hugging Face checkpoint folder)");
    return argc == 2 && std::string(argv[1]) == "--help" ? 0 : 2;
  }
  // A Hugging Face checkpoint folder: config.json, model.safetensors, generation_config.json.
  auto model = lmdecode::load_pretrained(argv[1], {at::kCPU, at::kFloat});
  auto config = lmdecode::load_checkpoint_generation_config(argv[1], model->config());
  config.max_new_tokens = 16;
  config.num_beams = 4;
  config.num_return_sequences = 2;

  lmdecode::BeamSearchDecoder decoder(*model, config);
  auto result = decoder.generate({{291, 18, 77}, {5, 6}});  // two prompts, token ids
  for (const auto& hypotheses : result.hypotheses)
    for (const auto& h : hypotheses)
      fmt::print("[{}] score {:.4f} ({})\n", fmt::join(h.tokens, " "), h.score, lmdecode::to_string(h.finish_reason));
} catch (const std::exception& e) {  // lmdecode's errors say "lmdecode: " and what is wrong
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
