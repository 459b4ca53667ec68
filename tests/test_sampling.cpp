// The sampling decoders: reproducible seeds, greedy as top_k = 1, draws that follow the processed
// softmax and torch.multinomial, beam sampling, and the generator pool behind them.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "lmdecode/decoders/detail/random_generator.hpp"
#include "lmdecode/decoders/detail/sampling_draws.hpp"
#include "lmdecode/lmdecode.hpp"
#include "support/multinomial_draws.hpp"
#include "support/table_model.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;
using namespace lmdecode_test::abc;

TEST_CASE("sampling is reproducible, top_k=1 is greedy, and draws follow the processed softmax", "[sampling]") {
  const auto folder = lmdecode_test::reference_dir() / "qwen2-tiny";
  auto model = lmdecode::load_pretrained(folder);
  auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
  config.max_new_tokens = 16;
  const auto prompts = lmdecode_test::prompts_5_and_1();
  SECTION("the same seed gives the same tokens; another seed other tokens") {
    config.do_sample = true;
    config.top_k = 0;
    config.seed = 1234;
    config.num_return_sequences = 3;
    auto first = lmdecode::SamplingDecoder(*model, config).generate(prompts);
    auto again = lmdecode::SamplingDecoder(*model, config).generate(prompts);
    REQUIRE(at::equal(first.sequences, again.sequences));
    REQUIRE(first.hypotheses[0].size() == 3);
    config.seed = 99;
    auto other = lmdecode::SamplingDecoder(*model, config).generate(prompts);
    REQUIRE_FALSE(at::equal(first.sequences, other.sequences));
  }
  SECTION("top_k = 1 gives exactly the greedy tokens") {
    auto greedy = lmdecode::GreedyDecoder(*model, config).generate(prompts);
    config.do_sample = true;
    config.top_k = 1;
    config.temperature = 0.7;
    config.seed = 5;
    auto sampled = lmdecode::generate(*model, prompts, config);
    REQUIRE(at::equal(greedy.sequences, sampled.sequences));
  }
  SECTION("beam sampling draws its candidates and is reproducible") {
    config.do_sample = true;
    config.num_beams = 3;
    config.num_return_sequences = 2;
    config.seed = 7;
    auto first = lmdecode::generate(*model, prompts, config);
    auto again = lmdecode::generate(*model, prompts, config);
    REQUIRE(at::equal(first.sequences, again.sequences));
    REQUIRE(first.hypotheses[1].size() == 2);
    REQUIRE(first.hypotheses[0][0].score >= first.hypotheses[0][1].score);
  }
  SECTION("a sampled row with no token left is a clear error; NaN logits are the model's") {
    auto table = abc_model();
    auto sampling = abc_config();
    sampling.do_sample = true;
    sampling.seed = 1;
    sampling.suppress_tokens = {A, B, EOS};  // every token: softmax of all -inf is NaN
    REQUIRE_THROWS_AS(lmdecode::SamplingDecoder(table, sampling).generate({{A}}), lmdecode::invalid_argument);
    REQUIRE_THROWS_WITH(lmdecode::SamplingDecoder(table, sampling).generate({{A}}), Contains("no token to draw by step 1"));
    sampling.num_beams = 2;
    REQUIRE_THROWS_WITH(lmdecode::generate(table, {{A}}, sampling), Contains("no token to draw"));
    sampling.suppress_tokens.clear();
    lmdecode_test::MisbehavingModel nan(lmdecode_test::MisbehavingModel::Fault::nan_logits);
    REQUIRE_THROWS_AS(lmdecode::generate(nan, {{A}}, sampling), lmdecode::model_error);
    sampling.num_beams = 1;
    REQUIRE_THROWS_WITH(lmdecode::SamplingDecoder(nan, sampling).generate({{A}}), Contains("NaN logits"));
  }
  SECTION("sample frequencies match the processed distribution (chi-square, seed 0)") {
    // After token a the model's distribution is (.5, .3, .2); temperature 0.5 squares it: (.25, .09, .04) / .38.
    auto table = abc_model();
    auto sampling = abc_config();
    sampling.do_sample = true;
    sampling.max_new_tokens = 1;
    sampling.top_k = 0;
    sampling.temperature = 0.5;
    sampling.seed = 0;
    const int64_t draws = 20000;
    sampling.num_return_sequences = draws;
    auto r = lmdecode::SamplingDecoder(table, sampling).generate({{A}});
    std::vector<double> counts(3, 0.0);
    for (const auto& h : r.hypotheses[0]) counts[h.tokens[0]] += 1;
    const std::vector<double> expected = {0.25 / 0.38, 0.09 / 0.38, 0.04 / 0.38};
    double chi2 = 0;
    for (int i = 0; i < 3; ++i) chi2 += std::pow(counts[i] - draws * expected[i], 2) / (draws * expected[i]);
    INFO("counts " << counts[0] << " " << counts[1] << " " << counts[2] << ", chi2 " << chi2);
    REQUIRE(chi2 < 13.82);  // chi-square, 2 degrees of freedom, p = 0.001
    // With top_k = 2 the third token is never drawn.
    sampling.top_k = 2;
    sampling.num_return_sequences = 2000;
    auto top2 = lmdecode::SamplingDecoder(table, sampling).generate({{A}});
    REQUIRE(top2.hypotheses[0].size() == 2000);
    for (const auto& h : top2.hypotheses[0]) REQUIRE(h.tokens[0] != EOS);
  }
}

