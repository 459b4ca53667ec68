#include <catch2/catch.hpp>

#include "lmdecode/cache.hpp"
#include "lmdecode/lmdecode.hpp"
#include "support/each_golden_case.hpp"
#include "support/test_data.hpp"

using lmdecode::KVCache;

namespace {
// A block whose every entry names its row and position: value = 100 * row + position (+ 0.5 for values).
at::Tensor block(int64_t rows, int64_t heads, int64_t start, int64_t steps, int64_t dim, double offset = 0.0) {
  auto row = at::arange(rows, at::kFloat).view({rows, 1, 1, 1}) * 100;
  auto pos = at::arange(start, start + steps, at::kFloat).view({1, 1, steps, 1});
  return (row + pos + offset).expand({rows, heads, steps, dim}).contiguous();
}
}  // namespace

TEST_CASE("KVCache appends into preallocated capacity and reports its size", "[cache]") {
  KVCache cache(2, 3, 2, 4, 8, at::TensorOptions().dtype(at::kFloat));
  REQUIRE(cache.length() == 0);
  REQUIRE(cache.capacity() == 8);
  REQUIRE(cache.bytes() == 0);
  REQUIRE(cache.capacity_bytes() == 2 * 2 * 3 * 2 * 8 * 4 * 4);
  for (int64_t layer = 0; layer < 2; ++layer) {
    const auto kv = cache.append(layer, block(3, 2, 0, 4, 4), block(3, 2, 0, 4, 4, 0.5));
    REQUIRE(kv.keys.size(2) == 4);
    REQUIRE(at::equal(kv.keys, block(3, 2, 0, 4, 4)));
    REQUIRE_FALSE(kv.shares_prompt());
  }
  cache.advance(4);
  const void* storage = cache.keys(0).data_ptr();
  for (int64_t layer = 0; layer < 2; ++layer) cache.append(layer, block(3, 2, 4, 1, 4), block(3, 2, 4, 1, 4, 0.5));
  cache.advance(1);
  REQUIRE(cache.length() == 5);
  REQUIRE(cache.bytes() == 2 * 2 * 3 * 2 * 5 * 4 * 4);  // L x 2 x rows x H x S x D x element size
  REQUIRE(cache.keys(0).data_ptr() == storage);          // written in place: no reallocation, no concatenation
  REQUIRE(at::equal(cache.keys(1), block(3, 2, 0, 5, 4)));

  SECTION("appending past capacity grows it (doubling) and keeps what was stored") {
    for (int64_t layer = 0; layer < 2; ++layer) cache.append(layer, block(3, 2, 5, 4, 4), block(3, 2, 5, 4, 4, 0.5));
    cache.advance(4);
    REQUIRE(cache.length() == 9);
    REQUIRE(cache.capacity() == 16);
    REQUIRE(at::equal(cache.keys(1), block(3, 2, 0, 9, 4)));
    REQUIRE(at::equal(cache.values(1), block(3, 2, 0, 9, 4, 0.5)));
  }
  SECTION("crop forgets the tail") {
    cache.crop(2);
    REQUIRE(cache.length() == 2);
    REQUIRE(at::equal(cache.keys(0), block(3, 2, 0, 2, 4)));
    REQUIRE_THROWS_AS(cache.crop(3), lmdecode::invalid_argument);
  }
  SECTION("reserve makes room without changing the contents") {
    cache.reserve(32);
    REQUIRE(cache.capacity() == 32);
    REQUIRE(at::equal(cache.keys(0), block(3, 2, 0, 5, 4)));
  }
  SECTION("to() converts device/dtype and keeps the contents") {
    auto doubled = cache.to(at::kCPU, at::kDouble);
    REQUIRE(doubled.dtype() == at::kDouble);
    REQUIRE(doubled.length() == 5);
    REQUIRE(at::equal(doubled.values(0), block(3, 2, 0, 5, 4, 0.5).to(at::kDouble)));
  }
}

