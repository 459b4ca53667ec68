// Step callbacks: the tokens each step shows, and beam search's committed tokens on every golden case.
#include <catch2/catch.hpp>


#include "lmdecode/lmdecode.hpp"
#include "support/each_golden_case.hpp"
#include "support/table_model.hpp"
#include "support/test_data.hpp"

using lmdecode::GenerationConfig;
using lmdecode_test::TableModel;

using namespace lmdecode_test::abc;

TEST_CASE("a step callback sees each step's tokens, also when beams take over other beams' histories", "[beam][greedy][models]") {
  // With no EOS id nothing ends before the length limit, so what a step's event shows is what a run
  // limited to that many new tokens returns: the best running beam is then the best hypothesis.
  const auto folder = lmdecode_test::reference_dir() / "qwen2-tiny";
  auto model = lmdecode::load_pretrained(folder);
  auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
  config.eos_token_ids.clear();
  const auto prompts = lmdecode_test::prompts_5_and_2();
  auto best_of_run = [&](int64_t new_tokens) {
    auto limited = config;
    limited.max_new_tokens = new_tokens;
    auto result = lmdecode::generate(*model, prompts, limited);
    return std::vector<lmdecode::TokenIds>{result.hypotheses[0][0].tokens, result.hypotheses[1][0].tokens};
  };
  for (int64_t beams : {1, 3}) {
    config.num_beams = beams;
    config.max_new_tokens = 10;
    std::vector<std::vector<lmdecode::TokenIds>> streamed;
    lmdecode::generate(*model, prompts, config, [&](const lmdecode::StepEvent& e) { streamed.push_back(e.tokens); });
    REQUIRE(streamed.size() == 10);
    int64_t switches = 0;  // steps after which a prompt's best beam no longer extends the previous best
    for (size_t t = 0; t < streamed.size(); ++t) {
      INFO("beams " << beams << ", step " << t);
      CHECK(streamed[t] == best_of_run(static_cast<int64_t>(t) + 1));
      for (size_t b = 0; t > 0 && b < prompts.size(); ++b)
        switches += !std::equal(streamed[t - 1][b].begin(), streamed[t - 1][b].end(), streamed[t][b].begin());
    }
    if (beams > 1) CHECK(switches > 0);  // so the host copy's reorder was exercised
  }
}

TEST_CASE("the committed tokens of every golden case add up to its best sequence, and no beam changes them", "[beam][greedy][streaming][golden]") {
  int64_t committed_early = 0, total = 0;  // beam tokens committed while their prompt's search went on
  const int checked = lmdecode_test::for_each_golden_case("", [&](const nlohmann::json& c, lmdecode::PretrainedModel& model,
                                                   const GenerationConfig& config) {
    const auto prompts = c.at("prompts").get<std::vector<lmdecode::TokenIds>>();
    std::vector<lmdecode::TokenIds> committed(prompts.size());
    std::vector<bool> ended(prompts.size(), false);
    auto result = lmdecode::generate(model, prompts, config, [&](const lmdecode::StepEvent& e) {
      REQUIRE(e.committed.size() == prompts.size());
      for (size_t p = 0; p < prompts.size(); ++p) {
        REQUIRE((e.committed[p].empty() || !ended[p]));  // nothing after a prompt's end
        committed[p].insert(committed[p].end(), e.committed[p].begin(), e.committed[p].end());
        if (config.num_beams > 1 && !e.finished[p]) {
          committed_early += static_cast<int64_t>(e.committed[p].size());
          // What is committed leads every running beam, so also the best one the event shows.
          REQUIRE(std::equal(committed[p].begin(), committed[p].end(), e.tokens[p].begin(),
                             e.tokens[p].begin() + std::min(e.tokens[p].size(), committed[p].size())));
          REQUIRE(committed[p].size() <= e.tokens[p].size());
        }
        ended[p] = ended[p] || e.finished[p];
      }
    });
    for (size_t p = 0; p < prompts.size(); ++p) {
      REQUIRE(committed[p] == result.hypotheses[p][0].tokens);
      if (config.num_beams > 1) total += static_cast<int64_t>(committed[p].size());
    }
  });
  CHECK(checked == 740 + 916);  // every (case, dtype) pair of the two files
  INFO(committed_early << " of " << total << " beam tokens committed before their prompt's search ended");
  CHECK(committed_early * 4 > total);  // the stream is not just the result at the end
}
