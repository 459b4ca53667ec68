// lmdecode-chat: a multi-turn chat with a checkpoint. Each stdin line (typed or piped) is a user
// turn; the conversation is rendered with the checkpoint's chat template (tokenizer_config.json or
// chat_template.jinja; ChatML where it has none) and the reply streamed as text. The KV cache is kept
// between turns (lmdecode::Conversation): a turn prefills only what follows what the cache holds.
// "/reset" starts over. Defaults come from the checkpoint's generation_config.json.
//
//   lmdecode-chat --model Qwen2.5-0.5B-Instruct [--system TEXT] [--max-new-tokens N] [--do-sample ...]

#include <cstdio>
#include <iostream>
#include <string>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <lmdecode/lmdecode.hpp>
#include <lmdecode/text/chat_template.hpp>
#include <lmdecode/text/tokenizer.hpp>

namespace {

/// New tokens a reply gets when the checkpoint sets no length (neither max_new_tokens nor max_length).
constexpr int64_t kDefaultReplyTokens = 256;

struct Flags {
  std::string folder, tokenizer_path, chat_template_path, system, device = "cpu", dtype = "f32";
  std::optional<int64_t> max_new_tokens, top_k;
  std::optional<double> temperature, top_p;
  std::optional<uint64_t> seed;
  std::optional<int> threads;
  bool do_sample = false;
};

lmdecode::GenerationConfig chat_config(lmdecode::GenerationConfig c, const Flags& f) {
  if (!c.max_new_tokens && !c.max_length) c.max_new_tokens = kDefaultReplyTokens;
  if (f.max_new_tokens) c.max_new_tokens = *f.max_new_tokens;
  if (f.do_sample) c.do_sample = true;
  if (f.temperature) c.temperature = *f.temperature;
  if (f.top_k) c.top_k = *f.top_k;
  if (f.top_p) c.top_p = *f.top_p;
  if (f.seed) c.seed = *f.seed;
  c.num_beams = 1;  // a chat reply is one sequence
  c.num_return_sequences = 1;
  lmdecode::validate(c);
  return c;
}

int run(const Flags& f) {
  if (f.threads) lmdecode::set_threads(*f.threads);
  const at::Device device = f.device == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  const at::ScalarType dtype = f.dtype == "bf16" ? at::kBFloat16 : f.dtype == "f16" ? at::kHalf : at::kFloat;
  auto tokenizer = lmdecode::Tokenizer::from_file(f.tokenizer_path.empty() ? f.folder + "/tokenizer.json" : f.tokenizer_path);
  auto model = lmdecode::load_pretrained(f.folder, {device, dtype});
  lmdecode::detail::check(tokenizer.vocab_size() <= model->config().vocab_size,
                          "the tokenizer has {} ids but the model only {}: they do not belong together",
                          tokenizer.vocab_size(), model->config().vocab_size);
  const auto config = chat_config(lmdecode::load_checkpoint_generation_config(f.folder, model->config()), f);
  const auto chat_template = f.chat_template_path.empty() ? lmdecode::ChatTemplate::for_model(f.folder)
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
  app.add_option("--model", f.folder, "Checkpoint folder (config.json, safetensors, generation_config.json)")->required();
  app.add_option("--tokenizer", f.tokenizer_path, "tokenizer.json (default: the one in the model folder)");
  app.add_option("--chat-template", f.chat_template_path,
                 "tokenizer_config.json or a .jinja file (default: the model folder's template, else ChatML)");
  app.add_option("--system", f.system, "A system prompt");
  app.add_option("--max-new-tokens", f.max_new_tokens,
                 "New tokens per reply at most (default: the checkpoint's; " + std::to_string(kDefaultReplyTokens) +
                     " where it sets no length)");
  app.add_flag("--do-sample", f.do_sample, "Sample instead of taking the arg max (default: the checkpoint's)");
  app.add_option("--temperature", f.temperature, "Sampling temperature (> 0)");
  app.add_option("--top-k", f.top_k, "Sampling: keep the k best tokens (0: off)");
  app.add_option("--top-p", f.top_p, "Sampling: nucleus mass in (0, 1]");
  app.add_option("--seed", f.seed, "Sampling seed");
  app.add_option("--device", f.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--dtype", f.dtype, "Model dtype")->check(CLI::IsMember({"f32", "bf16", "f16"}));
  app.add_option("--threads", f.threads, "libtorch intra-op threads (default: libtorch's choice)")->check(CLI::PositiveNumber);
  app.footer("Each stdin line is a user turn; /reset starts over. The KV cache is kept between turns.");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(f);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "lmdecode-chat: libtorch: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
