// The engine (engine.hpp): requests of every strategy, submitted from several threads, decoded in
// one batch of different lengths, each with generate()'s result for it alone; forward_segments
// against forward(); chunked prefills, the KV budget, cancellation, a throwing callback, shutdown.

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <chrono>
#include <random>
#include <thread>

#include "lmdecode/engine.hpp"
#include "lmdecode/lmdecode.hpp"
#include "support/golden_cases.hpp"
#include "support/table_model.hpp"
#include "support/test_data.hpp"

namespace {

using lmdecode::Engine;
using lmdecode::EngineOptions;
using lmdecode::FinishReason;
using lmdecode::GenerationConfig;
using lmdecode::GenerationResult;
using lmdecode::RequestState;
using lmdecode::TokenIds;

std::unique_ptr<lmdecode::PretrainedModel> tiny(const char* name, at::ScalarType dtype = at::kDouble) {
  return lmdecode::load_pretrained(lmdecode_test::reference_dir() / name, {at::kCPU, dtype});
}

GenerationConfig base_config(int64_t max_new_tokens) {
  GenerationConfig c;
  c.max_new_tokens = max_new_tokens;
  c.eos_token_ids = {2};
  return c;
}

/// The configs the engine tests mix: greedy (with its scores), sampling with a seed, beam search returning two,
/// sampling two sequences, prompt lookup, a repetition penalty with a stop sequence.
std::vector<GenerationConfig> mixed_configs() {
  std::vector<GenerationConfig> out;
  auto greedy = base_config(12);
  greedy.output_scores = true;
  out.push_back(greedy);
  auto sampled = base_config(10);
  sampled.do_sample = true;
  sampled.seed = 7;
  sampled.top_k = 20;
  out.push_back(sampled);
  auto beams = base_config(9);
  beams.num_beams = 3;
  beams.num_return_sequences = 2;
  beams.length_penalty = 0.8;
  out.push_back(beams);
  auto two = sampled;
  two.seed = 11;
  two.num_return_sequences = 2;
  out.push_back(two);
  auto lookup = base_config(10);
  lookup.prompt_lookup_num_tokens = 3;
  out.push_back(lookup);
  auto penalised = base_config(14);
  penalised.repetition_penalty = 1.3;
  penalised.stop_sequences = {{5, 99}};
  out.push_back(penalised);
  return out;
}

std::vector<TokenIds> mixed_prompts() {
  return {{17, 240, 5, 99, 31}, {120}, {3, 4, 5, 6, 7, 8, 9, 10, 11}, {200, 201}, {17, 240, 5, 99, 31, 17, 240}, {45, 46, 47}};
}

/// How far a float64 model's log-probs and scores may move when its rows are batched with others:
/// they are float32 (HF casts the logits to float32 before any decoding arithmetic), so logits that
/// differ in their last float64 bits can round a float32 sum one ulp apart (1e-7 seen in a beam score).
constexpr double kFloat64Margin = 1e-6;

/// "" when tokens, finish reasons and stop sequences are equal and token log-probs, scores and each
/// step's processed scores (with output_scores) lie within `tolerance`; else the first difference. (Catch's assertions are for the main thread only.)
std::string difference(const GenerationResult& ours, const GenerationResult& solo, double tolerance) {
  if (ours.hypotheses.size() != solo.hypotheses.size()) return "prompt count";
  for (size_t p = 0; p < solo.hypotheses.size(); ++p) {
    if (ours.hypotheses[p].size() != solo.hypotheses[p].size()) return "sequence count";
    for (size_t k = 0; k < solo.hypotheses[p].size(); ++k) {
      const auto &a = ours.hypotheses[p][k], &b = solo.hypotheses[p][k];
      const auto where = fmt::format("sequence {}: ", k);
      if (a.tokens != b.tokens) return where + fmt::format("tokens [{}] vs [{}]", fmt::join(a.tokens, " "), fmt::join(b.tokens, " "));
      if (a.finish_reason != b.finish_reason || a.stop_sequence != b.stop_sequence) return where + "finish reason";
      if (std::abs(a.score - b.score) > tolerance) return where + fmt::format("score {} vs {}", a.score, b.score);
      for (size_t t = 0; t < a.token_logprobs.size(); ++t)
        if (std::abs(a.token_logprobs[t] - b.token_logprobs[t]) > tolerance)
          return where + fmt::format("token {} log-prob {} vs {}", t, a.token_logprobs[t], b.token_logprobs[t]);
    }
  }
  if (ours.scores.size() != solo.scores.size()) return fmt::format("{} steps of scores vs {}", ours.scores.size(), solo.scores.size());
  for (size_t i = 0; i < solo.scores.size(); ++i)
    if (!at::allclose(ours.scores[i], solo.scores[i], 1e-6, tolerance)) return fmt::format("step {}: scores differ", i);  // float32: one ulp relative
  return "";
}

void require_same(const GenerationResult& ours, const GenerationResult& solo, double tolerance) {
  CHECK(difference(ours, solo, tolerance) == "");
}

/// A cancelled request's result: its solo result (it ended first), or rows ended `cancelled` whose
/// tokens, without beams, begin the solo run's.
std::string cancelled_difference(const GenerationResult& ours, const GenerationResult& solo, const GenerationConfig& config) {
  if (difference(ours, solo, kFloat64Margin).empty()) return "";
  bool any_cancelled = false;
  for (size_t k = 0; k < ours.hypotheses[0].size(); ++k) {
    const auto& h = ours.hypotheses[0][k];
    any_cancelled = any_cancelled || h.finish_reason == FinishReason::cancelled;
    const auto& full = solo.hypotheses[0][k].tokens;
    if (config.num_beams == 1 && (h.tokens.size() > full.size() || !std::equal(h.tokens.begin(), h.tokens.end(), full.begin())))
      return fmt::format("sequence {}: [{}] does not begin [{}]", k, fmt::join(h.tokens, " "), fmt::join(full, " "));
  }
  return any_cancelled ? "" : "neither the solo result nor cancelled";
}

std::vector<GenerationResult> solo_results(lmdecode::PretrainedModel& model, const std::vector<TokenIds>& prompts,
                                           const std::vector<GenerationConfig>& configs) {
  std::vector<GenerationResult> out;
  for (size_t i = 0; i < prompts.size(); ++i) out.push_back(lmdecode::generate(model, {prompts[i]}, configs[i]));
  return out;
}

}  // namespace

