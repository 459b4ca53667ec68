// The HF-style adapter with a C++ module and with a TorchScript module, checked on the golden
// gpt2-tiny cases: both must reproduce transformers' tokens like the native model does.
#include <catch2/catch.hpp>

#include <torch/nn/module.h>

#include "lmdecode/adapters/torchscript.hpp"
#include "support/cuda.hpp"
#include "support/golden_cases.hpp"
#include "support/step_ops.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;

namespace {

/// A C++ module with HF's legacy interface: it rebuilds a KVCache from the past it is given, runs
/// the reference GPT-2 and returns the grown past, as an HF model would.
struct LegacyGpt2Module : torch::nn::Module {
  explicit LegacyGpt2Module(std::unique_ptr<lmdecode::PretrainedModel> model) : model_(std::move(model)) {
    register_buffer("anchor", at::zeros({1}));  // gives the module a device to report
  }

  std::pair<at::Tensor, lmdecode::HfStylePast> forward(const at::Tensor& ids, const lmdecode::HfStylePast& past,
                                                      const at::Tensor& mask, const at::Tensor& positions) {
    const int64_t cached = past.empty() ? 0 : past[0].first.size(2);
    auto cache = model_->make_cache(ids.size(0), cached + ids.size(1));
    for (size_t l = 0; l < past.size(); ++l) cache.append(static_cast<int64_t>(l), past[l].first, past[l].second);
    cache.advance(cached);
    auto logits = model_->forward({ids, mask, positions, true}, cache);
    lmdecode::HfStylePast grown;
    for (int64_t l = 0; l < cache.num_layers(); ++l) grown.emplace_back(cache.keys(l).clone(), cache.values(l).clone());
    return {logits, grown};
  }

  std::unique_ptr<lmdecode::PretrainedModel> model_;
};

/// Returns logits with a wrong shape.
struct WrongShapeModule : torch::nn::Module {
  std::pair<at::Tensor, lmdecode::HfStylePast> forward(const at::Tensor& ids, const lmdecode::HfStylePast&,
                                                      const at::Tensor&, const at::Tensor&) {
    return {at::zeros({ids.size(0), 7}), {}};
  }
};

int64_t gpt2_tiny_vocab_size() {
  return lmdecode::load_model_config(lmdecode_test::reference_dir() / "gpt2-tiny" / "config.json").vocab_size;
}

template <class Model>
void run_gpt2_golden_cases(Model& model) {
  const auto folder = lmdecode_test::reference_dir() / "gpt2-tiny";
  auto native = lmdecode::load_pretrained(folder);
  const auto defaults = lmdecode::load_checkpoint_generation_config(folder, native->config());
  const auto cases = lmdecode::detail::read_json_file(lmdecode_test::reference_dir() / "cases.json").at("cases");
  int checked = 0;
  for (const auto& c : cases) {
    if (c.at("model") != "gpt2-tiny") continue;
    INFO("case " << c.dump());
    REQUIRE(lmdecode_test::check_golden_case(model, defaults, c, "f32") == "");
    ++checked;
  }
  REQUIRE(checked == 132);
}

}  // namespace

TEST_CASE("a C++ module with HF's legacy past reproduces the golden gpt2-tiny cases", "[adapters]") {
  auto module = std::make_shared<LegacyGpt2Module>(
      lmdecode::load_pretrained(lmdecode_test::reference_dir() / "gpt2-tiny"));
  auto model = lmdecode::HfStyleModel::from_module(module);
  REQUIRE(model.device() == at::Device(at::kCPU));
  run_gpt2_golden_cases(model);
}

TEST_CASE("a C++ module's device is its parameters', else its buffers'", "[adapters]") {
  const auto on_meta = at::zeros({4}, at::TensorOptions().device(at::kMeta));
  auto only_buffer = std::make_shared<WrongShapeModule>();
  only_buffer->register_buffer("table", on_meta);
  CHECK(lmdecode::HfStyleModel::from_module(only_buffer).device() == at::Device(at::kMeta));
  auto both = std::make_shared<WrongShapeModule>();
  both->register_parameter("weight", at::zeros({4}));
  both->register_buffer("table", on_meta);
  CHECK(lmdecode::HfStyleModel::from_module(both).device() == at::Device(at::kCPU));
  CHECK(lmdecode::HfStyleModel::from_module(std::make_shared<WrongShapeModule>()).device() == at::Device(at::kCPU));
}

