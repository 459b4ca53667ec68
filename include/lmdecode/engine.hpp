#pragma once
// Engine: many callers share each step of one model (continuous batching). A request is submitted
// from any thread and joins the running batch at the next step; it leaves when it ends, and the
// others go on. Each request runs generate() itself, every strategy included (greedy, sampling with
// its own seed, beam search, prompt lookup), with its own processors, stop strings and limits, on a
// thread of its own; the engine only batches the model's passes: at each step it waits until every
// running request has posted its next forward (engine/detail/request_model.hpp), runs them all in one
// PretrainedModel::forward_segments() (every weight read once, attention over each request's own
// cache, whatever its length) and hands each its logits. So a request's result is generate()'s for
// it alone: the same code chooses every token; only the model's arithmetic sees other rows beside
// it, which may round float32 differently (tests/test_engine.cpp).
//
// Prefix cache: the keys and values of recent prompts are kept (up to prefix_cache_bytes, least
// recently used dropped first); a request whose prompt begins like a kept one starts from those
// positions, shared with it, and feeds only the rest (engine/detail/prefix_store.hpp).
//
// Memory: with kv_budget_bytes, each request reserves the most its KV cache can take
// (reserved_kv_bytes) while it runs, and the caches are made that size at once; the prefix cache
// lives in what the running requests leave. So the engine never holds more KV cache than the budget:
// requests that do not fit wait in arrival order (kept prefixes are dropped first to make room); one
// that could never fit is refused at submit(). A reservation is a request's most, so no running
// request is ever preempted; the price is fewer requests at once under a tight budget.
//
// Example:
//   lmdecode::Engine engine(*model);
//   auto a = engine.submit(prompt_a, config);
//   auto b = engine.submit(prompt_b, beam_config);
//   lmdecode::GenerationResult result = a.wait();

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "lmdecode/decoders/generate.hpp"
#include "lmdecode/detail/token_index.hpp"
#include "lmdecode/engine/detail/engine_request.hpp"
#include "lmdecode/engine/detail/prefix_store.hpp"
#include "lmdecode/engine/detail/request_model.hpp"
#include "lmdecode/models/pretrained_model.hpp"

namespace lmdecode {

struct EngineOptions {
  /// Requests decoding at once (each runs its host side on a thread of its own); more wait.
  int64_t max_running_requests = 16;
  /// The most positions a step feeds beyond one a row (prefill chunks, speculative checks), over all
  /// requests: a longer prompt takes several steps, and requests whose chunk does not fit wait for
  /// the next (the oldest first), so that the decoding rows keep their step time.
  int64_t max_prefill_tokens_per_step = 256;
  /// The most bytes of KV cache the running requests and the prefix cache may hold together; unset: no limit.
  std::optional<int64_t> kv_budget_bytes;
  /// The most bytes of kept prompts (the prefix cache); 0 turns it off.
  int64_t prefix_cache_bytes = int64_t{256} << 20;
  /// Step on a thread of the engine's own; false: the caller calls step().
  bool own_thread = true;
};

/// What the engine has done so far.
struct EngineStats {
  int64_t steps = 0;           ///< batched forwards run
  int64_t segments = 0;        ///< request forwards they held (segments / steps: requests per step)
  int64_t reserved_bytes = 0;  ///< KV cache bytes the running requests hold reserved now
  int64_t running = 0;         ///< requests running now
  int64_t waiting = 0;         ///< requests waiting now
  int64_t prefix_hits = 0;            ///< requests that started from a kept prefix
  int64_t prefix_positions_reused = 0;  ///< prompt positions they did not compute
  int64_t prefix_bytes_saved = 0;     ///< KV cache bytes they did not store (one row each)
  int64_t prefix_cache_bytes = 0;     ///< bytes the prefix cache holds now
};

/// A submitted request: its state, its result, its cancellation. Copies refer to the same request;
/// it stays valid after the engine is gone (which cancels what has not ended).
class RequestHandle {
 public:
  RequestHandle(std::shared_ptr<detail::EngineShared> shared, std::shared_ptr<detail::EngineRequest> request)
      : shared_(std::move(shared)), request_(std::move(request)) {}