TEST_CASE("forward_segments gives each batch forward()'s logits, whatever the lengths", "[engine]") {
  for (const char* name : {"qwen2-tiny", "gpt2-tiny", "gemma3-tiny", "qwen2-sliding-tiny"}) {
    INFO(name);
    auto model = tiny(name);
    const auto ids = at::tensor(std::vector<int64_t>{17, 240, 5, 99, 31, 8, 9, 120, 4, 33}, at::kLong);
    // A: a 4-token prompt cached, one more token fed. B: a two-row 6-token prefill. C: 3 cached, 3 fed, all logits.
    auto batch_of = [&](int64_t rows, int64_t cached, int64_t fed, bool all) {
      auto fed_ids = ids.narrow(0, cached, fed).unsqueeze(0).repeat({rows, 1});
      return lmdecode::ForwardBatch{fed_ids, at::ones({rows, cached + fed}, at::kLong),
                                    at::arange(cached, cached + fed, at::kLong).unsqueeze(0).repeat({rows, 1}), all};
    };
    struct Case {
      int64_t rows, cached, fed;
      bool all;
    };
    const std::vector<Case> cases{{1, 4, 1, false}, {2, 0, 6, false}, {1, 3, 3, true}};
    std::vector<lmdecode::KVCache> alone, together;
    std::vector<at::Tensor> expected;
    std::vector<lmdecode::ForwardSegment> segments;
    for (const auto& c : cases) {
      for (auto* caches : {&alone, &together}) {
        caches->push_back(model->make_cache(c.rows, 16));
        if (c.cached > 0) model->forward(batch_of(c.rows, 0, c.cached, false), caches->back());
      }
    }
    for (size_t i = 0; i < cases.size(); ++i) {
      const auto& c = cases[i];
      expected.push_back(model->forward(batch_of(c.rows, c.cached, c.fed, c.all), alone[i]));
      segments.push_back({batch_of(c.rows, c.cached, c.fed, c.all), &together[i]});
    }
    const auto logits = model->forward_segments(segments);
    REQUIRE(logits.size() == cases.size());
    for (size_t i = 0; i < cases.size(); ++i) {
      REQUIRE(logits[i].sizes() == expected[i].sizes());
      CHECK(at::allclose(logits[i], expected[i], 0, 1e-10));
      CHECK(together[i].length() == alone[i].length());
      CHECK(at::allclose(together[i].keys(0), alone[i].keys(0), 0, 1e-10));
    }
  }
}