TEST_CASE("a TorchScript module exported from Python reproduces the golden gpt2-tiny cases", "[adapters]") {
  // With its vocabulary size given, as a GPU user should (see the CUDA case below).
  const int64_t vocab = gpt2_tiny_vocab_size();
  auto model = lmdecode::load_torchscript((lmdecode_test::data_dir() / "gpt2-tiny-legacy.pt").string(), at::kCPU, vocab);
  REQUIRE(model.vocab_size() == vocab);
  run_gpt2_golden_cases(model);
}

TEST_CASE("a TorchScript module's device is its parameters', else its buffers', else its tensor attributes'", "[adapters]") {
  auto module_with = [](const std::string& name, bool parameter, bool buffer, bool attribute = false) {
    torch::jit::Module m(name);
    const auto on_meta = at::zeros({4}, at::TensorOptions().device(at::kMeta));
    if (parameter) m.register_parameter("weight", at::zeros({4}), false);
    if (buffer) m.register_buffer("table", on_meta);
    if (attribute) m.register_attribute("plain", c10::TensorType::get(), on_meta);
    m.define(R"(
def forward(self, ids: Tensor, past: List[Tuple[Tensor, Tensor]], mask: Tensor, positions: Tensor):
    return ids, past
)");
    return m;
  };
  CHECK(lmdecode::from_torchscript(module_with("ParameterAndBuffer", true, true)).device() == at::Device(at::kCPU));
  CHECK(lmdecode::from_torchscript(module_with("OnlyBuffer", false, true)).device() == at::Device(at::kMeta));
  CHECK(lmdecode::from_torchscript(module_with("OnlyAttribute", false, false, true)).device() == at::Device(at::kMeta));
  CHECK(lmdecode::from_torchscript(module_with("ParameterAndAttribute", true, false, true)).device() == at::Device(at::kCPU));
  CHECK(lmdecode::from_torchscript(module_with("Neither", false, false)).device() == at::Device(at::kCPU));
  // Weights held by a submodule count too.
  auto outer = module_with("Outer", false, false);
  outer.register_module("inner", module_with("Inner", false, false, true));
  CHECK(lmdecode::from_torchscript(outer).device() == at::Device(at::kMeta));
}

TEST_CASE("a TorchScript module decodes with one read of the device a step", "[adapters][ops]") {
  // Our side of the adapter (the past kept per row, reordered for beams) must not wait on the
  // device; the exported GPT-2 must not either, or a GPU run would stall every step.
  auto model = lmdecode::load_torchscript((lmdecode_test::data_dir() / "gpt2-tiny-legacy.pt").string());
  const auto folder = lmdecode_test::reference_dir() / "gpt2-tiny";
  auto config = lmdecode::load_checkpoint_generation_config(folder, lmdecode::load_pretrained(folder)->config());
  REQUIRE_FALSE(config.eos_token_ids.empty());  // so every step reads its "anything left?" flag
  const std::vector<lmdecode::TokenIds> prompts = {{17, 40, 5, 99, 31}, {12, 4}};
  for (const int64_t beams : {1, 3}) {
    config.num_beams = beams;
    INFO(beams << " beams");
    CHECK(lmdecode_test::step_problems(lmdecode_test::counts_by_length(model, config, prompts)) == "");
  }
}

TEST_CASE("a TorchScript module on CUDA reproduces the golden gpt2-tiny cases and reads the device once a step", "[.cuda]") {
  lmdecode_test::require_cuda();
  const int64_t vocab = gpt2_tiny_vocab_size();
  auto model = lmdecode::load_torchscript((lmdecode_test::data_dir() / "gpt2-tiny-legacy.pt").string(), at::kCUDA, vocab);
  REQUIRE(model.device().is_cuda());
  run_gpt2_golden_cases(model);
  const auto folder = lmdecode_test::reference_dir() / "gpt2-tiny";
  auto config = lmdecode::load_checkpoint_generation_config(folder, lmdecode::load_pretrained(folder)->config());
  for (const int64_t beams : {1, 3}) {
    config.num_beams = beams;
    INFO(beams << " beams");
    CHECK(lmdecode_test::device_traffic_problems(lmdecode_test::counts_by_length(model, config, {{17, 40, 5}, {12, 4}})) == "");
  }
}

