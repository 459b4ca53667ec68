// lmdecode-soak: many generations back to back in one process (greedy, beam, sampling, beam
// sampling; batch sizes 1 to 4; EOS, stop sequences, length limits), every other one through an
// Engine (each prompt a request, submitted together; a prefix cache of 1 MiB), checking that the
// resident memory stops growing after a warm-up. Prints RSS after the warm-up and at the end.
//
//   lmdecode-soak [--model DIR] [--generations N] [--max-growth-mib M]
// Exits 1 if RSS grew by more than M MiB (default 4) after the warm-up (a tenth of the run).

#include <cstdio>
#include <stdexcept>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "lmdecode/lmdecode.hpp"

namespace {

int64_t rss_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string folder = LMDECODE_BUNDLED_MODEL;
  int generations = 1000;
  double max_growth_mib = 4.0;
  const char* usage = "usage: lmdecode-soak [--model DIR] [--generations N] [--max-growth-mib M]\n";
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--help") {
      std::fputs(usage, stdout);
      return 0;
    }
    const std::string value = i + 1 < argc ? argv[i + 1] : "";
    try {
      if (flag == "--model") folder = value;
      else if (flag == "--generations") generations = std::stoi(value);
      else if (flag == "--max-growth-mib") max_growth_mib = std::stod(value);
      else throw std::invalid_argument("unknown flag");
      if (value.empty() || generations < 1 || !(max_growth_mib >= 0)) throw std::invalid_argument("bad value");
    } catch (const std::exception&) {
      std::fprintf(stderr, "lmdecode-soak: bad flag or value: %s %s\n%s", flag.c_str(), value.c_str(), usage);
      return 2;
    }
  }
  try {
    auto model = lmdecode::load_pretrained(folder);
    const auto defaults = lmdecode::load_checkpoint_generation_config(folder, model->config());
    lmdecode::Engine engine(*model, {.prefix_cache_bytes = 1 << 20});
    const int warm_up = std::max(1, generations / 10);
    int64_t after_warm_up = 0;
    int64_t tokens = 0;
    for (int g = 0; g < generations; ++g) {
      if (g == warm_up) after_warm_up = rss_kib();
      auto config = defaults;
      config.max_new_tokens = 4 + g % 29;
      config.seed = static_cast<uint64_t>(g);
      switch (g % 4) {
        case 0: break;  // greedy
        case 1: config.num_beams = 2 + g % 3, config.num_return_sequences = 2, config.length_penalty = (g % 5) - 2.0; break;
        case 2: config.do_sample = true, config.top_p = 0.9, config.temperature = 0.8; break;
        case 3: config.do_sample = true, config.num_beams = 3; break;
      }
      if (g % 7 == 0) config.stop_sequences = {{5, 6}, {static_cast<int64_t>(g % 300)}};
      if (g % 11 == 0) config.early_stopping = lmdecode::EarlyStopping::on_full;
      std::vector<lmdecode::TokenIds> prompts;
      for (int b = 0; b <= g % 4; ++b) {
        lmdecode::TokenIds p;
        for (int t = 0; t <= (g + 3 * b) % 17; ++t) p.push_back(4 + (g * 31 + b * 7 + t * 13) % 300);
        prompts.push_back(p);
      }
      std::vector<lmdecode::GenerationResult> results;
      if (g % 2 == 0) {
        results.push_back(lmdecode::generate(*model, prompts, config));
      } else {
        std::vector<lmdecode::RequestHandle> requests;
        for (const auto& p : prompts) requests.push_back(engine.submit(p, config));
        for (const auto& r : requests) results.push_back(r.wait());
      }
      for (const auto& result : results)
        for (const auto& per_prompt : result.hypotheses)
          for (const auto& h : per_prompt) tokens += static_cast<int64_t>(h.tokens.size());
    }
    const int64_t end = rss_kib();
    const double growth_mib = (end - after_warm_up) / 1024.0;
    fmt::print("lmdecode-soak: {} generations ({} new tokens); RSS after {} warm-up generations {:.1f} MiB, at the end "
               "{:.1f} MiB, growth {:+.2f} MiB (limit {:.1f})\n",
               generations, tokens, warm_up, after_warm_up / 1024.0, end / 1024.0, growth_mib, max_growth_mib);
    return growth_mib > max_growth_mib ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lmdecode-soak: %s\n", e.what());
    return 1;
  }
}