TEST_CASE("forward_segments refuses two segments on one cache", "[engine]") {
  auto model = tiny("qwen2-tiny");
  auto cache = model->make_cache(1, 8);
  lmdecode::ForwardBatch b{at::full({1, 1}, 5, at::kLong), at::ones({1, 1}, at::kLong), at::zeros({1, 1}, at::kLong)};
  CHECK_THROWS_WITH(model->forward_segments({{b, &cache}, {b, &cache}}), Catch::Contains("share one cache"));
}

TEST_CASE("Engine: every strategy in one batch, submitted from several threads, equals each request alone", "[engine]") {
  auto model = tiny("qwen2-tiny");
  const auto prompts = mixed_prompts();
  const auto configs = mixed_configs();
  const auto solo = solo_results(*model, prompts, configs);
  Engine engine(*model, {.max_prefill_tokens_per_step = 4});
  std::vector<GenerationResult> ours(prompts.size());
  std::vector<std::thread> callers;
  for (size_t i = 0; i < prompts.size(); ++i)
    callers.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(3 * static_cast<int>(i)));  // arrivals while others run
      ours[i] = engine.submit(prompts[i], configs[i]).wait();
    });
  for (auto& t : callers) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO("request " << i);
    require_same(ours[i], solo[i], kFloat64Margin);
  }
  const auto stats = engine.stats();
  CHECK(stats.segments > stats.steps);  // some steps held several requests
  CHECK(stats.running == 0);
  CHECK(stats.reserved_bytes == 0);
}

TEST_CASE("Engine: float32 requests batched together keep their solo tokens", "[engine]") {
  auto model = tiny("llama3-tiny", at::kFloat);
  const auto prompts = mixed_prompts();
  const auto configs = mixed_configs();
  const auto solo = solo_results(*model, prompts, configs);
  Engine engine(*model);
  std::vector<lmdecode::RequestHandle> handles;
  for (size_t i = 0; i < prompts.size(); ++i) handles.push_back(engine.submit(prompts[i], configs[i]));
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO("request " << i);
    require_same(handles[i].wait(), solo[i], 1e-4);
  }
}

