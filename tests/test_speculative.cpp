// Speculative decoding: drafts from the prompt (PromptLookupDecoder) and from a draft model
// (AssistedDecoder) return plain greedy's tokens, and sampling keeps its distribution.

#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "lmdecode/lmdecode.hpp"
#include "support/golden_cases.hpp"
#include "support/table_model.hpp"
#include "support/test_data.hpp"

namespace {

using lmdecode::GenerationConfig;
using lmdecode::GenerationResult;
using lmdecode::TokenIds;

/// Walks every greedy golden case and dtype, calling `check(case, dtype, model, defaults, models)`.
template <class Check>
int for_each_greedy_case(Check check) {
  lmdecode_test::GoldenModels models(lmdecode_test::reference_dir(), at::kCPU);
  int checked = 0;
  for (const char* file : {"cases.json", "cases-generated.json"}) {
    const auto data = lmdecode::detail::read_json_file(lmdecode_test::reference_dir() / file);
    for (const auto& c : data.at("cases")) {
      if (c.at("kind") != "greedy") continue;
      for (const auto& dtype : lmdecode_test::golden_checks(c)) {
        auto& loaded = models.get(c.at("model"), dtype);
        INFO(file << " case " << c.dump() << " " << dtype);
        check(c, dtype, *loaded.model, loaded.defaults, models);
        ++checked;
      }
    }
  }
  return checked;
}

}  // namespace

TEST_CASE("speculative greedy returns transformers' tokens, scores and ends on every greedy golden case",
          "[speculative][models]") {
  lmdecode::SpeculationCounts lookup_total, assisted_total;
  int64_t plain_steps = 0, lookup_steps = 0;
  const int checked = for_each_greedy_case([&](const nlohmann::json& c, const std::string& dtype, lmdecode::PretrainedModel& model,
                                               const GenerationConfig& defaults, lmdecode_test::GoldenModels& models) {
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
    // (llama3-tiny for gpt2-tiny), fortunes-llama (its own vocabulary) for itself; 4 drafts a step
    // at first, the heuristic schedule.
    const std::string name = c.at("model");
    const std::string draft_name = name == "fortunes-llama" ? name : name == "gpt2-tiny" ? "llama3-tiny" : "gpt2-tiny";
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
