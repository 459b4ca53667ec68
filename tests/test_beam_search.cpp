// Beam search worked by hand (early stopping, length penalty, patience, candidates) and the patience property on every golden beam case.
#include <catch2/catch.hpp>

#include <cmath>

#include "lmdecode/lmdecode.hpp"
#include "support/each_golden_case.hpp"
#include "support/table_model.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;
using lmdecode::EarlyStopping;
using lmdecode::FinishReason;
using lmdecode::GenerationConfig;
using lmdecode_test::TableModel;

using namespace lmdecode_test::abc;

namespace {

/// The hand-worked beam example's settings: 2 beams, both returned, at most 6 new tokens.
GenerationConfig two_beams_six_tokens() {
  auto config = abc_config();
  config.num_beams = 2;
  config.num_return_sequences = 2;
  config.max_new_tokens = 6;
  return config;
}

}  // namespace

TEST_CASE("BeamSearchDecoder follows HF's early-stopping modes and length penalty (worked by hand)", "[beam]") {
  // Prompt [a], 2 beams, EOS ids {2}: K = 4 candidates a step. Step 1's EOS is ranked 3rd and dropped.
  // Hypotheses that end: b E (step 2), a b E (3), a a b E (4), a a a b E (5), then at step 6 the
  // length limit closes a a a a a a and a a a a b E.
  auto model = abc_model();
  auto config = two_beams_six_tokens();
  auto run = [&](EarlyStopping mode, double length_penalty) {
    config.early_stopping = mode;
    config.length_penalty = length_penalty;
    return lmdecode::BeamSearchDecoder(model, config).generate({{A}});
  };
  auto tokens = [](const lmdecode::GenerationResult& r, int rank) { return r.hypotheses[0][rank].tokens; };

  SECTION("early_stopping=false, length_penalty=1: runs to the limit, where a^6 wins on average log-prob") {
    auto r = run(EarlyStopping::heuristic, 1.0);
    REQUIRE(r.steps == 6);
    REQUIRE(tokens(r, 0) == std::vector<int64_t>{A, A, A, A, A, A});
    REQUIRE(r.hypotheses[0][0].finish_reason == FinishReason::length);
    REQUIRE(r.hypotheses[0][0].score == Approx(lp({.5, .5, .5, .5, .5, .5}) / 6).margin(1e-6));
    REQUIRE(tokens(r, 1) == std::vector<int64_t>{A, A, A, A, B, EOS});
    REQUIRE(r.hypotheses[0][1].finish_reason == FinishReason::eos);
    REQUIRE(r.hypotheses[0][1].score == Approx(lp({.5, .5, .5, .5, .3, .8}) / 6).margin(1e-6));
    REQUIRE(r.hypotheses[0][1].token_logprobs.back() == Approx(std::log(0.8)).margin(1e-6));
    // HF layout: prompt, then tokens; every row has the longest length here.
    REQUIRE(r.sequences.size(0) == 2);
    REQUIRE(r.sequences.size(1) == 7);
  }
  SECTION("early_stopping=false, length_penalty=0: stops once the best running beam cannot win") {
    auto r = run(EarlyStopping::heuristic, 0.0);
    REQUIRE(r.steps == 4);  // after step 4 the best running a^4 (-2.77) is below the worst kept (-2.12)
    REQUIRE(tokens(r, 0) == std::vector<int64_t>{B, EOS});
    REQUIRE(r.hypotheses[0][0].score == Approx(lp({.3, .8})).margin(1e-6));
    REQUIRE(tokens(r, 1) == std::vector<int64_t>{A, B, EOS});
    REQUIRE(r.hypotheses[0][1].score == Approx(lp({.5, .3, .8})).margin(1e-6));
    // Shorter hypotheses are right-padded with the fill token (pad 2 here).
    REQUIRE(at::equal(r.sequences[0], at::tensor(std::vector<int64_t>{A, B, EOS, EOS})));
  }
  SECTION("early_stopping=never with length_penalty<=0 is the same code path as false") {
    auto never = run(EarlyStopping::never, 0.0);
    auto heuristic = run(EarlyStopping::heuristic, 0.0);
    REQUIRE(never.steps == heuristic.steps);
    REQUIRE(at::equal(never.sequences, heuristic.sequences));
  }
  SECTION("early_stopping=true: stops as soon as num_beams hypotheses are finished") {
    auto r = run(EarlyStopping::on_full, 1.0);
    REQUIRE(r.steps == 3);
    REQUIRE(tokens(r, 0) == std::vector<int64_t>{A, B, EOS});  // -2.12 / 3 beats -1.43 / 2
    REQUIRE(r.hypotheses[0][0].score == Approx(lp({.5, .3, .8}) / 3).margin(1e-6));
    REQUIRE(tokens(r, 1) == std::vector<int64_t>{B, EOS});
    REQUIRE(r.hypotheses[0][1].score == Approx(lp({.3, .8}) / 2).margin(1e-6));
  }
  SECTION("a batch gives each prompt the result it gets alone") {
    config.early_stopping = EarlyStopping::heuristic;
    config.length_penalty = 0.0;
    auto batched = lmdecode::BeamSearchDecoder(model, config).generate({{A}, {B, A}});
    auto alone = lmdecode::BeamSearchDecoder(model, config).generate({{B, A}});
    REQUIRE(batched.hypotheses[0][0].tokens == std::vector<int64_t>{B, EOS});
    REQUIRE(batched.hypotheses[1][0].tokens == alone.hypotheses[0][0].tokens);
    REQUIRE(batched.hypotheses[1][1].tokens == alone.hypotheses[0][1].tokens);
  }
  SECTION("the step callback sees the best running beam") {
    std::vector<lmdecode::StepEvent> events;
    config.early_stopping = EarlyStopping::on_full;
    lmdecode::BeamSearchDecoder(model, config).generate({{A}}, [&](const auto& e) { events.push_back(e); });
    REQUIRE(events.size() == 3);
    REQUIRE(events[1].tokens[0] == std::vector<int64_t>{A, A});
    REQUIRE(events.back().finished[0]);
  }
}

