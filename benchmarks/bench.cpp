// lmdecode-bench: speed and memory of the decoders against the bare model, on one model in one run.
//
//   lmdecode-bench [--preset tiny|small|qwen2.5-0.5b | --model DIR] [--device cpu|cuda]
//                  [--layers N --hidden N --heads N --kv-heads N --intermediate N --vocab N]
//                  [--dtype f32|bf16|f16|f64] [--weights f32|bf16|q8_0] [--repeats N] [--quick] [--json FILE]
//                  [--only NAME[,NAME...]] [--compare-hf PROMPT,NEW] [--threads N] [--prefill-budget N]
//                  [--engine-outputs A,B,C]
//
// Scenarios (each after a warm-up, `--repeats` times; median, min and max are printed):
//   bare_forward      one cached forward step of 1 token at context 256, batch 1 and 4, and the
//                     host's share of it: the time until forward() returns, before the device finishes
//   greedy            greedy with cache, batch 1 and 8: ms per step and overhead vs the bare step
//   beam              4 beams at context 256: ms per step, overhead vs the 4-row bare step, and the
//                     time of a cache reorder and of log-softmax + top-k at that shape
//   cache_vs_nocache  ms per new token with and without the cache at context 64, 256, 1024
//   shared_prompt     4 beams after a 2048-token prompt, 64 steps, with the shared-prompt and the
//                     expanded cache (the latter prefilled prompt x beams rows, as transformers does):
//                     prefill ms, KV bytes at the end, reorder bytes per step, ms per decode step
//   bandwidth         greedy decode steps at context 256, batch 1 and 4, for each weight format a
//                     float32 CPU model has (f32, bf16, q8_0; the model built again in each): the bytes of
//                     weights a step reads over its time, against a plain read of as many bytes as
//                     the model-dtype weights (the limit); steps timestamped by the step callback
//   peers             (only with --only peers) greedy batch 1, greedy batch 4 and 4 beams after prompts
//                     of 128 and 1024 tokens, 32 new tokens: the median decode step (timestamped by the
//                     step callback) and the whole generate() over the new tokens, for
//                     scripts/compare-peers.sh
//   prefill           (only with --only prefill) one forward of a 32-, a 128- and a 1024-token prompt,
//                     batch 1, the last position's logits: ms and tokens/s, for scripts/compare-peers.sh prefill
//   conversation      a later chat turn (16 new tokens after a history of 256 and 1024) with the
//                     Conversation's kept cache against generate() on the whole history: prefill ms
//   memory            KV bytes by formula and peak RSS growth of a 1024-token beam-4 run (CPU)
//   ops               ATen operator calls per step (what each step dispatches, and on CUDA launches)
//                     and device-to-host reads per step, for the bare step, greedy and beam-4, with
//                     the most frequent operators of a greedy step
//   speculative       (only with --only speculative) the verify step: one forward of 1 + k positions
//                     (k = 1..8 drafts) at context 256 against a 1-position step; then greedy with
//                     prompt lookup (10 drafts) on a request that repeats text it has seen (64 random
//                     tokens, the model's greedy continuation of them, the 64 again; 128 new tokens,
//                     min_new_tokens so EOS cannot end it) against plain greedy on it: tokens/s
//                     (the whole call, and after the first token), forwards per token, drafts
//                     accepted, and whether the tokens are the same
//   grammar           (only with --only grammar and --tokenizer FILE) greedy batch 1 and 4 beams, 48
//                     new tokens after a 128-token prompt, with and without a grammar over the
//                     tokenizer's vocabulary (a JSON Schema and a GBNF grammar): the mean decode
//                     step and the grammar's share of it (the run under a grammar may end sooner); and the allowed-token mask of a state not
//                     seen before (the JSON's start, and inside a string), each on a fresh TokenGrammar;
//                     --grammar-dir DIR writes the grammars' GBNF there
//   engine            (only with --only engine) continuous batching: 32 requests (16 with --quick) of
//                     mixed prompt (32, 64, 128 tokens) and output lengths (16, 24, 32 new tokens,
//                     greedy, min_new_tokens so EOS cannot end them) run one after another through
//                     generate(), then through one Engine by 1, 4 and 16 closed-loop clients (each
//                     submits its next request when its last one ended): aggregate new tokens/s,
//                     time to first token and time between tokens (p50, p99, from the step
//                     callback), and the speed-up over the one-after-another run; the engine's
//                     max_prefill_tokens_per_step is --prefill-budget (default: the engine's),
//                     --engine-outputs A,B,C the new tokens in place of 16, 24, 32; and an estimate
//                     of the least time the requests take at 16 rows a step (engine_least_time)
//   hf_compare        (only with --compare-hf) generate() wall time per new token for greedy batch
//                     1 and 8 and 4 beams, the way transformers is timed in scripts/gpu-check.sh,
//                     and the first prompt's tokens (in the JSON) to compare with transformers'.
//
// Decoder "ms per step" comes from two generate() runs that differ only in max_new_tokens (both
// with min_new_tokens = max_new_tokens so EOS cannot end them early): (T(long) - T(short)) / (long -
// short) removes the prefill. The overhead compares it with the same difference of a bare loop of
// model forwards over the same rows and contexts (no logits processing, selection or reorder).

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lmdecode/grammar/json_schema.hpp"
#include "lmdecode/lmdecode.hpp"
#include "lmdecode/op_counter.hpp"
#ifdef LMDECODE_BENCH_TOKENIZER
#include "lmdecode/text/tokenizer.hpp"
#endif

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string preset = "small";
  std::string model_dir;
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  lmdecode::WeightFormat weights = lmdecode::WeightFormat::model_dtype;
  int repeats = 5;
  bool quick = false;
  std::string json_path;
  std::set<std::string> only;
  int64_t hf_prompt = 0, hf_new = 0;
  std::map<std::string, int64_t> sizes;  // --layers, --hidden, ... override the preset's
  int threads = 0;                        // libtorch's intra-op threads; 0: libtorch's choice
  std::string tokenizer;                  // a tokenizer.json, for the grammar scenario
  std::string grammar_dir;                // where the grammar scenario writes its grammars' GBNF (for a peer)
  int64_t prefill_budget = lmdecode::EngineOptions{}.max_prefill_tokens_per_step;  // the engine scenario's
  std::vector<int64_t> engine_outputs = {16, 24, 32};  // the engine scenario's new tokens, in turn
};

/// Median, min and max of repeated timings, in milliseconds.
struct Stats {
  double median = 0, min = 0, max = 0;
};

Stats stats_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

void sync(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double ms_since(Clock::time_point start) { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); }

/// One generate() call's decode steps, each timestamped by the step callback (the first interval
/// starts after the prefill's token), and the whole call's time.
struct CallbackSteps {
  Stats step;
  double total_ms;
  double mean_step_ms;  // every step counts: the rare slow ones too
  size_t steps;         // decode steps timed (the first token's step not among them)
};

CallbackSteps callback_steps(lmdecode::PretrainedModel& model, const std::vector<lmdecode::TokenIds>& prompts,
                             const lmdecode::GenerationConfig& config) {
  std::vector<Clock::time_point> stamps;
  const auto start = Clock::now();
  lmdecode::generate(model, prompts, config, [&](lmdecode::StepEvent&) { stamps.push_back(Clock::now()); });
  const double total = ms_since(start);
  std::vector<double> steps;
  for (size_t i = 1; i < stamps.size(); ++i) steps.push_back(std::chrono::duration<double, std::milli>(stamps[i] - stamps[i - 1]).count());
  double sum = 0;
  for (double t : steps) sum += t;
  return {stats_of(steps), total, sum / static_cast<double>(steps.size()), steps.size()};
}

/// Runs `fn` once to warm up, then `repeats` times, each from an idle device; returns the times in ms
/// until the device has finished each run and, in `issued` if given, until `fn` returned on the host.
std::vector<double> time_runs(const Options& o, const std::function<void()>& fn, std::vector<double>* issued = nullptr) {
  fn();
  sync(o.device);
  std::vector<double> out;
  const int n = o.quick ? 1 : o.repeats;
  for (int i = 0; i < n; ++i) {
    auto start = Clock::now();
    fn();
    if (issued) issued->push_back(ms_since(start));
    sync(o.device);
    out.push_back(ms_since(start));
  }
  return out;
}

