// OpCounter, and what it holds every decoding step to: the same operators step after step, and
// nothing that waits on the device but the step's one read.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "lmdecode/lmdecode.hpp"
#include "lmdecode/op_counter.hpp"
#include "support/step_ops.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;

TEST_CASE("OpCounter counts the operators called and those they call", "[ops]") {
  auto a = at::ones({3}), b = at::ones({3});
  lmdecode::OpCounter counter;
  auto c = a + b;
  auto counts = counter.take();
  CHECK(counts.calls == 1);
  CHECK(counts.calls_by_name == std::map<std::string, int64_t>{{"aten::add", 1}});
  CHECK(counts.host_reads == 0);
  at::matmul(a.view({1, 3}), b.view({3, 1}));
  counts = counter.take();
  CHECK(counts.calls_by_name.at("aten::matmul") == 1);
  CHECK(counts.all_calls > counts.calls);  // matmul reshapes and calls mm
  at::ones({2, 5}, at::kLong).to(at::kCPU);  // on a GPU this would be a read of the device
  counts = counter.take();
  if (lmdecode::OpCounter::kCountsTransfers) {
    CHECK(counts.to_host == 1);
    CHECK(counts.to_host_bytes == 2 * 5 * 8);
    CHECK(counts.made_without_device == std::map<std::string, int64_t>{{"aten::ones", 1}});
  }
  // Only factories that name no device count: on a GPU they would make host tensors.
  at::arange(4, at::kLong);
  at::arange(1, 4, at::TensorOptions().dtype(at::kLong).device(a.device()));
  at::zeros_like(a);
  at::full({2}, 1.0, a.options());
  if (lmdecode::OpCounter::kCountsTransfers)
    CHECK(counter.take().made_without_device == std::map<std::string, int64_t>{{"aten::arange", 1}});
  REQUIRE_THROWS_WITH(lmdecode::OpCounter(), Contains("only one OpCounter"));
}

TEST_CASE("every decoding step dispatches the same operators, none that waits on the device but one read", "[ops][models]") {
  // A step whose cost grew with its index (host work over the whole history, tensors rebuilt from
  // the start) would show as more calls in the later steps. On a GPU, an operator that reads device
  // memory on the host (item, nonzero, ...) stalls the host until the device catches up: run here on
  // the CPU, this finds them by name, with every processor and a stop sequence on.
  auto model = lmdecode::load_pretrained(lmdecode_test::reference_dir() / "qwen2-tiny");
  auto config = lmdecode::load_checkpoint_generation_config(lmdecode_test::reference_dir() / "qwen2-tiny", model->config());
  REQUIRE_FALSE(config.eos_token_ids.empty());  // so every step reads its "anything left?" flag
  config.repetition_penalty = 1.2;
  config.no_repeat_ngram_size = 2;
  config.bad_words_ids = {{5, 6}, {7}};
  config.suppress_tokens = {3};
  config.begin_suppress_tokens = {4};
  config.stop_sequences = {{9, 9, 9}};  // cannot match under no_repeat_ngram_size 2: no row ends early
  const auto prompts = lmdecode_test::prompts_5_and_2();
  auto check_steps = [](const std::vector<lmdecode::OpCounts>& c) { CHECK(lmdecode_test::step_problems(c) == ""); };
  SECTION("greedy") { check_steps(lmdecode_test::counts_by_length(*model, config, prompts)); }
  SECTION("beam search") {
    config.num_beams = 3;
    check_steps(lmdecode_test::counts_by_length(*model, config, prompts));
  }
  SECTION("sampling with every warper") {
    config.do_sample = true;
    config.temperature = 0.7;
    config.top_k = 20;
    config.top_p = 0.9;
    config.min_p = 0.01;
    config.typical_p = 0.95;
    config.seed = 3;
    check_steps(lmdecode_test::counts_by_length(*model, config, prompts));
    config.num_beams = 2;  // beam sampling
    check_steps(lmdecode_test::counts_by_length(*model, config, prompts));
  }
  SECTION("streaming: the event's tokens come with the same read") {
    int64_t events = 0;
    auto count = [&](lmdecode::StepEvent& e) { events += static_cast<int64_t>(!e.tokens.empty()); };
    check_steps(lmdecode_test::counts_by_length(*model, config, prompts, count));
    config.num_beams = 3;
    check_steps(lmdecode_test::counts_by_length(*model, config, prompts, count));
    CHECK(events == 2 * (12 + 4 + 8 + 12));
  }
}
