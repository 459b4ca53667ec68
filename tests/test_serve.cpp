// lmdecode-serve end to end, through a real HTTP client on the loopback: the endpoints and their
// errors, the answers against generate() (lmdecode-generate --json on the same flags), streamed
// against whole, the chat template, a client that goes away, SIGTERM, and a load of concurrent
// clients (good, streamed, cancelled and malformed requests) with every good answer equal to its
// solo run and the server's memory flat. The model is the demo checkpoint (fortunes-llama).

#include <catch2/catch.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <lmdecode/text/tokenizer.hpp>

#include "support/run_command.hpp"
#include "support/server_process.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::string kModel = std::string(LMDECODE_TEST_DATA_DIR) + "/hf-reference/fortunes-llama";
const std::string kPrompt = "The secret of a happy life is";
const std::string kEosPrompt = "Q: What is the meaning of life?";  // greedy ends with EOS after 23 tokens

lmdecode_test::ServerProcess start_server(std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--model", kModel, "--port", "0", "--threads", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return lmdecode_test::ServerProcess(LMDECODE_SERVE_BIN, args);
}

httplib::Client client(const lmdecode_test::ServerProcess& server) {
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(120, 0);
  return c;
}

struct Reply {
  int status = 0;
  json body;
  std::string raw;
  std::string retry_after;
};

/// Posts `body` as it is (malformed JSON included).
Reply post_raw(const lmdecode_test::ServerProcess& server, const std::string& path, const std::string& body, httplib::Headers headers = {}) {
  auto c = client(server);
  auto r = c.Post(path.c_str(), headers, body, "application/json");
  if (!r) return {-1, nullptr, httplib::to_string(r.error()), ""};
  const bool sse = r->body.rfind("data: ", 0) == 0;
  return {r->status, sse ? json() : json::parse(r->body, nullptr, false), r->body, r->get_header_value("Retry-After")};
}
Reply post(const lmdecode_test::ServerProcess& server, const std::string& path, const json& body, httplib::Headers headers = {}) {
  return post_raw(server, path, body.dump(), std::move(headers));
}

/// Posts `body` and hands each piece of the (streamed) answer to `receive`; false from it hangs up.
void post_receiving(const lmdecode_test::ServerProcess& server, const std::string& path, const json& body,
                    std::function<bool(const char*, size_t)> receive) {
  auto c = client(server);
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) { return receive(data, n); };
  c.send(req);
}

/// The events of a server-sent stream (the JSON of each "data:" line but the last), and whether "[DONE]" ended it.
struct Events {
  std::vector<json> chunks;
  bool done = false;
};
Events events_of(const std::string& body) {
  Events e;
  size_t at = 0;
  while (at < body.size()) {
    const size_t end = body.find("\n\n", at);
    const std::string event = body.substr(at, end == std::string::npos ? std::string::npos : end - at);
    at = end == std::string::npos ? body.size() : end + 2;
    REQUIRE(event.rfind("data: ", 0) == 0);
    const std::string data = event.substr(6);
    REQUIRE_FALSE(e.done);  // nothing after [DONE]
    if (data == "[DONE]") e.done = true;
    else e.chunks.push_back(json::parse(data));
  }
  return e;
}

/// A stream put together: each choice's text (deltas or texts joined), finish reason and token ids.
struct Choice {
  std::string text;
  std::string finish_reason;
  std::vector<int64_t> token_ids;
};
std::vector<Choice> joined_choices(const Events& events, bool chat) {
  std::vector<Choice> choices;
  for (const auto& chunk : events.chunks)
    for (const auto& c : chunk["choices"]) {
      const size_t i = c["index"];
      if (choices.size() <= i) choices.resize(i + 1);
      choices[i].text += chat ? c["delta"].value("content", "") : c["text"].get<std::string>();
      if (!c["finish_reason"].is_null()) choices[i].finish_reason = c["finish_reason"];
      if (c.contains("token_ids")) choices[i].token_ids = c["token_ids"].get<std::vector<int64_t>>();
    }
  return choices;
}
std::vector<Choice> whole_choices(const json& body, bool chat) {
  std::vector<Choice> choices;
  for (const auto& c : body["choices"])
    choices.push_back({chat ? c["message"]["content"].get<std::string>() : c["text"].get<std::string>(), c["finish_reason"],
                       c.contains("token_ids") ? c["token_ids"].get<std::vector<int64_t>>() : std::vector<int64_t>{}});
  return choices;
}

