// lmdecode-chat: one chat turn with a Qwen-style checkpoint. Reads the user turn from stdin, formats
// it as ChatML, generates with the checkpoint's generation config (which stops at <|im_end|>), and
// streams the reply as text.
//
//   echo "What is a KV cache?" | lmdecode-chat --model Qwen2.5-0.5B-Instruct [--system TEXT] [--max-new-tokens N]

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <lmdecode/text/chat.hpp>
#include <lmdecode/lmdecode.hpp>
#include <lmdecode/text/tokenizer.hpp>

int main(int argc, char** argv) {
  CLI::App app{"lmdecode-chat: one ChatML turn with a checkpoint folder holding tokenizer.json", "lmdecode-chat"};
  std::string folder, tokenizer_path, system, device_name = "cpu", dtype_name = "f32";
  std::optional<int64_t> max_new_tokens;
  std::optional<int> threads;
  app.add_option("--model", folder, "Checkpoint folder (config.json, safetensors, generation_config.json)")->required();
  app.add_option("--tokenizer", tokenizer_path, "tokenizer.json (default: the one in the model folder)");
  app.add_option("--system", system, "A system prompt");
  app.add_option("--max-new-tokens", max_new_tokens, "New tokens at most (default: the checkpoint's)");
  app.add_option("--device", device_name, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--dtype", dtype_name, "Model dtype")->check(CLI::IsMember({"f32", "bf16", "f16"}));
  app.add_option("--threads", threads, "libtorch intra-op threads (default: libtorch's choice)")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads) lmdecode::set_threads(*threads);
    const at::Device device = device_name == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);
    const at::ScalarType dtype = dtype_name == "bf16" ? at::kBFloat16 : dtype_name == "f16" ? at::kHalf : at::kFloat;
    auto tokenizer = lmdecode::Tokenizer::from_file(tokenizer_path.empty() ? folder + "/tokenizer.json" : tokenizer_path);
    auto model = lmdecode::load_pretrained(folder, {device, dtype});
    lmdecode::detail::check(tokenizer.vocab_size() <= model->config().vocab_size,
                            "the tokenizer has {} ids but the model only {}: they do not belong together",
                            tokenizer.vocab_size(), model->config().vocab_size);
    auto config = lmdecode::load_checkpoint_generation_config(folder, model->config());
    if (max_new_tokens) config.max_new_tokens = *max_new_tokens;

    const std::string user(std::istreambuf_iterator<char>(std::cin), {});
    std::vector<lmdecode::ChatMessage> messages;
    if (!system.empty()) messages.push_back({"system", system});
    messages.push_back({"user", user});
    const auto prompt = tokenizer.encode(lmdecode::format_chatml(messages));

    lmdecode::Tokenizer::StreamDecoder stream(tokenizer, /*skip_special_tokens=*/true);
    size_t shown = 0;
    auto result = lmdecode::generate(*model, {prompt}, config, [&](lmdecode::StepEvent& e) {
      for (; shown < e.tokens[0].size(); ++shown) std::fputs(stream.push(e.tokens[0][shown]).c_str(), stdout);
      std::fflush(stdout);
    });
    std::fputs(stream.flush().c_str(), stdout);
    std::fprintf(stdout, "\n");
    std::fprintf(stderr, "[%zu new tokens, %s, %d threads]\n", result.hypotheses[0][0].tokens.size(),
                 std::string(lmdecode::to_string(result.hypotheses[0][0].finish_reason)).c_str(), at::get_num_threads());
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "lmdecode-chat: libtorch: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
