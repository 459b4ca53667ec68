// CUDA checks (the TorchScript adapter's is in test_adapters.cpp). Hidden from the default run
// ([.cuda]); ctest runs them as lmdecode_cuda_tests, which reports "Skipped" where no GPU is
// present (support/cuda.hpp).
#include <catch2/catch.hpp>

#include <algorithm>

#include "lmdecode/decoders/detail/random_generator.hpp"
#include "support/cuda.hpp"
#include "support/golden_cases.hpp"
#include "support/multinomial_draws.hpp"
#include "support/step_ops.hpp"
#include "support/test_data.hpp"

using lmdecode_test::require_cuda;

TEST_CASE("the golden cases pass with the model on CUDA (float64 gives the f64 tokens)", "[.cuda]") {
  require_cuda();
  const auto cases = lmdecode::detail::read_json_file(lmdecode_test::reference_dir() / "cases.json").at("cases");
  int64_t checked = 0;
  for (const std::string name : {"gpt2-tiny", "qwen2-tiny"}) {
    for (const std::string dtype : {"f64", "f32"}) {
      const auto folder = lmdecode_test::reference_dir() / name;
      auto model = lmdecode::load_pretrained(folder, {at::kCUDA, lmdecode_test::golden_dtype(dtype)});
      const auto defaults = lmdecode::load_checkpoint_generation_config(folder, model->config());
      for (const auto& c : cases) {
        const auto dtypes = lmdecode_test::golden_checks(c);
        if (c.at("model") != name || std::find(dtypes.begin(), dtypes.end(), dtype) == dtypes.end()) continue;
        INFO(name << " " << dtype << " case " << c.dump());
        CHECK(lmdecode_test::check_golden_case(*model, defaults, c, dtype) == "");
        ++checked;
      }
    }
  }
  CHECK(checked == 132 + 132 + 236 + 240);  // every (case, dtype) pair cases.json lists
}

TEST_CASE("CPU and CUDA give the same tokens in bf16, f16 and f32", "[.cuda]") {
  require_cuda();
  const auto folder = lmdecode_test::reference_dir() / "qwen2-tiny";
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    auto gpu = lmdecode::load_pretrained(folder, {at::kCUDA, dtype});
    auto config = lmdecode::load_checkpoint_generation_config(folder, gpu->config());
    config.max_new_tokens = 12;
    const auto prompts = lmdecode_test::prompts_5_and_1();
    auto on_gpu = lmdecode::GreedyDecoder(*gpu, config).generate(prompts);
    INFO(c10::toString(dtype));
    REQUIRE(on_gpu.sequences.device().is_cpu());
    if (dtype == at::kFloat) {
      auto cpu = lmdecode::load_pretrained(folder, {at::kCPU, dtype});
      CHECK(at::equal(lmdecode::GreedyDecoder(*cpu, config).generate(prompts).sequences, on_gpu.sequences));
    }
    config.num_beams = 4;
    auto beams = lmdecode::BeamSearchDecoder(*gpu, config).generate(prompts);
    CHECK(beams.hypotheses[0].size() == 1);
    CHECK(std::isfinite(beams.hypotheses[0][0].score));
  }
}

TEST_CASE("on CUDA a decoding step reads the device once and uploads nothing", "[.cuda]") {
  require_cuda();
  REQUIRE(lmdecode::OpCounter::kCountsTransfers);  // a release (NDEBUG) build
  const auto folder = lmdecode_test::reference_dir() / "qwen2-tiny";
  auto model = lmdecode::load_pretrained(folder, {at::kCUDA, at::kBFloat16});
  auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
  const auto prompts = lmdecode_test::prompts_5_and_2();
  auto check = [](const std::vector<lmdecode::OpCounts>& c) { CHECK(lmdecode_test::device_traffic_problems(c) == ""); };
  SECTION("greedy") { check(lmdecode_test::counts_by_length(*model, config, prompts)); }
  SECTION("beam search") {
    config.num_beams = 4;
    check(lmdecode_test::counts_by_length(*model, config, prompts));
  }
  SECTION("sampling") {
    config.do_sample = true;
    config.top_p = 0.9;
    config.seed = 3;
    check(lmdecode_test::counts_by_length(*model, config, prompts));
  }
  SECTION("streaming beam search") {
    config.num_beams = 4;
    check(lmdecode_test::counts_by_length(*model, config, prompts, [](lmdecode::StepEvent&) {}));
  }
}

TEST_CASE("sampling on CUDA: torch.multinomial's draws, and a seed repeats its tokens, also around a nested generate()", "[.cuda]") {
  require_cuda();
  const at::Device cuda(at::kCUDA);
  SECTION("draws equal torch.multinomial's for the same generator state") {
    lmdecode::detail::GeneratorPool pool([cuda] { return at::globalContext().defaultGenerator(cuda).clone(); });
    lmdecode_test::require_draws_match_multinomial(cuda, [&pool](uint64_t seed) { return pool.lend(seed); });
  }
  SECTION("decoders") {
    const auto folder = lmdecode_test::reference_dir() / "qwen2-tiny";
    auto model = lmdecode::load_pretrained(folder, {cuda, at::kFloat});
    auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
    config.max_new_tokens = 12;
    const auto prompts = lmdecode_test::prompts_5_and_1();
    auto greedy = lmdecode::GreedyDecoder(*model, config).generate(prompts);
    config.do_sample = true;
    config.top_k = 0;
    config.seed = 1234;
    config.num_return_sequences = 2;
    auto first = lmdecode::SamplingDecoder(*model, config).generate(prompts);
    CHECK(at::equal(first.sequences, lmdecode::SamplingDecoder(*model, config).generate(prompts).sequences));
    auto nested_config = config;
    nested_config.seed = 5;
    auto around_nested = lmdecode::SamplingDecoder(*model, config).generate(prompts, [&](lmdecode::StepEvent&) {
      lmdecode::SamplingDecoder(*model, nested_config).generate({{3, 4}});
    });
    CHECK(at::equal(first.sequences, around_nested.sequences));
    config.seed = 99;
    CHECK_FALSE(at::equal(first.sequences, lmdecode::SamplingDecoder(*model, config).generate(prompts).sequences));
    config.num_return_sequences = 1;
    config.top_k = 1;
    CHECK(at::equal(greedy.sequences, lmdecode::generate(*model, prompts, config).sequences));
    config.top_k = 0;
    config.num_beams = 3;
    config.num_return_sequences = 2;
    auto beams = lmdecode::generate(*model, prompts, config);
    CHECK(at::equal(beams.sequences, lmdecode::generate(*model, prompts, config).sequences));
  }
}
