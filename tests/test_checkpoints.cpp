#include <catch2/catch.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <fstream>

#include "lmdecode/lmdecode.hpp"
#include "support/safetensors_writer.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path scratch_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("lmdecode_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Half-precision logits of the tiny checkpoints against transformers' float64 ones (values up to
// about 10): measured on this kind of machine, see the test's INFO lines.
constexpr double kHalfMaxLogitError = 0.45;
constexpr double kHalfMeanLogitError = 0.05;

struct LogitError {
  double max, mean;
  int64_t count;  // logits compared
};

/// |ours - theirs| over positions where mask is 1 (mask [rows, T]) and `theirs` is not NaN.
LogitError logit_error(const at::Tensor& ours, const at::Tensor& theirs, const at::Tensor& mask) {
  auto real = mask.to(at::kBool).unsqueeze(-1).expand_as(theirs).logical_and(theirs.isnan().logical_not());
  auto diff = (ours.to(at::kDouble) - theirs).abs().masked_select(real);
  return {diff.max().item<double>(), diff.mean().item<double>(), diff.numel()};
}


struct Reference {
  at::Tensor prompt, logits, batch_ids, batch_mask, batch_logits;
};

Reference load_reference(const std::string& model) {
  auto t = lmdecode::SafetensorsFile(lmdecode_test::reference_dir() / model / "reference_logits_f64.safetensors").load_all();
  return {t.at("prompt"), t.at("logits"), t.at("batch_ids"), t.at("batch_mask"), t.at("batch_logits")};
}

at::Tensor full_logits(lmdecode::PretrainedModel& model, const at::Tensor& ids, const at::Tensor& mask) {
  auto cache = model.make_cache(ids.size(0), ids.size(1));
  lmdecode::ForwardBatch batch{ids, mask, lmdecode::detail::positions_from_mask(mask), true};
  return model.forward(batch, cache);
}

}  // namespace

TEST_CASE("the reference models match transformers' float64 logits", "[models]") {
  for (const auto& [name, tolerance] : {std::pair{std::string("gpt2-tiny"), 1e-10}, std::pair{std::string("qwen2-tiny"), 1e-5}}) {
    DYNAMIC_SECTION(name) {
      auto model = lmdecode::load_pretrained(lmdecode_test::reference_dir() / name, {at::kCPU, at::kDouble});
      auto ref = load_reference(name);
      auto ones = at::ones_like(ref.prompt);
      auto logits = full_logits(*model, ref.prompt, ones);
      REQUIRE(logit_error(logits, ref.logits, ones).max < tolerance);

      auto batch = full_logits(*model, ref.batch_ids, ref.batch_mask);
      REQUIRE(at::isfinite(batch).all().item<bool>());  // finite even in fully masked pad rows
      // transformers' own float64 Qwen2 rows with left padding are NaN (DECODING_RULES.md §6): compare the others.
      auto comparable = ref.batch_mask * at::isfinite(ref.batch_logits).all(-1).all(-1, true);
      REQUIRE(comparable.sum().item<int64_t>() >= ref.prompt.size(1));
      REQUIRE(logit_error(batch, ref.batch_logits, comparable).max < tolerance);
    }
  }
}

TEST_CASE("feeding a prompt in pieces through the cache gives the logits of one full forward", "[models]") {
  // GPT-2 in float64 agrees to rounding. Qwen2's float32 islands (RMSNorm, softmax) round float64
  // values that differ in their last bits (other matmul shapes) to neighbouring float32 values, so
  // pieces and whole agree only to float32 precision there.
  for (const auto& [name, tolerance] : {std::pair{std::string("gpt2-tiny"), 1e-12}, std::pair{std::string("qwen2-tiny"), 1e-5}}) {
    DYNAMIC_SECTION(name) {
      auto model = lmdecode::load_pretrained(lmdecode_test::reference_dir() / name, {at::kCPU, at::kDouble});
      auto ref = load_reference(name);
      const auto& ids = ref.batch_ids;
      const auto& mask = ref.batch_mask;
      auto positions = lmdecode::detail::positions_from_mask(mask);
      auto whole = full_logits(*model, ids, mask);
      auto cache = model->make_cache(ids.size(0), 4);  // small on purpose: the cache must grow
      int64_t start = 0;
      for (int64_t piece : {5, 1, 7, 4}) {
        lmdecode::ForwardBatch batch{ids.narrow(1, start, piece), mask.narrow(1, 0, start + piece),
                                     positions.narrow(1, start, piece), true};
        auto logits = model->forward(batch, cache);
        REQUIRE(logit_error(logits, whole.narrow(1, start, piece), mask.narrow(1, start, piece)).max < tolerance);
        start += piece;
      }
      REQUIRE(start == ids.size(1));
      REQUIRE(cache.length() == ids.size(1));
    }
  }
}

