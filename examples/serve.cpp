// lmdecode-serve: an OpenAI-compatible HTTP server on a checkpoint folder. Every request shares the
// steps of one lmdecode::Engine (continuous batching, a prefix cache, a KV memory budget); the
// routes and their JSON are in serve/openai_server.hpp, a request's fields in
// serve/completion_request.hpp.
//
//   lmdecode-serve --model DIR [--host 127.0.0.1] [--port 8080] [--threads N] [--kv-budget BYTES]
//                  [--max-concurrent N] [--api-key KEY]
//   curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \
//        -d '{"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 32}'
//
// It binds 127.0.0.1 unless told otherwise. SIGINT or SIGTERM: it turns new requests away (503),
// gives the running ones --grace-seconds to end, cancels the rest, stops listening and exits 0. --port 0 takes a free port; the
// line "lmdecode-serve: listening on http://HOST:PORT" on stdout says which.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <httplib.h>

#include <lmdecode/lmdecode.hpp>
#include <lmdecode/text/chat_template.hpp>
#include <lmdecode/text/tokenizer.hpp>

#include "cli/program_flags.hpp"
#include "serve/openai_server.hpp"

namespace lmdecode_cli::serve_program {
namespace {

struct ServeFlags {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::optional<int64_t> kv_budget;
  int64_t max_concurrent = 16;
  std::string api_key;
  std::string model_name;  // default: the folder's name
  size_t max_body_bytes = size_t{8} << 20;
  double grace_seconds = 10;
};

/// SIGINT and SIGTERM become a byte on this pipe, read by the thread that shuts the server down (a
/// handler, not a blocked mask: OpenBLAS starts its threads before main, with every signal open).
int shutdown_pipe[2] = {-1, -1};

void on_shutdown_signal(int number) {
  const char byte = static_cast<char>(number);
  [[maybe_unused]] const ssize_t written = write(shutdown_pipe[1], &byte, 1);
}

void catch_shutdown_signals() {
  if (pipe2(shutdown_pipe, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "lmdecode: pipe2");
  struct sigaction action {};
  action.sa_handler = on_shutdown_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

/// Waits for SIGINT or SIGTERM; the signal's number.
int wait_for_shutdown_signal() {
  char byte = 0;
  while (read(shutdown_pipe[0], &byte, 1) < 0 && errno == EINTR) {
  }
  return byte;
}

/// A folder's own name ("Qwen2.5-0.5B" for "models/Qwen2.5-0.5B/"): the served model's default id.
std::string folder_name(const std::string& folder) {
  auto path = std::filesystem::absolute(folder).lexically_normal();
  if (path.filename().empty()) path = path.parent_path();
  return path.filename().string();
}

lmdecode_serve::ServedModel served_model(const std::string& folder, const std::string& name, const lmdecode::PretrainedModel& model,
                                         const lmdecode::Tokenizer& tokenizer, const lmdecode::ChatTemplate& chat_template) {
  lmdecode_cli::check_tokenizer_fits(tokenizer.vocab_size(), model.config());
  return {name.empty() ? folder_name(folder) : name,
          tokenizer,
          chat_template,
          lmdecode::load_checkpoint_generation_config(folder, model.config()),
          model.config().max_position_embeddings,
          model.config().vocab_size,
          tokenizer.token_texts()};
}

int run(const ServeFlags& f, const lmdecode_cli::ModelFlags& m) {
  catch_shutdown_signals();
  signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is a failed write, not the end of the server
  m.apply_threads();
  lmdecode::check_model_folder(m.folder);
  const auto tokenizer = lmdecode::Tokenizer::from_file(std::filesystem::path(m.folder) / "tokenizer.json");
  const auto chat_template = lmdecode::ChatTemplate::for_model(m.folder);
  auto model = lmdecode::load_pretrained(m.folder, m.load_options());
  lmdecode::EngineOptions engine_options;
  engine_options.max_running_requests = f.max_concurrent;
  engine_options.kv_budget_bytes = f.kv_budget;
  lmdecode_serve::Engine engine(*model, engine_options);
  lmdecode_serve::OpenAIServer server(served_model(m.folder, f.model_name, *model, tokenizer, chat_template), engine,
                                      {.max_concurrent = f.max_concurrent, .api_key = f.api_key});

  httplib::Server http;
  const size_t workers = static_cast<size_t>(f.max_concurrent) + 8;  // so that a full server still answers 429 at once
  http.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  http.set_payload_max_length(f.max_body_bytes);
  server.attach(http);
  const int port = f.port == 0 ? http.bind_to_any_port(f.host) : (http.bind_to_port(f.host, f.port) ? f.port : -1);
  lmdecode::detail::check(port > 0, "cannot listen on {}:{} (in use, or not an address of this machine)", f.host, f.port);
  fmt::print("lmdecode-serve: listening on http://{}:{} (model {}, chat template: {}, {})\n", f.host, port, model->config().model_type,
             chat_template.origin(), lmdecode_cli::plural(at::get_num_threads(), "thread"));
  std::fflush(stdout);

  std::thread shutdown([&] {
    const int taken = wait_for_shutdown_signal();
    std::fprintf(stderr, "lmdecode-serve: %s: no new requests; the running ones get %.0f s\n", taken == SIGINT ? "SIGINT" : "SIGTERM",
                 f.grace_seconds);
    // Draining first: httplib's stop() cuts the streams that are still being written.
    server.drain(std::chrono::milliseconds(static_cast<int64_t>(f.grace_seconds * 1000)));
    http.stop();
  });
  http.listen_after_bind();
  shutdown.join();
  std::fprintf(stderr, "lmdecode-serve: stopped\n");
  return 0;
}

}  // namespace

// lmdecode-serve's main (program_main.cpp).
int program_main(int argc, char** argv) {
  CLI::App app{"lmdecode-serve: an OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions, /v1/models, "
               "/health) on a checkpoint folder holding tokenizer.json; requests share each step of one engine",
               "lmdecode-serve"};
  ServeFlags f;
  lmdecode_cli::ModelFlags model_flags(app);
  app.add_option("--host", f.host, "Address to listen on (default 127.0.0.1: this machine only)");
  app.add_option("--port", f.port, "Port (0: any free one, printed)")->check(CLI::Range(0, 65535));
  app.add_option("--kv-budget", f.kv_budget, "The most bytes of KV cache all requests hold together (default: no limit)")
      ->check(CLI::Range(int64_t{1}, INT64_MAX));
  app.add_option("--max-concurrent", f.max_concurrent, "Requests taken at once; more get 429 with Retry-After")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  app.add_option("--api-key", f.api_key, "Ask every /v1/ request for 'Authorization: Bearer KEY'");
  app.add_option("--model-name", f.model_name, "The model's id in requests and /v1/models (default: the folder's name)");
  app.add_option("--max-body-bytes", f.max_body_bytes, "The largest request body; a larger one gets 413")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  app.add_option("--grace-seconds", f.grace_seconds, "On SIGINT or SIGTERM, how long the running requests may take before they are cancelled")
      ->check(CLI::Range(0.0, 3600.0));
  CLI11_PARSE(app, argc, argv);
  return lmdecode_cli::report_failures("lmdecode-serve", [&] { return run(f, model_flags); });
}

}  // namespace lmdecode_cli::serve_program
