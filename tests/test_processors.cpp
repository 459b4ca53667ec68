// Logits processors, the sampling warpers and stopping, on hand-worked examples.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include "lmdecode/lmdecode.hpp"
#include "support/table_model.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;
using lmdecode::FinishReason;
using lmdecode::GenerationConfig;
using lmdecode_test::TableModel;
using namespace lmdecode_test::abc;

namespace {

const float inf = std::numeric_limits<float>::infinity();

at::Tensor row(std::vector<float> values) { return at::tensor(values).view({1, -1}); }
at::Tensor log_row(std::vector<float> probabilities) { return row(probabilities).log(); }
at::Tensor no_history() { return at::zeros({1, 1}, at::kLong); }

/// Which tokens a processor keeps (score > -inf).
std::vector<int64_t> kept(lmdecode::LogitsProcessor&& processor, at::Tensor scores) {
  processor.apply(no_history(), scores);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < scores.size(1); ++i)
    if (scores[0][i].item<float>() > -inf) out.push_back(i);
  return out;
}

using Ids = std::vector<int64_t>;

}  // namespace

TEST_CASE("penalties and bans edit scores as HF defines them", "[processors]") {
  SECTION("repetition penalty divides positive and multiplies negative scores of seen tokens, pads included") {
    auto scores = row({2.0f, -1.0f, 0.5f, 4.0f});
    lmdecode::RepetitionPenalty(2.0).apply(at::tensor({1, 0, 1}, at::kLong).view({1, 3}), scores);
    REQUIRE(at::equal(scores, row({1.0f, -2.0f, 0.5f, 4.0f})));
  }
  SECTION("no_repeat_ngram bans the tokens that would repeat an n-gram") {
    auto scores = at::zeros({2, 5});
    // Row 0: trigrams (1,2,3), (2,3,1), (3,1,2); the last two tokens (1, 2) start (1,2,3): ban 3.
    auto history = at::tensor({1, 2, 3, 1, 2, 4, 4, 4, 4, 4}, at::kLong).view({2, 5});
    lmdecode::NoRepeatNGram(3).apply(history, scores);
    REQUIRE(at::equal(scores[0], at::tensor({0.0f, 0.0f, 0.0f, -inf, 0.0f})));
    REQUIRE(at::equal(scores[1], at::tensor({0.0f, 0.0f, 0.0f, 0.0f, -inf})));  // (4,4,4) repeats
    auto unigram = at::zeros({1, 5});
    lmdecode::NoRepeatNGram(1).apply(at::tensor({0, 3}, at::kLong).view({1, 2}), unigram);
    REQUIRE(at::equal(unigram[0], at::tensor({-inf, 0.0f, 0.0f, -inf, 0.0f})));
    auto too_short = at::zeros({1, 5});
    lmdecode::NoRepeatNGram(3).apply(at::tensor({1, 1}, at::kLong).view({1, 2}), too_short);
    REQUIRE(at::equal(too_short, at::zeros({1, 5})));
  }
  SECTION("min_new_tokens bans every EOS id until enough tokens are generated") {
    lmdecode::MinNewTokens processor(/*prompt_length=*/2, /*min_new_tokens=*/2, {1, 3});
    auto scores = at::zeros({1, 4});
    processor.apply(at::zeros({1, 3}, at::kLong), scores);  // 1 generated: banned
    REQUIRE(at::equal(scores, row({0.0f, -inf, 0.0f, -inf})));
    auto later = at::zeros({1, 4});
    processor.apply(at::zeros({1, 4}, at::kLong), later);  // 2 generated: allowed
    REQUIRE(at::equal(later, at::zeros({1, 4})));
  }
  SECTION("bad words: one-token entries always, longer ones when the row ends with their prefix; EOS kept") {
    lmdecode::NoBadWords bad({{5}, {1, 2}, {7}, {3, 1, 4}}, /*eos_token_ids=*/{7});
    auto after_1 = at::zeros({2, 8});
    bad.apply(at::tensor({3, 1, 9, 3}, at::kLong).view({2, 2}), after_1);
    REQUIRE(at::equal(after_1[0], at::tensor({0.0f, 0.0f, -inf, 0.0f, -inf, -inf, 0.0f, 0.0f})));  // 5, 2 and (3,1)->4
    REQUIRE(at::equal(after_1[1], at::tensor({0.0f, 0.0f, 0.0f, 0.0f, 0.0f, -inf, 0.0f, 0.0f})));  // only 5
  }
  SECTION("suppressed tokens, always or only at the first new token") {
    auto always = at::zeros({1, 4});
    lmdecode::SuppressTokens({1, 2}).apply(no_history(), always);
    REQUIRE(at::equal(always, row({0.0f, -inf, -inf, 0.0f})));
    lmdecode::SuppressTokens at_begin({0}, /*only_at_length=*/3);
    auto first = at::zeros({1, 4}), later = at::zeros({1, 4});
    at_begin.apply(at::zeros({1, 3}, at::kLong), first);
    at_begin.apply(at::zeros({1, 4}, at::kLong), later);
    REQUIRE(at::equal(first, row({-inf, 0.0f, 0.0f, 0.0f})));
    REQUIRE(at::equal(later, at::zeros({1, 4})));
  }
  SECTION("config token ids the vocabulary lacks: ignored where HF ignores them, else an error naming the field") {
    // Such an id must never reach index_fill_: on a GPU that is a device-side assert.
    auto suppressed = at::zeros({1, 4});
    lmdecode::SuppressTokens({1, 7, -1}).apply(no_history(), suppressed);
    REQUIRE(at::equal(suppressed, row({0.0f, -inf, 0.0f, 0.0f})));
    auto none_in_vocabulary = at::zeros({1, 4});
    lmdecode::SuppressTokens({9}, /*only_at_length=*/1).apply(no_history(), none_in_vocabulary);
    REQUIRE(at::equal(none_in_vocabulary, at::zeros({1, 4})));
    auto eos_banned = at::zeros({1, 4});
    lmdecode::MinNewTokens(/*prompt_length=*/1, /*min_new_tokens=*/1, {9, 3}).apply(no_history(), eos_banned);
    REQUIRE(at::equal(eos_banned, row({0.0f, 0.0f, 0.0f, -inf})));
    auto forced = at::zeros({1, 4});
    REQUIRE_THROWS_WITH(lmdecode::ForceTokens({9}, 1, "forced_eos_token_id").apply(no_history(), forced),
                        Contains("forced_eos_token_id 9 is not a token of this model (vocabulary 4)"));
    auto banned = at::zeros({1, 4});
    REQUIRE_THROWS_WITH(lmdecode::NoBadWords({{2}, {1, 9}}, {}).apply(no_history(), banned),
                        Contains("bad_words_ids entry [1, 9] holds 9, not a token of this model (vocabulary 4)"));

    // Through generate(): the same tokens as without the missing ids, or the error.
    auto model = abc_model();
    auto config = abc_config();
    config.max_new_tokens = 3;
    config.suppress_tokens = {A};
    auto plain = lmdecode::GreedyDecoder(model, config).generate({{A}});
    config.suppress_tokens = {A, 1000};
    config.begin_suppress_tokens = {1000};
    config.eos_token_ids = {EOS, 1000};
    config.min_new_tokens = 1;
    auto with_missing = lmdecode::GreedyDecoder(model, config).generate({{A}});
    REQUIRE(with_missing.hypotheses[0][0].tokens == plain.hypotheses[0][0].tokens);
    config.forced_eos_token_id = 1000;
    config.num_beams = 2;
    REQUIRE_THROWS_WITH(lmdecode::BeamSearchDecoder(model, config).generate({{A}}), Contains("forced_eos_token_id 1000"));
  }
  SECTION("forced EOS replaces the last token at max_length") {
    auto model = abc_model();
    auto config = abc_config();
    config.max_new_tokens = 3;
    config.forced_eos_token_id = EOS;
    auto r = lmdecode::GreedyDecoder(model, config).generate({{A}});
    REQUIRE(r.hypotheses[0][0].tokens == Ids{A, A, EOS});
    REQUIRE(r.hypotheses[0][0].finish_reason == FinishReason::eos);
  }
  SECTION("a user processor, as a lambda, runs after the configured ones") {
    auto model = abc_model();
    auto config = abc_config();
    config.max_new_tokens = 2;
    lmdecode::LogitsProcessorList extra;
    extra.add([](const at::Tensor&, at::Tensor& scores) { scores.select(1, A).fill_(-inf); });
    auto r = lmdecode::GreedyDecoder(model, config, extra).generate({{A}});
    REQUIRE(r.hypotheses[0][0].tokens == Ids{B, EOS});
  }
}