/// A request and the lmdecode-generate flags that ask generate() for the same.
struct Case {
  const char* name;
  json fields;
  std::string flags;
};
std::vector<Case> cases() {
  return {
      {"greedy", {{"max_tokens", 24}}, "--max-new-tokens 24"},
      {"greedy to EOS", {{"max_tokens", 200}, {"prompt", kEosPrompt}}, "--max-new-tokens 200"},
      {"sampling, two choices", {{"max_tokens", 20}, {"temperature", 0.8}, {"top_p", 0.9}, {"seed", 7}, {"n", 2}},
       "--max-new-tokens 20 --do-sample --temperature 0.8 --top-p 0.9 --seed 7 --num-return-sequences 2"},
      {"beam search, two choices", {{"max_tokens", 16}, {"num_beams", 4}, {"n", 2}, {"length_penalty", 0.5}, {"early_stopping", true}},
       "--max-new-tokens 16 --num-beams 4 --num-return-sequences 2 --length-penalty 0.5 --early-stopping true"},
      {"stop string", {{"max_tokens", 40}, {"stop", json::array({" a"})}}, "--max-new-tokens 40 --stop-string ' a'"},
  };
}

/// generate()'s sequences for `flags` on `prompt` (lmdecode-generate --json).
std::vector<std::vector<int64_t>> generate_sequences(const std::string& prompt, const std::string& flags) {
  const auto run = lmdecode_test::run_command(std::string(LMDECODE_GENERATE_BIN) + " --model " + kModel + " --threads 1 --json --prompt '" +
                                              prompt + "' " + flags + " 2>/dev/null");
  REQUIRE(run.status == 0);
  return json::parse(run.out)["sequences"].get<std::vector<std::vector<int64_t>>>();
}

/// The text OpenAI's answer holds for `tokens`: special tokens left out, cut before the first stop.
std::string expected_text(const std::vector<int64_t>& tokens, const json& stops) {
  static const auto tokenizer = lmdecode::Tokenizer::from_file(kModel + "/tokenizer.json");
  std::string text = tokenizer.decode(tokens, /*skip_special_tokens=*/true);
  for (const auto& stop : stops) text = text.substr(0, text.find(stop.get<std::string>()));
  return text;
}

json completion(const json& fields, bool stream) {
  json body = fields;
  if (!body.contains("prompt")) body["prompt"] = kPrompt;
  body["stream"] = stream;
  body["return_token_ids"] = true;
  return body;
}

}  // namespace

TEST_CASE("lmdecode-serve answers /v1/completions as generate() does, streamed or whole", "[serve]") {
  auto server = start_server();
  for (const auto& c : cases()) {
    INFO(c.name);
    const auto expected = generate_sequences(c.fields.value("prompt", kPrompt), c.flags);
    const auto whole = post(server, "/v1/completions", completion(c.fields, false));
    REQUIRE(whole.status == 200);
    const auto streamed_body = post(server, "/v1/completions", completion(c.fields, true));
    REQUIRE(streamed_body.status == 200);
    const auto events = events_of(streamed_body.raw);
    CHECK(events.done);
    const auto answers = whole_choices(whole.body, false);
    const auto streamed = joined_choices(events, false);
    REQUIRE(answers.size() == expected.size());
    REQUIRE(streamed.size() == expected.size());
    int64_t tokens = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      INFO("choice " << i);
      CHECK(answers[i].token_ids == expected[i]);
      CHECK(answers[i].text == expected_text(expected[i], c.fields.value("stop", json::array())));
      CHECK(streamed[i].text == answers[i].text);
      CHECK(streamed[i].token_ids == answers[i].token_ids);
      CHECK(streamed[i].finish_reason == answers[i].finish_reason);
      tokens += static_cast<int64_t>(expected[i].size());
    }
    CHECK(whole.body["usage"]["completion_tokens"] == tokens);
    CHECK(whole.body["object"] == "text_completion");
  }
  // Finish reasons as OpenAI names them.
  CHECK(whole_choices(post(server, "/v1/completions", completion({{"max_tokens", 5}}, false)).body, false)[0].finish_reason == "length");
  CHECK(whole_choices(post(server, "/v1/completions", completion({{"max_tokens", 40}, {"stop", " a"}}, false)).body, false)[0].finish_reason == "stop");
  CHECK(whole_choices(post(server, "/v1/completions", completion({{"max_tokens", 40}, {"prompt", kEosPrompt}}, false)).body, false)[0].finish_reason == "stop");
}