lmdecode::ModelConfig preset_config(const std::string& preset) {
  lmdecode::ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.model_type = "qwen2";
  c.family = lmdecode::ModelFamily::qwen2;
  c.qkv_bias = true;  // Qwen2's q/k/v biases
  c.rope_theta = 1000000.0;
  c.max_position_embeddings = 32768;
  if (preset == "tiny") {
    c.vocab_size = 1000, c.hidden_size = 64, c.num_layers = 2, c.num_heads = 4, c.num_kv_heads = 2, c.intermediate_size = 160;
  } else if (preset == "small") {
    c.vocab_size = 32000, c.hidden_size = 512, c.num_layers = 8, c.num_heads = 8, c.num_kv_heads = 2, c.intermediate_size = 1408;
  } else if (preset == "qwen2.5-0.5b") {
    c.vocab_size = 151936, c.hidden_size = 896, c.num_layers = 24, c.num_heads = 14, c.num_kv_heads = 2,
    c.intermediate_size = 4864, c.tie_word_embeddings = true;
  } else {
    throw lmdecode::invalid_argument(fmt::format("unknown preset \"{}\" (tiny, small, qwen2.5-0.5b)", preset));
  }
  c.head_dim = c.hidden_size / c.num_heads;
  c.eos_token_ids = {2};
  c.pad_token_id = 0;
  return c;
}

/// The preset with explicit sizes applied (and checked like a config.json).
lmdecode::ModelConfig sized_config(lmdecode::ModelConfig c, const std::map<std::string, int64_t>& sizes) {
  for (const auto& [key, value] : sizes) {
    lmdecode::detail::check(value >= 1, "--{} must be >= 1 (got {})", key, value);
    if (key == "layers") c.num_layers = value;
    if (key == "hidden") c.hidden_size = value;
    if (key == "heads") c.num_heads = value;
    if (key == "kv-heads") c.num_kv_heads = value;
    if (key == "intermediate") c.intermediate_size = value;
    if (key == "vocab") c.vocab_size = value;
  }
  lmdecode::detail::check(c.hidden_size % c.num_heads == 0 && c.num_heads % c.num_kv_heads == 0,
                          "--hidden must divide by --heads and --heads by --kv-heads");
  c.head_dim = c.hidden_size / c.num_heads;
  return c;
}

/// A Qwen2-style model with random weights (seed 0): normal(0, 0.02), norms at 1, q/k/v biases.
std::unique_ptr<lmdecode::PretrainedModel> random_model(const lmdecode::ModelConfig& c, const Options& o) {
  at::manual_seed(0);
  lmdecode::TensorMap w;
  auto opts = at::TensorOptions().dtype(o.dtype).device(o.device);
  auto normal = [&](std::vector<int64_t> shape) { return at::randn(shape, opts.dtype(at::kFloat)).mul_(0.02).to(o.dtype); };
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  w["model.embed_tokens.weight"] = normal({c.vocab_size, h});
  w["model.norm.weight"] = at::ones({h}, opts);
  if (!c.tie_word_embeddings) w["lm_head.weight"] = normal({c.vocab_size, h});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    w[p + "input_layernorm.weight"] = at::ones({h}, opts);
    w[p + "post_attention_layernorm.weight"] = at::ones({h}, opts);
    w[p + "self_attn.q_proj.weight"] = normal({q, h});
    w[p + "self_attn.q_proj.bias"] = normal({q});
    w[p + "self_attn.k_proj.weight"] = normal({kv, h});
    w[p + "self_attn.k_proj.bias"] = normal({kv});
    w[p + "self_attn.v_proj.weight"] = normal({kv, h});
    w[p + "self_attn.v_proj.bias"] = normal({kv});
    w[p + "self_attn.o_proj.weight"] = normal({h, q});
    w[p + "mlp.gate_proj.weight"] = normal({c.intermediate_size, h});
    w[p + "mlp.up_proj.weight"] = normal({c.intermediate_size, h});
    w[p + "mlp.down_proj.weight"] = normal({h, c.intermediate_size});
  }
  return std::make_unique<lmdecode::RotaryDecoderModel>(c, lmdecode::CheckpointWeights(std::move(w), "random " + o.preset),
                                                o.device, o.dtype, o.weights);
}

std::vector<lmdecode::TokenIds> prompts_of(int64_t batch, int64_t length, int64_t vocab) {
  std::vector<lmdecode::TokenIds> out(batch);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < length; ++i) out[b].push_back(3 + (b * 7919 + i * 104729) % (vocab - 3));
  return out;
}

/// The model the options name: a preset's random weights or a checkpoint, in o.dtype and o.weights.
std::unique_ptr<lmdecode::PretrainedModel> make_model(const Options& o) {
  return o.model_dir.empty() ? random_model(sized_config(preset_config(o.preset), o.sizes), o)
                             : lmdecode::load_pretrained(o.model_dir, {o.device, o.dtype, o.weights});
}

class Bench {
 public:
  Bench(lmdecode::PretrainedModel& model, Options o) : model_(model), o_(std::move(o)) {}

  json run_all() {
    // One object per scenario and shape, each with its "name".
    json scenarios = json::array();
    auto add = [&](const json& objects) {
      for (const auto& o : objects) scenarios.push_back(o);
    };
    auto wanted = [&](const char* name) { return o_.only.empty() || o_.only.count(name); };
    if (o_.hf_prompt > 0) {
      add(hf_compare());
      return scenarios;
    }
    if (wanted("bare_forward")) add(bare_forward_scenario());
    if (wanted("greedy")) add(greedy_scenario());
    if (wanted("beam")) add(json::array({beam_scenario()}));
    if (wanted("cache_vs_nocache")) add(cache_scenario());
    if (wanted("shared_prompt")) add(json::array({shared_prompt_scenario()}));
    if (wanted("bandwidth") && o_.device.is_cpu()) add(bandwidth_scenario());
    if (o_.only.count("peers")) add(peers_scenario());
    if (o_.only.count("speculative")) add(speculative_scenario());
    if (o_.only.count("prefill")) add(prefill_scenario());
    if (o_.only.count("grammar")) add(grammar_scenario());
    if (o_.only.count("engine")) add(engine_scenario());
    if (wanted("conversation")) add(conversation_scenario());
    if (wanted("memory") && o_.device.is_cpu()) add(json::array({memory_scenario()}));
    if (wanted("ops")) add(ops_scenario());
    return scenarios;
  }

 private:
  struct BareStep {
    Stats step;   // until the device has finished the step
    Stats issue;  // until forward() returns on the host, the device idle at the start
  };

  /// One cached forward of `fed` positions a row at `context` (with `fed` > 1 every position's
  /// logits, as speculative decoding's verify step), for `rows` rows. On a GPU, an `issue` time close
  /// to the `step` time means the host's dispatch of the step's kernels, not the GPU, bounds it; on
  /// the CPU the two are the same work.
  BareStep bare_step(int64_t rows, int64_t context, int64_t fed = 1) {
    auto ids = at::full({rows, context}, 5, at::TensorOptions().dtype(at::kLong).device(o_.device));
    auto mask = at::ones({rows, context + fed}, ids.options());
    auto cache = model_.make_cache(rows, context + fed);
    model_.forward({ids, mask.narrow(1, 0, context), lmdecode::detail::positions_from_mask(mask.narrow(1, 0, context))}, cache);
    auto next = ids.narrow(1, 0, fed);
    auto pos = at::arange(context, context + fed, ids.options()).expand({rows, fed});
    std::vector<double> issued;
    auto finished = time_runs(o_, [&] {
      model_.forward({next, mask, pos, fed > 1}, cache);
      cache.crop(context);
    }, &issued);
    return {stats_of(finished), stats_of(issued)};
  }

  lmdecode::GenerationConfig decode_config(int64_t new_tokens, int64_t beams, bool use_cache) const {
    lmdecode::GenerationConfig c;
    c.eos_token_ids = model_.config().eos_token_ids;
    c.pad_token_id = model_.config().pad_token_id;
    c.max_new_tokens = new_tokens;
    c.min_new_tokens = new_tokens;
    c.num_beams = beams;
    c.use_cache = use_cache;
    return c;
  }

