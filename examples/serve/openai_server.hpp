#pragma once
// lmdecode-serve's HTTP side: OpenAI's routes on a cpp-httplib server, each completion request run
// by the shared lmdecode::Engine (continuous batching across requests).
//
//   POST /v1/completions, POST /v1/chat/completions   (stream: true -> server-sent events, "data: [DONE]" last)
//   GET /v1/models, GET /health
//
// A request holds one of max_concurrent slots from its start to its last byte; with none free it is
// a 429 (Retry-After: 1) at once. A streamed request whose client goes away is cancelled at the
// write that fails: the engine frees its rows at its next step. drain() (SIGINT, SIGTERM) turns new
// requests away (503) and waits for the running ones for a grace period, then cancels them.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <lmdecode/engine.hpp>
#include <lmdecode/models/pretrained_model.hpp>

#include "api_error.hpp"
#include "choice_text.hpp"
#include "completion_request.hpp"
#include "openai_response.hpp"

namespace lmdecode_serve {

using Engine = lmdecode::Engine<lmdecode::PretrainedModel>;

struct ServerOptions {
  RequestLimits limits;
  int64_t max_concurrent = 16;
  std::string api_key;  ///< empty: no key asked
};

class OpenAIServer {
 public:
  OpenAIServer(ServedModel model, Engine& engine, ServerOptions options)
      : model_(std::move(model)), engine_(engine), options_(std::move(options)) {}