TEST_CASE("beam patience keeps round(num_beams x patience) hypotheses and waits for them (worked by hand)", "[beam][patience]") {
  // The example above: from step 2 on, one hypothesis ends a step, a^(t-2) b E at step t, each
  // scoring a little better on average than the one before (b E -0.716, a b E -0.708, a a b E
  // -0.703, a a a b E -0.701 with length_penalty 1).
  auto model = abc_model();
  auto config = two_beams_six_tokens();
  auto run = [&](EarlyStopping mode, double length_penalty, double patience) {
    config.early_stopping = mode;
    config.length_penalty = length_penalty;
    config.patience = patience;
    return lmdecode::BeamSearchDecoder(model, config).generate({{A}});
  };
  SECTION("early_stopping=true waits for round(2 x patience) finished hypotheses and returns the best two") {
    auto one = run(EarlyStopping::on_full, 1.0, 1.0);
    REQUIRE(one.steps == 3);
    REQUIRE(one.hypotheses[0][0].tokens == std::vector<int64_t>{A, B, EOS});
    auto three = run(EarlyStopping::on_full, 1.0, 1.5);  // round(3) = 3 hypotheses
    REQUIRE(three.steps == 4);
    REQUIRE(three.hypotheses[0][0].tokens == std::vector<int64_t>{A, A, B, EOS});
    REQUIRE(three.hypotheses[0][1].tokens == std::vector<int64_t>{A, B, EOS});
    auto four = run(EarlyStopping::on_full, 1.0, 2.0);
    REQUIRE(four.steps == 5);
    REQUIRE(four.hypotheses[0].size() == 2);
    REQUIRE(four.hypotheses[0][0].tokens == std::vector<int64_t>{A, A, A, B, EOS});
    REQUIRE(four.hypotheses[0][0].score == Approx(lp({.5, .5, .5, .3, .8}) / 5).margin(1e-6));
    REQUIRE(four.hypotheses[0][1].tokens == std::vector<int64_t>{A, A, B, EOS});
  }
  SECTION("early_stopping=false waits until the kept hypotheses are all finished before the heuristic can stop") {
    // length_penalty 0: with 2 kept the search stops after step 4 (see above); with 4 kept the
    // fourth ends at step 5 (-3.51), when the best running a^5 (-3.47) can still beat it, so it
    // runs to the limit. The best stays b E (-1.43).
    auto one = run(EarlyStopping::heuristic, 0.0, 1.0);
    auto four = run(EarlyStopping::heuristic, 0.0, 2.0);
    REQUIRE(one.steps == 4);
    REQUIRE(four.steps == 6);
    REQUIRE(four.hypotheses[0][0].tokens == std::vector<int64_t>{B, EOS});
    REQUIRE(four.hypotheses[0][1].tokens == std::vector<int64_t>{A, B, EOS});
  }
  SECTION("a patience below 1 keeps fewer hypotheses and stops sooner") {
    config.num_return_sequences = 1;
    auto half = run(EarlyStopping::on_full, 1.0, 0.5);  // round(1) = 1
    REQUIRE(half.steps == 2);
    REQUIRE(half.hypotheses[0][0].tokens == std::vector<int64_t>{B, EOS});
  }
  SECTION("a patience that keeps fewer hypotheses than are returned, or none, or a bad value, is refused") {
    REQUIRE_THROWS_WITH(run(EarlyStopping::on_full, 1.0, 0.5), Contains("fewer than num_return_sequences (2)"));
    config.num_return_sequences = 1;
    REQUIRE_THROWS_WITH(run(EarlyStopping::on_full, 1.0, 0.2), Contains("round(2 x 0.2) = 0"));
    for (double bad : {0.0, -1.0, double(NAN), double(INFINITY), 65.0})
      REQUIRE_THROWS_WITH(run(EarlyStopping::on_full, 1.0, bad), Contains("patience must be in (0, 64]"));
  }
}