TEST_CASE("a long prefill runs in blocks that keep its attention scores bounded, with the logits of one block", "[models]") {
  for (const auto& [name, tolerance] : {std::pair{std::string("gpt2-tiny"), 1e-12}, std::pair{std::string("qwen2-tiny"), 1e-5}}) {
    DYNAMIC_SECTION(name) {
      auto model = lmdecode::load_pretrained(lmdecode_test::reference_dir() / name, {at::kCPU, at::kDouble});
      const auto ids = at::arange(200, at::kLong).remainder(300).view({1, 200}).repeat({2, 1});
      auto mask = at::ones_like(ids);
      mask.narrow(1, 0, 3).select(0, 1).zero_();  // the second row left padded
      const auto whole = full_logits(*model, ids, mask);
      // 2 rows x 4 heads x 200 keys x 4 bytes a position: 1 MiB of scores takes about 160 positions a block, 20 KiB 3.
      for (int64_t budget : {int64_t{1} << 20, int64_t{20} << 10}) {
        model->set_attention_score_bytes(budget);
        auto cache = model->make_cache(2, 8);
        lmdecode::ForwardBatch batch{ids, mask, lmdecode::detail::positions_from_mask(mask), true};
        const auto blocked = model->forward(batch, cache);
        CHECK(cache.length() == 200);
        CHECK(logit_error(blocked, whole, mask).max < tolerance);
        batch.all_logits = false;
        auto last_cache = model->make_cache(2, 8);
        CHECK(logit_error(model->forward(batch, last_cache).unsqueeze(1), whole.narrow(1, 199, 1), mask.narrow(1, 199, 1)).max < tolerance);
      }
    }
  }
}

TEST_CASE("a long prefill's attention runs in chunks of positions, each against the keys up to its last", "[models]") {
  namespace d = lmdecode::detail;
  const int64_t rows = 2, kv_heads = 2, group = 3, fed = 40, head_dim = 8, padding = 5;
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    for (const int64_t cached : {0, 7}) {
      const int64_t keys = cached + fed;
      const auto opts = at::TensorOptions().dtype(dtype);
      const auto q = at::randn({rows, kv_heads, group * fed, head_dim}, opts);
      const lmdecode::LayerKV kv{at::randn({rows, kv_heads, keys, head_dim}, opts), at::randn({rows, kv_heads, keys, head_dim}, opts)};
      auto mask = at::ones({rows, keys}, at::kLong);
      mask[1].narrow(0, 0, padding).zero_();  // row 1 left padded: with nothing cached its first queries see no key
      const auto blocked = d::attention_blocked(mask, cached, fed).repeat({1, 1, group, 1});
      const d::ScoreScale scale{0.3, {}};
      const auto whole = d::cached_attention(q, kv, blocked, scale, dtype, group, d::MaskShape::any, int64_t{1} << 40);
      // Queries with a key to look at; the others (pad queries) spread their weights over other keys.
      const auto sees = blocked.logical_not().any(-1, true).expand_as(whole);
      for (const int64_t chunk_bytes : {int64_t{1}, int64_t{3000}, int64_t{20000}}) {
        const auto chunked = d::cached_attention(q, kv, blocked, scale, dtype, group, d::MaskShape::any, chunk_bytes);
        CAPTURE(c10::toString(dtype), cached, chunk_bytes);
        REQUIRE(chunked.sizes() == whole.sizes());
        const double error = (chunked - whole).masked_select(sees).abs().max().item<double>();
        CHECK(error < (dtype == at::kDouble ? 1e-12 : 1e-5));
      }
    }
  }
}

TEST_CASE("a long causal prefill's attention in tiles equals the eager attention", "[models]") {
  namespace d = lmdecode::detail;
  at::manual_seed(43);
  const int64_t rows = 2, kv_heads = 2, capacity = 400;
  for (const int64_t head_dim : {8, 24, 32, 48, 64}) {  // 48: one pair of 16 lanes and one more
    for (const int64_t group : {1, 3, 7}) {
      for (const int64_t cached : {0, 70}) {
        for (const int64_t fed : {2, 67, 150}) {
          for (const double scale : {0.3, 3.0}) {  // 3.0: peaked weights, whose maximum moves from block to block
            const int64_t keys = cached + fed;
            const auto q = at::randn({rows, kv_heads, group * fed, head_dim});
            // Keys and values as a cache stores them: a view of the first positions of a larger buffer.
            const auto buffer = at::randn({2, rows, kv_heads, capacity, head_dim});
            const lmdecode::LayerKV kv{buffer[0].narrow(2, 0, keys), buffer[1].narrow(2, 0, keys)};
            if (!d::tiled_causal_attention_applies(q, kv.keys, kv.values, group)) return;  // no AVX2 here: nothing to compare
            const auto blocked = d::attention_blocked(at::ones({rows, keys}, at::kLong), cached, fed).repeat({1, 1, group, 1});
            auto attention = [&](const at::Tensor& queries, const lmdecode::LayerKV& layer) {
              return d::cached_attention(queries, layer, blocked, {scale, {}}, at::kFloat, group, d::MaskShape::any, int64_t{1} << 40);
            };
            const auto exact = attention(q.to(at::kDouble), {kv.keys.to(at::kDouble), kv.values.to(at::kDouble)});
            const auto eager = attention(q, kv);
            const auto tiled = d::tiled_causal_attention(q, kv.keys, kv.values, scale, group);
            // In 8 lanes also where the CPU has 16 (AVX-512F: there `tiled` took 16 where head_dim allows).
            const auto tiled8 = d::tiled_causal_attention(q, kv.keys, kv.values, scale, group, false);
            // Through the dispatch: scores over the chunk bytes, a causal-only mask.
            const auto dispatched = d::cached_attention(q, kv, blocked, {scale, {}}, at::kFloat, group, d::MaskShape::causal_only, 1);
            CAPTURE(head_dim, group, cached, fed, scale);
            REQUIRE(tiled.sizes() == eager.sizes());
            // Float32 rounds a score of size s by about s * 1e-7, which moves its weight by that much
            // relative: the bound grows with the largest score. Both float32 paths stay within it
            // (the tiles sum in another order: up to a few times the eager error, 4e-5 at most here).
            const double largest_score = at::matmul(q.view({rows, kv_heads, group, fed, head_dim}), kv.keys.unsqueeze(2).transpose(3, 4))
                                             .abs().max().item<double>() * scale;
            const double bound = 2e-6 * (1 + largest_score);
            const double eager_error = (eager - exact).abs().max().item<double>();
            const double tiled_error = (tiled - exact).abs().max().item<double>();
            const double tiled8_error = (tiled8 - exact).abs().max().item<double>();
            CAPTURE(largest_score, eager_error, tiled_error, tiled8_error, d::cpu_has_avx512f());
            CHECK(eager_error < bound);
            CHECK(tiled_error < bound);
            CHECK(tiled8_error < bound);
            CHECK(at::equal(dispatched, tiled));
          }
        }
      }
    }
  }
}