TEST_CASE("sampling warpers keep what HF keeps", "[processors][sampling]") {
  SECTION("temperature divides") {
    auto scores = row({1.0f, 2.0f});
    lmdecode::Temperature(0.5).apply(no_history(), scores);
    REQUIRE(at::equal(scores, row({2.0f, 4.0f})));
    REQUIRE_THROWS_WITH(lmdecode::Temperature(0.0), Contains("temperature must be > 0"));
  }
  SECTION("top-k keeps ties at the boundary and at least min_tokens_to_keep") {
    REQUIRE(kept(lmdecode::TopK(2), row({1, 3, 3, 2, 0})) == Ids{1, 2});
    REQUIRE(kept(lmdecode::TopK(3), row({1, 3, 3, 2, 0})) == Ids{1, 2, 3});
    REQUIRE(kept(lmdecode::TopK(1), row({3, 3, 3, 1})) == Ids{0, 1, 2});
    REQUIRE(kept(lmdecode::TopK(1, /*min_tokens_to_keep=*/2), row({5, 3, 1})) == Ids{0, 1});
    REQUIRE(kept(lmdecode::TopK(10), row({5, 3, 1})) == Ids{0, 1, 2});
  }
  SECTION("top-p keeps the smallest best set reaching p, and at least one token") {
    auto probs = std::vector<float>{0.5f, 0.3f, 0.15f, 0.05f};
    REQUIRE(kept(lmdecode::TopP(0.7), log_row(probs)) == Ids{0, 1});
    REQUIRE(kept(lmdecode::TopP(0.45), log_row(probs)) == Ids{0});
    REQUIRE(kept(lmdecode::TopP(0.9), log_row(probs)) == Ids{0, 1, 2});
    REQUIRE(kept(lmdecode::TopP(0.01), log_row(probs)) == Ids{0});
    REQUIRE(kept(lmdecode::TopP(0.01, 2), log_row(probs)) == Ids{0, 1});
  }
  SECTION("min-p drops tokens below min_p x the best probability") {
    auto probs = std::vector<float>{0.5f, 0.3f, 0.15f, 0.05f};
    REQUIRE(kept(lmdecode::MinP(0.4), log_row(probs)) == Ids{0, 1});
    REQUIRE(kept(lmdecode::MinP(0.05), log_row(probs)) == Ids{0, 1, 2, 3});
    REQUIRE(kept(lmdecode::MinP(1.0, 2), log_row(probs)) == Ids{0, 1});
  }
  SECTION("typical-p keeps the tokens whose surprisal is closest to the entropy") {
    // Entropy of (.7, .1, .1, .1) is 0.94; token 0's surprisal 0.36 is closest.
    auto probs = std::vector<float>{0.7f, 0.1f, 0.1f, 0.1f};
    REQUIRE(kept(lmdecode::TypicalP(0.5), log_row(probs)) == Ids{0});
    REQUIRE(kept(lmdecode::TypicalP(0.75), log_row(probs)) == Ids{0, 1, 2, 3});
  }
}

