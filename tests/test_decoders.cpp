// Greedy search worked by hand, errors, the cache, prefill sharing, threads and Conversation.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <thread>

#include "lmdecode/decoders/detail/chosen_tokens.hpp"
#include "lmdecode/lmdecode.hpp"
#include "support/golden_cases.hpp"
#include "support/table_model.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;
using lmdecode::FinishReason;
using lmdecode::GenerationConfig;
using lmdecode_test::TableModel;

using namespace lmdecode_test::abc;

namespace {

/// Passes every call on to `inner` and records how many rows each forward fed.
struct RowRecordingModel {
  using Cache = lmdecode::KVCache;
  lmdecode::PretrainedModel& inner;
  std::vector<int64_t> rows_fed;
  at::Device device() const { return inner.device(); }
  Cache make_cache(int64_t rows, int64_t capacity) const { return inner.make_cache(rows, capacity); }
  at::Tensor forward(const lmdecode::ForwardBatch& batch, Cache& cache) {
    rows_fed.push_back(batch.input_ids.size(0));
    return inner.forward(batch, cache);
  }
};

}  // namespace

TEST_CASE("GreedyDecoder stops each row at EOS, pads finished rows and reports why each ended", "[greedy]") {
  // As abc_model, plus a token 7 that is never likely: the pad, which is not an EOS here.
  std::vector<std::vector<double>> table(8, std::vector<double>(8, 1e-30));
  auto set_row = [&](int64_t token, std::vector<double> p) { std::copy(p.begin(), p.end(), table[token].begin()); };
  set_row(A, {0.5, 0.3, 0.2});
  set_row(B, {0.1, 0.1, 0.8});
  for (int64_t t = 2; t < 8; ++t) set_row(t, {1.0 / 3, 1.0 / 3, 1.0 / 3});
  TableModel model(table);
  auto config = abc_config();
  config.max_new_tokens = 3;
  config.pad_token_id = 7;
  lmdecode::GreedyDecoder decoder(model, config);
  auto result = decoder.generate({{A}, {A, B}});
  REQUIRE(result.steps == 3);
  REQUIRE(result.prompt_length == 2);
  REQUIRE(at::equal(result.sequences, at::tensor(std::vector<int64_t>{7, A, A, A, A, A, B, EOS, 7, 7}).view({2, 5})));
  const auto& longest = result.hypotheses[0][0];
  REQUIRE(longest.tokens == std::vector<int64_t>{A, A, A});
  REQUIRE(longest.finish_reason == FinishReason::length);
  REQUIRE(longest.score == Approx(lp({0.5, 0.5, 0.5})).margin(1e-5));
  const auto& ended = result.hypotheses[1][0];
  REQUIRE(ended.tokens == std::vector<int64_t>{EOS});
  REQUIRE(ended.finish_reason == FinishReason::eos);
  REQUIRE(ended.token_logprobs.size() == 1);
  REQUIRE(ended.token_logprobs[0] == Approx(std::log(0.8)).margin(1e-6));

  SECTION("the loop ends as soon as every row has ended") {
    config.max_new_tokens = 10;
    auto short_result = lmdecode::GreedyDecoder(model, config).generate({{B}, {B}});
    REQUIRE(short_result.steps == 1);
  }
  SECTION("min_new_tokens keeps EOS out and renormalises nothing") {
    config.min_new_tokens = 2;
    auto held = lmdecode::GreedyDecoder(model, config).generate({{B}});
    REQUIRE(held.hypotheses[0][0].tokens == std::vector<int64_t>{A, A, A});  // a/b tie after b: first index wins
    REQUIRE(held.hypotheses[0][0].token_logprobs[0] == Approx(std::log(0.5)).margin(1e-6));  // .1 / (.1 + .1)
  }
  SECTION("without EOS ids every row runs to max_new_tokens") {
    config.eos_token_ids.clear();
    auto open = lmdecode::GreedyDecoder(model, config).generate({{B}});
    REQUIRE(open.steps == 3);
    REQUIRE(open.hypotheses[0][0].finish_reason == FinishReason::length);
  }
  SECTION("a pad id outside the vocabulary is named") {
    auto small = abc_model();
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(small, config).generate({{A}}), Contains("pad_token_id 7"));
  }
  SECTION("a step callback sees every step's tokens") {
    std::vector<lmdecode::StepEvent> events;
    auto streamed = decoder.generate({{A}, {A, B}}, [&](const lmdecode::StepEvent& e) { events.push_back(e); });
    REQUIRE(static_cast<int64_t>(events.size()) == streamed.steps);
    REQUIRE(events[0].tokens[1] == std::vector<int64_t>{EOS});
    REQUIRE(events[0].finished == std::vector<bool>{false, true});
    REQUIRE(events.back().tokens[0] == streamed.hypotheses[0][0].tokens);
    REQUIRE(events.back().tokens[1] == std::vector<int64_t>{EOS});  // cut at the EOS, no padding
  }
}

