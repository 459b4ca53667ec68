// lmdecode-chat: a multi-turn chat with a checkpoint. Each stdin line (typed or piped) is a user
// turn; the conversation is rendered with the checkpoint's chat template (tokenizer_config.json or
// chat_template.jinja; ChatML where it has none) and the reply streamed as text. The KV cache is kept
// between turns (lmdecode::Conversation): a turn prefills only what follows what the cache holds.
// Defaults come from the checkpoint's generation_config.json.
//
// On a terminal it shows a prompt ("> ") and labels the replies; piped, it prints the replies only.
// Commands: /quit, /reset, /system TEXT, /help. Ctrl-C stops the reply being written (the
// conversation keeps what was written); a second Ctrl-C at the prompt quits. A turn that fails (a
// template that refuses it, the context full, memory) prints why, and the chat goes on.
//
//   lmdecode-chat --model Qwen2.5-0.5B-Instruct [--system TEXT] [--max-new-tokens N] [--do-sample ...]
// (a reply is one sequence: greedy or sampling; --max-new-tokens defaults to the checkpoint's, else 256)

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include "program_flags.hpp"

#include <lmdecode/lmdecode.hpp>
#include <lmdecode/text/chat_template.hpp>
#include <lmdecode/text/tokenizer.hpp>

namespace lmdecode_cli::chat_program {
namespace {

/// New tokens a reply gets when the checkpoint sets no length (neither max_new_tokens nor max_length).
constexpr int64_t kDefaultReplyTokens = 256;
/// The longest line taken as a turn; a longer one is refused whole (the rest of it is read and dropped).
constexpr size_t kMaxLineBytes = size_t{16} << 20;
/// The share of the model's positions past which every turn warns that the context is running out.
constexpr double kContextWarningShare = 0.9;

constexpr const char* kHelp =
    "Commands (a line that starts with / and is not one of them is refused; start it with // to send a / line):\n"
    "  /quit          leave (so do Ctrl-D and a second Ctrl-C at the prompt)\n"
    "  /reset         start the conversation over (the system prompt stays)\n"
    "  /system TEXT   set the system prompt, /system alone clears it (the conversation so far stays)\n"
    "  /help          this text\n"
    "Ctrl-C while a reply is written stops it; the conversation keeps what was written.\n";

volatile std::sig_atomic_t interrupts = 0;  // Ctrl-Cs since the last forget_interrupts()
int interrupt_pipe[2] = {-1, -1};            // a byte a Ctrl-C: wakes the prompt whichever thread took the signal

void count_interrupt(int) {
  interrupts = interrupts + 1;
  const char byte = 0;
  [[maybe_unused]] const ssize_t written = write(interrupt_pipe[1], &byte, 1);
}

/// Ctrl-C (SIGINT) is counted instead of ending the program: a reply checks the count, the prompt
/// polls the pipe (libtorch's and OpenBLAS's threads may be the ones the signal interrupts).
void catch_interrupts() {
  if (pipe2(interrupt_pipe, O_NONBLOCK | O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "lmdecode: pipe2");
  struct sigaction action {};
  action.sa_handler = count_interrupt;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
}

/// Forgets the Ctrl-Cs so far (those a reply has answered).
void forget_interrupts() {
  char drained[64];
  while (read(interrupt_pipe[0], drained, sizeof drained) > 0) {
  }
  interrupts = 0;
}

/// Lines of stdin; a Ctrl-C while it waits for one comes back as an event.
class LineReader {
 public:
  enum class Event { line, too_long, interrupted, end };

  Event next(std::string& line) {
    bool too_long = false;
    for (;;) {
      if (const size_t newline = buffer_.find('\n', scanned_); newline != std::string::npos) {
        line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        scanned_ = 0;
        return too_long ? Event::too_long : Event::line;
      }
      scanned_ = buffer_.size();
      if (buffer_.size() > kMaxLineBytes) {
        too_long = true;
        buffer_.clear();
        scanned_ = 0;
      }
      if (interrupted()) return Event::interrupted;
      char chunk[1 << 16];
      const ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
      if (n < 0) throw std::system_error(errno, std::generic_category(), "lmdecode: reading stdin");
      if (n == 0) {
        if (buffer_.empty() && !too_long) return Event::end;
        line = std::move(buffer_);
        buffer_.clear();
        scanned_ = 0;
        return too_long ? Event::too_long : Event::line;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  /// Waits until stdin has bytes (or ends) or a Ctrl-C comes; true for a Ctrl-C (forgotten then).
  static bool interrupted() {
    pollfd ready[2] = {{STDIN_FILENO, POLLIN, 0}, {interrupt_pipe[0], POLLIN, 0}};
    while (poll(ready, 2, -1) < 0)
      if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "lmdecode: waiting for stdin");
    if (!(ready[1].revents & POLLIN)) return false;
    forget_interrupts();
    return true;
  }

  std::string buffer_;
  size_t scanned_ = 0;  // bytes of buffer_ known to hold no newline
};

bool blank(const std::string& line) {
  return std::all_of(line.begin(), line.end(), [](unsigned char c) { return std::isspace(c); });
}

std::string lowercase(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

/// Prints a bracketed note on stderr ("[reset]"), after what stdout holds so far.
template <class... Args>
void note(fmt::format_string<Args...> format, Args&&... args) {
  std::fflush(stdout);
  fmt::print(stderr, "[{}]\n", fmt::format(format, std::forward<Args>(args)...));
  std::fflush(stderr);
}

struct Flags {
  std::string tokenizer_path, chat_template_path, system;
};

/// The chat: its messages, the conversation's cache and the REPL over stdin.
class Chat {
 public:
  Chat(lmdecode::PretrainedModel& model, const lmdecode::Tokenizer& tokenizer, lmdecode::ChatTemplate chat_template,
       lmdecode::GenerationConfig config, std::string system, bool terminal)
      : model_(model), tokenizer_(tokenizer), template_(std::move(chat_template)), config_(std::move(config)),
        system_(std::move(system)), terminal_(terminal), conversation_(model) {}

  /// Reads turns and commands until /quit, the end of stdin or a second Ctrl-C at the prompt.
  void run() {
    LineReader reader;
    bool interrupted_at_prompt = false;
    for (std::string line;;) {
      if (terminal_) prompt("> ");
      const auto event = reader.next(line);
      if (event == LineReader::Event::end) break;
      if (event == LineReader::Event::interrupted) {
        if (interrupted_at_prompt) break;
        interrupted_at_prompt = true;
        if (terminal_) prompt("\n");
        note("Ctrl-C again to quit (or /quit, Ctrl-D)");
        continue;
      }
      interrupted_at_prompt = false;
      if (event == LineReader::Event::too_long) note("error: a line over {} MiB was not sent", kMaxLineBytes >> 20);
      else if (!line.empty() && line.back() == '\r') line.pop_back();
      if (event == LineReader::Event::too_long || blank(line)) continue;
      if (line.starts_with("/") && !line.starts_with("//")) {
        if (!command(line)) break;
        continue;
      }
      turn(line.starts_with("//") ? line.substr(1) : line);
    }
    if (terminal_) prompt("\n");
  }

 private:
  void prompt(const char* text) {
    std::fputs(text, stdout);
    std::fflush(stdout);
  }

  /// Runs a /command; false for /quit.
  bool command(const std::string& line) {
    const size_t space = line.find_first_of(" \t");
    const std::string name = lowercase(line.substr(0, space));
    const size_t argument_at = space == std::string::npos ? space : line.find_first_not_of(" \t", space);
    const std::string argument = argument_at == std::string::npos ? "" : line.substr(argument_at);
    if (name == "/system") {
      system_ = argument;
      note("{}", system_.empty() ? "system prompt cleared" : "system prompt set");
      return true;
    }
    if (name != "/quit" && name != "/exit" && name != "/reset" && name != "/help") {
      note("unknown command {}: not sent; /help lists the commands, // starts a line that begins with /", name);
      return true;
    }
    if (!argument.empty()) {
      note("{} takes nothing after it: not sent", name);
      return true;
    }
    if (name == "/help") fmt::print(stderr, "{}", kHelp);
    if (name == "/reset") {
      messages_.clear();
      conversation_.reset();
      note("reset: the conversation starts over");
    }
    return name != "/quit" && name != "/exit";
  }

  /// The messages a turn renders: the system prompt, then the conversation.
  std::vector<lmdecode::ChatMessage> with_system() const {
    std::vector<lmdecode::ChatMessage> all;
    if (!system_.empty()) all.push_back({"system", system_});
    all.insert(all.end(), messages_.begin(), messages_.end());
    return all;
  }

  /// One user turn and its reply; a turn that fails leaves the messages as they were before it (and
  /// the cache empty: the next turn prefills them all).
  void turn(const std::string& text) {
    messages_.push_back({"user", text});
    try {
      reply();
      forget_interrupts();  // a Ctrl-C that stopped the reply is spent
    } catch (const c10::Error& e) {
      fail(std::string("libtorch: ") + e.what_without_backtrace());
    } catch (const std::bad_alloc&) {
      fail("out of memory");
    } catch (const std::exception& e) {
      fail(e.what());
    }
  }

  void fail(const std::string& why) {
    messages_.pop_back();
    conversation_.reset();  // a reply cut short by an error may have left the cache part-written
    std::fputs("\n", stdout);
    note("error: {}; the turn was not kept, the chat goes on", why);
  }

  void reply() {
    const auto history = tokenizer_.encode(template_.render(with_system()));
    const int64_t context = model_.config().max_position_embeddings;
    const auto used = static_cast<int64_t>(history.size());
    lmdecode::detail::check(context == 0 || used < context,
                            "this turn's prompt is {}, and the model has {}: /reset starts over",
                            lmdecode_cli::plural(used, "token"), lmdecode_cli::plural(context, "position"));
    auto config = config_;
    if (context) {  // the reply ends where the model's positions do
      config.max_new_tokens = std::min(config.resolved_max_new_tokens(used), context - used);
      config.min_new_tokens = std::min(config.min_new_tokens, *config.max_new_tokens);
    }
    if (terminal_) prompt("assistant: ");
    lmdecode::Tokenizer::StreamDecoder stream(tokenizer_, /*skip_special_tokens=*/true);
    auto result = conversation_.reply(history, config, [&](lmdecode::StepEvent& e) {
      for (auto id : e.committed[0]) std::fputs(stream.push(id).c_str(), stdout);
      std::fflush(stdout);
      e.stop_requested = interrupts > 0;
    });
    prompt((stream.flush() + "\n").c_str());
    const auto& answer = result.hypotheses[0][0];
    messages_.push_back({"assistant", tokenizer_.decode(answer.tokens, /*skip_special_tokens=*/true)});
    for (const auto& warning : result.warnings) note("warning: {}", warning);
    report(answer, used, context);
  }

  /// The turn's line: new tokens, why the reply ended, what of the `history_tokens` was prefilled,
  /// the context used.
  void report(const lmdecode::Hypothesis& answer, int64_t history_tokens, int64_t context) {
    const bool interrupted = answer.finish_reason == lmdecode::FinishReason::callback;
    const int64_t used = history_tokens + static_cast<int64_t>(answer.tokens.size());
    const std::string of_context = context ? fmt::format("context {} of {} tokens", used, context) : fmt::format("context {} tokens", used);
    note("{}, {}, prefill {} of {} tokens, {}, {}", lmdecode_cli::plural(static_cast<int64_t>(answer.tokens.size()), "new token"),
         interrupted ? "interrupted" : lmdecode::to_string(answer.finish_reason), conversation_.last_prefill_tokens(), history_tokens,
         of_context, lmdecode_cli::plural(at::get_num_threads(), "thread"));
    if (context && static_cast<double>(used) >= kContextWarningShare * static_cast<double>(context))
      note("warning: the context is nearly full ({} of {} tokens): /reset starts over", used, context);
  }

  lmdecode::PretrainedModel& model_;
  const lmdecode::Tokenizer& tokenizer_;
  const lmdecode::ChatTemplate template_;
  const lmdecode::GenerationConfig config_;
  std::string system_;
  const bool terminal_;
  lmdecode::Conversation<lmdecode::PretrainedModel> conversation_;
  std::vector<lmdecode::ChatMessage> messages_;  // the user's turns and the replies
};

/// The checkpoint's defaults for one reply (one sequence; a length where it sets none), then the
/// flags; flags a reply cannot use are an error or a warning.
lmdecode::GenerationConfig chat_config(lmdecode::GenerationConfig c, const lmdecode_cli::GenerationFlags& flags) {
  if (!c.max_new_tokens && !c.max_length) c.max_new_tokens = kDefaultReplyTokens;
  c.num_beams = 1;
  c.num_return_sequences = 1;
  c = flags.apply(std::move(c));
  lmdecode::detail::check(c.num_beams == 1 && c.num_return_sequences == 1 && !c.prompt_lookup_num_tokens && c.use_cache,
                          "lmdecode-chat replies with one sequence, greedy or sampled, on its cache: --num-beams, "
                          "--num-return-sequences, --prompt-lookup-num-tokens and --no-cache are for lmdecode-generate");
  flags.warn_unused("lmdecode-chat", c, /*draft_model=*/false, {"output_scores", "max_matching_ngram_size"});
  return c;
}

int run(const Flags& f, const lmdecode_cli::ModelFlags& m, const lmdecode_cli::GenerationFlags& generation) {
  m.apply_threads();
  lmdecode::check_model_folder(m.folder);
  auto tokenizer = lmdecode::Tokenizer::from_file(f.tokenizer_path.empty() ? m.folder + "/tokenizer.json" : f.tokenizer_path);
  auto model = lmdecode::load_pretrained(m.folder, m.load_options());
  lmdecode_cli::check_tokenizer_fits(tokenizer.vocab_size(), model->config());
  auto config = chat_config(lmdecode::load_checkpoint_generation_config(m.folder, model->config()), generation);
  auto chat_template = lmdecode::ChatTemplate::from_file(f.chat_template_path.empty() ? m.folder : f.chat_template_path);
  note("chat template: {}", chat_template.origin());
  const bool terminal = isatty(STDIN_FILENO);
  if (terminal) note("/help lists the commands");
  catch_interrupts();
  Chat(*model, tokenizer, std::move(chat_template), std::move(config), f.system, terminal).run();
  return 0;
}

}  // namespace

// lmdecode-chat's main (program_main.cpp).
int program_main(int argc, char** argv) {
  CLI::App app{"lmdecode-chat: a multi-turn chat, a user turn per stdin line, with a checkpoint folder holding "
               "tokenizer.json; the prompt is the checkpoint's chat template (ChatML where it has none)",
               "lmdecode-chat"};
  Flags f;
  lmdecode_cli::ModelFlags model_flags(app);
  app.add_option("--tokenizer", f.tokenizer_path, "tokenizer.json (default: the one in the model folder)");
  app.add_option("--chat-template", f.chat_template_path,
                 "A chat template: a Jinja file or a tokenizer_config.json (read by content, any name), or a folder "
                 "(its template, else ChatML); default: the model folder's");
  app.add_option("--system", f.system, "A system prompt");
  lmdecode_cli::GenerationFlags generation_flags(app);
  app.footer(std::string("Each stdin line is a user turn; the KV cache is kept between turns.\n") + kHelp);
  CLI11_PARSE(app, argc, argv);
  return lmdecode_cli::report_failures("lmdecode-chat", [&] { return run(f, model_flags, generation_flags); });
}

}  // namespace lmdecode_cli::chat_program