TEST_CASE("sampling draws are torch.multinomial's for the same generator state", "[sampling]") {
  lmdecode_test::require_draws_match_multinomial(at::kCPU, [](uint64_t seed) { return at::detail::createCPUGenerator(seed); });
  auto nothing_left = at::full({2, 5}, -std::numeric_limits<float>::infinity());
  nothing_left[0][3] = 0.0f;
  auto generator = at::detail::createCPUGenerator(0);
  REQUIRE(lmdecode::detail::draw_from_softmax(nothing_left, 1, generator).invalid.item<bool>());
}

TEST_CASE("a generator pool lends a generator to one holder at a time", "[sampling]") {
  // Off the CPU a decoder's generator comes from such a pool; a generate() nested in a step callback
  // must get another one, or it would reseed the outer call's draws.
  int made = 0;
  lmdecode::detail::GeneratorPool pool([&made] {
    ++made;
    return at::detail::createCPUGenerator();
  });
  auto draw = [](at::Generator& g) { return at::empty({8}).exponential_(1, g); };
  auto reference = at::detail::createCPUGenerator(1);
  const void* outer_impl = nullptr;
  {
    auto outer = pool.lend(1);
    outer_impl = outer.unsafeGetGeneratorImpl();
    REQUIRE(at::equal(draw(outer), draw(reference)));
    {
      auto nested = pool.lend(2);  // lent while `outer` is held
      REQUIRE(made == 2);
      auto two = at::detail::createCPUGenerator(2);
      REQUIRE(at::equal(draw(nested), draw(two)));
    }
    REQUIRE(at::equal(draw(outer), draw(reference)));  // the nested lend left outer's state alone
    auto again = pool.lend(3);  // nested's generator is free again
    REQUIRE(made == 2);
    REQUIRE(again.unsafeGetGeneratorImpl() != outer_impl);
  }
  auto after = pool.lend(1);  // every generator is back: no new one, and the seed starts it afresh
  REQUIRE(made == 2);
  auto fresh = at::detail::createCPUGenerator(1);
  REQUIRE(at::equal(draw(after), draw(fresh)));
}

TEST_CASE("sampling's scores are the warped ones, as transformers keeps them", "[sampling][scores]") {
  // transformers' output_scores with do_sample holds the scores after the warpers: with top_k = 1
  // and temperature 0.5 each step keeps one finite score, the best logit / 0.5, and the tokens are
  // greedy's.
  const auto folder = lmdecode_test::reference_dir() / "qwen2-tiny";
  auto model = lmdecode::load_pretrained(folder);
  auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
  config.max_new_tokens = 6;
  config.eos_token_ids.clear();  // all 6 steps
  config.output_scores = true;
  auto greedy = lmdecode::generate(*model, {{17, 240, 5}}, config);
  config.do_sample = true;
  config.top_k = 1;
  config.temperature = 0.5;
  config.seed = 3;
  auto sampled = lmdecode::generate(*model, {{17, 240, 5}}, config);
  const auto& g = greedy.hypotheses[0][0];
  const auto& s = sampled.hypotheses[0][0];
  REQUIRE(s.tokens == g.tokens);
  REQUIRE(s.tokens.size() == 6);
  REQUIRE(s.token_scores.size() == 6);
  REQUIRE(sampled.scores.size() == static_cast<size_t>(sampled.steps));
  for (size_t t = 0; t < s.tokens.size(); ++t) {
    REQUIRE(s.token_scores[t] == Approx(g.token_scores[t] / 0.5).epsilon(1e-6));
    REQUIRE(at::isfinite(sampled.scores[t]).sum().item<int64_t>() == 1);
  }
}