  /// Adds the routes, the key check and the error bodies to `http`.
  void attach(httplib::Server& http) {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) { return check_key(req, res); });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) { fill_error_body(req, res); });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      reply_error(res, ApiError(500, "internal error", {}, {}, "server_error"));
    });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { complete(req, res, Endpoint::completions); });
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { complete(req, res, Endpoint::chat); });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) { reply_json(res, models()); });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) { reply_json(res, health()); });
  }

  /// Turns new requests away, waits up to `grace` for the running ones, then cancels what is left
  /// and waits for it to end.
  void drain(std::chrono::milliseconds grace) {
    std::unique_lock lock(mutex_);
    draining_ = true;
    if (!idle_.wait_for(lock, grace, [&] { return slots_ == 0; })) {
      cancelling_ = true;
      for (auto& [id, handle] : handles_) handle.cancel();
    }
    idle_.wait(lock, [&] { return slots_ == 0; });
  }

 private:
  /// A request's hold on one of max_concurrent slots, and on its engine request once submitted.
  class Slot {
   public:
    explicit Slot(OpenAIServer& server) : server_(server) {
      std::lock_guard lock(server_.mutex_);
      if (server_.draining_) throw ApiError(503, "the server is shutting down", {}, {}, "server_error");
      if (server_.slots_ >= server_.options_.max_concurrent)
        throw ApiError(429, fmt::format("{} requests are running, as many as this server takes at once; retry shortly",
                                        server_.slots_), {}, "rate_limit_exceeded", "rate_limit_error");
      ++server_.slots_;
      id_ = ++server_.requests_;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() {
      std::lock_guard lock(server_.mutex_);
      server_.handles_.erase(id_);
      --server_.slots_;
      server_.idle_.notify_all();
    }
    void hold(lmdecode::RequestHandle handle) {
      std::lock_guard lock(server_.mutex_);
      if (server_.cancelling_) handle.cancel();  // submitted after drain() cancelled the others
      server_.handles_.emplace(id_, std::move(handle));
    }
    uint64_t id() const { return id_; }

   private:
    OpenAIServer& server_;
    uint64_t id_ = 0;
  };

  /// The steps' committed tokens of a streamed request, from the engine's thread to the writer's.
  struct StepQueue {
    std::mutex mutex;
    std::condition_variable changed;
    std::deque<std::vector<lmdecode::TokenIds>> committed;
    bool finished = false;          // every row (or the beam search) has ended
    std::atomic<bool> stop{false};  // the writer found a stop string: end the generation
  };

  /// A streamed request: its engine request, its choices' texts and the writer's state.
  struct Stream {
    std::shared_ptr<Slot> slot;
    CompletionRequest request;
    ResponseHeader header;
    lmdecode::RequestHandle handle;
    std::shared_ptr<StepQueue> steps;
    std::vector<ChoiceText> texts;
    std::vector<size_t> tokens_shown;  // per choice: the tokens its text has taken so far
    bool started = false;
  };

  httplib::Server::HandlerResponse check_key(const httplib::Request& req, httplib::Response& res) const {
    if (options_.api_key.empty() || !req.path.starts_with("/v1/")) return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + options_.api_key) return httplib::Server::HandlerResponse::Unhandled;
    reply_error(res, ApiError(401, req.has_header("Authorization") ? "Incorrect API key provided" : "No API key provided "
                                   "(Authorization: Bearer KEY)", {}, "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  }

  void complete(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    try {
      auto slot = std::make_shared<Slot>(*this);
      const auto body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      if (body.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
      auto request = read_completion_request(body, endpoint, model_, options_.limits);
      ResponseHeader header{.id = fmt::format("{}-{}", endpoint == Endpoint::chat ? "chatcmpl" : "cmpl", slot->id()), .model = model_.id,
                            .endpoint = endpoint};
      if (request.stream) return stream(res, std::move(slot), std::move(request), std::move(header));
      auto handle = submit(request, {});
      slot->hold(handle);
      reply_json(res, whole_response(request, header, handle.wait()));
    } catch (const ApiError& e) {
      reply_error(res, e);
    } catch (const lmdecode::invalid_argument& e) {  // the engine's refusals (a request that could never fit)
      reply_error(res, ApiError(400, e.what()));
    } catch (const std::exception& e) {
      reply_error(res, ApiError(500, e.what(), {}, {}, "server_error"));
    }
  }

  lmdecode::RequestHandle submit(const CompletionRequest& request, lmdecode::StepCallback on_step) {
    return engine_.submit(request.prompt, request.config, std::move(on_step));
  }

  nlohmann::json whole_response(const CompletionRequest& request, const ResponseHeader& header, const lmdecode::GenerationResult& result) {
    auto out = header.object(false);
    out["choices"] = nlohmann::json::array();
    int64_t completion_tokens = 0;
    const TokenLogprobs logprobs(model_, result, request);
    for (size_t i = 0; i < result.hypotheses[0].size(); ++i) {
      const auto& h = result.hypotheses[0][i];
      ChoiceText text(model_.tokenizer, request.stops);
      const std::string content = text.push(h.tokens) + text.finish();
      auto choice = choice_json(request.endpoint, i, content, false);
      finish_choice(choice, request, logprobs, h, i, text.stopped());
      out["choices"].push_back(std::move(choice));
      completion_tokens += static_cast<int64_t>(h.tokens.size());
    }
    out["usage"] = usage(static_cast<int64_t>(request.prompt.size()), completion_tokens);
    return out;
  }

  /// A choice's end: its finish_reason, log-probs and token ids (return_token_ids).
  static void finish_choice(nlohmann::json& choice, const CompletionRequest& request, const TokenLogprobs& logprobs,
                            const lmdecode::Hypothesis& h, size_t i, bool text_stopped) {
    choice["finish_reason"] = finish_reason(h.finish_reason, text_stopped);
    if (request.logprobs) choice["logprobs"] = logprobs.of(i);
    if (request.return_token_ids) choice["token_ids"] = h.tokens;
  }

  void stream(httplib::Response& res, std::shared_ptr<Slot> slot, CompletionRequest request, ResponseHeader header) {
    auto steps = std::make_shared<StepQueue>();
    auto handle = submit(request, [steps](lmdecode::StepEvent& e) {
      std::lock_guard lock(steps->mutex);
      steps->committed.push_back(e.committed);
      steps->finished = std::all_of(e.finished.begin(), e.finished.end(), [](bool f) { return f; });
      steps->changed.notify_all();
      e.stop_requested = steps->stop;
    });
    slot->hold(handle);
    auto s = std::make_shared<Stream>(Stream{std::move(slot), std::move(request), std::move(header), handle, steps, {}, {}, false});
    for (int64_t i = 0; i < s->request.choices(); ++i) s->texts.emplace_back(model_.tokenizer, s->request.stops);
    s->tokens_shown.assign(s->texts.size(), 0);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [this, s](size_t, httplib::DataSink& sink) { return write_stream(*s, sink); },
        [this, s](bool written) {
          if (!written) {  // the client went away (or a write failed): end its request now
            s->handle.cancel();
            disconnects_.fetch_add(1);
          }
        });
  }

  /// Writes what the stream has ready (waiting for it): chunks of text, and at the end each
  /// choice's last chunk, the usage chunk and "data: [DONE]". False when a write fails.
  bool write_stream(Stream& s, httplib::DataSink& sink) {
    if (!s.started && s.request.endpoint == Endpoint::chat) {  // OpenAI's first chat chunk names the role
      auto chunk = s.header.object(true);
      for (size_t i = 0; i < s.texts.size(); ++i) {
        auto choice = choice_json(Endpoint::chat, i, "", true);
        choice["delta"]["role"] = "assistant";
        chunk["choices"].push_back(std::move(choice));
      }
      if (!send(sink, chunk)) return false;
    }
    s.started = true;
    auto [ready, ended] = next_steps(s);
    for (const auto& committed : ready)
      for (size_t i = 0; i < committed.size() && i < s.texts.size(); ++i) {
        s.tokens_shown[i] += committed[i].size();
        if (!send_text(s, sink, i, s.texts[i].push(committed[i]))) return false;
        if (s.texts[i].stopped() && s.texts.size() == 1) s.steps->stop = true;
      }
    if (!ended) return true;
    return finish_stream(s, sink);
  }

  /// The steps committed since the last call, and whether the request has ended. It waits up to
  /// 50 ms for a step; once the last step is in, it polls every 2 ms for the request's end (the
  /// engine marks it after generate() returns).
  static std::pair<std::deque<std::vector<lmdecode::TokenIds>>, bool> next_steps(Stream& s) {
    std::unique_lock lock(s.steps->mutex);
    const bool last_seen = s.steps->finished;
    s.steps->changed.wait_for(lock, std::chrono::milliseconds(last_seen ? 2 : 50),
                              [&] { return !s.steps->committed.empty() || (s.steps->finished && !last_seen); });
    auto ready = std::move(s.steps->committed);
    s.steps->committed.clear();
    lock.unlock();
    const auto state = s.handle.state();
    return {std::move(ready), state == lmdecode::RequestState::finished || state == lmdecode::RequestState::failed};
  }

  bool finish_stream(Stream& s, httplib::DataSink& sink) {
    lmdecode::GenerationResult result;
    try {
      result = s.handle.wait();
    } catch (const std::exception& e) {
      const bool sent = send(sink, ApiError::error_body(e.what(), "server_error")) && send_done(sink);
      return sent;
    }
    const TokenLogprobs logprobs(model_, result, s.request);
    int64_t completion_tokens = 0;
    for (size_t i = 0; i < result.hypotheses[0].size(); ++i) {
      const auto& h = result.hypotheses[0][i];
      completion_tokens += static_cast<int64_t>(h.tokens.size());
      if (i >= s.texts.size()) break;
      // What the steps did not show (beam search's other sequences; the rest after a stop request).
      const lmdecode::TokenIds rest(h.tokens.begin() + static_cast<int64_t>(std::min(s.tokens_shown[i], h.tokens.size())), h.tokens.end());
      const std::string text = s.texts[i].push(rest) + s.texts[i].finish();
      auto chunk = s.header.object(true);
      auto choice = choice_json(s.request.endpoint, i, text, true);
      finish_choice(choice, s.request, logprobs, h, i, s.texts[i].stopped());
      chunk["choices"] = nlohmann::json::array({std::move(choice)});
      if (!send(sink, chunk)) return false;
    }
    if (s.request.include_usage) {
      auto chunk = s.header.object(true);
      chunk["choices"] = nlohmann::json::array();
      chunk["usage"] = usage(static_cast<int64_t>(s.request.prompt.size()), completion_tokens);
      if (!send(sink, chunk)) return false;
    }
    s.slot.reset();  // before [DONE]: a client that sends its next request on reading it finds the slot free
    return send_done(sink);
  }

  bool send_text(Stream& s, httplib::DataSink& sink, size_t i, const std::string& text) {
    if (text.empty()) return true;
    auto chunk = s.header.object(true);
    chunk["choices"] = nlohmann::json::array({choice_json(s.request.endpoint, i, text, true)});
    return send(sink, chunk);
  }

  static bool send(httplib::DataSink& sink, const nlohmann::json& event) {
    const std::string line = "data: " + event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
    return sink.write(line.data(), line.size());
  }
  static bool send_done(httplib::DataSink& sink) {
    static const std::string done = "data: [DONE]\n\n";
    if (!sink.write(done.data(), done.size())) return false;
    sink.done();
    return true;
  }

  nlohmann::json models() const {
    return {{"object", "list"}, {"data", {{{"id", model_.id}, {"object", "model"}, {"created", 0}, {"owned_by", "lmdecode"}}}}};
  }

  nlohmann::json health() {
    const auto e = engine_.stats();
    std::lock_guard lock(mutex_);
    return {{"status", draining_ ? "draining" : "ok"}, {"model", model_.id}, {"requests_in_flight", slots_},
            {"requests", requests_}, {"client_disconnects", disconnects_.load()},
            {"engine", {{"running", e.running}, {"waiting", e.waiting}, {"steps", e.steps}, {"reserved_kv_bytes", e.reserved_bytes},
                        {"prefix_hits", e.prefix_hits}, {"prefix_cache_bytes", e.prefix_cache_bytes}}}};
  }

  static void reply_json(httplib::Response& res, const nlohmann::json& body) {
    res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
  }
  static void reply_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    if (e.status == 429 || e.status == 503) res.set_header("Retry-After", "1");
    reply_json(res, e.body());
  }
  /// httplib's own refusals (no such route, a body over the limit, a malformed request) get OpenAI's error object too.
  static void fill_error_body(const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    // httplib holds a form-encoded body (curl -d without a Content-Type) to 8 KiB, whatever the server's limit.
    const bool form = req.get_header_value("Content-Type").starts_with("application/x-www-form-urlencoded");
    const char* message = res.status == 404 ? "no such route (lmdecode-serve: POST /v1/completions, POST /v1/chat/completions, "
                                              "GET /v1/models, GET /health)"
                          : res.status == 413 && form ? "a form-encoded body is limited to 8 KiB: send the JSON with "
                                                        "'Content-Type: application/json'"
                          : res.status == 413 ? "the request body is over this server's limit (--max-body-bytes)"
                                              : "the request could not be read as HTTP";
    reply_json(res, ApiError::error_body(message, res.status >= 500 ? "server_error" : "invalid_request_error"));
  }

  const ServedModel model_;
  Engine& engine_;
  const ServerOptions options_;
  std::mutex mutex_;
  std::condition_variable idle_;
  std::map<uint64_t, lmdecode::RequestHandle> handles_;  // the submitted requests that hold a slot
  int64_t slots_ = 0;
  uint64_t requests_ = 0;
  bool draining_ = false, cancelling_ = false;
  std::atomic<int64_t> disconnects_{0};
};

}  // namespace lmdecode_serve