  std::vector<double> generate_times(int64_t batch, int64_t prompt, int64_t new_tokens, int64_t beams, bool use_cache) {
    auto prompts = prompts_of(batch, prompt, model_.config().vocab_size);
    auto config = decode_config(new_tokens, beams, use_cache);
    return time_runs(o_, [&] { lmdecode::generate(model_, prompts, config); });
  }

  /// The model work of a decoding run without the decoder: prefill, then `steps` cached 1-token forwards.
  void bare_loop(int64_t rows, int64_t prompt, int64_t steps) {
    auto opts = at::TensorOptions().dtype(at::kLong).device(o_.device);
    auto ids = at::full({rows, prompt}, 5, opts);
    auto mask = at::ones({rows, prompt + steps}, opts);
    auto cache = model_.make_cache(rows, prompt + steps);
    auto logits = model_.forward({ids, mask.narrow(1, 0, prompt), at::arange(prompt, opts).expand({rows, prompt})}, cache);
    auto next = ids.narrow(1, 0, 1);
    for (int64_t s = 1; s < steps; ++s)
      logits = model_.forward({next, mask.narrow(1, 0, prompt + s), at::full({rows, 1}, prompt + s - 1, opts)}, cache);
    logits.sum().item<float>();  // wait for the device
  }

  struct Paired {
    Stats decoder, bare;
    double overhead;  // median over repeats of (decoder - bare) / bare
  };

  /// Per-step time of the decoder and of the bare model loop doing the same forwards, each from the
  /// difference of a long and a short run (which removes the prefill). The four runs of a repeat are
  /// interleaved so that drift on a shared machine hits both alike.
  Paired paired_steps(int64_t batch, int64_t prompt, int64_t beams, int64_t short_new, int64_t long_new) {
    auto prompts = prompts_of(batch, prompt, model_.config().vocab_size);
    auto config_short = decode_config(short_new, beams, true), config_long = decode_config(long_new, beams, true);
    auto decode = [&](const lmdecode::GenerationConfig& c) { lmdecode::generate(model_, prompts, c); };
    auto timed = [&](const std::function<void()>& fn) {
      auto start = Clock::now();
      fn();
      sync(o_.device);
      return ms_since(start);
    };
    decode(config_long);  // warm-up
    bare_loop(batch * beams, prompt, long_new);
    std::vector<double> dec, bare, overhead;
    const int n = o_.quick ? 1 : o_.repeats;
    const double extra = static_cast<double>(long_new - short_new);
    for (int i = 0; i < n; ++i) {
      const double d = (timed([&] { decode(config_long); }) - timed([&] { decode(config_short); })) / extra;
      const double b = (timed([&] { bare_loop(batch * beams, prompt, long_new); }) -
                        timed([&] { bare_loop(batch * beams, prompt, short_new); })) / extra;
      dec.push_back(d);
      bare.push_back(b);
      overhead.push_back((d - b) / b);
    }
    return {stats_of(dec), stats_of(bare), stats_of(overhead).median};
  }

  json figures(const Stats& s) const { return {{"ms_per_step", s.median}, {"ms_per_step_min", s.min}, {"ms_per_step_max", s.max}}; }

  json bare_forward_scenario() {
    json rows = json::array();
    for (int64_t batch : {1, 4}) {
      auto [s, issue] = bare_step(batch, 256);
      print_row("bare_forward", fmt::format("batch {} context 256", batch), s,
                fmt::format("host issues it in {:.3f} ms ({:.0f}% of the step)", issue.median, 100 * issue.median / s.median));
      json r = figures(s);
      r.update({{"name", "bare_forward"}, {"batch", batch}, {"context", 256}, {"host_issue_ms", issue.median},
                {"host_issue_share", issue.median / s.median}});
      rows.push_back(r);
    }
    return rows;
  }

  json greedy_scenario() {
    const int64_t prompt = 32, short_new = 8, long_new = o_.quick ? 16 : 72;
    json rows = json::array();
    for (int64_t batch : {1, 8}) {
      auto [step, bare, overhead] = paired_steps(batch, prompt, 1, short_new, long_new);
      print_row("greedy", fmt::format("batch {}", batch), step,
                fmt::format("{:.0f} tok/s, bare {:.3f} ms, overhead {:+.1f}%", 1000.0 * batch / step.median, bare.median, 100 * overhead));
      json r = figures(step);
      r.update({{"name", "greedy"}, {"batch", batch}, {"context", prompt}, {"new_tokens", long_new}, {"bare_ms_per_step", bare.median},
                {"tokens_per_s", 1000.0 * batch / step.median}, {"overhead_ratio", overhead}});
      rows.push_back(r);
    }
    return rows;
  }

  json beam_scenario() {
    const int64_t beams = 4, context = 256, short_new = 4, long_new = o_.quick ? 8 : 36;
    auto [step, bare, overhead] = paired_steps(1, context, beams, short_new, long_new);
    // The decoder's own work at this shape, timed alone.
    // The cache as the decoder holds it mid-run: the prompt once, then each beam's own 16 positions.
    auto cache = model_.make_cache(1, context);
    const auto floats = at::TensorOptions().dtype(model_.dtype()).device(o_.device);
    auto kv = at::randn({1, model_.config().num_kv_heads, context, model_.config().head_dim}, floats);
    for (int64_t l = 0; l < model_.config().num_layers; ++l) cache.append(l, kv, kv);
    cache.advance(context);
    cache.expand_rows(beams);
    auto own = at::randn({beams, model_.config().num_kv_heads, 16, model_.config().head_dim}, floats);
    for (int64_t l = 0; l < model_.config().num_layers; ++l) cache.append(l, own, own);
    cache.advance(16);
    auto parents = at::tensor(std::vector<int64_t>{0, 0, 1, 3}).to(o_.device);
    auto reorder = stats_of(time_runs(o_, [&] { cache.reorder(parents); }));
    auto logits = at::randn({beams, model_.config().vocab_size}, at::TensorOptions().device(o_.device));
    auto select = stats_of(time_runs(o_, [&] {
      auto lp = logits.log_softmax(-1).view({1, -1});
      lp.topk(3 * beams, 1);
    }));
    const double bookkeeping = std::max(0.0, step.median - bare.median - reorder.median - select.median);
    print_row("beam", fmt::format("4 beams context {}", context), step,
              fmt::format("bare {:.3f} ms, overhead {:+.1f}%: reorder {:.3f} ms, log-softmax+top-k {:.3f} ms, rest {:.3f} ms",
                          bare.median, 100 * overhead, reorder.median, select.median, bookkeeping));
    json r = figures(step);
    r.update({{"name", "beam"}, {"batch", 1}, {"beams", beams}, {"context", context}, {"new_tokens", long_new},
              {"bare_ms_per_step", bare.median}, {"overhead_ratio", overhead}, {"reorder_ms", reorder.median},
              {"logsoftmax_topk_ms", select.median}, {"bookkeeping_ms", bookkeeping},
              {"reorder_share", reorder.median / step.median}, {"logsoftmax_topk_share", select.median / step.median},
              {"bookkeeping_share", bookkeeping / step.median}});
    return r;
  }

  json cache_scenario() {
    json rows = json::array();
    std::vector<int64_t> contexts = o_.quick ? std::vector<int64_t>{64, 256} : std::vector<int64_t>{64, 256, 1024};
    double first_cache = 0, first_nocache = 0;
    for (int64_t context : contexts) {
      // Without the cache every step re-runs the whole context: few steps keep this scenario short.
      const int64_t short_new = 1, long_new = o_.quick ? 2 : 4;
      auto per_token = [&](bool use_cache) {
        auto a = generate_times(1, context, short_new, 1, use_cache);
        auto b = generate_times(1, context, long_new, 1, use_cache);
        return (stats_of(b).median - stats_of(a).median) / static_cast<double>(long_new - short_new);
      };
      const double with = per_token(true), without = per_token(false);
      if (first_cache == 0) first_cache = with, first_nocache = without;
      fmt::print("  {:<18} {:<26} cache {:9.3f} ms/token ({:.2f}x ctx {}), no cache {:9.3f} ms/token ({:.2f}x)\n",
                 "cache_vs_nocache", fmt::format("context {}", context), with, with / first_cache, contexts.front(),
                 without, without / first_nocache);
      rows.push_back({{"name", "cache_vs_nocache"}, {"batch", 1}, {"context", context}, {"ms_per_token_cache", with}, {"ms_per_token_nocache", without},
                      {"cache_growth_vs_first", with / first_cache}, {"nocache_growth_vs_first", without / first_nocache}});
    }
    return rows;
  }

