// Speculative decoding: drafts from the prompt (PromptLookupDecoder) and from a draft model
// (AssistedDecoder) return plain greedy's tokens, and sampling keeps its distribution.

#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "lmdecode/lmdecode.hpp"
#include "support/each_golden_case.hpp"
#include "support/table_model.hpp"
#include "support/test_data.hpp"

namespace {

using lmdecode::GenerationConfig;
using lmdecode::GenerationResult;
using lmdecode::TokenIds;

}  // namespace

TEST_CASE("speculative greedy returns transformers' tokens, scores and ends on every greedy golden case",
          "[speculative][models]") {
  lmdecode::SpeculationCounts lookup_total, assisted_total;
  int64_t plain_steps = 0, lookup_steps = 0;
  lmdecode_test::GoldenModels models(lmdecode_test::reference_dir(), at::kCPU);
  const int checked = lmdecode_test::for_each_golden_run(models, "greedy", [&](const nlohmann::json& c, const std::string& dtype,
                                                                              lmdecode_test::GoldenModels::Loaded& loaded) {
    auto& model = *loaded.model;
    const auto& defaults = loaded.defaults;
    // Prompt lookup, 3 drafts a step from 2-grams.
    auto lookup = lmdecode_test::check_golden_case_with(defaults, c, dtype, [&](GenerationConfig config, const auto& prompts) {
      config.prompt_lookup_num_tokens = 3;
      auto result = lmdecode::PromptLookupDecoder(model, config).generate(prompts);
      lookup_total.drafted += result.speculation.drafted;
      lookup_total.accepted += result.speculation.accepted;
      lookup_steps += result.steps;
      auto plain = config;
      plain.prompt_lookup_num_tokens.reset();
      plain_steps += lmdecode::GreedyDecoder(model, plain).generate(prompts).steps;
      return result;
    });
    CHECK(lookup == "");
    // A draft model with the same vocabulary and other weights: gpt2-tiny drafts for the tiny models
    // (llama3-tiny for gpt2-tiny), the demo model's trained draft for it; 4 drafts a step at first,
    // the heuristic schedule.
    const std::string name = c.at("model");
    const std::string draft_name = name == "fortunes-llama" ? "fortunes-llama-draft" : name == "gpt2-tiny" ? "llama3-tiny" : "gpt2-tiny";
    auto& draft = *models.get(draft_name, dtype).model;
    auto assisted = lmdecode_test::check_golden_case_with(defaults, c, dtype, [&](GenerationConfig config, const auto& prompts) {
      config.num_assistant_tokens = 4;
      config.num_assistant_tokens_schedule = lmdecode::DraftSchedule::heuristic_transient;
      auto result = lmdecode::AssistedDecoder(model, draft, config).generate(prompts);
      assisted_total.drafted += result.speculation.drafted;
      assisted_total.accepted += result.speculation.accepted;
      assisted_total.draft_forwards += result.speculation.draft_forwards;
      return result;
    });
    CHECK(assisted == "");
  });
  CHECK(checked >= 65);
  // The drafts were real: some kept, some refused, and prompt lookup saved forwards.
  CHECK(lookup_total.accepted > 0);
  CHECK(lookup_total.accepted < lookup_total.drafted);
  CHECK(assisted_total.accepted > 0);
  CHECK(assisted_total.accepted < assisted_total.drafted);
  CHECK(assisted_total.draft_forwards > 0);
  CHECK(lookup_steps < plain_steps);
}

namespace {

/// After token t the target gives TARGET[t], the draft model DRAFT[t] (three tokens, no EOS).
const std::vector<std::vector<double>> kTarget{{0.6, 0.3, 0.1}, {0.2, 0.2, 0.6}, {0.35, 0.45, 0.2}};
const std::vector<std::vector<double>> kDraft{{0.2, 0.5, 0.3}, {0.6, 0.3, 0.1}, {0.3, 0.3, 0.4}};

/// Pearson's chi-square of the sequences `result` sampled (every hypothesis of its one prompt)
/// against their exact probabilities under kTarget after `last` (the prompt's last token), cells
/// expected under 5 merged; and the value a correct sampler exceeds with probability 1e-4.
std::pair<double, double> chi_square(const GenerationResult& result, int64_t last, int64_t length) {
  std::map<TokenIds, double> observed;
  for (const auto& h : result.hypotheses.at(0)) {
    REQUIRE(static_cast<int64_t>(h.tokens.size()) == length);
    observed[h.tokens] += 1;
  }
  const double n = static_cast<double>(result.hypotheses.at(0).size());
  double statistic = 0, merged_expected = 0, merged_observed = 0;
  int cells = 0;
  TokenIds sequence(length, 0);
  for (int64_t code = 0; code < static_cast<int64_t>(std::pow(3, length)); ++code) {
    double p = 1;
    int64_t previous = last, rest = code;
    for (int64_t i = 0; i < length; ++i, rest /= 3) {
      sequence[i] = rest % 3;
      p *= kTarget[previous][sequence[i]];
      previous = sequence[i];
    }
    const double expected = n * p, seen = observed.count(sequence) ? observed[sequence] : 0.0;
    if (expected < 5) {
      merged_expected += expected;
      merged_observed += seen;
      continue;
    }
    statistic += (seen - expected) * (seen - expected) / expected;
    ++cells;
  }
  if (merged_expected > 0) {
    statistic += (merged_observed - merged_expected) * (merged_observed - merged_expected) / merged_expected;
    ++cells;
  }
  // Wilson-Hilferty: the chi-square quantile of `cells - 1` degrees of freedom at z = 3.719 (1e-4).
  const double k = cells - 1, z = 3.719;
  return {statistic, k * std::pow(1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k)), 3)};
}