TEST_CASE("KVCache::reorder gives each row its parent's history, with repeated and dropped parents", "[cache]") {
  KVCache cache(1, 4, 1, 2, 6, at::TensorOptions().dtype(at::kFloat));
  cache.append(0, block(4, 1, 0, 3, 2), block(4, 1, 0, 3, 2, 0.5));
  cache.advance(3);
  cache.reorder(at::tensor({2, 2, 0, 3}, at::kLong));  // row 1 dropped, row 2 repeated
  auto keys = cache.keys(0);
  REQUIRE(at::equal(keys[0], block(4, 1, 0, 3, 2)[2]));
  REQUIRE(at::equal(keys[1], block(4, 1, 0, 3, 2)[2]));
  REQUIRE(at::equal(keys[2], block(4, 1, 0, 3, 2)[0]));
  REQUIRE(at::equal(keys[3], block(4, 1, 0, 3, 2)[3]));
  REQUIRE(at::equal(cache.values(0)[1], block(4, 1, 0, 3, 2, 0.5)[2]));

  SECTION("rows that share a parent do not share storage: writing one leaves the other alone") {
    auto next = at::zeros({4, 1, 1, 2});
    next[0].fill_(-1);
    next[1].fill_(-2);
    cache.append(0, next, next);
    cache.advance(1);
    REQUIRE(cache.keys(0)[0][0][3][0].item<float>() == -1);
    REQUIRE(cache.keys(0)[1][0][3][0].item<float>() == -2);
    REQUIRE(at::equal(cache.keys(0)[0].narrow(1, 0, 3), cache.keys(0)[1].narrow(1, 0, 3)));
  }
  SECTION("a reorder may change the number of rows (expanding prompts into beams)") {
    cache.reorder(at::tensor({0, 0, 0, 1, 1, 1}, at::kLong));
    REQUIRE(cache.rows() == 6);
    REQUIRE(at::equal(cache.keys(0)[4], block(4, 1, 0, 3, 2)[2]));
  }
  SECTION("a bad index is rejected") {
    REQUIRE_THROWS_AS(cache.reorder(at::tensor({0, 1}, at::kInt)), lmdecode::invalid_argument);
    REQUIRE_THROWS_WITH(cache.reorder(at::tensor({0, 4}, at::kLong)),
                        Catch::Contains("index 4 at position 1 is not a row (rows: 4)"));
    REQUIRE_THROWS_WITH(cache.reorder(at::tensor({-1}, at::kLong)), Catch::Contains("index -1 at position 0"));
    REQUIRE(cache.rows() == 4);  // a rejected reorder leaves the cache as it was
  }
}

TEST_CASE("KVCache reorders every layer, step after step", "[cache]") {
  // 3 layers, 3 rows; each step appends one position and reorders, as beam search does.
  const int64_t layers = 3, rows = 3;
  KVCache cache(layers, rows, 2, 4, 8, at::TensorOptions().dtype(at::kFloat));
  const auto one_buffer_bytes = cache.capacity_bytes();
  std::vector<at::Tensor> expected_keys(layers), expected_values(layers);  // [rows, kv_heads, length, head_dim]
  const std::vector<std::vector<int64_t>> parents = {{0, 0, 0}, {2, 0, 1}, {1, 1, 2}, {0, 2, 2}};
  for (size_t step = 0; step < parents.size(); ++step) {
    for (int64_t l = 0; l < layers; ++l) {
      auto k = at::randn({rows, 2, 1, 4}), v = at::randn({rows, 2, 1, 4});
      cache.append(l, k, v);
      expected_keys[l] = step == 0 ? k : at::cat({expected_keys[l], k}, 2);
      expected_values[l] = step == 0 ? v : at::cat({expected_values[l], v}, 2);
    }
    cache.advance(1);
    auto index = at::tensor(parents[step], at::kLong);
    cache.reorder(index);
    for (int64_t l = 0; l < layers; ++l) {
      expected_keys[l] = expected_keys[l].index_select(0, index);
      expected_values[l] = expected_values[l].index_select(0, index);
      INFO("step " << step << " layer " << l);
      REQUIRE(at::equal(cache.keys(l), expected_keys[l]));
      REQUIRE(at::equal(cache.values(l), expected_values[l]));
    }
  }
  REQUIRE(cache.capacity_bytes() == one_buffer_bytes);  // reordered in place: no second buffer kept
  cache.reorder(at::tensor({0, 1}, at::kLong));
  REQUIRE(cache.capacity_bytes() == one_buffer_bytes / 3 * 2);
  REQUIRE(at::equal(cache.keys(2), expected_keys[2].narrow(0, 0, 2)));
}