TEST_CASE("the reference models run in float32, bfloat16 and float16, also on a left-padded batch", "[models]") {
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const std::string name : {"gpt2-tiny", "qwen2-tiny"}) {
#if TORCH_VERSION_MAJOR < 2
      if (dtype == at::kHalf) {
        REQUIRE_THROWS_WITH(lmdecode::load_pretrained(lmdecode_test::reference_dir() / name, {at::kCPU, dtype}),
                            Contains("float16 models need CUDA"));
        continue;
      }
#endif
      auto model = lmdecode::load_pretrained(lmdecode_test::reference_dir() / name, {at::kCPU, dtype});
      const auto ref = load_reference(name);
      auto logits = full_logits(*model, ref.prompt, at::ones_like(ref.prompt));
      REQUIRE(logits.scalar_type() == dtype);
      // The padded batch exercises the half-precision mask values (qwen2's padded f64 rows are NaN).
      auto batch = full_logits(*model, ref.batch_ids, ref.batch_mask);
      const auto prompt_error = logit_error(logits, ref.logits, at::ones_like(ref.prompt));
      const auto batch_error = logit_error(batch, ref.batch_logits, ref.batch_mask);
      INFO(name << " " << c10::toString(dtype) << ": prompt max " << prompt_error.max << " mean " << prompt_error.mean
                << ", padded batch max " << batch_error.max << " mean " << batch_error.mean << " over "
                << batch_error.count << " logits");
      REQUIRE(batch_error.count >= 320 * 8);
      for (const auto& e : {prompt_error, batch_error}) {
        if (dtype == at::kFloat) {
          CHECK(e.max < 1e-4);
        } else {  // half precision keeps about 3 significant digits of logits of size 1 to 10
          CHECK(e.max < kHalfMaxLogitError);
          CHECK(e.mean < kHalfMeanLogitError);
        }
      }
    }
  }
}

TEST_CASE("every linear-layer path (mv, the few-rows kernel, the GEMM) gives the float64 product", "[models]") {
  // Sizes with a tail after the kernel's 8-wide steps; rows 1 (mv, or the kernel where it outruns sgemv),
  // 2-8 (the kernel, one pass), 9 and 16 (two passes over tiles of 9 features at 896 inputs; with
  // AVX-512 float32 and bfloat16, 2 and 3 passes 4 features at a time, as 2 to 8 rows are at 4864
  // inputs, which outgrow L1), 17 and 32 (with AVX-512 the kernel, 3 and 6 passes; else the GEMM),
  // 33 (GEMM; for bfloat16 and Q8_0 weights, the GEMM of widened slices). bfloat16 and Q8_0 weights:
  // the product of the exactly widened weights (Q8_0 needs inputs in blocks of 32).
  using lmdecode::WeightFormat;
  for (const auto format : {WeightFormat::model_dtype, WeightFormat::bfloat16, WeightFormat::q8_0})
  for (const int64_t in : {8, 37, 896, 4864}) {
    if (format == WeightFormat::q8_0 && in % lmdecode::detail::kQ8BlockSize != 0) continue;
    for (const int64_t rows : {1, 2, 3, 5, 8, 9, 16, 17, 32, 33}) {
      for (const bool with_bias : {false, true}) {
        const auto weight = lmdecode::detail::make_linear_weight(at::randn({19, in}), format, "w");
        auto x = at::randn({rows, in});
        auto bias = with_bias ? at::randn({19}) : at::Tensor();
        auto y = lmdecode::detail::project(x, weight, bias);
        auto expected = at::mm(x.to(at::kDouble), weight.widened(0, 19, at::kDouble).t());
        if (with_bias) expected += bias.to(at::kDouble);
        INFO("in " << in << " rows " << rows << (with_bias ? " with bias" : "") << " weights "
                   << lmdecode::weight_format_name(format));
        REQUIRE(y.scalar_type() == at::kFloat);
        REQUIRE(y.sizes() == expected.sizes());
        CHECK((y.to(at::kDouble) - expected).abs().max().item<double>() < 1e-4 * std::sqrt(double(in)));
        // The kernel takes 1 to 16 float32 rows where the CPU has AVX2 and FMA (32 with AVX-512F), and nothing else.
        const bool kernel_applies = rows <= lmdecode::detail::few_rows_max();
        const lmdecode::detail::LinearWeight in_double{weight.widened(0, 19, at::kDouble), {}};
        CHECK(lmdecode::detail::few_rows_product(x.to(at::kDouble), in_double, {}).defined() == false);
#ifdef LMDECODE_X86_KERNELS
        if (lmdecode::detail::cpu_has_avx2_fma())
          CHECK(lmdecode::detail::few_rows_product(x, weight, bias).defined() == kernel_applies);
#endif
      }
    }
  }
}