TEST_CASE("lmdecode-serve: chat completions render the chat template (ChatML here), streamed as deltas", "[serve]") {
  auto server = start_server();
  const json messages = json::array({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Tell me a fortune"}}});
  const std::string chatml = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nTell me a fortune<|im_end|>\n<|im_start|>assistant\n";
  const auto whole = post(server, "/v1/chat/completions", json{{"messages", messages}, {"max_tokens", 24}, {"return_token_ids", true}});
  REQUIRE(whole.status == 200);
  CHECK(whole.body["object"] == "chat.completion");
  CHECK(whole.body["choices"][0]["message"]["role"] == "assistant");
  const auto as_completion = post(server, "/v1/completions", json{{"prompt", chatml}, {"max_tokens", 24}, {"return_token_ids", true}});
  CHECK(whole_choices(whole.body, true)[0].token_ids == whole_choices(as_completion.body, false)[0].token_ids);
  CHECK(whole.body["usage"]["prompt_tokens"] == as_completion.body["usage"]["prompt_tokens"]);

  const auto streamed = post(server, "/v1/chat/completions",
                             json{{"messages", messages}, {"max_tokens", 24}, {"stream", true}, {"stream_options", {{"include_usage", true}}}});
  const auto events = events_of(streamed.raw);
  REQUIRE(events.done);
  REQUIRE(events.chunks.size() >= 3);
  CHECK(events.chunks.front()["object"] == "chat.completion.chunk");
  CHECK(events.chunks.front()["choices"][0]["delta"]["role"] == "assistant");
  CHECK(joined_choices(events, true)[0].text == whole_choices(whole.body, true)[0].text);
  CHECK(events.chunks.back()["choices"].empty());
  CHECK(events.chunks.back()["usage"] == whole.body["usage"]);
  // Content as an array of text parts is the same message.
  const json parts = json::array({{{"role", "system"}, {"content", "Be brief."}},
                                  {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "Tell me "}}, {{"type", "text"}, {"text", "a fortune"}}})}}});
  CHECK(whole_choices(post(server, "/v1/chat/completions", json{{"messages", parts}, {"max_tokens", 24}}).body, true)[0].text ==
        whole_choices(whole.body, true)[0].text);
}