  /// What one layout's run of the shared_prompt scenario measured.
  struct LayoutRun {
    double prefill_ms, step_ms;
    int64_t kv_bytes;
    double reorder_bytes_per_step;
  };

  /// Prefill of `prompt` tokens, then `steps` beam steps of the model alone: a forward of every
  /// beam, then a reorder (beam 1 takes beam 0's history, as beam search does). The shared layout
  /// prefills the prompt once and expands it; the expanded one prefills it once per beam.
  LayoutRun layout_run(lmdecode::CacheLayout layout, int64_t prompt, int64_t beams, int64_t steps) {
    const auto previous_layout = model_.cache_layout();
    model_.set_cache_layout(layout);
    const bool shared = layout == lmdecode::CacheLayout::shared_prompt;
    const auto opts = at::TensorOptions().dtype(at::kLong).device(o_.device);
    const int64_t prefill_rows = shared ? 1 : beams;
    auto mask = at::ones({beams, prompt + steps}, opts);
    auto start = Clock::now();
    auto cache = model_.make_cache(prefill_rows, prompt);
    auto ids = at::full({prefill_rows, prompt}, 5, opts);
    model_.forward({ids, mask.narrow(0, 0, prefill_rows).narrow(1, 0, prompt), at::arange(prompt, opts).expand({prefill_rows, prompt})}, cache);
    cache.expand_rows(beams / prefill_rows);
    sync(o_.device);
    LayoutRun run{ms_since(start), 0, 0, 0};
    auto next = at::full({beams, 1}, 7, opts);
    auto parents = at::arange(beams, opts);
    parents[1] = 0;
    start = Clock::now();
    for (int64_t s = 0; s < steps; ++s) {
      model_.forward({next, mask.narrow(1, 0, prompt + s + 1), at::full({beams, 1}, prompt + s, opts)}, cache);
      run.reorder_bytes_per_step += static_cast<double>(cache.reorder_bytes()) / static_cast<double>(steps);
      cache.reorder(parents);
    }
    sync(o_.device);
    run.step_ms = ms_since(start) / static_cast<double>(steps);
    run.kv_bytes = cache.bytes();
    model_.set_cache_layout(previous_layout);
    return run;
  }

  json shared_prompt_scenario() {
    const int64_t prompt = 2048, beams = 4, steps = 64;
    layout_run(lmdecode::CacheLayout::shared_prompt, prompt, beams, 2);  // warm-up
    std::vector<LayoutRun> shared, expanded;
    for (int i = 0; i < (o_.quick ? 1 : std::min(o_.repeats, 3)); ++i) {  // interleaved: drift hits both alike
      shared.push_back(layout_run(lmdecode::CacheLayout::shared_prompt, prompt, beams, steps));
      expanded.push_back(layout_run(lmdecode::CacheLayout::expanded, prompt, beams, steps));
    }
    auto median = [](const std::vector<LayoutRun>& runs, double LayoutRun::*field) {
      std::vector<double> v;
      for (const auto& r : runs) v.push_back(r.*field);
      return stats_of(v).median;
    };
    json r = {{"name", "shared_prompt"}, {"prompt", prompt}, {"beams", beams}, {"new_tokens", steps}};
    for (const auto& [suffix, runs] : {std::pair{"_shared", &shared}, std::pair{"_expanded", &expanded}}) {
      r[std::string("prefill_ms") + suffix] = median(*runs, &LayoutRun::prefill_ms);
      r[std::string("step_ms") + suffix] = median(*runs, &LayoutRun::step_ms);
      r[std::string("kv_bytes") + suffix] = runs->front().kv_bytes;
      r[std::string("reorder_bytes_per_step") + suffix] = runs->front().reorder_bytes_per_step;
    }
    for (const char* field : {"prefill_ms", "step_ms", "kv_bytes", "reorder_bytes_per_step"})
      r[std::string(field) + "_ratio"] = r[std::string(field) + "_shared"].get<double>() / r[std::string(field) + "_expanded"].get<double>();
    fmt::print("  {:<18} {:<26} shared / expanded: prefill {:.1f} / {:.1f} ms ({:.2f}x), step {:.2f} / {:.2f} ms ({:.2f}x), "
               "KV {:.1f} / {:.1f} MiB ({:.2f}x), reorder {:.2f} / {:.2f} MiB a step ({:.3f}x)\n",
               "shared_prompt", fmt::format("{} beams, prompt {}", beams, prompt), r["prefill_ms_shared"].get<double>(),
               r["prefill_ms_expanded"].get<double>(), r["prefill_ms_ratio"].get<double>(), r["step_ms_shared"].get<double>(),
               r["step_ms_expanded"].get<double>(), r["step_ms_ratio"].get<double>(), r["kv_bytes_shared"].get<double>() / 1048576.0,
               r["kv_bytes_expanded"].get<double>() / 1048576.0, r["kv_bytes_ratio"].get<double>(),
               r["reorder_bytes_per_step_shared"].get<double>() / 1048576.0,
               r["reorder_bytes_per_step_expanded"].get<double>() / 1048576.0, r["reorder_bytes_per_step_ratio"].get<double>());
    return r;
  }

  /// GB/s of a plain read (a sum) of a buffer of `bytes`, the best of a few: what a step that only
  /// streamed its weights once could reach.
  double stream_gbps(int64_t bytes) const {
    auto buffer = at::ones({bytes / 4}, at::TensorOptions().dtype(at::kFloat));
    double best = 1e30;
    for (int i = 0; i < 5; ++i) {
      auto start = Clock::now();
      buffer.sum().item<float>();
      best = std::min(best, ms_since(start));
    }
    return static_cast<double>(bytes) / best / 1e6;
  }

  json bandwidth_scenario() {
    const int64_t context = 256, new_tokens = o_.quick ? 8 : 24;
    std::vector<lmdecode::WeightFormat> formats = {lmdecode::WeightFormat::model_dtype};
    if (o_.dtype == at::kFloat) formats.insert(formats.end(), {lmdecode::WeightFormat::bfloat16, lmdecode::WeightFormat::q8_0});
    double limit = 0;
    json rows = json::array();
    for (const auto format : formats) {
      std::unique_ptr<lmdecode::PretrainedModel> made;
      if (format != o_.weights) {
        Options other = o_;
        other.weights = format;
        made = make_model(other);
      }
      auto& model = made ? *made : model_;
      const int64_t weight_bytes = model.weight_bytes_per_step();
      if (limit == 0) limit = stream_gbps(weight_bytes);  // the model-dtype weights' bytes, the most: no cache holds them
      for (int64_t batch : {1, 4}) {
        const auto prompts = prompts_of(batch, context, model.config().vocab_size);
        const auto config = decode_config(new_tokens, 1, true);
        lmdecode::generate(model, prompts, decode_config(2, 1, true));  // warm-up
        const Stats step = callback_steps(model, prompts, config).step;
        const double gbps = static_cast<double>(weight_bytes) / step.median / 1e6;
        const auto name = lmdecode::weight_format_name(format);
        print_row("bandwidth", fmt::format("{} weights batch {} ctx {}", name, batch, context), step,
                  fmt::format("weights {:.0f} MB a step: {:.1f} GB/s, a plain read {:.1f} GB/s ({:.2f}x)", weight_bytes / 1e6, gbps,
                              limit, gbps / limit));
        rows.push_back({{"name", "bandwidth"}, {"weights", name}, {"batch", batch}, {"context", context},
                        {"weight_bytes", weight_bytes}, {"step_ms", step.median}, {"weight_gbps", gbps}, {"stream_gbps", limit},
                        {"share_of_stream", gbps / limit}});
      }
    }
    return rows;
  }