#ifdef LMDECODE_X86_KERNELS
TEST_CASE("the few-rows kernel's loops in 8 lanes (AVX2) and in 16 (AVX-512) give the float64 product", "[models]") {
  // few_rows_product takes one of them by the CPU; here each runs where the CPU has it, on sizes
  // with tails after every chain round and block (Q8_0: 3 blocks leave one after a pair), and 4864
  // inputs, where 2 to 4 rows outgrow L1 (few_rows_product then takes the wide loops).
  using lmdecode::WeightFormat;
  using namespace lmdecode::detail;
  if (!cpu_has_avx2_fma()) return;
  for (const bool lanes16 : {false, true}) {
    if (lanes16 && !cpu_has_avx512f()) continue;
    for (const auto format : {WeightFormat::model_dtype, WeightFormat::bfloat16, WeightFormat::q8_0})
    for (const int64_t in : {8, 37, 96, 896, 4864}) {
      if (format == WeightFormat::q8_0 && in % kQ8BlockSize != 0) continue;
      const auto weight = make_linear_weight(at::randn({6, in}), format, "w");
      const auto bias = at::randn({6});
      // 16 lanes also wide: 2 or 4 weight rows at a time (Q8_0: 2), up to kWidePass rows.
      const int64_t wide_pass = format == WeightFormat::q8_0 ? kWidePass<Q8Rows> : kWidePass<const float*>;
      for (const int features : {1, 2, 4}) {
      if ((features > 1 && !lanes16) || (features == 4 && format == WeightFormat::q8_0)) continue;
      for (int64_t rows = 1; rows <= (features > 1 ? wide_pass : kFewRowsPass); ++rows) {
        const auto x = at::randn({rows, in});
        auto y = at::zeros({rows, 6});
        const float* x_data = x.data_ptr<float>();
        // Features 1 to 5 only (the range's ends are kept; an odd count, for loops that take two or
        // four weight rows at a time).
        if (format == WeightFormat::q8_0)
          few_rows_dots_for<Q8Rows>(rows, lanes16, features)(x_data, Q8Rows{weight.matrix.data_ptr<int8_t>(), weight.block_scales.data_ptr<float>()},
                                                   bias.data_ptr<float>(), y.data_ptr<float>(), in, 6, 1, 6);
        else if (format == WeightFormat::bfloat16)
          few_rows_dots_for<const Bfloat16Bits*>(rows, lanes16, features)(
              x_data, reinterpret_cast<const Bfloat16Bits*>(weight.matrix.data_ptr<at::BFloat16>()), bias.data_ptr<float>(),
              y.data_ptr<float>(), in, 6, 1, 6);
        else
          few_rows_dots_for<const float*>(rows, lanes16, features)(
              x_data, static_cast<const float*>(weight.matrix.data_ptr<float>()), bias.data_ptr<float>(), y.data_ptr<float>(), in,
              6, 1, 6);
        auto expected = at::mm(x.to(at::kDouble), weight.widened(0, 6, at::kDouble).t()) + bias.to(at::kDouble);
        INFO((lanes16 ? "16" : "8") << " lanes, " << features << " weight rows at a time, in " << in << " rows "
                                    << rows << " weights " << lmdecode::weight_format_name(format));
        CHECK((y.narrow(1, 1, 5).to(at::kDouble) - expected.narrow(1, 1, 5)).abs().max().item<double>() < 1e-4 * std::sqrt(double(in)));
        CHECK(y.select(1, 0).abs().max().item<float>() == 0);
      }
      }
    }
  }
}
#endif