TEST_CASE("decoders reject bad input and misbehaving models with clear errors", "[errors]") {
  auto model = abc_model();
  auto config = abc_config();
  SECTION("bad prompts") {
    lmdecode::GreedyDecoder greedy(model, config);
    REQUIRE_THROWS_WITH(greedy.generate({}), Contains("at least one prompt"));
    REQUIRE_THROWS_WITH(greedy.generate({{A}, {}}), Contains("prompt 1 is empty"));
    REQUIRE_THROWS_WITH(greedy.generate({{A, -4}}), Contains("negative token id"));
    REQUIRE_THROWS_WITH(greedy.generate(at::zeros({2, 3}, at::kLong), at::ones({2, 2}, at::kLong)),
                        Contains("attention_mask shape"));
    REQUIRE_THROWS_WITH(greedy.generate(at::zeros({2, 3}, at::kInt), at::ones({2, 3}, at::kLong)), Contains("int64"));
  }
  SECTION("bad configs fail before any work") {
    config.num_beams = 2;
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(model, config), Contains("num_beams == 1"));
    config.num_return_sequences = 3;
    REQUIRE_THROWS_WITH(lmdecode::BeamSearchDecoder(model, config), Contains("num_return_sequences (3)"));
    config = abc_config();
    config.max_length = 3;
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(model, config).generate({{A, A, A, A}}), Contains("no room"));
  }
  SECTION("more beams than the vocabulary can feed") {
    TableModel one_token(std::vector<std::vector<double>>{{1.0}});
    config.eos_token_ids.clear();
    config.pad_token_id = 0;
    config.num_beams = 2;
    REQUIRE_THROWS_WITH(lmdecode::BeamSearchDecoder(one_token, config).generate({{0}}), Contains("lower num_beams"));
  }
  SECTION("models that break the contract") {
    using Fault = lmdecode_test::MisbehavingModel::Fault;
    auto fails = [&](Fault fault, const std::string& expected) {
      lmdecode_test::MisbehavingModel bad(fault);
      config.max_new_tokens = 3;
      REQUIRE_THROWS_AS(lmdecode::GreedyDecoder(bad, config).generate({{A}}), lmdecode::model_error);
      REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(bad, config).generate({{A}}), Contains(expected));
    };
    fails(Fault::rank3, "rank 3");
    fails(Fault::wrong_rows, "for 2 rows, expected 1");
    fails(Fault::changing_vocab, "as on the first step");
    fails(Fault::integer_logits, "expected floating point");
    fails(Fault::other_device, "logits on meta, expected cpu");
    fails(Fault::nan_logits, "NaN logits");
    // What fails inside libtorch (or runs out of memory) is said in lmdecode's words.
    lmdecode_test::MisbehavingModel refused(Fault::libtorch_error), starved(Fault::out_of_memory);
    REQUIRE_THROWS_AS(lmdecode::GreedyDecoder(refused, config).generate({{A}}), lmdecode::backend_error);
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(refused, config).generate({{A}}),
                        "lmdecode: libtorch failed while decoding: a kernel refused the shapes");
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(starved, config).generate({{A}}), "lmdecode: out of memory while decoding");
    lmdecode_test::MisbehavingModel nan(Fault::nan_logits);
    config.num_beams = 2;
    REQUIRE_THROWS_WITH(lmdecode::BeamSearchDecoder(nan, config).generate({{A}}), Contains("NaN logits"));
    config.num_beams = 1;
    config.eos_token_ids.clear();  // no per-step read: the NaN is still reported at the end
    config.pad_token_id = 0;
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(nan, config).generate({{A}}), Contains("NaN logits"));
  }
  SECTION("a logits processor that replaces the scores by another shape, dtype or device") {
    auto fails = [&](lmdecode::LogitsProcessorList::Function edit, const std::string& expected) {
      lmdecode::LogitsProcessorList processors;
      processors.add([](const at::Tensor&, at::Tensor& scores) { scores.mul_(1.0); });  // a good one first
      processors.add(std::move(edit));
      REQUIRE_THROWS_AS(lmdecode::GreedyDecoder(model, config, processors).generate({{A}}), lmdecode::invalid_argument);
      const std::string which = "logits processor 2 of 2 turned the [";
      REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(model, config, processors).generate({{A}}), Contains(which) && Contains(expected));
      config.num_beams = 2;
      REQUIRE_THROWS_WITH(lmdecode::BeamSearchDecoder(model, config, processors).generate({{A}}), Contains(which) && Contains(expected));
      config.num_beams = 1;
    };
    fails([](const at::Tensor&, at::Tensor& s) { s = s.narrow(1, 0, 2); }, ", 2] Float on cpu");
    fails([](const at::Tensor&, at::Tensor& s) { s = s.to(at::kDouble); }, ", 3] Double on cpu");
    fails([](const at::Tensor&, at::Tensor& s) { s = at::empty_like(s, at::TensorOptions().device(at::kMeta)); }, ", 3] Float on meta");
    lmdecode::LogitsProcessorList replacing;  // same shape, dtype and device: allowed
    replacing.add([](const at::Tensor&, at::Tensor& s) { s = s.clone(); });
    REQUIRE(at::equal(lmdecode::GreedyDecoder(model, config, replacing).generate({{A}}).sequences,
                      lmdecode::GreedyDecoder(model, config).generate({{A}}).sequences));
  }
  SECTION("inputs on another device than the model") {
    lmdecode::GreedyDecoder greedy(model, config);
    auto ids = at::zeros({1, 2}, at::TensorOptions().dtype(at::kLong).device(at::kMeta));
    REQUIRE_THROWS_WITH(greedy.generate(ids, at::ones_like(ids)), Contains("must be on the model's device cpu"));
  }
}