TEST_CASE("lmdecode-serve: log-probs, models, health and the API key", "[serve]") {
  auto server = start_server({"--api-key", "sesame", "--model-name", "fortunes"});
  const httplib::Headers key{{"Authorization", "Bearer sesame"}};
  CHECK(post(server, "/v1/completions", completion({{"max_tokens", 4}}, false)).status == 401);
  const auto wrong = post(server, "/v1/completions", completion({{"max_tokens", 4}}, false), {{"Authorization", "Bearer nope"}});
  CHECK(wrong.status == 401);
  CHECK(wrong.body["error"]["code"] == "invalid_api_key");
  auto c = client(server);
  CHECK(c.Get("/v1/models")->status == 401);
  const auto models = c.Get("/v1/models", key);
  REQUIRE(models->status == 200);
  CHECK(json::parse(models->body)["data"][0]["id"] == "fortunes");
  const auto health = c.Get("/health");  // no key needed
  REQUIRE(health->status == 200);
  CHECK(json::parse(health->body)["status"] == "ok");

  const auto with_logprobs = post(server, "/v1/completions", completion({{"max_tokens", 6}, {"logprobs", 3}, {"model", "fortunes"}}, false), key);
  REQUIRE(with_logprobs.status == 200);
  const auto& lp = with_logprobs.body["choices"][0]["logprobs"];
  REQUIRE(lp["tokens"].size() == 6);
  for (size_t t = 0; t < 6; ++t) {
    REQUIRE(lp["top_logprobs"][t].size() == 3);
    double best = -1e9;
    for (const auto& [token, logprob] : lp["top_logprobs"][t].items()) best = std::max(best, logprob.get<double>());
    CHECK(lp["token_logprobs"][t].get<double>() == Approx(best).margin(1e-5));  // greedy takes the most likely token
  }
  const auto chat = post(server, "/v1/chat/completions",
                         json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 3}, {"logprobs", true}, {"top_logprobs", 2}}, key);
  REQUIRE(chat.status == 200);
  const auto& content = chat.body["choices"][0]["logprobs"]["content"];
  REQUIRE(content.size() == 3);
  CHECK(content[0]["top_logprobs"].size() == 2);
  CHECK(content[0]["top_logprobs"][0]["token"] == content[0]["token"]);
  CHECK(post(server, "/v1/completions", completion({{"max_tokens", 4}, {"model", "gpt-4"}}, false), key).status == 404);
}

TEST_CASE("lmdecode-serve: bad requests get OpenAI errors with the right status, and the server goes on", "[serve]") {
  // 1 MiB of KV cache is 256 positions of this model (4 layers x keys and values x 4 heads x 32 x 4 bytes a position).
  auto server = start_server({"--max-body-bytes", "65536", "--kv-budget", "1048576"});
  const auto refused = [&](const std::string& body, int status, const std::string& param = "") {
    INFO(body);
    const auto r = post_raw(server, "/v1/completions", body);
    CHECK(r.status == status);
    REQUIRE(r.body.is_object());
    CHECK(r.body["error"]["message"].is_string());
    if (!param.empty()) CHECK(r.body["error"]["param"] == param);
  };
  refused("{not json", 400);
  refused("[1, 2]", 400);
  refused(R"({"prompt": 5})", 400, "prompt");
  refused(R"({"prompt": "hi", "max_tokens": "ten"})", 400, "max_tokens");
  refused(R"({"prompt": "hi", "max_tokens": -1})", 400, "max_tokens");
  refused(R"({"prompt": "hi", "max_tokens": 0})", 400, "max_tokens");
  refused(R"({"prompt": "hi", "max_tokens": 1000000000000})", 400, "max_tokens");
  refused(R"({"prompt": "hi", "n": 17, "temperature": 1})", 400, "n");
  refused(R"({"prompt": "hi", "num_beams": 99})", 400, "num_beams");
  refused(R"({"prompt": "hi", "n": 3})", 400);  // greedy gives one sequence
  refused(R"({"prompt": "hi", "temperature": 3})", 400, "temperature");
  refused(R"({"prompt": "hi", "stop": ""})", 400, "stop");
  refused(R"({"prompt": "hi", "max_token": 5})", 400, "max_token");
  refused(R"({"prompt": "hi", "presence_penalty": 1})", 400, "presence_penalty");
  refused(R"({"prompt": [1, 2, 999999]})", 400, "prompt");
  refused(R"({"prompt": "hi", "model": "nope"})", 404, "model");
  json long_prompt = {{"prompt", std::vector<int64_t>(600, 5)}};  // the model has 512 positions
  refused(long_prompt.dump(), 400, "prompt");
  refused(json{{"prompt", std::string(70000, 'a')}}.dump(), 413);
  const auto never_fits = post(server, "/v1/completions", completion({{"max_tokens", 400}}, false));
  CHECK(never_fits.status == 400);
  CHECK_THAT(never_fits.body["error"]["message"].get<std::string>(), Catch::Contains("kv_budget_bytes"));
  const auto chat_refused = post_raw(server, "/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "hi"}]})");
  CHECK(chat_refused.status == 400);
  CHECK(post_raw(server, "/v1/chat/completions", R"({"messages": []})").status == 400);
  auto c = client(server);
  const auto missing = c.Get("/v1/nothing");
  CHECK(missing->status == 404);
  CHECK(json::parse(missing->body)["error"]["message"].is_string());
  // Still serving.
  CHECK(post(server, "/v1/completions", completion({{"max_tokens", 4}}, false)).status == 200);
}