TEST_CASE("Q8_0 quantizes as llama.cpp does: a float16 scale of max|w| / 127 a block, quants rounded half away from zero", "[models]") {
  // Block 0: scale 2^-7 (exact in float16), values halfway between two quants. Block 1: max 1, so
  // d = 1/127, which float16 rounds (the quants use the unrounded d, as llama.cpp does).
  const float step = 0.0078125f;
  auto blocks = at::zeros({1, 64});
  blocks[0][0] = -127 * step;
  blocks[0][1] = 0.5 * step;   // rounds away from zero to 1 (to even: 0)
  blocks[0][2] = 2.5 * step;   // 3 (to even: 2)
  blocks[0][3] = -0.5 * step;  // -1
  blocks[0][32] = 1.0;
  blocks[0][33] = 0.5;
  const auto q = lmdecode::detail::quantize_q8_0(blocks, "blocks");
  CHECK(q.block_scales[0][0].item<float>() == step);
  const float d = 1.0f / 127.0f;
  CHECK(q.block_scales[0][1].item<float>() == at::scalar_tensor(d).to(at::kHalf).to(at::kFloat).item<float>());
  CHECK(q.block_scales[0][1].item<float>() != d);
  CHECK(q.matrix[0][0].item<int8_t>() == -127);
  CHECK(q.matrix[0][1].item<int8_t>() == 1);
  CHECK(q.matrix[0][2].item<int8_t>() == 3);
  CHECK(q.matrix[0][3].item<int8_t>() == -1);
  CHECK(q.matrix[0][4].item<int8_t>() == 0);
  CHECK(q.matrix[0][32].item<int8_t>() == 127);
  CHECK(q.matrix[0][33].item<int8_t>() == static_cast<int8_t>(std::round(0.5f * (1.0f / d))));
  CHECK(q.bytes() == 64 + 2 * 4);
  // A block of zeros has scale 0 and quants 0; inputs not in blocks of 32 are refused by name.
  const auto zeros = lmdecode::detail::quantize_q8_0(at::zeros({2, 64}), "zeros");
  CHECK(zeros.block_scales.abs().sum().item<float>() == 0);
  CHECK(zeros.matrix.abs().sum().item<int64_t>() == 0);
  REQUIRE_THROWS_WITH(lmdecode::detail::quantize_q8_0(at::zeros({2, 40}), "model.layers.0.mlp.down_proj.weight"),
                      Catch::Contains("multiples of 32: model.layers.0.mlp.down_proj.weight has 40"));
}

TEST_CASE("bfloat16 weights of a float32 model: half the bytes a step, float32's tokens in every strategy", "[models]") {
  // A bfloat16-stored checkpoint widened at load and the same kept in bfloat16 compute the same
  // float32 arithmetic on the same values (cases-bf16.json holds transformers' greedy and beam runs
  // of these checkpoints, which both pass through lmdecode-conformance): sampled and speculative
  // tokens agree as well.
  const auto folder = lmdecode_test::reference_dir() / "bf16" / "qwen2-tiny";
  auto widened = lmdecode::load_pretrained(folder, {at::kCPU, at::kFloat});
  auto narrow = lmdecode::load_pretrained(folder, {at::kCPU, at::kFloat, lmdecode::WeightFormat::bfloat16});
  REQUIRE(narrow->dtype() == at::kFloat);
  const double ratio = static_cast<double>(narrow->weight_bytes_per_step()) / static_cast<double>(widened->weight_bytes_per_step());
  CHECK(ratio > 0.5);  // norms and biases stay in float32
  CHECK(ratio < 0.52);
  auto config = lmdecode::load_checkpoint_generation_config(folder, widened->config());
  config.max_new_tokens = 24;
  const std::vector<lmdecode::TokenIds> prompts = {{17, 240, 5, 99, 17, 240, 5}, {120, 4, 120}};  // n-grams to look up
  auto same_tokens = [&](const lmdecode::GenerationConfig& c) {
    auto a = lmdecode::generate(*widened, prompts, c), b = lmdecode::generate(*narrow, prompts, c);
    CHECK(at::equal(a.sequences, b.sequences));
  };
  auto sampling = config;
  sampling.do_sample = true;
  sampling.seed = 11;
  sampling.num_return_sequences = 3;
  same_tokens(sampling);
  auto lookup = config;
  lookup.prompt_lookup_num_tokens = 4;
  same_tokens(lookup);

  REQUIRE_THROWS_WITH(lmdecode::load_pretrained(folder, {at::kCPU, at::kDouble, lmdecode::WeightFormat::bfloat16}),
                      Catch::Contains("bf16 weights are for a float32 model on the CPU (got Double on cpu)"));
}