TEST_CASE("greedy with and without the cache agree on the real checkpoints", "[greedy][models]") {
  for (const std::string name : {"gpt2-tiny", "qwen2-tiny"}) {
    DYNAMIC_SECTION(name) {
      auto folder = lmdecode_test::reference_dir() / name;
      auto model = lmdecode::load_pretrained(folder, {at::kCPU, at::kFloat});
      auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
      config.max_new_tokens = 24;
      const std::vector<lmdecode::TokenIds> prompts = {{17, 240, 5, 99, 31}, {120}, {44, 45, 46}};
      auto cached = lmdecode::GreedyDecoder(*model, config).generate(prompts);
      config.use_cache = false;
      auto recomputed = lmdecode::GreedyDecoder(*model, config).generate(prompts);
      REQUIRE(at::equal(cached.sequences, recomputed.sequences));
      for (size_t p = 0; p < prompts.size(); ++p) {
        REQUIRE(cached.hypotheses[p][0].token_logprobs.size() == recomputed.hypotheses[p][0].token_logprobs.size());
        for (size_t j = 0; j < cached.hypotheses[p][0].token_logprobs.size(); ++j)
          REQUIRE(cached.hypotheses[p][0].token_logprobs[j] ==
                  Approx(recomputed.hypotheses[p][0].token_logprobs[j]).margin(1e-4));
      }
      config.num_beams = 3;
      auto beam_recomputed = lmdecode::BeamSearchDecoder(*model, config).generate(prompts);
      config.use_cache = true;
      auto beam_cached = lmdecode::BeamSearchDecoder(*model, config).generate(prompts);
      REQUIRE(at::equal(beam_cached.sequences, beam_recomputed.sequences));
    }
  }
}