GenerationConfig sampling_config(int64_t rows, int64_t length) {
  GenerationConfig config;
  config.do_sample = true;
  config.top_k = 0;
  config.max_new_tokens = length;
  config.num_return_sequences = rows;
  config.seed = 2026;
  return config;
}

/// The sampled sequences (after token 0) follow kTarget exactly, and some drafts were kept, some not.
void check_distribution(const GenerationResult& result, int64_t length) {
  const auto [statistic, limit] = chi_square(result, 0, length);
  INFO("chi-square " << statistic << ", limit " << limit << ", accepted " << result.speculation.accepted << " of "
                     << result.speculation.drafted);
  CHECK(statistic < limit);
  CHECK(result.speculation.accepted > 0);
  CHECK(result.speculation.accepted < result.speculation.drafted);
}

}  // namespace

TEST_CASE("speculative sampling keeps the model's distribution over every sequence of 4 tokens", "[speculative][sampling]") {
  lmdecode_test::TableModel target(kTarget), draft(kDraft);
  const int64_t rows = 8000, length = 4;
  SECTION("a sampling draft model, accepted with min(1, p/q), the refused resampled from max(0, p - q)") {
    auto config = sampling_config(rows, length);
    config.num_assistant_tokens = 3;
    config.assistant_confidence_threshold = 0;  // draft every time
    check_distribution(lmdecode::AssistedDecoder(target, draft, config).generate({{0}}), length);
  }
  SECTION("prompt lookup, a draft kept while the model's own draw equals it") {
    auto config = sampling_config(rows, length);
    config.prompt_lookup_num_tokens = 3;
    config.max_matching_ngram_size = 1;
    check_distribution(lmdecode::PromptLookupDecoder(target, config).generate({{2, 0, 1, 2, 0}}), length);
  }
}

TEST_CASE("a speculative run streams each token once, several a step, over a left-padded batch", "[speculative][streaming]") {
  const auto folder = lmdecode_test::reference_dir() / "fortunes-llama";
  auto model = lmdecode::load_pretrained(folder, {at::kCPU, at::kFloat});
  auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
  config.max_new_tokens = 48;
  config.prompt_lookup_num_tokens = 4;
  const std::vector<TokenIds> prompts{{318, 3424, 289, 259, 2101, 681, 300}, {33, 966, 300}};  // "The secret of a happy life is", "A computer is"
  std::vector<TokenIds> streamed(prompts.size());
  size_t most = 0;
  int64_t steps = 0;
  auto result = lmdecode::PromptLookupDecoder(*model, config).generate(prompts, [&](lmdecode::StepEvent& e) {
    CHECK(e.step == steps++);
    for (size_t p = 0; p < prompts.size(); ++p) {
      streamed[p].insert(streamed[p].end(), e.committed[p].begin(), e.committed[p].end());
      CHECK(e.tokens[p] == streamed[p]);
      most = std::max(most, e.committed[p].size());
    }
  });
  CHECK(steps == result.steps);
  for (size_t p = 0; p < prompts.size(); ++p) CHECK(streamed[p] == result.hypotheses[p][0].tokens);
  CHECK(most > 1);
  const auto plain = lmdecode::GreedyDecoder(*model, [&] {
    auto c = config;
    c.prompt_lookup_num_tokens.reset();
    return c;
  }()).generate(prompts);
  for (size_t p = 0; p < prompts.size(); ++p) CHECK(plain.hypotheses[p][0].tokens == result.hypotheses[p][0].tokens);
  // A callback that stops the run: the rows end where it stopped, with the callback as the reason.
  auto stopped = lmdecode::PromptLookupDecoder(*model, config).generate(prompts, [](lmdecode::StepEvent& e) { e.stop_requested = e.step == 1; });
  CHECK(stopped.steps == 2);
  for (const auto& h : stopped.hypotheses) CHECK((h[0].finish_reason == lmdecode::FinishReason::callback ||
                                                  h[0].finish_reason == lmdecode::FinishReason::eos));
}

TEST_CASE("speculative decoding refuses what it cannot do by name", "[speculative][errors]") {
  auto model = lmdecode::load_pretrained(lmdecode_test::reference_dir() / "qwen2-tiny", {at::kCPU, at::kFloat});
  auto fortunes = lmdecode::load_pretrained(lmdecode_test::reference_dir() / "fortunes-llama", {at::kCPU, at::kFloat});
  GenerationConfig config;
  config.prompt_lookup_num_tokens = 3;
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(lmdecode::GreedyDecoder(*model, config), Contains("PromptLookupDecoder"));
  config.num_beams = 2;
  CHECK_THROWS_WITH(lmdecode::generate(*model, {{5, 6}}, config), Contains("prompt_lookup_num_tokens") && Contains("beam search"));
  config.num_beams = 1;
  config.prompt_lookup_num_tokens = 1000;
  CHECK_THROWS_WITH(lmdecode::PromptLookupDecoder(*model, config), Contains("prompt_lookup_num_tokens must be in [1, 128]"));
  // The scores of every draft position count in the memory a request needs, before anything is allocated.
  config.prompt_lookup_num_tokens = 128;
  config.do_sample = true;
  config.num_return_sequences = 1 << 20;
  CHECK_THROWS_WITH(lmdecode::PromptLookupDecoder(*fortunes, config).generate({{5, 6}}), Contains("129 scored a step"));
  CHECK_THROWS_WITH(lmdecode::AssistedDecoder(*model, *fortunes, GenerationConfig{}),
                    Contains("the draft model's vocabulary has 4096 tokens, the model's 320"));
}