  RequestState state() const {
    std::lock_guard lock(shared_->mutex);
    return request_->state;
  }

  /// Waits for the end: the result, or the request's error thrown (a throwing step callback's, a
  /// bad config's). A cancelled request returns what it had: rows still running end with
  /// FinishReason::cancelled.
  GenerationResult wait() const {
    std::unique_lock lock(shared_->mutex);
    request_->changed.wait(lock, [&] { return request_->ended(); });
    if (request_->error) std::rethrow_exception(request_->error);
    return *request_->result;
  }

  /// Ends the request at its next step (its rows and their memory are freed then); a waiting
  /// request ends now. Nothing happens to one that has ended.
  void cancel() {
    std::lock_guard lock(shared_->mutex);
    request_->cancel_requested = true;
    shared_->work.notify_all();
  }

 private:
  std::shared_ptr<detail::EngineShared> shared_;
  std::shared_ptr<detail::EngineRequest> request_;
};

namespace detail {

/// A request's rows (beams, or sequences) and the positions each may feed after its prompt (new
/// tokens and drafts): what its KV cache is sized by.
struct RequestRows {
  int64_t copies;
  int64_t new_positions;
};
inline RequestRows request_rows(int64_t prompt_length, const GenerationConfig& config) {
  return {config.num_beams > 1 ? config.num_beams : config.num_return_sequences,
          config.resolved_max_new_tokens(prompt_length) + config.prompt_lookup_num_tokens.value_or(0)};
}

}  // namespace detail

/// The most KV cache bytes a request of a `prompt_length`-token prompt can hold under `config`, at
/// `bytes_per_position` per row and position, when its caches are made for all its positions at once
/// (RequestModel): one row of every position it feeds; with several rows (beams, sequences), the
/// prompt once and each row's own positions in a buffer that doubles from KVCache's first 16, the
/// old and the new buffer side by side while it grows. A count past int64 (a huge max_new_tokens)
/// gives the largest int64.
inline int64_t reserved_kv_bytes(int64_t prompt_length, const GenerationConfig& config, int64_t bytes_per_position) {
  const auto [copies, new_positions] = detail::request_rows(prompt_length, config);
  const double prompt = static_cast<double>(prompt_length), added = static_cast<double>(new_positions);
  double positions = static_cast<double>(copies) * (prompt + added);
  if (copies > 1 && config.use_cache) {
    double own = 16;
    while (own < added) own *= 2;
    positions = prompt + static_cast<double>(copies) * (own + own / 2);
  }
  const double bytes = positions * static_cast<double>(bytes_per_position);
  return bytes >= 0x1p63 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(bytes);
}

template <CausalLM Model>
class Engine {
 public:
  explicit Engine(Model& model, EngineOptions options = {}) : model_(model), options_(options) {
    if constexpr (!kBatchesSegments)
      detail::check(false, "the engine runs requests of different lengths in one forward, which this model type cannot "
                           "(it has no forward_segments(): an HF-style or TorchScript module); decode it with generate()");
    detail::check(options_.max_running_requests >= 1, "max_running_requests must be >= 1 (got {})", options_.max_running_requests);
    detail::check(options_.max_prefill_tokens_per_step >= 1, "max_prefill_tokens_per_step must be >= 1 (got {})",
                  options_.max_prefill_tokens_per_step);
    detail::check(!options_.kv_budget_bytes || *options_.kv_budget_bytes >= 1, "kv_budget_bytes must be >= 1 (got {})",
                  options_.kv_budget_bytes.value_or(0));
    detail::check(options_.prefix_cache_bytes >= 0, "prefix_cache_bytes must be >= 0 (got {})", options_.prefix_cache_bytes);
    if (options_.own_thread) stepper_ = std::thread([this] { step_until_stopped(); });
  }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Cancels every request that has not ended and waits for their threads.
  ~Engine() {
    {
      std::lock_guard lock(shared_->mutex);
      stopping_ = true;
      for (auto& r : waiting_) r->cancel_requested = true;
      for (auto& r : running_) r->cancel_requested = true;
      shared_->work.notify_all();
    }
    if (stepper_.joinable()) stepper_.join();
    else while (step()) {}
    std::unique_lock lock(shared_->mutex);
    const auto left = take_ended();
    lock.unlock();
    join(left);
  }