TEST_CASE("beam search and sampling prefill each prompt once and give its cache to every copy", "[beam][sampling][models]") {
  const auto folder = lmdecode_test::reference_dir() / "qwen2-tiny";
  auto model = lmdecode::load_pretrained(folder, {at::kCPU, at::kFloat});
  auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
  config.max_new_tokens = 10;
  config.min_new_tokens = 10;  // every step feeds every row
  const auto prompts = lmdecode_test::prompts_5_and_2();  // the second left padded
  RowRecordingModel recorder{*model, {}};
  auto check_rows = [&](int64_t copies) {
    REQUIRE(recorder.rows_fed.size() == 10);
    CHECK(recorder.rows_fed.front() == 2);
    for (size_t i = 1; i < recorder.rows_fed.size(); ++i) CHECK(recorder.rows_fed[i] == 2 * copies);
  };
  // Without the cache every step feeds every row its whole history: the reference for the copies.
  SECTION("beam search") {
    config.num_beams = 4;
    config.num_return_sequences = 2;
    auto prefilled_once = lmdecode::BeamSearchDecoder(recorder, config).generate(prompts);
    check_rows(4);
    config.use_cache = false;
    auto recomputed = lmdecode::BeamSearchDecoder(*model, config).generate(prompts);
    REQUIRE(at::equal(prefilled_once.sequences, recomputed.sequences));
    for (size_t p = 0; p < prompts.size(); ++p)
      for (size_t h = 0; h < 2; ++h) CHECK(prefilled_once.hypotheses[p][h].score == Approx(recomputed.hypotheses[p][h].score).margin(1e-4));
  }
  SECTION("sampling several sequences per prompt") {
    config.do_sample = true;
    config.num_return_sequences = 3;
    config.seed = 7;
    auto prefilled_once = lmdecode::SamplingDecoder(recorder, config).generate(prompts);
    check_rows(3);
    config.use_cache = false;
    REQUIRE(at::equal(prefilled_once.sequences, lmdecode::SamplingDecoder(*model, config).generate(prompts).sequences));
  }
}

TEST_CASE("two threads decoding on one shared model get the results each gets alone", "[threads]") {
  const auto folder = lmdecode_test::reference_dir() / "qwen2-tiny";
  auto model = lmdecode::load_pretrained(folder);
  auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
  config.max_new_tokens = 20;
  auto beam_config = config;
  beam_config.num_beams = 3;
  const auto first = lmdecode_test::prompts_5_and_1();
  const std::vector<lmdecode::TokenIds> second = {{44, 45, 46}, {7, 8}};
  auto greedy_alone = lmdecode::GreedyDecoder(*model, config).generate(first).sequences;
  auto beam_alone = lmdecode::BeamSearchDecoder(*model, beam_config).generate(second).sequences;
  for (int round = 0; round < 5; ++round) {
    at::Tensor greedy_threaded, beam_threaded;
    std::thread a([&] { greedy_threaded = lmdecode::GreedyDecoder(*model, config).generate(first).sequences; });
    std::thread b([&] { beam_threaded = lmdecode::BeamSearchDecoder(*model, beam_config).generate(second).sequences; });
    a.join();
    b.join();
    REQUIRE(at::equal(greedy_threaded, greedy_alone));
    REQUIRE(at::equal(beam_threaded, beam_alone));
  }
}

