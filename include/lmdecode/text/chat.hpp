#pragma once
// ChatML, the chat format of Qwen models: each turn is "<|im_start|>role\ncontent<|im_end|>\n", and
// the generation prompt "<|im_start|>assistant\n" asks the model for the next assistant turn, which
// it ends with <|im_end|> (the EOS of Qwen chat checkpoints; <|endoftext|> is their pad).
//
// Example:
//   auto text = lmdecode::format_chatml({{"system", "You are terse."}, {"user", "Hi!"}});
//   auto ids = tokenizer.encode(text);  // the special tokens are matched as added tokens

#include <string>
#include <vector>

namespace lmdecode {

struct ChatMessage {
  std::string role;  ///< "system", "user" or "assistant"
  std::string content;
};

inline std::string format_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) {
  std::string text;
  for (const auto& m : messages) text += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_generation_prompt) text += "<|im_start|>assistant\n";
  return text;
}

}  // namespace lmdecode