TEST_CASE("Engine: the caller drives the steps; a long prefill takes several; streaming sees every token", "[engine]") {
  auto model = tiny("qwen2-tiny");
  const TokenIds prompt{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
  const auto config = base_config(6);
  const auto solo = lmdecode::generate(*model, {prompt}, config);
  Engine engine(*model, {.max_prefill_tokens_per_step = 3, .own_thread = false});
  TokenIds streamed;
  auto handle = engine.submit(prompt, config, [&](lmdecode::StepEvent& e) {
    streamed.insert(streamed.end(), e.committed[0].begin(), e.committed[0].end());
  });
  CHECK(handle.state() == RequestState::waiting);
  int64_t steps = 0;
  while (engine.step()) ++steps;
  CHECK(handle.state() == RequestState::finished);
  require_same(handle.wait(), solo, kFloat64Margin);
  CHECK(streamed == solo.hypotheses[0][0].tokens);
  // 11 prompt tokens in chunks of 3 (4 forwards), then one forward a new token but the last.
  CHECK(engine.stats().steps == 4 + static_cast<int64_t>(solo.hypotheses[0][0].tokens.size()) - 1);
  CHECK(steps >= engine.stats().steps);
}

TEST_CASE("Engine: max_prefill_tokens_per_step bounds a step's prefill over all requests, the oldest first", "[engine]") {
  auto model = tiny("qwen2-tiny");
  auto config = base_config(3);
  config.eos_token_ids = {};
  const TokenIds a{3, 4, 5, 6, 7, 8, 9, 10}, b{20, 21, 22, 23, 24, 25, 26, 27};
  Engine engine(*model, {.max_prefill_tokens_per_step = 4, .own_thread = false});
  auto first = engine.submit(a, config);
  auto second = engine.submit(b, config);
  while (engine.step()) {}
  // a's two chunks, then b's two beside a's two decode steps, then b's two decode steps: 6 steps
  // (8 positions a step, 4 of each prompt, would take 4).
  CHECK(engine.stats().steps == 6);
  require_same(first.wait(), lmdecode::generate(*model, {a}, config), kFloat64Margin);
  require_same(second.wait(), lmdecode::generate(*model, {b}, config), kFloat64Margin);
}

TEST_CASE("Engine: the KV budget holds requests back in arrival order and refuses one that never fits", "[engine]") {
  auto model = tiny("qwen2-tiny");
  const auto config = base_config(8);
  const TokenIds prompt{17, 240, 5, 99, 31};
  const int64_t one = lmdecode::reserved_kv_bytes(5, config, model->kv_bytes_per_position());
  CHECK(one == (5 + 8) * model->kv_bytes_per_position());
  Engine engine(*model, {.kv_budget_bytes = one + one / 2, .own_thread = false});
  CHECK_THROWS_WITH(engine.submit(TokenIds(40, 7), config), Catch::Contains("more than kv_budget_bytes") && Catch::Contains(std::to_string(one + one / 2)));
  auto beams = config;
  beams.num_beams = 4;
  CHECK_THROWS_WITH(engine.submit(prompt, beams), Catch::Contains("could never run"));
  auto first = engine.submit(prompt, config);
  auto second = engine.submit({120, 4}, config);
  engine.step();
  CHECK(engine.stats().running == 1);
  CHECK(engine.stats().waiting == 1);
  CHECK(engine.stats().reserved_bytes == one);
  CHECK(second.state() == RequestState::waiting);
  while (engine.step()) CHECK(engine.stats().reserved_bytes <= one + one / 2);
  require_same(first.wait(), lmdecode::generate(*model, {prompt}, config), kFloat64Margin);
  require_same(second.wait(), lmdecode::generate(*model, {{120, 4}}, config), kFloat64Margin);
}

TEST_CASE("Engine: cancelling ends a request at its next step and frees its reservation", "[engine]") {
  auto model = tiny("qwen2-tiny");
  auto config = base_config(200);
  config.eos_token_ids = {};
  Engine engine(*model, {.max_running_requests = 1, .own_thread = false});
  std::atomic<int> steps_seen{0};
  auto running = engine.submit({17, 240, 5}, config, [&](lmdecode::StepEvent&) { ++steps_seen; });
  auto queued = engine.submit({120}, config);
  for (int i = 0; i < 3; ++i) engine.step();
  running.cancel();
  queued.cancel();
  while (engine.step()) {}
  const auto cut = running.wait();
  CHECK(cut.hypotheses[0][0].finish_reason == FinishReason::cancelled);
  CHECK(cut.hypotheses[0][0].tokens.size() < 10);
  CHECK(steps_seen.load() < 10);
  const auto never = queued.wait();
  CHECK(never.hypotheses[0][0].finish_reason == FinishReason::cancelled);
  CHECK(never.hypotheses[0][0].tokens.empty());
  CHECK(engine.stats().reserved_bytes == 0);
}

TEST_CASE("Engine: a request whose callback throws ends alone with that error", "[engine]") {
  auto model = tiny("qwen2-tiny");
  auto config = base_config(10);
  config.eos_token_ids = {};
  Engine engine(*model);
  auto bad = engine.submit({17, 240, 5}, config, [](lmdecode::StepEvent& e) {
    if (e.step == 1) throw std::runtime_error("the client went away");
  });
  auto good = engine.submit({120, 4}, config);
  CHECK_THROWS_WITH(bad.wait(), "the client went away");
  CHECK(bad.state() == RequestState::failed);
  require_same(good.wait(), lmdecode::generate(*model, {{120, 4}}, config), kFloat64Margin);
  CHECK_THROWS_WITH(engine.submit({5, 100000}, config), Catch::Contains("token 100000 outside the vocabulary"));
}

TEST_CASE("Engine: destroyed with requests in flight, it cancels them and their handles still answer", "[engine]") {
  auto model = tiny("qwen2-tiny");
  auto config = base_config(400);
  config.eos_token_ids = {};
  std::vector<lmdecode::RequestHandle> handles;
  {
    Engine engine(*model, {.max_running_requests = 2});
    for (int i = 0; i < 4; ++i) handles.push_back(engine.submit({17, 240, 5}, config));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& h : handles) {
    CHECK(h.state() == RequestState::finished);
    CHECK(h.wait().hypotheses[0][0].finish_reason == FinishReason::cancelled);
  }
}

TEST_CASE("Engine: a model without forward_segments is refused with a clear error", "[engine]") {
  auto table = lmdecode_test::abc::abc_model();
  CHECK_THROWS_WITH(Engine(table), Catch::Contains("forward_segments") && Catch::Contains("generate()"));
}

TEST_CASE("Engine under load: threads submit, cancel and wait at random; every uncancelled result equals its solo run", "[engine]") {
  auto model = tiny("qwen2-tiny");
  const auto prompts = mixed_prompts();
  const auto configs = mixed_configs();
  const auto solo = solo_results(*model, prompts, configs);
  Engine engine(*model, {.max_running_requests = 4, .max_prefill_tokens_per_step = 3,
                         .kv_budget_bytes = 6 * lmdecode::reserved_kv_bytes(9, configs[2], model->kv_bytes_per_position())});
  std::atomic<int> checked{0}, cancelled{0};
  std::mutex failures_mutex;
  std::vector<std::string> failures;
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&, t] {
      std::mt19937 random(static_cast<unsigned>(t));
      for (int k = 0; k < 6; ++k) {
        const size_t i = random() % prompts.size();
        auto handle = engine.submit(prompts[i], configs[i]);
        std::string failure;
        if (random() % 4 == 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(random() % 3000));
          handle.cancel();
          failure = cancelled_difference(handle.wait(), solo[i], configs[i]);
          ++cancelled;
        } else {
          failure = difference(handle.wait(), solo[i], kFloat64Margin);
          ++checked;
        }
        if (!failure.empty()) {
          std::lock_guard lock(failures_mutex);
          failures.push_back(fmt::format("client {} request {} (prompt {}): {}", t, k, i, failure));
        }
      }
    });
  for (auto& c : clients) c.join();
  CHECK(failures == std::vector<std::string>{});
  CHECK(checked + cancelled == 24);
  CHECK(checked > 0);
  CHECK(engine.stats().reserved_bytes == 0);
}

