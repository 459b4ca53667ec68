// lmdecode-chat: a multi-turn chat with a checkpoint. Each stdin line (typed or piped) is a user
// turn; the conversation is rendered with the checkpoint's chat template (tokenizer_config.json or
// chat_template.jinja; ChatML where it has none) and the reply streamed as text. The KV cache is kept
// between turns (lmdecode::Conversation): a turn prefills only what follows what the cache holds.
// "/reset" starts over. Defaults come from the checkpoint's generation_config.json.
//
//   lmdecode-chat --model Qwen2.5-0.5B-Instruct [--system TEXT] [--max-new-tokens N] [--do-sample ...]
// (a reply is one sequence: greedy or sampling; --max-new-tokens defaults to the checkpoint's, else 256)

#include <cstdio>
#include <iostream>
#include <string>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include "program_flags.hpp"

#include <lmdecode/lmdecode.hpp>
#include <lmdecode/text/chat_template.hpp>
#include <lmdecode/text/tokenizer.hpp>

namespace {

/// New tokens a reply gets when the checkpoint sets no length (neither max_new_tokens nor max_length).
constexpr int64_t kDefaultReplyTokens = 256;

struct Flags {
  std::string tokenizer_path, chat_template_path, system;
};

/// The checkpoint's defaults for one reply (one sequence; a length where it sets none), then the flags.
lmdecode::GenerationConfig chat_config(lmdecode::GenerationConfig c, const lmdecode_cli::GenerationFlags& flags) {
  if (!c.max_new_tokens && !c.max_length) c.max_new_tokens = kDefaultReplyTokens;
  c.num_beams = 1;
  c.num_return_sequences = 1;
  return flags.apply(std::move(c));
}

int run(const Flags& f, const lmdecode_cli::ModelFlags& m, const lmdecode_cli::GenerationFlags& generation) {
  m.apply_threads();
  auto tokenizer = lmdecode::Tokenizer::from_file(f.tokenizer_path.empty() ? m.folder + "/tokenizer.json" : f.tokenizer_path);
  auto model = lmdecode::load_pretrained(m.folder, m.load_options());
  lmdecode::detail::check(tokenizer.vocab_size() <= model->config().vocab_size,
                          "the tokenizer has {} ids but the model only {}: they do not belong together",
                          tokenizer.vocab_size(), model->config().vocab_size);
  const auto config = chat_config(lmdecode::load_checkpoint_generation_config(m.folder, model->config()), generation);
  const auto chat_template = f.chat_template_path.empty() ? lmdecode::ChatTemplate::for_model(m.folder)
                                                          : lmdecode::ChatTemplate::from_file(f.chat_template_path);
  std::fprintf(stderr, "[chat template: %s]\n", chat_template.origin().c_str());

  lmdecode::Conversation<lmdecode::PretrainedModel> chat(*model);
  std::vector<lmdecode::ChatMessage> messages;
  auto start_over = [&] {
    chat.reset();
    messages.clear();
    if (!f.system.empty()) messages.push_back({"system", f.system});
  };
  start_over();
  for (std::string line; std::getline(std::cin, line);) {
    if (line == "/reset") {
      start_over();
      std::fprintf(stderr, "[reset]\n");
      continue;
    }
    messages.push_back({"user", line});
    const auto history = tokenizer.encode(chat_template.render(messages));
    lmdecode::Tokenizer::StreamDecoder stream(tokenizer, /*skip_special_tokens=*/true);
    auto result = chat.reply(history, config, [&](lmdecode::StepEvent& e) {
      for (auto id : e.committed[0]) std::fputs(stream.push(id).c_str(), stdout);
      std::fflush(stdout);
    });
    std::fputs(stream.flush().c_str(), stdout);
    std::fputs("\n", stdout);
    for (const auto& warning : result.warnings) std::fprintf(stderr, "[warning: %s]\n", warning.c_str());
    const auto& reply = result.hypotheses[0][0];
    messages.push_back({"assistant", tokenizer.decode(reply.tokens, /*skip_special_tokens=*/true)});
    std::fprintf(stderr, "[%zu new tokens, %s, prefill %lld of %zu tokens, %d threads]\n", reply.tokens.size(),
                 std::string(lmdecode::to_string(reply.finish_reason)).c_str(),
                 static_cast<long long>(chat.last_prefill_tokens()), history.size(), at::get_num_threads());
    std::fflush(stderr);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lmdecode-chat: a multi-turn chat, a user turn per stdin line, with a checkpoint folder holding "
               "tokenizer.json; the prompt is the checkpoint's chat template (ChatML where it has none)",
               "lmdecode-chat"};
  Flags f;
  lmdecode_cli::ModelFlags model_flags(app);
  app.add_option("--tokenizer", f.tokenizer_path, "tokenizer.json (default: the one in the model folder)");
  app.add_option("--chat-template", f.chat_template_path,
                 "tokenizer_config.json or a .jinja file (default: the model folder's template, else ChatML)");
  app.add_option("--system", f.system, "A system prompt");
  lmdecode_cli::GenerationFlags generation_flags(app);
  app.footer("Each stdin line is a user turn; /reset starts over. The KV cache is kept between turns.");
  CLI11_PARSE(app, argc, argv);
  return lmdecode_cli::report_failures("lmdecode-chat", [&] { return run(f, model_flags, generation_flags); });
}