TEST_CASE("lmdecode-serve: beyond --max-concurrent a request gets 429 with Retry-After", "[serve]") {
  auto server = start_server({"--max-concurrent", "1"});
  std::atomic<bool> first_started{false};
  std::thread slow([&] {
    post_receiving(server, "/v1/completions", completion({{"max_tokens", 400}, {"min_tokens", 400}, {"num_beams", 4}}, true),
                   [&](const char*, size_t) { return first_started = true; });
  });
  while (!first_started) std::this_thread::sleep_for(5ms);
  const auto busy = post(server, "/v1/completions", completion({{"max_tokens", 4}}, false));
  CHECK(busy.status == 429);
  CHECK(busy.retry_after == "1");
  CHECK(busy.body["error"]["type"] == "rate_limit_error");
  slow.join();
  CHECK(post(server, "/v1/completions", completion({{"max_tokens", 4}}, false)).status == 200);
}

TEST_CASE("lmdecode-serve: a client that goes away mid-stream cancels its request", "[serve]") {
  auto server = start_server();
  int chunks = 0;
  post_receiving(server, "/v1/completions", completion({{"max_tokens", 480}, {"min_tokens", 480}}, true),
                 [&](const char*, size_t) { return ++chunks < 3; });  // then hang up
  json health;
  for (int i = 0; i < 200; ++i) {
    health = json::parse(client(server).Get("/health")->body);
    if (health["requests_in_flight"] == 0 && health["engine"]["running"] == 0) break;
    std::this_thread::sleep_for(20ms);
  }
  CHECK(health["requests_in_flight"] == 0);
  CHECK(health["engine"]["running"] == 0);
  CHECK(health["client_disconnects"] == 1);
  CHECK(health["engine"]["steps"].get<int64_t>() < 400);  // it did not run its 480 steps
}

TEST_CASE("lmdecode-serve: SIGTERM ends the running requests within the grace period and exits 0", "[serve]") {
  auto server = start_server({"--grace-seconds", "0.5"});
  std::atomic<bool> streaming{false};
  std::string body;
  std::thread reader([&] {
    post_receiving(server, "/v1/completions", completion({{"max_tokens", 480}, {"min_tokens", 480}, {"num_beams", 4}}, true),
                   [&](const char* data, size_t n) {
                     body.append(data, n);
                     return streaming = true;
                   });
  });
  while (!streaming) std::this_thread::sleep_for(5ms);
  server.signal(SIGTERM);
  json health = json::object();
  for (int i = 0; i < 100 && health.value("status", "") != "draining"; ++i, std::this_thread::sleep_for(5ms))
    health = json::parse(client(server).Get("/health")->body);
  CHECK(health["status"] == "draining");
  const auto refused = post(server, "/v1/completions", completion({{"max_tokens", 4}}, false));
  CHECK(refused.status == 503);  // no new requests while the running ones end
  CHECK(refused.retry_after == "1");
  const auto code = server.wait_exit(20s);
  reader.join();
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  const auto events = events_of(body);
  CHECK(events.done);  // the cancelled stream was still ended properly
  CHECK(joined_choices(events, false)[0].finish_reason == "cancelled");
  INFO(server.log());
  CHECK(server.log().find("SIGTERM") != std::string::npos);
}