  /// Queues `prompt` for decoding under `config` (validated here), with `on_step` called after each of
  /// its steps on its own thread and `processors` after those the config enables.
  RequestHandle submit(TokenIds prompt, GenerationConfig config, StepCallback on_step = {}, LogitsProcessorList processors = {}) {
    validate(config);
    detail::check(!prompt.empty(), "a request needs a prompt of at least one token");
    if constexpr (requires { model_.config().vocab_size; })
      for (const int64_t token : prompt)
        detail::check(detail::is_token(token, model_.config().vocab_size), "the prompt holds token {} outside the vocabulary [0, {})",
                      token, model_.config().vocab_size);
    auto request = std::make_shared<detail::EngineRequest>();
    request->reserved_bytes = reserved_bytes_for(static_cast<int64_t>(prompt.size()), config);
    if (options_.kv_budget_bytes)
      detail::check(request->reserved_bytes <= *options_.kv_budget_bytes,
            "a request of a {}-token prompt under this config may hold {} bytes of KV cache, more than kv_budget_bytes ({}): "
            "it could never run; lower max_new_tokens, num_beams or num_return_sequences, or raise the budget",
            prompt.size(), request->reserved_bytes, *options_.kv_budget_bytes);
    request->prompt = std::move(prompt);
    request->config = std::move(config);
    request->on_step = std::move(on_step);
    request->processors = std::move(processors);
    std::lock_guard lock(shared_->mutex);
    detail::check(!stopping_, "the engine is shutting down");
    waiting_.push_back(request);
    shared_->work.notify_all();
    return RequestHandle(shared_, request);
  }

  /// One step: starts the waiting requests that fit, waits until each running request has posted its
  /// next forward or ended, and runs those forwards as one. Returns false when no request runs or
  /// waits (nothing to do). With own_thread, the engine's thread calls it.
  bool step() {
    std::vector<std::shared_ptr<detail::EngineRequest>> batch, finished;
    {
      std::unique_lock lock(shared_->mutex);
      finished = take_ended();
      admit();
      shared_->work.wait(lock, [&] {
        return std::all_of(running_.begin(), running_.end(), [](const auto& r) { return r->posted() || r->ended(); });
      });
      batch = this_step(running_);
      if (batch.empty() && running_.empty() && waiting_.empty()) {
        lock.unlock();
        join(finished);
        return false;
      }
    }
    join(finished);
    if (!batch.empty()) run_forward(batch);
    return true;
  }

  EngineStats stats() const {
    std::lock_guard lock(shared_->mutex);
    EngineStats out = prefix_stats_;
    out.steps = steps_;
    out.segments = segments_;
    out.reserved_bytes = reserved_;
    out.running = static_cast<int64_t>(running_.size());
    out.waiting = static_cast<int64_t>(waiting_.size());
    out.prefix_cache_bytes = prefixes_.bytes();
    return out;
  }

 private:
  static constexpr bool kBatchesSegments =
      requires(Model& m, const std::vector<ForwardSegment>& s) { { m.forward_segments(s) } -> std::same_as<std::vector<at::Tensor>>; } &&
      std::same_as<typename Model::Cache, KVCache>;

  int64_t reserved_bytes_for(int64_t prompt_length, const GenerationConfig& config) const {
    if constexpr (kBatchesSegments) return reserved_kv_bytes(prompt_length, config, model_.kv_bytes_per_position());
    else return 0;
  }