TEST_CASE("KVCache::from_prefix: a cache that begins with another's positions continues as if it had computed them", "[engine]") {
  auto model = tiny("qwen2-tiny");
  const auto ids = at::tensor(std::vector<int64_t>{17, 240, 5, 99, 31, 8, 9}, at::kLong).unsqueeze(0);
  auto batch = [&](int64_t from, int64_t n) {
    return lmdecode::ForwardBatch{ids.narrow(1, from, n), at::ones({1, from + n}, at::kLong), at::arange(from, from + n, at::kLong).unsqueeze(0)};
  };
  auto whole = model->make_cache(1, 8);
  const auto expected = model->forward(batch(0, 7), whole);
  auto first = model->make_cache(1, 8);
  model->forward(batch(0, 4), first);
  auto continued = lmdecode::KVCache::from_prefix(first.stored_positions(4), 8);
  CHECK(continued.length() == 4);
  CHECK(at::allclose(model->forward(batch(4, 3), continued), expected, 0, 1e-10));
  CHECK(at::allclose(continued.keys(1), whole.keys(1), 0, 1e-12));
  continued.expand_rows(3);  // beams after a shared prefix
  CHECK(continued.rows() == 3);
  CHECK(at::allclose(continued.keys(0)[2], whole.keys(0)[0], 0, 1e-12));
}