  json peers_scenario() {
    const int64_t new_tokens = 32;
    lmdecode::generate(model_, prompts_of(4, 16, model_.config().vocab_size), decode_config(4, 1, true));  // warm-up
    json rows = json::array();
    for (int64_t prompt : {128, 1024}) {
      for (auto [batch, beams] : {std::pair<int64_t, int64_t>{1, 1}, {4, 1}, {1, 4}}) {
        const CallbackSteps run = callback_steps(model_, prompts_of(batch, prompt, model_.config().vocab_size),
                                                 decode_config(new_tokens, beams, true));
        const Stats& step = run.step;
        const double total = run.total_ms;
        print_row("peers", fmt::format("prompt {} batch {} beams {}", prompt, batch, beams), step,
                  fmt::format("generate {:.1f} ms/step", total / new_tokens));
        rows.push_back({{"name", "peers"}, {"prompt", prompt}, {"batch", batch}, {"beams", beams}, {"new_tokens", new_tokens},
                        {"decode_ms", step.median}, {"generate_ms_per_step", total / new_tokens}});
      }
    }
    return rows;
  }

  /// One row's prefill of a `prompt`-token prompt into a fresh cache.
  Stats prefill_stats(int64_t prompt) {
    const auto ids = at::tensor(prompts_of(1, prompt, model_.config().vocab_size).front(), at::kLong).to(o_.device).unsqueeze(0);
    const auto mask = at::ones_like(ids);
    return stats_of(time_runs(o_, [&] {
      auto cache = model_.make_cache(1, prompt);
      model_.forward({ids, mask, lmdecode::detail::positions_from_mask(mask)}, cache);
    }));
  }

  json prefill_scenario() {
    json rows = json::array();
    for (int64_t prompt : {32, 128, 1024}) {
      const Stats s = prefill_stats(prompt);
      print_row("prefill", fmt::format("prompt {}", prompt), s, fmt::format("{:.0f} tokens/s", 1000.0 * prompt / s.median));
      json r = figures(s);
      r.update({{"name", "prefill"}, {"prompt", prompt}, {"prefill_ms", s.median}});
      rows.push_back(r);
    }
    return rows;
  }

  /// One request of the engine scenario and what its step callback saw.
  struct TimedRequest {
    lmdecode::TokenIds prompt;
    lmdecode::GenerationConfig config;
    Clock::time_point submitted;
    std::vector<Clock::time_point> steps;  // each step callback
  };

  /// The engine scenario's prompt lengths, in turn.
  static constexpr std::array<int64_t, 3> kEnginePrompts = {32, 64, 128};
  /// The engine scenario's most requests at once (its Engine's max_running_requests and its most
  /// clients): the rows of its fullest step.
  static constexpr int64_t kEngineRows = 16;

  std::vector<TimedRequest> engine_requests() const {
    const int64_t count = o_.quick ? 16 : 32;
    std::vector<TimedRequest> out;
    for (int64_t i = 0; i < count; ++i) {
      const int64_t prompt = kEnginePrompts[i % 3], new_tokens = o_.engine_outputs[(i / 3) % 3];
      out.push_back({prompts_of(1, prompt, model_.config().vocab_size + i).front(), decode_config(new_tokens, 1, true), {}, {}});
      for (auto& t : out.back().prompt) t %= model_.config().vocab_size;
    }
    return out;
  }

  /// Tokens/s and the percentiles of time to first token and between tokens over `requests`, run in `wall_ms`.
  json engine_row(const std::string& how, int64_t clients, const std::vector<TimedRequest>& requests, double wall_ms,
                  double baseline_tokens_per_s) const {
    std::vector<double> first, between;
    int64_t tokens = 0;
    for (const auto& r : requests) {
      tokens += static_cast<int64_t>(r.steps.size());
      first.push_back(std::chrono::duration<double, std::milli>(r.steps.front() - r.submitted).count());
      for (size_t i = 1; i < r.steps.size(); ++i)
        between.push_back(std::chrono::duration<double, std::milli>(r.steps[i] - r.steps[i - 1]).count());
    }
    auto percentile = [](std::vector<double> v, double q) {
      std::sort(v.begin(), v.end());
      return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
    };
    const double per_s = 1000.0 * static_cast<double>(tokens) / wall_ms;
    json row = {{"name", "engine"}, {"how", how}, {"clients", clients}, {"requests", requests.size()}, {"new_tokens", tokens},
                {"wall_ms", wall_ms}, {"tokens_per_s", per_s}, {"ttft_p50_ms", percentile(first, 0.5)},
                {"ttft_p99_ms", percentile(first, 0.99)}, {"tbt_p50_ms", percentile(between, 0.5)},
                {"tbt_p99_ms", percentile(between, 0.99)}, {"vs_one_after_another", per_s / baseline_tokens_per_s}};
    fmt::print("  {:<18} {:<20} {:2} clients  {:7.1f} tokens/s ({:.2f}x)  first token p50 {:.0f} p99 {:.0f} ms  between tokens p50 {:.1f} p99 {:.1f} ms\n",
               "engine", how, clients, per_s, row["vs_one_after_another"].get<double>(), row["ttft_p50_ms"].get<double>(),
               row["ttft_p99_ms"].get<double>(), row["tbt_p50_ms"].get<double>(), row["tbt_p99_ms"].get<double>());
    std::fflush(stdout);
    return row;
  }

  /// One cached 1-token step of `segments` one-row caches at `context` through forward_segments.
  Stats segments_step(int64_t segments, int64_t context) {
    auto opts = at::TensorOptions().dtype(at::kLong).device(o_.device);
    auto ids = at::full({1, context}, 5, opts);
    auto mask = at::ones({1, context + 1}, opts);
    std::vector<lmdecode::KVCache> caches;
    for (int64_t s = 0; s < segments; ++s) {
      caches.push_back(model_.make_cache(1, context + 1));
      model_.forward({ids, mask.narrow(1, 0, context), lmdecode::detail::positions_from_mask(mask.narrow(1, 0, context))}, caches.back());
    }
    std::vector<lmdecode::ForwardSegment> batch;
    for (auto& c : caches) batch.push_back({{ids.narrow(1, 0, 1), mask, at::full({1, 1}, context, opts)}, &c});
    return stats_of(time_runs(o_, [&] {
      model_.forward_segments(batch);
      for (auto& c : caches) c.crop(context);
    }));
  }

  /// An estimate of the least time `requests` (after their run one after another) take at
  /// kEngineRows rows a step on this machine: every prompt position at the pace of one prefill as
  /// long as a step's prefill budget (a GEMM is faster a position the more positions it takes), plus
  /// every later token in full steps of `full_step_ms`. Past a few rows a step is bound by its arithmetic, not
  /// by the weight read (0.72 GFLOP a position on the 0.5B shape), so the 16-client run can come near
  /// this time, not far under it.
  json engine_least_time(const std::vector<TimedRequest>& requests, double full_step_ms, double baseline_tokens_per_s) {
    const int64_t chunk = std::clamp<int64_t>(o_.prefill_budget, 1, 1024);
    const double ms_per_position = prefill_stats(chunk).median / static_cast<double>(chunk);
    int64_t positions = 0, tokens = 0;
    for (const auto& r : requests) {
      positions += static_cast<int64_t>(r.prompt.size());
      tokens += static_cast<int64_t>(r.steps.size());  // as the one-after-another run gave them
    }
    const int64_t later_tokens = tokens - static_cast<int64_t>(requests.size());  // each first comes with its prefill
    const int64_t full_steps = (later_tokens + kEngineRows - 1) / kEngineRows;
    const double ms = static_cast<double>(positions) * ms_per_position + static_cast<double>(full_steps) * full_step_ms;
    const double per_s = 1000.0 * static_cast<double>(tokens) / ms;
    fmt::print("  {:<18} {:<20} {:2} clients  {:7.1f} tokens/s ({:.2f}x)  (estimate: {} prompt positions at {:.2f} ms, a {}-position "
               "prefill's pace, then {}-row steps)\n", "engine", "least time", kEngineRows, per_s, per_s / baseline_tokens_per_s,
               positions, ms_per_position, chunk, kEngineRows);
    return {{"name", "engine"}, {"how", "least time (estimate)"}, {"clients", kEngineRows}, {"requests", requests.size()},
            {"new_tokens", tokens}, {"wall_ms", ms}, {"tokens_per_s", per_s}, {"vs_one_after_another", per_s / baseline_tokens_per_s}};
  }