  /// Positions a request's cache is made for at once under a budget (so that it never grows past its
  /// reservation): the prompt and every new position when one row decodes; the prompt alone with
  /// several rows (their own positions follow in buffers of their own, reserved_kv_bytes). Without a
  /// budget, 0: caches grow as generate()'s do, with the tokens.
  int64_t cache_positions(const detail::EngineRequest& r) const {
    if (!options_.kv_budget_bytes) return 0;
    const int64_t prompt = static_cast<int64_t>(r.prompt.size());
    const auto [copies, new_positions] = detail::request_rows(prompt, r.config);
    return copies == 1 ? prompt + new_positions : prompt;
  }

  void step_until_stopped() {
    for (;;) {
      if (step()) continue;
      std::unique_lock lock(shared_->mutex);
      if (stopping_ && running_.empty() && waiting_.empty()) return;
      shared_->work.wait(lock, [&] { return stopping_ || !waiting_.empty() || !running_.empty(); });
      if (stopping_ && running_.empty() && waiting_.empty()) return;
    }
  }

  /// Under the mutex: the cancelled waiting requests end; then, in arrival order, requests start
  /// while they fit (the first that does not fit keeps its place and those behind it wait).
  void admit() {
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (!(*it)->cancel_requested) {
        ++it;
        continue;
      }
      (*it)->result = detail::cancelled_before_start(**it);
      end_request(**it, RequestState::finished);
      it = waiting_.erase(it);
    }
    auto fits = [&](int64_t bytes) { return !options_.kv_budget_bytes || reserved_ + prefixes_.bytes() + bytes <= *options_.kv_budget_bytes; };
    while (!waiting_.empty() && static_cast<int64_t>(running_.size()) < options_.max_running_requests) {
      while (!fits(waiting_.front()->reserved_bytes) && prefixes_.drop_least_recent()) {}
      if (!fits(waiting_.front()->reserved_bytes)) break;
      auto request = std::move(waiting_.front());
      waiting_.pop_front();
      request->state = RequestState::running;
      reserved_ += request->reserved_bytes;
      running_.push_back(request);
      try {
        request->thread = std::thread([this, request] { decode(*request); });
      } catch (const std::system_error& e) {  // no thread to be had: the request fails, the engine goes on
        request->error = std::make_exception_ptr(backend_error(fmt::format("no thread for the request: {}", e.what())));
        end_request(*request, RequestState::failed);
      }
    }
  }

  /// Under the mutex: the posted forwards the next step runs, in arrival order: every one-position
  /// forward, and forwards of more positions while their positions fit max_prefill_tokens_per_step
  /// (the first of them always: a forward of no cache, which feeds the whole sequence, may be longer).
  std::vector<std::shared_ptr<detail::EngineRequest>> this_step(const std::vector<std::shared_ptr<detail::EngineRequest>>& running) const {
    std::vector<std::shared_ptr<detail::EngineRequest>> out;
    int64_t room = options_.max_prefill_tokens_per_step;
    bool first = true;
    for (const auto& r : running) {
      if (!r->posted()) continue;
      const auto& ids = r->posted_batch->input_ids;
      if (ids.size(1) > 1) {
        if (!first && ids.numel() > room) continue;
        room -= ids.numel();
        first = false;
      }
      out.push_back(r);
    }
    return out;
  }

  /// Under the mutex: the running requests that ended leave the batch; their threads are joined by the caller.
  std::vector<std::shared_ptr<detail::EngineRequest>> take_ended() {
    std::vector<std::shared_ptr<detail::EngineRequest>> out;
    out.swap(ended_);
    return out;
  }

  static void join(const std::vector<std::shared_ptr<detail::EngineRequest>>& requests) {
    for (const auto& r : requests)
      if (r->thread.joinable()) r->thread.join();
  }

