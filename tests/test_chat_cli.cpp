// lmdecode-chat as a person lives in it, on the demo model: on a terminal (a pseudo-terminal here)
// with its prompt, labels, commands and Ctrl-C; piped, with turns that fail and a context that fills
// up. lmdecode-tokenize's template choice, as lmdecode-chat's.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "support/pty_session.hpp"
#include "support/run_command.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;

namespace {

std::string demo_model() { return (lmdecode_test::reference_dir() / "fortunes-llama").string(); }

/// Runs lmdecode-chat with `input` on stdin (a pipe: plain output).
lmdecode_test::CommandRun piped_chat(const std::string& input, const std::string& flags) {
  const auto input_file = std::filesystem::temp_directory_path() / "lmdecode_chat_input.txt";
  std::ofstream(input_file, std::ios::binary) << input;
  return lmdecode_test::run_command(fmt::format("{} --model {} {} < {}", LMDECODE_CHAT_BIN, demo_model(), flags, input_file.string()));
}

/// Waits for `wanted` (after `from`) in the session's output; shows the output where it does not come.
#define REQUIRE_SHOWS(session, ...)              \
  do {                                            \
    const bool came = session.wait_for(__VA_ARGS__); \
    INFO(session.output());                       \
    REQUIRE(came);                                \
  } while (false)

size_t count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("lmdecode-chat on a terminal: a prompt and labels, commands, Ctrl-C stops a reply and the chat goes on", "[cli][chat]") {
  // 450 tokens a reply (EOS banned until then): long enough to be interrupted on the way.
  lmdecode_test::PtySession chat(LMDECODE_CHAT_BIN, {"--model", demo_model(), "--min-new-tokens", "450", "--max-new-tokens", "450"});
  REQUIRE_SHOWS(chat, "/help lists the commands");
  REQUIRE_SHOWS(chat, "> ");
  chat.type("/help\r");
  REQUIRE_SHOWS(chat, "/system TEXT");

  size_t from = chat.output().size();
  chat.type("Tell me a long story\r");
  REQUIRE_SHOWS(chat, "assistant: ", from);
  from = chat.output().find("assistant: ", from) + 11;
  REQUIRE_SHOWS(chat, " ", from);  // some of the reply is on the screen
  chat.type("\x03");
  REQUIRE_SHOWS(chat, ", interrupted, prefill ", from);
  // "[N new tokens, interrupted, prefill P of H tokens, ...]": fewer than the 450 asked for.
  const auto line = [&](size_t at) { return chat.output().c_str() + chat.output().rfind('[', at) + 1; };
  const size_t interrupted_at = chat.output().find(", interrupted, ", from);
  long long reply = 0, fed = 0, history = 0;
  REQUIRE(std::sscanf(line(interrupted_at), "%lld new tokens, interrupted, prefill %lld of %lld tokens", &reply, &fed, &history) == 3);
  CHECK(reply < 450);
  REQUIRE_SHOWS(chat, "> ", interrupted_at);

  // The conversation kept the interrupted reply: the next turn's history holds it, and its prefill
  // feeds what follows it (the end of the reply's turn and the new one), not the reply again.
  from = chat.output().size();
  chat.type("And then?\r");
  REQUIRE_SHOWS(chat, " new tokens, length, prefill ", from);
  long long next_fed = 0, next_history = 0;
  REQUIRE(std::sscanf(chat.output().c_str() + chat.output().find("prefill ", from), "prefill %lld of %lld tokens", &next_fed,
                      &next_history) == 2);
  CHECK(next_history >= history + reply - 2);  // a word cut by Ctrl-C may encode into fewer tokens
  CHECK(next_fed <= next_history - history - reply + 4);

  REQUIRE_SHOWS(chat, "> ", chat.output().find("prefill ", from));
  from = chat.output().size();
  chat.type("/RESET\r");
  REQUIRE_SHOWS(chat, "reset: the conversation starts over", from);
  REQUIRE_SHOWS(chat, "> ", chat.output().find("reset: the conversation", from));
  from = chat.output().size();
  chat.type("\x03");
  REQUIRE_SHOWS(chat, "Ctrl-C again to quit", from);
  chat.type("\x03");
  REQUIRE(chat.wait_exit() == 0);
}

TEST_CASE("lmdecode-chat piped: replies only, commands never sent, a failing turn is reported and the chat goes on",
          "[cli][chat]") {
  const auto template_file = std::filesystem::temp_directory_path() / "lmdecode_chat_refuses_boom.j2";
  std::ofstream(template_file) << "{% for m in messages %}{% if m.content == 'boom' %}{{ raise_exception('no booms here') }}{% endif %}"
                                  "{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
  std::string too_long;
  for (int i = 0; i < 600; ++i) too_long += "the ";
  const auto [status, out] = piped_chat("Hello\n\n  \t\nboom\n/Reset now\n/nope\n" + too_long + "\nAgain\n/quit\nnot read\n",
                                        "--max-new-tokens 8 --chat-template " + template_file.string());
  INFO(out);
  REQUIRE(status == 0);
  CHECK_THAT(out, Contains("[chat template: " + template_file.string() + "]"));  // a .j2 file, read as a template
  CHECK_THAT(out, !Contains("assistant: "));  // no labels
  CHECK_THAT(out, Contains("error: lmdecode: ") && Contains("no booms here") && Contains("the turn was not kept"));
  CHECK_THAT(out, Contains("/reset takes nothing after it: not sent"));
  CHECK_THAT(out, Contains("unknown command /nope: not sent"));
  CHECK_THAT(out, Contains("and the model has 512 positions: /reset starts over"));
  // Two turns answered: "Hello" and "Again" (whose history holds neither "boom" nor the long line:
  // it feeds all of it again, after the failures).
  REQUIRE(count(out, "8 new tokens, length, prefill ") == 2);
  const size_t last = out.rfind("prefill ");
  long long fed = 0, history = 0;
  REQUIRE(std::sscanf(out.c_str() + last, "prefill %lld of %lld tokens", &fed, &history) == 2);
  CHECK(fed == history);
  CHECK(history < 60);
}

TEST_CASE("lmdecode-chat warns as the context fills up, and a reply stops where it ends", "[cli][chat]") {
  std::string long_turn;
  for (int i = 0; i < 455; ++i) long_turn += "the ";
  const auto [status, out] = piped_chat(long_turn + "\n", "--max-new-tokens 100 --min-new-tokens 100");
  INFO(out);
  REQUIRE(status == 0);
  long long tokens = 0, used = 0, context = 0;
  const size_t line_at = out.find(" new tokens, ");
  REQUIRE(line_at != std::string::npos);
  REQUIRE(std::sscanf(out.c_str() + out.rfind('[', line_at) + 1, "%lld", &tokens) == 1);
  REQUIRE(std::sscanf(out.c_str() + out.find("context ", line_at), "context %lld of %lld tokens", &used, &context) == 2);
  CHECK(context == 512);
  CHECK(used == 512);     // the prompt and a reply cut at the last position
  CHECK(tokens < 100);
  CHECK_THAT(out, Contains("warning: the context is nearly full (512 of 512 tokens): /reset starts over"));
}

TEST_CASE("lmdecode-chat and lmdecode-tokenize find a template by content, in a folder, else ChatML, and name it", "[cli][chat]") {
  const auto dir = std::filesystem::temp_directory_path() / "lmdecode_template_by_content";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "settings.txt") << R"({"chat_template": "{% for m in messages %}[{{ m.content }}]{% endfor %}"})";
  const auto tokenize = [&](const std::string& chat_template) {
    return lmdecode_test::run_command(fmt::format("echo '[{{\"role\": \"user\", \"content\": \"hi\"}}]' | {} --tokenizer {}/tokenizer.json "
                                                  "--chat-template {}", LMDECODE_TOKENIZE_BIN, demo_model(), chat_template));
  };
  const auto config = tokenize((dir / "settings.txt").string());  // a tokenizer config by another name
  INFO(config.out);
  REQUIRE(config.status == 0);
  CHECK_THAT(config.out, Contains("settings.txt chat_template]") && Contains("\"[hi]\""));
  const auto folder = tokenize(demo_model());  // the demo model has no template: ChatML, as in lmdecode-chat
  INFO(folder.out);
  REQUIRE(folder.status == 0);
  CHECK_THAT(folder.out, Contains("[chat template: the ChatML template]") && Contains(R"("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")"));
  const auto chat = piped_chat("hi\n", "--max-new-tokens 2");
  CHECK_THAT(chat.out, Contains("[chat template: the ChatML template]"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("lmdecode-chat names a missing model, and refuses flags a reply cannot use", "[cli][chat]") {
  const auto missing = lmdecode_test::run_command(fmt::format("echo hi | {} --model /nonexistent/model", LMDECODE_CHAT_BIN));
  CHECK(missing.status == 1);
  CHECK_THAT(missing.out, Contains("no model at /nonexistent/model: no such file or folder"));
  const auto beams = piped_chat("hi\n", "--num-beams 4");
  CHECK(beams.status == 1);
  CHECK_THAT(beams.out, Contains("lmdecode-chat replies with one sequence"));
  const auto unused = piped_chat("hi\n", "--max-new-tokens 2 --temperature 0.5 --output-scores");
  CHECK(unused.status == 0);
  CHECK_THAT(unused.out, Contains("warning: --temperature does nothing without --do-sample") &&
                             Contains("warning: --output-scores does nothing in lmdecode-chat"));
}