TEST_CASE("Engine prefix cache: a prompt that begins like an earlier one computes only the rest, with the same result", "[engine]") {
  for (const char* name : {"qwen2-tiny", "gemma3-tiny"}) {
    INFO(name);
    auto model = tiny(name);
    TokenIds system;
    for (int64_t i = 0; i < 24; ++i) system.push_back(3 + (i * 37) % 300);
    auto with = [&](TokenIds tail) {
      TokenIds p = system;
      p.insert(p.end(), tail.begin(), tail.end());
      return p;
    };
    const auto configs = mixed_configs();
    Engine engine(*model, {.max_prefill_tokens_per_step = 8});
    const auto first = engine.submit(with({40, 41}), configs[0]).wait();
    require_same(first, lmdecode::generate(*model, {with({40, 41})}, configs[0]), kFloat64Margin);
    CHECK(engine.stats().prefix_hits == 0);
    CHECK(engine.stats().prefix_cache_bytes == 26 * model->kv_bytes_per_position());
    // Greedy, sampling, beams and two sampled sequences after the same 24 tokens (and, after the
    // first of them, the same 25: its prompt is kept too).
    for (size_t i = 0; i < 4; ++i) {
      const auto prompt = with({50, static_cast<int64_t>(60 + i)});
      require_same(engine.submit(prompt, configs[i]).wait(), lmdecode::generate(*model, {prompt}, configs[i]), kFloat64Margin);
    }
    const auto stats = engine.stats();
    CHECK(stats.prefix_hits == 4);
    CHECK(stats.prefix_positions_reused == 24 + 3 * 25);
    CHECK(stats.prefix_bytes_saved == (24 + 3 * 25) * model->kv_bytes_per_position());
    // The same prompt again: all but its last token come from the cache.
    require_same(engine.submit(with({40, 41}), configs[0]).wait(), first, kFloat64Margin);
    CHECK(engine.stats().prefix_positions_reused == 24 + 3 * 25 + 25);
  }
}

TEST_CASE("Engine prefix cache: off at 0 bytes; under a budget its prompts make room for requests", "[engine]") {
  auto model = tiny("qwen2-tiny");
  const auto config = base_config(8);
  const TokenIds prompt{17, 240, 5, 99, 31, 8, 9, 10};
  {
    Engine engine(*model, {.prefix_cache_bytes = 0});
    engine.submit(prompt, config).wait();
    engine.submit(prompt, config).wait();
    CHECK(engine.stats().prefix_hits == 0);
    CHECK(engine.stats().prefix_cache_bytes == 0);
  }
  const int64_t one = lmdecode::reserved_kv_bytes(8, config, model->kv_bytes_per_position());
  Engine engine(*model, {.kv_budget_bytes = one + 4 * model->kv_bytes_per_position(), .own_thread = false});
  auto a = engine.submit(prompt, config);
  while (engine.step()) {}
  CHECK(engine.stats().prefix_cache_bytes == 0);  // 8 positions did not fit beside the running request's reservation
  auto b = engine.submit({120, 4, 5}, config);
  while (engine.step()) {}
  CHECK(engine.stats().prefix_cache_bytes == 3 * model->kv_bytes_per_position());
  auto c = engine.submit(prompt, config);  // needs the whole budget but 4 positions: the kept prompt is dropped
  while (engine.step()) {}
  require_same(c.wait(), lmdecode::generate(*model, {prompt}, config), kFloat64Margin);
  CHECK(engine.stats().reserved_bytes == 0);
}