TEST_CASE("KVCache rejects blocks of the wrong shape, dtype or layer", "[cache]") {
  KVCache cache(1, 2, 2, 4, 4, at::TensorOptions().dtype(at::kFloat));
  REQUIRE_THROWS_AS(cache.append(0, at::zeros({2, 3, 1, 4}), at::zeros({2, 3, 1, 4})), lmdecode::model_error);
  REQUIRE_THROWS_AS(cache.append(0, at::zeros({2, 2, 1, 4}, at::kDouble), at::zeros({2, 2, 1, 4}, at::kDouble)),
                    lmdecode::model_error);
  REQUIRE_THROWS_AS(cache.append(1, at::zeros({2, 2, 1, 4}), at::zeros({2, 2, 1, 4})), lmdecode::invalid_argument);
  REQUIRE_THROWS_AS(cache.advance(5), lmdecode::invalid_argument);  // more than the capacity holds
}

namespace {
/// Appends one block of `steps` positions to every layer of `cache`, the same as to `reference`.
void append_both(KVCache& cache, KVCache& reference, int64_t steps) {
  for (int64_t l = 0; l < cache.num_layers(); ++l) {
    auto k = at::randn({cache.rows(), cache.kv_heads(), steps, cache.head_dim()});
    auto v = at::randn({cache.rows(), cache.kv_heads(), steps, cache.head_dim()});
    cache.append(l, k, v);
    reference.append(l, k, v);
  }
  cache.advance(steps);
  reference.advance(steps);
}

void require_same_contents(const KVCache& a, const KVCache& b) {
  REQUIRE(a.length() == b.length());
  REQUIRE(a.rows() == b.rows());
  for (int64_t l = 0; l < a.num_layers(); ++l) {
    REQUIRE(at::equal(a.keys(l), b.keys(l)));
    REQUIRE(at::equal(a.values(l), b.values(l)));
  }
}
}  // namespace

TEST_CASE("A shared-prompt KVCache stores each prompt once and holds what an expanded one holds", "[cache]") {
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  const int64_t layers = 2, prompts = 2, beams = 3, heads = 2, dim = 4, prompt = 5;
  KVCache shared(layers, prompts, heads, dim, prompt, opts);
  KVCache expanded(layers, prompts, heads, dim, prompt, opts, lmdecode::CacheLayout::expanded);
  append_both(shared, expanded, prompt);
  shared.expand_rows(beams);
  expanded.expand_rows(beams);
  REQUIRE(shared.copies() == beams);
  REQUIRE(expanded.copies() == 1);
  require_same_contents(shared, expanded);

  // Beam steps: one position each, then a reorder within each prompt's beams.
  const std::vector<std::vector<int64_t>> parents = {{0, 0, 1, 3, 3, 3}, {2, 1, 1, 5, 4, 3}, {0, 0, 0, 4, 4, 5}};
  for (const auto& p : parents) {
    append_both(shared, expanded, 1);
    const auto index = at::tensor(p, at::kLong);
    shared.reorder(index);
    expanded.reorder(index);
    require_same_contents(shared, expanded);
  }
  const int64_t generated = static_cast<int64_t>(parents.size()), per_position = layers * 2 * heads * dim * 4;
  // L x 2 x kv_heads x head_dim x bytes x (prompts x P + rows x G), against rows x (P + G) expanded.
  REQUIRE(shared.bytes() == per_position * (prompts * prompt + prompts * beams * generated));
  REQUIRE(expanded.bytes() == per_position * prompts * beams * (prompt + generated));
  REQUIRE(shared.reorder_bytes() == per_position * prompts * beams * generated);
  REQUIRE(expanded.reorder_bytes() == expanded.bytes());

  SECTION("append reports the prompt's positions once per prompt and the rows' own after them") {
    const auto kv = shared.append(0, at::zeros({6, heads, 1, dim}), at::zeros({6, heads, 1, dim}));
    REQUIRE(kv.shares_prompt());
    REQUIRE(kv.copies == beams);
    REQUIRE(kv.prompt_keys.sizes() == at::IntArrayRef({prompts, heads, prompt, dim}));
    REQUIRE(kv.keys.sizes() == at::IntArrayRef({prompts * beams, heads, generated + 1, dim}));
  }
  SECTION("a reorder across prompts is refused; the expanded layout takes it") {
    REQUIRE_THROWS_WITH(shared.reorder(at::tensor({0, 1, 2, 0, 4, 5}, at::kLong)),
                        Catch::Contains("row 3 would continue row 0, a copy of another prompt"));
    REQUIRE_NOTHROW(expanded.reorder(at::tensor({0, 1, 2, 0, 4, 5}, at::kLong)));
  }
  SECTION("a reorder that changes the number of rows, a crop into the prompt and to() keep the contents") {
    const auto fewer = at::tensor({5, 0}, at::kLong);
    shared.reorder(fewer);
    expanded.reorder(fewer);
    require_same_contents(shared, expanded);
    shared.crop(3);
    expanded.crop(3);
    require_same_contents(shared, expanded);
  }
  SECTION("to() keeps the layout and the contents") {
    auto doubled = shared.to(at::kCPU, at::kDouble);
    REQUIRE(doubled.copies() == beams);
    REQUIRE(at::equal(doubled.keys(1), shared.keys(1).to(at::kDouble)));
  }
  SECTION("expanding again repeats each row's own positions and keeps the prompt shared") {
    shared.expand_rows(2);
    expanded.expand_rows(2);
    REQUIRE(shared.copies() == 2 * beams);
    require_same_contents(shared, expanded);
  }
}

