// libFuzzer target: a chat template's source on arbitrary bytes (or, from a short input, a long
// repeated one), parsed, then rendered over a conversation with tools, tool calls and a list
// content; only lmdecode's errors may come out.
#include <cstdint>
#include <string>

#include "lmdecode/text/chat_template.hpp"

/// The input as a template, or, where it starts with byte 1, a template larger than the fuzzer's
/// inputs: the rest of the input repeated 2^(its second byte % 18) times (up to 131072: long flat
/// chains such as {{ 1+1+...+1 }}, 100,000 filters, a template past the 1 MiB bound).
std::string template_source(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  if (size < 3 || data[0] != 1) return input;
  const size_t copies = size_t{1} << (data[1] % 18);
  const std::string unit = input.substr(2);
  const size_t close = unit.find('\n');  // "head\nunit\ntail": the unit repeated between them
  if (close == std::string::npos) {
    std::string out;
    for (size_t i = 0; i < copies && out.size() < (size_t{2} << 20); ++i) out += unit;
    return out;
  }
  const size_t second = unit.find('\n', close + 1);
  const std::string head = unit.substr(0, close), body = unit.substr(close + 1, second == std::string::npos ? std::string::npos : second - close - 1);
  const std::string tail = second == std::string::npos ? "" : unit.substr(second + 1);
  std::string out = head;
  for (size_t i = 0; i < copies && out.size() < (size_t{2} << 20); ++i) out += body;
  return out + tail;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Héllo"}, {"type": "image"}]},
    {"role": "assistant", "content": "<think>\nx\n</think>\n\nHi", "tool_calls": [{"name": "f", "arguments": {"x": 1.5}}]},
    {"role": "tool", "content": "{\"ok\": true}"}, {"role": "user", "content": "Bye"}])");
  static const auto tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {}}}])");
  try {
    const lmdecode::ChatTemplate chat_template(template_source(data, size),
                                               {{"bos_token", "<s>"}, {"eos_token", "</s>"}}, "fuzz input");
    lmdecode::ChatTemplateOptions options;
    options.tools = tools;
    options.variables = {{"enable_thinking", false}};
    chat_template.render(messages, options);
  } catch (const lmdecode::invalid_argument&) {
  }
  return 0;
}