TEST_CASE("Q8_0 weights of a float32 model: 1.125 bytes a weight, logits near float32's, every strategy runs", "[models]") {
  const auto folder = lmdecode_test::reference_dir() / "fortunes-llama";
  auto f32 = lmdecode::load_pretrained(folder);
  auto q8 = lmdecode::load_pretrained(folder, {at::kCPU, at::kFloat, lmdecode::WeightFormat::q8_0});
  CHECK(q8->weight_format() == lmdecode::WeightFormat::q8_0);
  const double ratio = static_cast<double>(q8->weight_bytes_per_step()) / static_cast<double>(f32->weight_bytes_per_step());
  CHECK(ratio > 1.125 / 4);  // norms stay in float32
  CHECK(ratio < 1.15 / 4);
  // Each weight is off by at most half its block's step (max|w| / 254): the logits of a prompt move
  // by a small fraction of their spread, fed one position at a time (the kernel) and all at once
  // (the GEMM of widened slices).
  const auto ids = at::tensor({318, 3424, 289, 259, 2101, 681, 300}, at::kLong).unsqueeze(0);
  for (const bool all_at_once : {true, false}) {
    auto run = [&](lmdecode::PretrainedModel& model) {
      auto cache = model.make_cache(1, ids.size(1));
      std::vector<at::Tensor> logits;
      const int64_t chunk = all_at_once ? ids.size(1) : 1;
      for (int64_t from = 0; from < ids.size(1); from += chunk) {
        auto mask = at::ones({1, from + chunk}, at::kLong);
        logits.push_back(model.forward({ids.narrow(1, from, chunk), mask, at::arange(from, from + chunk, at::kLong).unsqueeze(0), true}, cache));
      }
      return at::cat(logits, 1);
    };
    auto exact = run(*f32), quantized = run(*q8);
    INFO((all_at_once ? "prefill" : "one position a step"));
    const double spread = exact.std().item<double>(), error = (quantized - exact).abs().max().item<double>();
    CHECK(error > 0);
    CHECK(error < 0.05 * spread);
  }
  auto config = lmdecode::load_checkpoint_generation_config(folder, f32->config());
  config.max_new_tokens = 8;
  const std::vector<lmdecode::TokenIds> prompts = {{318, 3424, 289, 259}, {49, 26, 1353}};
  for (const int64_t beams : {1, 3}) {
    config.num_beams = beams;
    CHECK(lmdecode::generate(*q8, prompts, config).sequences.size(0) == 2);
  }
  config.num_beams = 1;
  config.do_sample = true;
  config.seed = 3;
  CHECK(lmdecode::generate(*q8, prompts, config).sequences.size(0) == 2);
  REQUIRE_THROWS_WITH(lmdecode::load_pretrained(folder, {at::kCPU, at::kBFloat16, lmdecode::WeightFormat::q8_0}),
                      Catch::Contains("q8_0 weights are for a float32 model on the CPU (got BFloat16 on cpu)"));
}

TEST_CASE("a bfloat16 model decodes float32's greedy tokens wherever float32's decision gap exceeds the rounding", "[models]") {
  // Where float32's top two logits differ by more than twice the largest bfloat16 logit error the
  // test above allows, bfloat16 cannot choose another token; from the first step where they do not,
  // it may (and the rows may part).
  int64_t total = 0;
  for (const std::string name : {"gpt2-tiny", "qwen2-tiny"}) {
    const auto folder = lmdecode_test::reference_dir() / name;
    auto f32 = lmdecode::load_pretrained(folder, {at::kCPU, at::kFloat});
    auto bf16 = lmdecode::load_pretrained(folder, {at::kCPU, at::kBFloat16});
    auto config = lmdecode::load_checkpoint_generation_config(folder, f32->config());
    config.eos_token_ids.clear();  // every row runs all its steps
    const int64_t steps = 16;
    config.max_new_tokens = steps;
    const auto prompts = lmdecode_test::prompts_5_and_2();  // the second left padded
    auto ours32 = lmdecode::GreedyDecoder(*f32, config).generate(prompts);
    auto ours16 = lmdecode::GreedyDecoder(*bf16, config).generate(prompts);
    // Both models' logits at every position of float32's sequences.
    auto padded = lmdecode::detail::pad_prompts(prompts, config.resolved_pad_token_id(), at::kCPU);
    auto mask = at::cat({padded.attention_mask, at::ones({2, steps}, at::kLong)}, 1);
    auto l32 = full_logits(*f32, ours32.sequences, mask);
    const int64_t prompt_length = ours32.prompt_length;
    int64_t compared = 0;
    for (int64_t r = 0; r < 2; ++r) {
      const auto& tokens32 = ours32.hypotheses[r][0].tokens;
      const auto& tokens16 = ours16.hypotheses[r][0].tokens;
      REQUIRE(tokens32.size() == static_cast<size_t>(steps));
      REQUIRE(tokens16.size() == static_cast<size_t>(steps));
      for (int64_t j = 0; j < steps; ++j) {
        const auto position = prompt_length - 1 + j;
        auto top = std::get<0>(l32[r][position].topk(2));
        const double gap = (top[0] - top[1]).item<double>();
        if (gap <= 2 * kHalfMaxLogitError) break;
        INFO(name << " row " << r << " step " << j << ": float32 gap " << gap);
        REQUIRE(tokens16[j] == tokens32[j]);
        ++compared;
      }
    }
    INFO(name);
    CHECK(compared >= 1);
    total += compared;
  }
  CHECK(total >= 4);
}