TEST_CASE("Engine: a huge max_new_tokens runs as generate() runs it without a budget, and is refused under one", "[engine]") {
  const auto folder = lmdecode_test::reference_dir() / "qwen2-tiny";
  auto model = tiny("qwen2-tiny");
  auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
  config.max_new_tokens = 1'000'000'000;
  const TokenIds prompt{17, 240, 5, 99, 31};
  {
    Engine engine(*model);  // the cache grows with the tokens: EOS ends the request long before
    require_same(engine.submit(prompt, config).wait(), lmdecode::generate(*model, {prompt}, config), kFloat64Margin);
  }
  Engine engine(*model, {.kv_budget_bytes = int64_t{1} << 30});
  CHECK_THROWS_WITH(engine.submit(prompt, config), Catch::Contains("more than kv_budget_bytes"));
  config.max_new_tokens = std::numeric_limits<int64_t>::max() / 2;
  config.num_beams = 4;
  CHECK_THROWS_WITH(engine.submit(prompt, config), Catch::Contains(std::to_string(std::numeric_limits<int64_t>::max())));
}

TEST_CASE("Engine: requests under one grammar and with stop strings, batched, keep their solo results", "[engine][grammar]") {
  lmdecode_test::GoldenModels models(lmdecode_test::reference_dir(), at::kCPU);
  auto& loaded = models.get("fortunes-llama", "f32");
  auto config = loaded.defaults;
  config.grammar = std::make_shared<lmdecode::TokenGrammar>(
      lmdecode::Grammar::from_gbnf(R"(root ::= "{\"pet\": " ("\"cat\"" | "\"dog\"" | "null") ", \"age\": " [1-9] [0-9]? "}")"),
      config.token_texts, std::vector<int64_t>{0});
  config.max_new_tokens = 40;
  auto beams = config;
  beams.num_beams = 4;
  auto sampled = config;
  sampled.do_sample = true;
  sampled.seed = 3;
  auto stopped = loaded.defaults;  // no grammar: a stop string ends it
  stopped.max_new_tokens = 40;
  stopped.stop_strings = {"e "};
  const std::vector<TokenIds> prompts{{318, 3424, 289, 259}, {120, 44}, {2101, 681, 300}, {318, 3424}};
  const std::vector<GenerationConfig> configs{config, beams, sampled, stopped};
  const auto solo = solo_results(*loaded.model, prompts, configs);
  Engine engine(*loaded.model);
  std::vector<lmdecode::RequestHandle> handles;
  for (size_t i = 0; i < prompts.size(); ++i) handles.push_back(engine.submit(prompts[i], configs[i]));
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO("request " << i);
    require_same(handles[i].wait(), solo[i], 1e-4);
  }
  CHECK(solo[3].hypotheses[0][0].finish_reason == FinishReason::stop_sequence);
}

TEST_CASE("PrefixStore keeps whole prompts, finds the longest shared beginning and drops the least recently used", "[engine]") {
  lmdecode::detail::PrefixStore store;
  auto positions = [](int64_t length) { return at::zeros({1, 2, 1, 1, length, 2}, at::kFloat); };  // 16 bytes a position
  store.insert({1, 2, 3, 4}, positions(4), 1000);
  store.insert({1, 2}, positions(2), 1000);  // needless: {1, 2, 3, 4} begins with it
  CHECK(store.bytes() == 64);
  store.insert({5}, positions(1), 1000);  // shorter than a kept prompt and unlike it
  store.insert({1, 2, 3, 4, 6}, positions(5), 1000);  // replaces {1, 2, 3, 4}, which it begins with
  CHECK(store.bytes() == 16 + 80);
  const auto hit = store.longest({1, 2, 3, 9}, 3);
  REQUIRE(hit);
  CHECK(hit->length == 3);
  CHECK(hit->positions.size(4) == 3);
  CHECK_FALSE(store.longest({7, 8}, 1));
  store.insert({9, 9, 9}, positions(3), 96 + 48 - 16);  // room for it only once the least recent ({5}) is dropped
  CHECK(store.bytes() == 80 + 48);
  CHECK_FALSE(store.longest({5, 1}, 1));
  store.insert({8, 8, 8, 8, 8, 8, 8, 8, 8}, positions(9), 100);  // larger than the room: not kept, nothing dropped
  CHECK(store.bytes() == 80 + 48);
}