TEST_CASE("stop strings match as transformers' StopStringCriteria: ending in the newest token, across tokens", "[stopping]") {
  // The examples of StopStringCriteria's documentation, for the stop string "stop".
  const std::vector<std::string> texts = {"st", "op", "stop", "opera", "sto", "pper", "las", "topper", "s", "to", "pped", "at",
                                          "tion", "x", "\n\tstop!"};
  auto id = [&](const std::string& text) { return static_cast<int64_t>(std::find(texts.begin(), texts.end(), text) - texts.begin()); };
  const lmdecode::detail::StopStringMatcher matcher({"nomatch", "stop"}, std::make_shared<const std::vector<std::string>>(texts),
                                                    at::kCPU);
  auto matches = [&](std::vector<std::string> tokens) {
    tokens.insert(tokens.begin(), "x");  // something before, as a prompt would be
    std::vector<int64_t> ids;
    for (const auto& t : tokens) ids.push_back(id(t));
    return matcher.match(at::tensor(ids).unsqueeze(0)).item<int64_t>();
  };
  for (const auto& hit : std::vector<std::vector<std::string>>{
           {"st", "op"}, {"stop"}, {"st", "opera"}, {"sto", "pper"}, {"las", "topper"}, {"s", "to", "pped"}, {"\n\tstop!"}}) {
    INFO(hit.back());
    REQUIRE(matches(hit) == 1);  // the second stop string
  }
  for (const auto& miss : std::vector<std::vector<std::string>>{{"stop", "at"}, {"st", "op", "at"}, {"st", "opera", "tion"}, {"to", "pped"}}) {
    INFO(miss.back());
    REQUIRE(matches(miss) == -1);
  }
  // An id beyond the texts (a model vocabulary larger than the tokenizer's) has no text.
  REQUIRE(matcher.match(at::tensor(std::vector<int64_t>{id("st"), 999}).unsqueeze(0)).item<int64_t>() == -1);
  REQUIRE_THROWS_WITH(lmdecode::detail::StopStringMatcher({"stop"}, nullptr, at::kCPU), Contains("need config.token_texts"));
}