TEST_CASE("KVCache memory follows the positions stored: the owned part grows by doubling", "[cache]") {
  KVCache cache(1, 1, 1, 2, 4, at::TensorOptions().dtype(at::kFloat));
  KVCache reference(1, 1, 1, 2, 4, at::TensorOptions().dtype(at::kFloat), lmdecode::CacheLayout::expanded);
  append_both(cache, reference, 4);
  cache.expand_rows(2);
  reference.expand_rows(2);
  const int64_t start = cache.capacity();
  for (int i = 0; i < 40; ++i) append_both(cache, reference, 1);
  require_same_contents(cache, reference);
  REQUIRE(cache.capacity() >= 44);
  REQUIRE(cache.capacity() < 2 * 44 + 4);  // doubled as needed, never sized for a maximum length
  REQUIRE(cache.capacity() > start);
}

TEST_CASE("every beam golden case gives the same result with the shared-prompt and the expanded cache", "[cache][golden]") {
  // The expanded layout is the reference path: one softmax over each row's own copy of all positions.
  for (const auto layout : {lmdecode::CacheLayout::shared_prompt, lmdecode::CacheLayout::expanded}) {
    lmdecode_test::GoldenModels models(lmdecode_test::reference_dir(), at::kCPU, layout);
    INFO("layout " << static_cast<int>(layout));
    const int checked = lmdecode_test::for_each_golden_run(models, "beam", [](const nlohmann::json& c, const std::string& dtype,
                                                                              lmdecode_test::GoldenModels::Loaded& loaded) {
      REQUIRE(lmdecode_test::check_golden_case(*loaded.model, loaded.defaults, c, dtype) == "");
    });
    CHECK(checked == 689 + 858);  // every (beam case, dtype) pair of the two files
  }
}

TEST_CASE("GenerationResult::cache_bytes is what the KV cache held: each prompt once, each row's own positions", "[cache]") {
  auto model = lmdecode::load_pretrained(lmdecode_test::reference_dir() / "qwen2-tiny", {at::kCPU, at::kFloat});
  const auto& c = model->config();
  const int64_t per_position = c.num_layers * 2 * c.num_kv_heads * c.head_dim * 4;  // float32
  auto config = lmdecode::load_checkpoint_generation_config(lmdecode_test::reference_dir() / "qwen2-tiny", c);
  config.eos_token_ids = {};  // every row runs max_new_tokens: the positions are known
  config.max_new_tokens = 7;
  const std::vector<lmdecode::TokenIds> prompts = {{5, 6, 7, 8}, {9, 10}};  // padded to 4
  auto greedy = lmdecode::GreedyDecoder(*model, config).generate(prompts);
  // 7 steps, the prefill first; the last token is returned, never fed: 4 + 6 positions a row.
  REQUIRE(greedy.steps == 7);
  REQUIRE(greedy.cache_bytes == per_position * 2 * (4 + 6));
  config.num_beams = 3;
  auto beams = lmdecode::BeamSearchDecoder(*model, config).generate(prompts);
  REQUIRE(beams.steps == 7);
  REQUIRE(beams.cache_bytes == per_position * (2 * 4 + 2 * 3 * 6));  // the prompts once, each beam's own
}
