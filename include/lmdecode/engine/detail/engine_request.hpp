#pragma once
// What the engine and one request's thread share: the request as submitted, its state, the forward
// it waits on, and its outcome. Every field below `reserved_bytes` is read and written under
// EngineShared::mutex.

#include <ATen/ATen.h>

#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "lmdecode/cache.hpp"
#include "lmdecode/config.hpp"
#include "lmdecode/logits/processor.hpp"
#include "lmdecode/model.hpp"
#include "lmdecode/result.hpp"
#include "lmdecode/streaming.hpp"
#include "lmdecode/token_ids.hpp"

namespace lmdecode {

/// Where a request submitted to an Engine stands.
enum class RequestState {
  waiting,   ///< queued: its KV cache does not fit the budget yet, or max_running_requests run
  running,   ///< decoding in the engine's batch
  finished,  ///< its result is ready (a cancelled request's too: its rows end with FinishReason::cancelled)
  failed,    ///< it ended with an error, which wait() throws
};

namespace detail {

/// The mutex every request of one engine is guarded by, and the condition the engine waits on (a
/// request posted a forward, ended, or was submitted).
struct EngineShared {
  std::mutex mutex;
  std::condition_variable work;
};

/// Thrown inside a request's thread when it is cancelled between the chunks of its prefill: it
/// ends the request's generate() there.
struct RequestCancelled {};

struct EngineRequest {
  TokenIds prompt;
  GenerationConfig config;
  StepCallback on_step;
  LogitsProcessorList processors;
  int64_t reserved_bytes = 0;  // of the engine's kv_budget_bytes, while it runs

  RequestState state = RequestState::waiting;
  bool cancel_requested = false;
  // The forward the request's thread waits on: posted, then run by the engine in its next step.
  const ForwardBatch* posted_batch = nullptr;
  KVCache* posted_cache = nullptr;
  at::Tensor logits;
  std::exception_ptr forward_error;
  // Its end.
  std::optional<GenerationResult> result;
  std::exception_ptr error;
  std::condition_variable changed;  // a forward ran, or the request ended
  std::thread thread;

  bool posted() const { return posted_batch != nullptr; }
  bool ended() const { return state == RequestState::finished || state == RequestState::failed; }
};

/// What a request cancelled before its first token returns: each of its sequences empty, ended
/// FinishReason::cancelled.
inline GenerationResult cancelled_before_start(const EngineRequest& request) {
  GenerationResult result;
  const int64_t prompt = static_cast<int64_t>(request.prompt.size());
  Hypothesis none;
  none.finish_reason = FinishReason::cancelled;
  result.hypotheses.assign(1, std::vector<Hypothesis>(static_cast<size_t>(request.config.num_return_sequences), none));
  result.sequences = at::tensor(request.prompt, at::kLong).view({1, prompt}).repeat({request.config.num_return_sequences, 1});
  result.prompt_length = prompt;
  return result;
}

}  // namespace detail
}  // namespace lmdecode