  json engine_scenario() {
    json rows = json::array();
    double full_step_ms = 0;
    for (int64_t n : {int64_t{1}, kEngineRows}) {
      const Stats one_batch = bare_step(n, 96).step, segments = segments_step(n, 96);
      print_row("engine step", fmt::format("{} rows, context 96", n), segments,
                fmt::format("(forward_segments of {} one-row caches; one {}-row batch: {:.3f} ms)", n, n, one_batch.median));
      rows.push_back({{"name", "engine_step"}, {"rows", n}, {"segments_ms", segments.median}, {"one_batch_ms", one_batch.median}});
      if (n == kEngineRows) full_step_ms = segments.median;
    }
    auto requests = engine_requests();
    auto stamp = [](TimedRequest& r) { return [&r](lmdecode::StepEvent&) { r.steps.push_back(Clock::now()); }; };
    lmdecode::generate(model_, {requests.front().prompt}, requests.front().config);  // warm-up
    auto start = Clock::now();
    for (auto& r : requests) {
      r.submitted = Clock::now();
      lmdecode::generate(model_, {r.prompt}, r.config, stamp(r));
    }
    const double alone_ms = ms_since(start);
    int64_t tokens = 0;
    for (const auto& r : requests) tokens += static_cast<int64_t>(r.steps.size());
    const double baseline = 1000.0 * static_cast<double>(tokens) / alone_ms;
    rows.push_back(engine_row("one after another", 1, requests, alone_ms, baseline));
    rows.push_back(engine_least_time(requests, full_step_ms, baseline));
    for (int64_t clients : {int64_t{1}, int64_t{4}, kEngineRows}) {
      for (auto& r : requests) r.steps.clear();
      lmdecode::Engine engine(model_, {.max_running_requests = kEngineRows, .max_prefill_tokens_per_step = o_.prefill_budget});
      std::atomic<size_t> next{0};
      std::vector<std::thread> threads;
      start = Clock::now();
      for (int64_t c = 0; c < clients; ++c)
        threads.emplace_back([&] {
          for (size_t i; (i = next++) < requests.size();) {
            auto& r = requests[i];
            r.submitted = Clock::now();
            engine.submit(r.prompt, r.config, stamp(r)).wait();
          }
        });
      for (auto& t : threads) t.join();
      rows.push_back(engine_row("engine", clients, requests, ms_since(start), baseline));
    }
    return rows;
  }

