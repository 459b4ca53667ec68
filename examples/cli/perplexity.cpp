// lmdecode-perplexity: a model's loss on a text, scored the way llama.cpp's llama-perplexity scores
// it, so that a weight format's cost in accuracy can be set beside llama.cpp's on the same text.
//
//   lmdecode-perplexity --model DIR --text FILE [--context 128] [--weights f32|bf16|q8_0] [--threads N] [--json]
//
// The text is encoded whole with DIR/tokenizer.json and cut into windows of --context tokens; in
// each, the first half is context and every later token is predicted from the ones before it (the
// last context/2 - 1 tokens of a window, as llama-perplexity does). Prints the mean negative
// log-likelihood in nats and its exponential, the perplexity.

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <lmdecode/lmdecode.hpp>
#include <lmdecode/text/tokenizer.hpp>

#include "program_flags.hpp"

namespace lmdecode_cli::perplexity_program {
namespace {

struct Loss {
  double nats = 0;  // summed over the scored tokens
  int64_t tokens = 0;
  int64_t windows = 0;
};

/// The summed negative log-likelihood of the second half of each window of `context` tokens.
Loss score_windows(lmdecode::PretrainedModel& model, const std::vector<int64_t>& ids, int64_t context) {
  Loss loss;
  const int64_t first = context / 2;
  const auto longs = at::TensorOptions().dtype(at::kLong).device(model.device());
  for (size_t start = 0; start + context <= ids.size(); start += context) {
    auto window = at::tensor(std::vector<int64_t>(ids.begin() + start, ids.begin() + start + context), longs).unsqueeze(0);
    auto cache = model.make_cache(1, context);
    auto logits = model.forward({window, at::ones({1, context}, longs), at::arange(context, longs).unsqueeze(0), true}, cache);
    // Positions first .. context - 2 predict tokens first + 1 .. context - 1.
    auto logprobs = logits[0].narrow(0, first, context - 1 - first).to(at::kDouble).log_softmax(-1);
    auto targets = window[0].narrow(0, first + 1, context - 1 - first).unsqueeze(1);
    loss.nats -= logprobs.gather(1, targets).sum().item<double>();
    loss.tokens += context - 1 - first;
    ++loss.windows;
  }
  return loss;
}

}  // namespace

// lmdecode-perplexity's main (program_main.cpp).
int program_main(int argc, char** argv) {
  CLI::App app{"lmdecode-perplexity: a model's loss on a text, scored as llama-perplexity scores it"};
  lmdecode_cli::ModelFlags m(app);
  std::string text_path;
  int64_t context = 128;
  bool json = false;
  app.add_option("--text", text_path, "The text to score (UTF-8)")->required()->check(CLI::ExistingFile);
  app.add_option("--context", context, "Tokens a window holds; the first half is context")->check(CLI::Range(4, 1 << 16));
  app.add_flag("--json", json, "Print one JSON object");
  CLI11_PARSE(app, argc, argv);
  return lmdecode_cli::report_failures("lmdecode-perplexity", [&] {
    m.apply_threads();
    c10::InferenceMode inference;
    auto model = lmdecode::load_pretrained(m.folder, m.load_options());
    const auto tokenizer = lmdecode::Tokenizer::from_file(std::filesystem::path(m.folder) / "tokenizer.json");
    lmdecode_cli::check_tokenizer_fits(tokenizer.vocab_size(), model->config());
    std::ifstream in(text_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const auto ids = tokenizer.encode(text.str());
    lmdecode::detail::check(static_cast<int64_t>(ids.size()) >= context, "{} encodes to {} tokens, fewer than one window of {}",
                            text_path, ids.size(), context);
    const auto loss = score_windows(*model, ids, context);
    const double mean = loss.nats / static_cast<double>(loss.tokens);
    if (json) {
      std::printf("%s\n", nlohmann::json{{"model", m.folder}, {"weights", m.weights}, {"context", context},
                                         {"windows", loss.windows}, {"tokens_scored", loss.tokens}, {"mean_nll_nats", mean},
                                         {"perplexity", std::exp(mean)}}.dump().c_str());
    } else {
      fmt::print("{}, {} weights: {} of {}, {} scored: mean NLL {:.5f} nats, perplexity {:.4f}\n", m.folder, m.weights,
                 lmdecode_cli::plural(loss.windows, "window"), lmdecode_cli::plural(context, "token"),
                 lmdecode_cli::plural(loss.tokens, "token"), mean, std::exp(mean));
    }
    return 0;
  });
}

}  // namespace lmdecode_cli::perplexity_program
