// libFuzzer target: a chat template's source on arbitrary bytes, parsed, then rendered over a
// conversation with tools, tool calls and a list content; only lmdecode's errors may come out.
#include <cstdint>
#include <string>

#include "lmdecode/text/chat_template.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Héllo"}, {"type": "image"}]},
    {"role": "assistant", "content": "<think>\nx\n</think>\n\nHi", "tool_calls": [{"name": "f", "arguments": {"x": 1.5}}]},
    {"role": "tool", "content": "{\"ok\": true}"}, {"role": "user", "content": "Bye"}])");
  static const auto tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {}}}])");
  try {
    const lmdecode::ChatTemplate chat_template(std::string(reinterpret_cast<const char*>(data), size),
                                               {{"bos_token", "<s>"}, {"eos_token", "</s>"}}, "fuzz input");
    lmdecode::ChatTemplateOptions options;
    options.tools = tools;
    options.variables = {{"enable_thinking", false}};
    chat_template.render(messages, options);
  } catch (const lmdecode::invalid_argument&) {
  }
  return 0;
}