TEST_CASE("bfloat16 attention over a long context is rounded once, as a float32 product is", "[models]") {
  // One query's near-uniform weights times 4096 values: libtorch 1.13's CPU bf16 matmul, without
  // AVX-512, came out 5% off here (benchmarks/HISTORY.md).
  const int64_t positions = 4096;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(7);
  auto scores = (at::randn({1, 2, 1, positions}, generator) * 0.1).to(at::kBFloat16);
  auto values = at::randn({1, 2, positions, 64}, generator).to(at::kBFloat16);
  auto blocked = at::zeros({1, 1, 1, positions}, at::kBool);
  // transformers: softmax in float32, weights rounded to bf16, then weights @ values.
  auto exact = at::matmul(scores.softmax(-1, at::kFloat).to(at::kBFloat16).to(at::kDouble), values.to(at::kDouble));
  auto attended = lmdecode::detail::masked_attention(scores.clone(), blocked, values, at::kFloat);
  REQUIRE(attended.scalar_type() == at::kBFloat16);
  const double largest = exact.abs().max().item<double>();
  // Rounded once, each result is within half a bf16 ulp of its exact value. The bound, 2^-8 of the
  // largest result, is between half an ulp and one ulp of it.
  CHECK((attended.to(at::kDouble) - exact).abs().max().item<double>() <= largest / 256);
}

TEST_CASE("load_pretrained names what is wrong with a checkpoint", "[models]") {
  const auto source = lmdecode_test::reference_dir() / "qwen2-tiny";
  auto weights = lmdecode::SafetensorsFile(source / "model.safetensors").load_all();
  SECTION("an unsupported architecture lists the supported ones") {
    auto dir = scratch_dir("arch");
    std::ofstream(dir / "config.json") << R"({"architectures": ["MambaForCausalLM"], "model_type": "mamba",
        "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 4})";
    REQUIRE_THROWS_WITH(lmdecode::load_pretrained(dir), Contains("MambaForCausalLM") && Contains("Qwen2ForCausalLM") &&
                                                             Contains("GPT2LMHeadModel"));
  }
  SECTION("a GPU that this process does not have is named") {
    const at::Device missing(at::kCUDA, 99);
    REQUIRE_THROWS_AS(lmdecode::load_pretrained(source, {missing, at::kFloat}), lmdecode::invalid_argument);
    REQUIRE_THROWS_WITH(lmdecode::load_pretrained(source, {missing, at::kFloat}), Contains("device cuda:99"));
    if (!at::hasCUDA())
      REQUIRE_THROWS_WITH(lmdecode::load_pretrained(source, {at::kCUDA, at::kFloat}), Contains("libtorch has no CUDA"));
  }
  SECTION("a prompt longer than GPT-2's positions, a token outside the vocabulary, a bad dtype") {
    auto gpt2 = lmdecode::load_pretrained(lmdecode_test::reference_dir() / "gpt2-tiny");
    lmdecode::GenerationConfig config;
    config.max_new_tokens = 2;
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(*gpt2, config).generate({lmdecode::TokenIds(300, 5)}),
                        Contains("past the model's 256 positions"));
    REQUIRE_THROWS_WITH(lmdecode::GreedyDecoder(*gpt2, config).generate({{5, 320}}), Contains("token 320 outside the vocabulary"));
    REQUIRE_THROWS_WITH(lmdecode::load_pretrained(lmdecode_test::reference_dir() / "gpt2-tiny", {at::kCPU, at::kInt}),
                        Contains("floating point"));
  }
  SECTION("a missing tensor is named") {
    auto dir = scratch_dir("missing");
    fs::copy_file(source / "config.json", dir / "config.json");
    weights.erase("model.layers.1.mlp.up_proj.weight");
    lmdecode_test::write_safetensors(dir / "model.safetensors", weights);
    REQUIRE_THROWS_WITH(lmdecode::load_pretrained(dir), Contains("model.layers.1.mlp.up_proj.weight"));
  }
  SECTION("a tensor whose shape does not match the config names both shapes") {
    auto dir = scratch_dir("shape");
    fs::copy_file(source / "config.json", dir / "config.json");
    weights["model.layers.0.self_attn.k_proj.weight"] = at::zeros({16, 64});
    lmdecode_test::write_safetensors(dir / "model.safetensors", weights);
    REQUIRE_THROWS_WITH(lmdecode::load_pretrained(dir), Contains("model.layers.0.self_attn.k_proj.weight") &&
                                                             Contains("[16, 64]") && Contains("[32, 64]"));
  }
  SECTION("a sharded checkpoint loads like the single file") {
    auto dir = scratch_dir("sharded");
    fs::copy_file(source / "config.json", dir / "config.json");
    std::map<std::string, at::Tensor> first, second;
    nlohmann::json index = {{"weight_map", nlohmann::json::object()}};
    int i = 0;
    for (const auto& [name, t] : weights) {
      const bool one = (i++ % 2) == 0;
      (one ? first : second)[name] = t;
      index["weight_map"][name] = one ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
    lmdecode_test::write_safetensors(dir / "model-00001-of-00002.safetensors", first);
    lmdecode_test::write_safetensors(dir / "model-00002-of-00002.safetensors", second);
    std::ofstream(dir / "model.safetensors.index.json") << index.dump();
    auto loaded = lmdecode::load_safetensors_checkpoint(dir);
    REQUIRE(loaded.size() == weights.size());
    for (const auto& [name, t] : weights) REQUIRE(at::equal(loaded.at(name), t));
    REQUIRE_NOTHROW(lmdecode::load_pretrained(dir));

    index["weight_map"]["lm_head.weight"] = "../model.safetensors";
    std::ofstream(dir / "model.safetensors.index.json") << index.dump();
    REQUIRE_THROWS_WITH(lmdecode::load_safetensors_checkpoint(dir), Contains("not a plain file name"));
  }
}