TEST_CASE("a Conversation keeps its cache between turns and replies as generate() on the whole history", "[conversation]") {
  const auto folder = lmdecode_test::reference_dir() / "fortunes-llama";
  auto model = lmdecode::load_pretrained(folder, {at::kCPU, at::kFloat});
  auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
  config.max_new_tokens = 16;
  // Turns as the demo model's tokenizer encodes "The secret of a happy life is", " Q: What do you
  // call", " Love is" (the golden cases' texts).
  const std::vector<lmdecode::TokenIds> turns = {{318, 3424, 289, 259, 2101, 681, 300}, {33, 966, 300}, {2264, 300}};
  for (const bool sample : {false, true}) {
    config.do_sample = sample;
    config.seed = 11;
    lmdecode::Conversation chat(*model);
    lmdecode::TokenIds history;
    for (size_t turn = 0; turn < turns.size(); ++turn) {
      const int64_t cached = chat.cached_tokens();
      history.insert(history.end(), turns[turn].begin(), turns[turn].end());
      const auto reply = chat.reply(history, config);
      const auto fresh = lmdecode::generate(*model, {history}, config);
      INFO("sample " << sample << " turn " << turn);
      REQUIRE(reply.hypotheses[0][0].tokens == fresh.hypotheses[0][0].tokens);
      // Only what follows the cached tokens is prefilled: the new turn, and the last reply's last token.
      REQUIRE(chat.last_prefill_tokens() == static_cast<int64_t>(history.size()) - cached);
      const auto& tokens = reply.hypotheses[0][0].tokens;
      history.insert(history.end(), tokens.begin(), tokens.end());
      REQUIRE(chat.cached_tokens() == static_cast<int64_t>(history.size()) - 1);
    }
    // Regenerating an earlier turn: the cache is cut back to the common prefix.
    const lmdecode::TokenIds edited(history.begin(), history.begin() + 9);
    const auto again = chat.reply(edited, config);
    REQUIRE(again.hypotheses[0][0].tokens == lmdecode::generate(*model, {edited}, config).hypotheses[0][0].tokens);
    REQUIRE(chat.last_prefill_tokens() == 1);
    chat.reset();
    REQUIRE(chat.cached_tokens() == 0);
  }
  config.num_beams = 2;
  lmdecode::Conversation beams(*model);
  REQUIRE_THROWS_WITH(beams.reply(turns[0], config), Catch::Matchers::Contains("a Conversation decodes one sequence"));
}

TEST_CASE("a sequence past the model's positions: an error for learned positions, a warning for rotary ones", "[errors][models]") {
  GenerationConfig config;
  config.max_new_tokens = 20;
  const lmdecode::TokenIds long_prompt(250, 7);
  auto gpt2 = lmdecode::load_pretrained(lmdecode_test::reference_dir() / "gpt2-tiny");  // 256 learned positions
  REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(*gpt2, config).generate({long_prompt}),
                      Contains("reach position 269, past the model's 256 positions"));
  config.max_new_tokens = 7;  // positions 0 to 255: all of them, none past
  CHECK(lmdecode::GreedyDecoder(*gpt2, config).generate({long_prompt}).warnings.empty());
  auto qwen = lmdecode::load_pretrained(lmdecode_test::reference_dir() / "qwen2-tiny");  // max_position_embeddings 256
  config.max_new_tokens = 20;
  config.eos_token_ids.clear();
  const auto result = lmdecode::GreedyDecoder(*qwen, config).generate({long_prompt});
  REQUIRE(result.hypotheses[0][0].tokens.size() == 20);
  REQUIRE(result.warnings.size() == 1);
  CHECK_THAT(result.warnings[0], Contains("reached 269 positions, past the 256 the model has"));
}