TEST_CASE("lmdecode-serve under load: concurrent clients, every good answer its solo run's, memory flat", "[serve]") {
  // More slots than clients: a client that hung up may hold its slot until its next step, after it sent its next request.
  auto server = start_server({"--max-concurrent", "16"});
  const std::vector<json> requests = {
      completion({{"max_tokens", 16}}, false),
      completion({{"max_tokens", 12}, {"temperature", 0.9}, {"seed", 3}}, false),
      completion({{"max_tokens", 10}, {"num_beams", 3}}, false),
      completion({{"max_tokens", 20}, {"stop", " the"}}, false),
      json{{"prompt", "Love is"}, {"max_tokens", 14}, {"return_token_ids", true}},
      json{{"messages", {{{"role", "user"}, {"content", "A fortune, please"}}}}, {"max_tokens", 12}, {"return_token_ids", true}},
  };
  const auto path_of = [](const json& r) { return r.contains("messages") ? "/v1/chat/completions" : "/v1/completions"; };
  std::vector<std::string> solo;  // each request's text, run alone
  for (const auto& r : requests) {
    const auto reply = post(server, path_of(r), r);
    REQUIRE(reply.status == 200);
    solo.push_back(reply.body["choices"][0].contains("message") ? reply.body["choices"][0]["message"]["content"] : reply.body["choices"][0]["text"]);
  }
  const auto load = [&](int total, int seed) {
    std::atomic<int> next{0};
    std::mutex failures_mutex;
    std::vector<std::string> failures;
    std::vector<std::thread> clients;
    for (int t = 0; t < 8; ++t)
      clients.emplace_back([&, t] {
        std::mt19937 random(static_cast<unsigned>(seed * 100 + t));
        for (int k; (k = next++) < total;) {
          const size_t which = random() % requests.size();
          const int kind = static_cast<int>(random() % 10);  // 0-3 whole, 4-7 streamed, 8 cancelled, 9 malformed
          json r = requests[which];
          std::string problem;
          if (kind == 9) {
            const auto reply = post_raw(server, "/v1/completions", R"({"prompt": "hi", "max_tokens": "many"})");
            if (reply.status != 400) problem = "malformed request got " + std::to_string(reply.status);
          } else if (kind == 8) {
            r["stream"] = true;
            post_receiving(server, path_of(r), r, [](const char*, size_t) { return false; });
          } else {
            r["stream"] = kind >= 4;
            const auto reply = post(server, path_of(r), r);
            std::string text;
            if (reply.status == 200 && kind >= 4) text = joined_choices(events_of(reply.raw), r.contains("messages"))[0].text;
            else if (reply.status == 200) text = whole_choices(reply.body, r.contains("messages"))[0].text;
            if (reply.status != 200) problem = "status " + std::to_string(reply.status) + ": " + reply.raw;
            else if (text != solo[which]) problem = "request " + std::to_string(which) + " gave \"" + text + "\", alone \"" + solo[which] + "\"";
          }
          if (!problem.empty()) {
            std::lock_guard lock(failures_mutex);
            failures.push_back(problem);
          }
        }
      });
    for (auto& c : clients) c.join();
    return failures;
  };
  CHECK(load(200, 1).empty());  // warms up: the threads, the allocator's arenas, the prefix cache
  const long before = server.rss_kib();
  const auto started = std::chrono::steady_clock::now();
  const auto failures = load(200, 2);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const long after = server.rss_kib();
  for (const auto& f : failures) FAIL_CHECK(f);
  WARN("200 requests by 8 clients in " << seconds << " s; server RSS " << before / 1024 << " MiB before, " << after / 1024 << " MiB after");
#if !LMDECODE_SANITIZED  // ASan's quarantine keeps freed memory on purpose
  CHECK(after - before < 4 * 1024);
#endif
  json health;
  for (int i = 0; i < 100; ++i) {  // the cancelled requests end at their next step
    health = json::parse(client(server).Get("/health")->body);
    if (health["requests_in_flight"] == 0 && health["engine"]["running"] == 0) break;
    std::this_thread::sleep_for(20ms);
  }
  CHECK(health["requests_in_flight"] == 0);
  CHECK(health["engine"]["running"] == 0);
  CHECK(health["engine"]["waiting"] == 0);
}