  /// Under the mutex: `r` ends in `state`; it leaves the running batch and gives back its reservation.
  void end_request(detail::EngineRequest& r, RequestState state) {
    r.state = state;
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == &r; });
    if (it != running_.end()) {
      reserved_ -= r.reserved_bytes;
      ended_.push_back(*it);
      running_.erase(it);
    }
    r.changed.notify_all();
    shared_->work.notify_all();
  }

  /// The prefix cache for a request's RequestModel: look-ups count as hits; a prompt is kept in what
  /// the budget leaves beside the running requests' reservations.
  detail::PrefixAccess prefix_access() {
    if (options_.prefix_cache_bytes == 0) return {[](const TokenIds&, int64_t) { return std::nullopt; }, [](const TokenIds&, const at::Tensor&) {}};
    return {[this](const TokenIds& prompt, int64_t at_most) {
              std::lock_guard lock(shared_->mutex);
              auto hit = prefixes_.longest(prompt, at_most);
              if (hit) {
                ++prefix_stats_.prefix_hits;
                prefix_stats_.prefix_positions_reused += hit->length;
                prefix_stats_.prefix_bytes_saved += hit->length * model_.kv_bytes_per_position();
              }
              return hit;
            },
            [this](const TokenIds& prompt, const at::Tensor& positions) {
              std::lock_guard lock(shared_->mutex);
              int64_t room = options_.prefix_cache_bytes;
              if (options_.kv_budget_bytes) room = std::min(room, *options_.kv_budget_bytes - reserved_);
              prefixes_.insert(prompt, positions, room);
            }};
  }

  /// A request's thread: generate() through a RequestModel, then the request ends.
  void decode(detail::EngineRequest& r) {
    std::optional<GenerationResult> result;
    std::exception_ptr error;
    try {
      if constexpr (kBatchesSegments) {
        detail::RequestModel<Model> model(model_, *shared_, r, options_.max_prefill_tokens_per_step, cache_positions(r), prefix_access());
        bool cancelled = false;
        auto on_step = [&](StepEvent& event) {
          if (r.on_step) r.on_step(event);
          std::lock_guard lock(shared_->mutex);
          cancelled = r.cancel_requested && !event.stop_requested;
          event.stop_requested = event.stop_requested || cancelled;
        };
        result = generate(model, {r.prompt}, r.config, on_step, r.processors);
        if (cancelled)
          for (auto& h : result->hypotheses.front())
            if (h.finish_reason == FinishReason::callback) h.finish_reason = FinishReason::cancelled;
      }
    } catch (const detail::RequestCancelled&) {
      result = detail::cancelled_before_start(r);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard lock(shared_->mutex);
    r.result = std::move(result);
    r.error = error;
    end_request(r, error ? RequestState::failed : RequestState::finished);
  }

  /// Runs the posted forwards of `batch` as one and hands each request its logits, or the error.
  void run_forward(const std::vector<std::shared_ptr<detail::EngineRequest>>& batch) {
    std::vector<at::Tensor> logits;
    std::exception_ptr error;
    try {
      if constexpr (kBatchesSegments) {
        c10::InferenceMode inference;
        std::vector<ForwardSegment> segments;
        for (const auto& r : batch) segments.push_back({*r->posted_batch, r->posted_cache});
        logits = model_.forward_segments(segments);
      }
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard lock(shared_->mutex);
    ++steps_;
    segments_ += static_cast<int64_t>(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& r = *batch[i];
      if (error) r.forward_error = error;
      else r.logits = std::move(logits[i]);
      r.posted_batch = nullptr;
      r.posted_cache = nullptr;
      r.changed.notify_all();
    }
  }

  Model& model_;
  EngineOptions options_;
  std::shared_ptr<detail::EngineShared> shared_ = std::make_shared<detail::EngineShared>();
  // Under shared_->mutex:
  std::deque<std::shared_ptr<detail::EngineRequest>> waiting_;
  std::vector<std::shared_ptr<detail::EngineRequest>> running_;
  std::vector<std::shared_ptr<detail::EngineRequest>> ended_;  // ended, their threads not joined yet
  int64_t reserved_ = 0;
  int64_t steps_ = 0, segments_ = 0;
  detail::PrefixStore prefixes_;
  EngineStats prefix_stats_;  // its prefix_* counters
  bool stopping_ = false;
  std::thread stepper_;
};

}  // namespace lmdecode