TEST_CASE("a generation whose rows cannot fit in memory is refused before anything is allocated", "[errors][models]") {
  auto model = lmdecode::load_pretrained(lmdecode_test::reference_dir() / "qwen2-tiny");
  GenerationConfig config;
  config.max_new_tokens = 4;
  config.num_beams = 100'000'000;
  REQUIRE_THROWS_WITH(lmdecode::BeamSearchDecoder(*model, config).generate({{5, 6, 7}}),
                      Contains("1 prompts x 100000000 rows each (beams or sequences) of 7 positions, 1 scored a step") && Contains("MiB at once, more than the"));
  config.num_beams = 1;
  config.do_sample = true;
  config.num_return_sequences = 100'000'000;
  REQUIRE_THROWS_WITH(lmdecode::SamplingDecoder(*model, config).generate({{5, 6, 7}}), Contains("MiB at once"));
}

TEST_CASE("greedy's arg max is libtorch's argmax", "[greedy]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (const int64_t vocab : {1, 7, 8, 1000, 32003, 151936}) {
    auto scores = at::randn({5, vocab}) * 8;
    // Row 1: the max twice (the first one wins); row 2: banned tokens; row 3: a NaN (torch's argmax
    // takes it as the max); row 4: every score -inf.
    if (vocab > 1) scores[1][vocab - 1] = scores[1][0] = 100.0f;
    scores[2].narrow(0, 0, (vocab + 1) / 2).fill_(-inf);
    scores[3][vocab / 2] = nan;
    scores[4].fill_(-inf);
    const auto expected = scores.argmax(-1, true);
    CAPTURE(vocab, expected);
    REQUIRE(lmdecode::detail::first_max_index(scores).equal(expected));
    REQUIRE(lmdecode::detail::first_max_index(scores.narrow(0, 0, 3)).equal(expected.narrow(0, 0, 3)));
    REQUIRE(lmdecode::detail::first_max_index(scores.narrow(0, 4, 1)).equal(expected.narrow(0, 4, 1)));
    REQUIRE(lmdecode::detail::first_max_index(scores.to(at::kDouble)).equal(expected));
  }
}

TEST_CASE("greedy's chosen log-probs are libtorch's log_softmax at the chosen tokens", "[greedy]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (const int64_t vocab : {1, 7, 8, 1000, 32003, 151936}) {
    auto scores = at::randn({5, vocab}) * 8;
    // Row 1: one score far above the rest (log-probs near 0); row 2: banned tokens, some of them
    // chosen (-inf); row 3: a NaN; row 4: every score -inf (both NaN in torch).
    scores[1][vocab / 3] = 60.0f;
    scores[2].narrow(0, 0, (vocab + 1) / 2).fill_(-inf);
    scores[3][vocab / 2] = nan;
    scores[4].fill_(-inf);
    for (const int64_t rows : {3, 5}) {  // the kernel's rows alone, then with libtorch's
      const auto some = scores.narrow(0, 0, rows);
      const auto chosen = at::arange(rows, at::kLong) * 7919 % vocab;
      const auto expected = some.log_softmax(-1).gather(1, chosen.unsqueeze(1)).squeeze(1);
      const auto logprobs = lmdecode::detail::chosen_logprobs(some, chosen);
      REQUIRE(logprobs.scalar_type() == at::kFloat);
      for (int64_t r = 0; r < rows; ++r) {
        const float want = expected[r].item<float>(), got = logprobs[r].item<float>();
        CAPTURE(vocab, r, want, got);
        if (std::isnan(want)) CHECK(std::isnan(got));
        else if (std::isinf(want)) CHECK(got == want);
        else CHECK(std::abs(got - want) <= 2e-7f * std::max(1.0f, std::abs(want)));
      }
    }
  }
}