TEST_CASE("the safetensors reader loads every dtype onto the requested dtype", "[safetensors]") {
  auto dir = scratch_dir("dtypes");
  std::map<std::string, at::Tensor> tensors = {
      {"f64", at::arange(6, at::kDouble).view({2, 3})}, {"f32", at::arange(4, at::kFloat)},
      {"f16", at::arange(4, at::kHalf)},                {"bf16", at::arange(4, at::kBFloat16)},
      {"i64", at::arange(3, at::kLong)},                {"i32", at::arange(3, at::kInt)},
      {"i8", at::arange(3, at::kChar)},                 {"u8", at::arange(3, at::kByte)},
      {"bool", at::tensor({1, 0}).to(at::kBool)},              {"empty", at::zeros({0, 4})}};
  lmdecode_test::write_safetensors(dir / "all.safetensors", tensors);
  lmdecode::SafetensorsFile file(dir / "all.safetensors");
  for (const auto& [name, t] : tensors) REQUIRE(at::equal(file.load(name), t));
  auto as_double = file.load_all({at::kCPU, at::kDouble});
  REQUIRE(as_double.at("bf16").scalar_type() == at::kDouble);
  REQUIRE(as_double.at("i64").scalar_type() == at::kLong);  // integers keep their dtype
}

TEST_CASE("the safetensors reader rejects every malformed file with a clear error", "[safetensors]") {
  auto dir = scratch_dir("faults");
  const auto path = dir / "bad.safetensors";
  auto fails_with = [&](const std::string& expected) {
    REQUIRE_THROWS_AS(lmdecode::SafetensorsFile(path), lmdecode::file_error);
    REQUIRE_THROWS_WITH(lmdecode::SafetensorsFile(path), Contains(path.string()) && Contains(expected));
  };
  const std::string eight_bytes(8, '\0');
  SECTION("too short for the header length") {
    std::ofstream(path) << "abc";
    fails_with("too short");
  }
  SECTION("header length past the end of the file") {
    lmdecode_test::write_raw_safetensors(path, "{}", "", 4096);
    fails_with("larger than the file");
  }
  SECTION("header length over the limit") {
    lmdecode_test::write_raw_safetensors(path, "{}", "", uint64_t{1} << 40);
    fails_with("exceeds");
  }
  SECTION("header that is not JSON") {
    lmdecode_test::write_raw_safetensors(path, "{\"w\": [", eight_bytes);
    fails_with("not valid JSON");
  }
  SECTION("unknown dtype") {
    lmdecode_test::write_raw_safetensors(path, R"({"w": {"dtype": "F8_E9", "shape": [2], "data_offsets": [0, 2]}})", eight_bytes);
    fails_with("tensor \"w\": unknown dtype \"F8_E9\"");
  }
  SECTION("offsets past the data") {
    lmdecode_test::write_raw_safetensors(path, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", eight_bytes);
    fails_with("tensor \"w\": data_offsets end 16 is past the data section (8 bytes)");
  }
  SECTION("short data for the shape") {
    lmdecode_test::write_raw_safetensors(path, R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", eight_bytes);
    fails_with("tensor \"w\": shape [3] of F32 needs 12 bytes but data_offsets span 8");
  }
  SECTION("offsets running backwards") {
    lmdecode_test::write_raw_safetensors(path, R"({"w": {"dtype": "U8", "shape": [0], "data_offsets": [8, 0]}})", eight_bytes);
    fails_with("run backwards");
  }
  SECTION("a shape whose size overflows") {
    lmdecode_test::write_raw_safetensors(
        path, R"({"w": {"dtype": "F64", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})", eight_bytes);
    fails_with("tensor \"w\": shape overflows");
  }
  SECTION("a negative dimension") {
    lmdecode_test::write_raw_safetensors(path, R"({"w": {"dtype": "U8", "shape": [-8], "data_offsets": [0, 8]}})", eight_bytes);
    fails_with("tensor \"w\": shape holds -8");
  }
  SECTION("overlapping tensors") {
    lmdecode_test::write_raw_safetensors(path, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", eight_bytes);
    fails_with("overlap");
  }
  SECTION("missing fields") {
    lmdecode_test::write_raw_safetensors(path, R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", eight_bytes);
    fails_with("tensor \"w\": missing or non-string \"dtype\"");
  }
  SECTION("a tensor that is not in the file") {
    lmdecode_test::write_raw_safetensors(path, R"({"w": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}})", eight_bytes);
    REQUIRE_THROWS_WITH(lmdecode::SafetensorsFile(path).load("v"), Contains("no tensor named \"v\""));
  }
}