TEST_CASE("stop sequences, max_time and the callback end rows with their own finish reason", "[stopping]") {
  auto model = abc_model();
  auto config = abc_config();
  config.max_new_tokens = 8;
  SECTION("a multi-token stop sequence ends the row when its last token is produced, and is named") {
    config.stop_sequences = {{B, B}, {A, A, A}};
    auto r = lmdecode::GreedyDecoder(model, config).generate({{A}, {B}});
    REQUIRE(r.hypotheses[0][0].tokens == Ids{A, A, A});
    REQUIRE(r.hypotheses[0][0].finish_reason == FinishReason::stop_sequence);
    REQUIRE(r.hypotheses[0][0].stop_sequence == 1);
    REQUIRE(r.hypotheses[1][0].finish_reason == FinishReason::eos);  // b -> EOS
    REQUIRE(r.hypotheses[1][0].stop_sequence == -1);
    REQUIRE(r.steps == 3);
  }
  SECTION("stop sequences end beams too") {
    config.num_beams = 2;
    config.stop_sequences = {{A, A, A}};
    config.early_stopping = lmdecode::EarlyStopping::on_full;
    auto r = lmdecode::BeamSearchDecoder(model, config).generate({{A}});
    REQUIRE(r.hypotheses[0][0].tokens == Ids{A, A, A});  // -2.08 / 3 beats a b E
    REQUIRE(r.hypotheses[0][0].finish_reason == FinishReason::stop_sequence);
    REQUIRE(r.hypotheses[0][0].stop_sequence == 0);
  }
  SECTION("max_time ends the rows still running") {
    config.eos_token_ids.clear();
    config.max_new_tokens = 1000;
    config.max_time = 0.05;
    auto slow = [](const lmdecode::StepEvent&) { std::this_thread::sleep_for(std::chrono::milliseconds(20)); };
    auto greedy = lmdecode::GreedyDecoder(model, config).generate({{A}}, slow);
    REQUIRE(greedy.steps < 10);
    REQUIRE(greedy.hypotheses[0][0].finish_reason == FinishReason::time);
    config.num_beams = 2;
    auto beam = lmdecode::BeamSearchDecoder(model, config).generate({{A}}, slow);
    REQUIRE(beam.steps < 10);
    REQUIRE(beam.hypotheses[0][0].finish_reason == FinishReason::time);
  }
  SECTION("the callback can ask to stop") {
    config.eos_token_ids.clear();
    auto stop_at_3 = [](lmdecode::StepEvent& e) { e.stop_requested = e.step == 2; };
    auto greedy = lmdecode::GreedyDecoder(model, config).generate({{A}, {B}}, stop_at_3);
    REQUIRE(greedy.steps == 3);
    REQUIRE(greedy.hypotheses[0][0].tokens.size() == 3);
    REQUIRE(greedy.hypotheses[1][0].finish_reason == FinishReason::callback);
    config.num_beams = 2;
    auto beam = lmdecode::BeamSearchDecoder(model, config).generate({{A}}, stop_at_3);
    REQUIRE(beam.steps == 3);
    REQUIRE(beam.hypotheses[0][0].finish_reason == FinishReason::callback);
    REQUIRE(beam.hypotheses[0][0].tokens == Ids{A, A, A});
  }
}