TEST_CASE("beam search keeps max(2, 1 + #EOS) x num_beams candidates, so EOS ids cannot crowd out the running beams", "[beam]") {
  // Tokens a, b and two EOS ids x, y; prompt [a], 2 beams: K = 3 x 2 = 6 candidates a step. Step 2's
  // four best candidates all end (a x .08, a y .07, b x .0675, b y .0645); only the fifth and sixth
  // (a a .0625, a b .0375) can run on. With length penalty 2 and early_stopping "never" the search
  // reaches step 3, where a a x and a a y beat every shorter hypothesis (a x: -0.631, a y: -0.665).
  // Had it kept 2 x num_beams = 4 candidates, no running beam would have survived step 2.
  constexpr int64_t a = 0, x = 2, y = 3;  // and b = 1
  TableModel model({{.25, .15, .32, .28}, {.07, .05, .45, .43}, {.25, .25, .25, .25}, {.25, .25, .25, .25}});
  GenerationConfig config;
  config.eos_token_ids = {x, y};
  config.pad_token_id = x;
  config.num_beams = 2;
  config.num_return_sequences = 2;
  config.max_new_tokens = 3;
  config.length_penalty = 2.0;
  config.early_stopping = EarlyStopping::never;
  auto r = lmdecode::BeamSearchDecoder(model, config).generate({{a}});
  REQUIRE(r.steps == 3);
  REQUIRE(r.hypotheses[0].size() == 2);
  REQUIRE(r.hypotheses[0][0].tokens == std::vector<int64_t>{a, a, x});
  REQUIRE(r.hypotheses[0][0].score == Approx(lp({.25, .25, .32}) / 9).margin(1e-6));
  REQUIRE(r.hypotheses[0][1].tokens == std::vector<int64_t>{a, a, y});
  REQUIRE(r.hypotheses[0][1].score == Approx(lp({.25, .25, .28}) / 9).margin(1e-6));
}

TEST_CASE("a larger patience never gives a worse best score on the golden beam cases", "[beam][patience][golden][every-golden-beam-case]") {
  int improved = 0;
  lmdecode_test::for_each_golden_case("beam", [&](const nlohmann::json& c, lmdecode::PretrainedModel& model, GenerationConfig config) {
    const auto prompts = c.at("prompts").get<std::vector<lmdecode::TokenIds>>();
    std::vector<double> previous;
    for (double patience : {1.0, 1.5, 2.0, 3.0}) {
      config.patience = patience;
      auto result = lmdecode::BeamSearchDecoder(model, config).generate(prompts);
      for (size_t p = 0; p < prompts.size(); ++p) {
        const double best = result.hypotheses[p][0].score;
        if (p < previous.size()) {
          INFO("patience " << patience << " prompt " << p);
          REQUIRE(best >= previous[p]);
          improved += best > previous[p];
        }
        if (previous.size() <= p) previous.push_back(best);
        previous[p] = best;
      }
    }
  });
  CHECK(improved > 0);
}