TEST_CASE("the HF-style adapter's past takes its parents' rows, and rejects an index that names no row", "[adapters]") {
  lmdecode::HfStyleCache cache;
  cache.reorder(at::tensor({0, 0}, at::kLong));  // nothing stored yet: nothing to gather
  auto key = at::arange(3, at::kFloat).view({3, 1, 1, 1});
  cache.replace({{key, -key}});
  cache.reorder(at::tensor({2, 2, 0}, at::kLong));
  REQUIRE(at::equal(cache.past()[0].first.flatten(), at::tensor({2.f, 2.f, 0.f})));
  REQUIRE(at::equal(cache.past()[0].second.flatten(), at::tensor({-2.f, -2.f, -0.f})));
  REQUIRE_THROWS_WITH(cache.reorder(at::tensor({1, 3}, at::kLong)),
                      Catch::Contains("HfStyleCache::reorder: index 3 at position 1 is not a row (rows: 3)"));
  REQUIRE_THROWS_AS(cache.reorder(at::tensor({0}, at::kInt)), lmdecode::invalid_argument);
  REQUIRE(at::equal(cache.past()[0].first.flatten(), at::tensor({2.f, 2.f, 0.f})));  // left as it was
}

TEST_CASE("the HF-style adapter rejects bad modules and files clearly", "[adapters][errors]") {
  lmdecode::GenerationConfig config;
  config.max_new_tokens = 2;
  SECTION("logits of the wrong shape") {
    auto model = lmdecode::HfStyleModel::from_module(std::make_shared<WrongShapeModule>());
    REQUIRE_THROWS_AS(lmdecode::GreedyDecoder(model, config).generate({{1, 2}}), lmdecode::model_error);
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(model, config).generate({{1, 2}}), Contains("expected [1, 2, vocab]"));
  }
  SECTION("a past of the wrong length") {
    lmdecode::HfStyleModel model(
        [](const at::Tensor& ids, const lmdecode::HfStylePast&, const at::Tensor&, const at::Tensor&) {
          return std::make_pair(at::zeros({ids.size(0), ids.size(1), 5}),
                                lmdecode::HfStylePast{{at::zeros({ids.size(0), 1, 9, 4}), at::zeros({ids.size(0), 1, 9, 4})}});
        },
        at::kCPU);
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(model, config).generate({{1, 2}}), Contains("past_key_values layer 0"));
  }
  SECTION("with a vocab_size: a prompt id outside it, before the module runs; logits over another vocabulary") {
    int calls = 0;
    auto forward = [&calls](const at::Tensor& ids, const lmdecode::HfStylePast&, const at::Tensor& mask,
                            const at::Tensor&) {
      ++calls;
      const auto grown = at::zeros({ids.size(0), 1, mask.size(1), 4});
      return std::make_pair(at::zeros({ids.size(0), ids.size(1), 5}), lmdecode::HfStylePast{{grown, grown}});
    };
    lmdecode::HfStyleModel five(forward, at::kCPU, 5);
    REQUIRE_THROWS_AS(lmdecode::GreedyDecoder(five, config).generate({{1, 2}, {4, 5}}), lmdecode::invalid_argument);
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(five, config).generate({{1, 2}, {4, 5}}),
                        Contains("input_ids hold token 5 outside the vocabulary [0, 5)"));
    REQUIRE(calls == 0);
    REQUIRE(lmdecode::GreedyDecoder(five, config).generate({{1, 2}, {4}}).hypotheses.size() == 2);  // pads are 0 here
    lmdecode::HfStyleModel six(forward, at::kCPU, 6);
    REQUIRE_THROWS_AS(lmdecode::GreedyDecoder(six, config).generate({{1, 2}}), lmdecode::model_error);
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(six, config).generate({{1, 2}}),
                        Contains("the module returned logits over 5 tokens, but its vocab_size is 6"));
    REQUIRE_THROWS_AS(lmdecode::HfStyleModel(forward, at::kCPU, 0), lmdecode::invalid_argument);
  }
  SECTION("a missing or corrupt TorchScript file") {
    REQUIRE_THROWS_AS(lmdecode::load_torchscript("/nonexistent/model.pt"), lmdecode::file_error);
    auto corrupt = std::filesystem::temp_directory_path() / "lmdecode_corrupt.pt";
    std::ofstream(corrupt) << "not a zip archive";
    REQUIRE_THROWS_WITH(lmdecode::load_torchscript(corrupt.string()), Contains(corrupt.string()));
  }
  SECTION("a GPU that this process does not have is named, not blamed on the file") {
    const auto file = (lmdecode_test::data_dir() / "gpt2-tiny-legacy.pt").string();
    REQUIRE_THROWS_AS(lmdecode::load_torchscript(file, at::Device(at::kCUDA, 99)), lmdecode::invalid_argument);
    REQUIRE_THROWS_WITH(lmdecode::load_torchscript(file, at::Device(at::kCUDA, 99)), Contains("device cuda:99"));
  }
}