  /// The grammars of the grammar scenario, as GBNF: a JSON Schema's and a GBNF one of lines.
  static std::vector<std::pair<std::string, std::string>> bench_grammars() {
    return {{"json-schema", lmdecode::json_schema_to_gbnf(nlohmann::ordered_json::parse(R"({
                "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0,
                "maximum": 150}, "notes": {"type": "array", "items": {"type": "string"}}}, "required": ["name", "age", "notes"]})"))},
            {"gbnf", "root ::= (line \"\\n\")+\nline ::= [A-Z] [a-z ,]* [.!?] | \"- \" [^\\n]+\n"}};
  }

  json grammar_scenario() {
#ifndef LMDECODE_BENCH_TOKENIZER
    throw lmdecode::invalid_argument("--only grammar: this lmdecode-bench was built without lmdecode::tokenizer");
#else
    lmdecode::detail::check(!o_.tokenizer.empty(), "--only grammar needs --tokenizer FILE (the vocabulary's texts)");
    const auto tokenizer = lmdecode::Tokenizer::from_file(o_.tokenizer);
    std::vector<int64_t> special;
    for (const auto& added : tokenizer.added_tokens())
      if (added.special) special.push_back(added.id);
    const auto texts = tokenizer.token_texts();
    json rows = json::array();
    for (const auto& [name, gbnf] : bench_grammars()) {
      if (!o_.grammar_dir.empty()) std::ofstream(std::filesystem::path(o_.grammar_dir) / (name + ".gbnf")) << gbnf;
      const auto grammar = lmdecode::Grammar::from_gbnf(gbnf);
      // The mask of a state seen for the first time: at the start, and after a text that opens a string.
      for (const std::string& prefix : {std::string(), std::string(name == "gbnf" ? "Th" : "{\"name\": \"Jo")}) {
        std::vector<double> masks, builds;
        for (int i = 0; i < (o_.quick ? 1 : o_.repeats); ++i) {
          auto start = Clock::now();
          const lmdecode::TokenGrammar fresh(grammar, texts, special);
          builds.push_back(ms_since(start));
          const auto state = fresh.start().after_text(fresh.grammar(), prefix);
          start = Clock::now();
          fresh.allowed_tokens(state);
          masks.push_back(ms_since(start));
        }
        const Stats s = stats_of(masks), build = stats_of(builds);
        const double mask_ms = s.median;
        print_row("grammar", fmt::format("{} mask after \"{}\"", name, prefix), s,
                  fmt::format("is one mask of a state not seen before, not a step ({:.1f} ms to build the vocabulary's trie once)", build.median));
        rows.push_back({{"name", "grammar"}, {"grammar", name}, {"state_after", prefix}, {"new_state_mask_ms", mask_ms},
                        {"trie_build_ms", build.median}});
      }
      const auto token_grammar = std::make_shared<const lmdecode::TokenGrammar>(grammar, texts, special);
      for (const int64_t beams : {1, 4}) {
        auto config = decode_config(48, beams, true);
        config.min_new_tokens = 0;
        const auto prompts = prompts_of(1, 128, model_.config().vocab_size);
        const CallbackSteps plain = callback_steps(model_, prompts, config);
        config.grammar = token_grammar;
        const CallbackSteps constrained = callback_steps(model_, prompts, config);
        // The mean step, not the median: a step that meets a new state pays its mask.
        const double share = (constrained.mean_step_ms - plain.mean_step_ms) / plain.mean_step_ms;
        print_row("grammar", fmt::format("{} {}", name, beams == 1 ? "greedy" : "4 beams"), constrained.step,
                  fmt::format("mean {:.1f} ms over {} steps; without: mean {:.1f} ms over {}: {:+.1f}%", constrained.mean_step_ms,
                              constrained.steps, plain.mean_step_ms, plain.steps, 100 * share));
        json r = figures(constrained.step);
        r.update({{"name", "grammar"}, {"grammar", name}, {"beams", beams}, {"mean_step_ms", constrained.mean_step_ms},
                  {"steps", constrained.steps}, {"plain_mean_step_ms", plain.mean_step_ms}, {"grammar_share", share}});
        rows.push_back(r);
      }
    }
    return rows;
#endif
  }

  static int64_t read_status_kb(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::string(key).size()));
    return -1;
  }

  /// A later chat turn: the cache holds a history of H tokens (an earlier turn's), and the next turn
  /// adds 16; its reply's first token (max_new_tokens 1: the prefill alone) with the Conversation's
  /// cache, against generate() on the whole history.
  json conversation_scenario() {
    json rows = json::array();
    const int64_t added = 16;
    for (int64_t history : o_.quick ? std::vector<int64_t>{64, 256} : std::vector<int64_t>{256, 1024}) {
      auto config = decode_config(1, 1, true);
      const auto earlier = prompts_of(1, history, model_.config().vocab_size)[0];
      auto turn = earlier;
      turn.insert(turn.end(), added, 7);
      auto timed = [&](const std::function<void()>& fn) {
        auto start = Clock::now();
        fn();
        sync(o_.device);
        return ms_since(start);
      };
      std::vector<double> kept, fresh;
      int64_t fed = 0;
      for (int i = 0; i < (o_.quick ? 1 : o_.repeats) + 1; ++i) {  // the first is a warm-up
        lmdecode::Conversation<lmdecode::PretrainedModel> chat(model_);
        chat.reply(earlier, config);
        const double k = timed([&] { chat.reply(turn, config); });
        fed = chat.last_prefill_tokens();
        const double f = timed([&] { lmdecode::generate(model_, {turn}, config); });
        if (i == 0) continue;
        kept.push_back(k);
        fresh.push_back(f);
      }
      const auto k = stats_of(kept), f = stats_of(fresh);
      fmt::print("  {:<18} {:<26} {:9.3f} ms a turn (min {:.3f}, max {:.3f}), prefills {} tokens; generate() on the "
                 "whole history {:.3f} ms ({:.1f}x)\n", "conversation", fmt::format("history {} + {} tokens", history, added),
                 k.median, k.min, k.max, fed, f.median, f.median / k.median);
      std::fflush(stdout);
      rows.push_back({{"name", "conversation"}, {"history", history}, {"added_tokens", added}, {"prefill_tokens", fed},
                      {"turn_ms", k.median}, {"whole_history_ms", f.median}, {"speedup", f.median / k.median}});
    }
    return rows;
  }

  json memory_scenario() {
    const int64_t beams = 4, prompt = 16, new_tokens = o_.quick ? 128 : 1008;  // 1024 positions in all
    const auto& c = model_.config();
    const int64_t element = static_cast<int64_t>(c10::elementSize(model_.dtype()));
    // The shared-prompt cache: L x 2 x kv_heads x head_dim x bytes x (prompts x P + prompts x beams x G).
    const int64_t kv_bytes = c.num_layers * 2 * c.num_kv_heads * c.head_dim * element * (prompt + beams * new_tokens);
    generate_times(1, prompt, 8, beams, true);  // warm up allocations outside the measured run
    std::ofstream("/proc/self/clear_refs") << "5";  // resets the peak RSS (VmHWM) to the current RSS
    const int64_t before = read_status_kb("VmRSS:");
    auto config = decode_config(new_tokens, beams, true);
    lmdecode::BeamSearchDecoder(model_, config).generate(prompts_of(1, prompt, c.vocab_size));
    const int64_t peak = read_status_kb("VmHWM:");
    const int64_t growth = (peak - before) * 1024;
    fmt::print("  {:<18} {:<26} KV formula {:.1f} MiB, peak RSS growth {:.1f} MiB ({:.2f}x the formula)\n", "memory",
               fmt::format("4 beams, {} positions", prompt + new_tokens), kv_bytes / 1048576.0, growth / 1048576.0,
               static_cast<double>(growth) / static_cast<double>(kv_bytes));
    return {{"name", "memory"}, {"beams", beams}, {"context", prompt}, {"new_tokens", new_tokens},
            {"kv_bytes_formula", kv_bytes}, {"peak_rss_growth_bytes", growth},
            {"growth_over_formula", static_cast<double>(growth) / static_cast<double>(kv_bytes)}};
  }

  /// Operator calls per step: the difference of a long and a short run, as for the timings.
  json ops_scenario() {
    const int64_t prompt = 32, short_new = 4, long_new = 12;
    json rows = json::array();
    auto per_step = [&](const std::function<void(int64_t)>& run) {
      run(long_new);  // warm-up: first calls may dispatch extra operators
      lmdecode::OpCounter counter;
      run(short_new);
      auto a = counter.take();
      run(long_new);
      return counter.take() - a;
    };
    const double extra = static_cast<double>(long_new - short_new);
    auto report = [&](const char* what, int64_t batch, int64_t beams, const lmdecode::OpCounts& d) {
      fmt::print("  {:<18} {:<26} {:7.1f} calls/step ({:.1f} with nested ones), {:.2f} device-to-host reads/step, "
                 "{:.0f} bytes through to(kCPU)/step (the result's included)\n",
                 "ops", what, d.calls / extra, d.all_calls / extra, d.host_reads / extra, d.to_host_bytes / extra);
      rows.push_back({{"name", "ops"}, {"run", what}, {"batch", batch}, {"beams", beams}, {"calls_per_step", d.calls / extra},
                      {"all_calls_per_step", d.all_calls / extra}, {"host_reads_per_step", d.host_reads / extra},
                      {"to_host_bytes_per_step", d.to_host_bytes / extra}});
    };
    auto decode = [&](int64_t batch, int64_t beams) {
      return [this, batch, beams, prompt](int64_t new_tokens) {
        lmdecode::generate(model_, prompts_of(batch, prompt, model_.config().vocab_size), decode_config(new_tokens, beams, true));
      };
    };
    report("bare forward, batch 1", 1, 1, per_step([&](int64_t n) { bare_loop(1, prompt, n); }));
    const auto greedy = per_step(decode(1, 1));
    report("greedy, batch 1", 1, 1, greedy);
    report("greedy, batch 8", 8, 1, per_step(decode(8, 1)));
    const auto beam = per_step(decode(1, 4));
    report("beam, 4 beams", 1, 4, beam);
    auto most_called = [&](const char* what, const std::map<std::string, int64_t>& counts) {
      std::vector<std::pair<int64_t, std::string>> top;
      for (const auto& [name, n] : counts) top.emplace_back(n, name);
      std::sort(top.rbegin(), top.rend());
      std::string line;
      for (size_t i = 0; i < top.size() && i < 12; ++i)
        line += fmt::format("{}{} {:.1f}", i ? ", " : "", top[i].second, top[i].first / extra);
      fmt::print("  {:<18} {:<26} {}\n", "ops", what, line);
    };
    most_called("greedy b1, most called", greedy.calls_by_name);
    most_called("  nested, most called", greedy.nested_by_name);
    most_called("beam-4 minus greedy b1", (beam - greedy).calls_by_name);
    return rows;
  }

  json speculative_scenario() {
    json rows = json::array();
    // The verify step: 1 + k positions in one forward, each position's logits.
    const int64_t context = 256;
    double one_step = 0;
    for (int64_t k : {0, 1, 2, 4, 8}) {
      const Stats s = bare_step(1, context, k + 1).step;
      if (k == 0) one_step = s.median;
      print_row("speculative", fmt::format("verify {} drafts, ctx {}", k, context), s,
                fmt::format("{:.2f}x a 1-position step", s.median / one_step));
      json r = figures(s);
      r.update({{"name", "speculative_verify"}, {"drafts", k}, {"context", context}, {"vs_one_step", s.median / one_step}});
      rows.push_back(r);
    }
    // A request whose continuation repeats text it has seen: 64 random tokens T, the model's own
    // 128-token greedy continuation C of T, then T again (as when a text is quoted back).
    auto plain = decode_config(128, 1, true), lookup = plain;
    const auto text = prompts_of(1, 64, model_.config().vocab_size).front();
    lmdecode::TokenIds prompt(text);
    const auto seen = lmdecode::generate(model_, {text}, plain).hypotheses[0][0].tokens;
    prompt.insert(prompt.end(), seen.begin(), seen.end());
    prompt.insert(prompt.end(), text.begin(), text.end());
    lookup.prompt_lookup_num_tokens = 10;
    lmdecode::GenerationResult plain_result, lookup_result;
    // Each run's time to its first token (the step callback's first call: the 256-position prefill,
    // the same for both), so that the decoding after it is also timed alone.
    std::vector<double> plain_first, lookup_first;
    auto timed_run = [&](const lmdecode::GenerationConfig& config, lmdecode::GenerationResult& result, std::vector<double>& first) {
      const auto start = Clock::now();
      bool seen = false;
      result = lmdecode::generate(model_, {prompt}, config, [&](lmdecode::StepEvent&) {
        if (!seen) first.push_back(ms_since(start));
        seen = true;
      });
    };
    auto plain_ms = stats_of(time_runs(o_, [&] { timed_run(plain, plain_result, plain_first); }));
    auto lookup_ms = stats_of(time_runs(o_, [&] { timed_run(lookup, lookup_result, lookup_first); }));
    const double plain_decode_ms = plain_ms.median - stats_of(plain_first).median;
    const double lookup_decode_ms = lookup_ms.median - stats_of(lookup_first).median;
    const auto& tokens = lookup_result.hypotheses[0][0].tokens;
    const double n = static_cast<double>(tokens.size());
    const auto& drafts = lookup_result.speculation;
    const bool same = tokens == plain_result.hypotheses[0][0].tokens;
    fmt::print("  {:<18} {:<26} plain greedy {:.1f} ms ({:.1f} tok/s, {} forwards), prompt lookup {:.1f} ms ({:.1f} tok/s, "
               "{} forwards, {:.2f} tokens a forward): {:.2f}x; after the first token {:.1f} against {:.1f} ms: {:.2f}x; "
               "{} of {} drafts accepted ({:.0f}%); tokens {}\n",
               "speculative", fmt::format("prompt lookup 10, {}+128", prompt.size()), plain_ms.median, 1000 * n / plain_ms.median, plain_result.steps,
               lookup_ms.median, 1000 * n / lookup_ms.median, lookup_result.steps, n / static_cast<double>(lookup_result.steps),
               plain_ms.median / lookup_ms.median, lookup_decode_ms, plain_decode_ms, plain_decode_ms / lookup_decode_ms,
               drafts.accepted, drafts.drafted,
               drafts.drafted ? 100.0 * static_cast<double>(drafts.accepted) / static_cast<double>(drafts.drafted) : 0.0,
               same ? "the same" : "DIFFERENT");
    rows.push_back({{"name", "speculative_prompt_lookup"}, {"prompt", prompt.size()}, {"new_tokens", tokens.size()},
                    {"plain_ms", plain_ms.median}, {"lookup_ms", lookup_ms.median}, {"speedup", plain_ms.median / lookup_ms.median},
                    {"plain_decode_ms", plain_decode_ms}, {"lookup_decode_ms", lookup_decode_ms},
                    {"decode_speedup", plain_decode_ms / lookup_decode_ms},
                    {"plain_forwards", plain_result.steps}, {"lookup_forwards", lookup_result.steps},
                    {"drafted", drafts.drafted}, {"accepted", drafts.accepted}, {"same_tokens", same}});
    return rows;
  }

  json hf_compare() {
    json rows = json::array();
    for (auto [batch, beams] : {std::pair<int64_t, int64_t>{1, 1}, {8, 1}, {1, 4}}) {
      auto s = stats_of(generate_times(batch, o_.hf_prompt, o_.hf_new, beams, true));
      const double per_token = s.median / static_cast<double>(o_.hf_new);
      print_row("hf_compare", fmt::format("batch {} beams {}", batch, beams), {per_token, s.min / o_.hf_new, s.max / o_.hf_new},
                fmt::format("generate() {:.1f} ms for {} new tokens", s.median, o_.hf_new));
      // The first prompt's (best) tokens, for scripts/gpu/table.py to set beside transformers' own.
      auto first = lmdecode::generate(model_, prompts_of(batch, o_.hf_prompt, model_.config().vocab_size),
                                      decode_config(o_.hf_new, beams, true)).hypotheses[0][0].tokens;
      rows.push_back({{"name", "hf_compare"}, {"batch", batch}, {"beams", beams}, {"context", o_.hf_prompt}, {"new_tokens", o_.hf_new},
                      {"ms_per_step", per_token}, {"generate_ms", s.median}, {"tokens", first}});
    }
    return rows;
  }

  void print_row(const char* name, const std::string& shape, const Stats& s, const std::string& extra) const {
    fmt::print("  {:<18} {:<26} {:9.3f} ms/step (min {:.3f}, max {:.3f})  {}\n", name, shape, s.median, s.min, s.max, extra);
    std::fflush(stdout);
  }

  lmdecode::PretrainedModel& model_;
  Options o_;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw lmdecode::invalid_argument("missing value after " + arg);
      return argv[++i];
    };
    if (arg == "--preset") o.preset = value();
    else if (arg == "--model") o.model_dir = value();
    else if (arg == "--device") o.device = value() == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);
    else if (arg == "--dtype") {
      static const std::map<std::string, at::ScalarType> kTypes = {
          {"f64", at::kDouble}, {"f32", at::kFloat}, {"bf16", at::kBFloat16}, {"f16", at::kHalf}};
      auto it = kTypes.find(value());
      if (it == kTypes.end()) throw lmdecode::invalid_argument("--dtype must be f64, f32, bf16 or f16");
      o.dtype = it->second;
    } else if (arg == "--weights") {
      const auto format = lmdecode::parse_weight_format(value());
      if (!format) throw lmdecode::invalid_argument("--weights must be f32, bf16 or q8_0");
      o.weights = *format;
    } else if (arg == "--repeats") o.repeats = std::max(1, std::stoi(value()));
    else if (arg == "--quick") o.quick = true;
    else if (arg == "--threads") o.threads = std::stoi(value());
    else if (arg == "--tokenizer") o.tokenizer = value();
    else if (arg == "--grammar-dir") o.grammar_dir = value();
    else if (arg == "--prefill-budget") o.prefill_budget = std::stoll(value());
    else if (arg == "--engine-outputs") {
      o.engine_outputs.clear();
      std::stringstream counts(value());
      for (std::string n; std::getline(counts, n, ',');) o.engine_outputs.push_back(std::stoll(n));
      const bool valid = o.engine_outputs.size() == 3 &&
                         std::all_of(o.engine_outputs.begin(), o.engine_outputs.end(), [](int64_t n) { return n >= 1 && n <= 4096; });
      if (!valid) throw lmdecode::invalid_argument("--engine-outputs takes three new-token counts, 1 to 4096, as A,B,C");
    }
    else if (arg == "--json") o.json_path = value();
    else if (arg == "--only") {
      std::stringstream names(value());
      for (std::string n; std::getline(names, n, ',');) o.only.insert(n);
    } else if (arg == "--compare-hf") {
      const auto v = value();
      const auto comma = v.find(',');
      if (comma == std::string::npos) throw lmdecode::invalid_argument("--compare-hf takes PROMPT,NEW");
      o.hf_prompt = std::stoll(v.substr(0, comma));
      o.hf_new = std::stoll(v.substr(comma + 1));
    } else if (arg == "--layers" || arg == "--hidden" || arg == "--heads" || arg == "--kv-heads" ||
               arg == "--intermediate" || arg == "--vocab") {
      o.sizes[arg.substr(2)] = std::stoll(value());
    } else if (arg == "--help") {
      std::puts("usage: lmdecode-bench [--preset tiny|small|qwen2.5-0.5b | --model DIR] [--device cpu|cuda] [--dtype f32|bf16|f16|f64]\n"
                "                      [--weights f32|bf16|q8_0]\n"
                "                      [--layers N --hidden N --heads N --kv-heads N --intermediate N --vocab N]\n"
                "                      [--repeats N] [--quick] [--json FILE] [--only NAME,...] [--compare-hf PROMPT,NEW] [--threads N]\n"
                "                      [--tokenizer FILE] [--grammar-dir DIR] [--prefill-budget N] [--engine-outputs A,B,C]\n"
                "  --only speculative: the verify step and prompt lookup (not in the default set)\n"
                "  --only engine: continuous batching by 1, 4 and 16 clients against one request after another (not in the default set);\n"
                "    --prefill-budget N: the engine's max_prefill_tokens_per_step; --engine-outputs A,B,C: its new tokens\n"
                "  --only grammar --tokenizer FILE: a grammar's cost a step over FILE's vocabulary (not in the default set);\n"
                "    --grammar-dir DIR writes its grammars there as GBNF (scripts/compare-peers.sh gives them to llama.cpp)");
      std::exit(0);
    } else throw lmdecode::invalid_argument("unknown argument " + arg);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse(argc, argv);
    if (o.threads > 0) lmdecode::set_threads(o.threads);
    c10::InferenceMode inference;
    auto model = make_model(o);
    const auto& c = model->config();
    const std::string label = o.model_dir.empty() ? o.preset : o.model_dir;
    fmt::print("lmdecode-bench: {} ({} layers, hidden {}, {}/{} heads, vocab {}), {} {}, {} weights, {} threads\n", label,
               c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.vocab_size, o.device.str(), c10::toString(o.dtype),
               lmdecode::weight_format_name(o.weights), at::get_num_threads());
    Bench bench(*model, o);
    json report = {{"preset", label}, {"device", o.device.str()}, {"dtype", c10::toString(o.dtype)},
                   {"weights", lmdecode::weight_format_name(o.weights)},
                   {"threads", at::get_num_threads()}, {"scenarios", bench.run_all()}};
    if (!o.json_path.empty()) std::ofstream(o.json_path) << report.dump(2) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lmdecode-bench: %s\n", e.what());
    return 1;
  }
}
