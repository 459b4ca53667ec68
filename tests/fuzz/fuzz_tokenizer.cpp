// libFuzzer target: the tokenizer.json loader on arbitrary bytes; a tokenizer that loads then
// encodes and decodes a fixed text and the input itself.
#include <cstdint>
#include <string>

#include "lmdecode/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json json;
  try {
    json = lmdecode::detail::parse_json(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
  } catch (const lmdecode::file_error&) {
    return 0;
  }
  try {
    lmdecode::Tokenizer tokenizer(json, "fuzz input");
    for (const std::string text : {std::string("Hello, world! 你好 🙂 <|end|>"), std::string(reinterpret_cast<const char*>(data), size)}) {
      try {
        tokenizer.decode(tokenizer.encode(text));
      } catch (const lmdecode::invalid_argument&) {  // invalid UTF-8 input, or ids the vocabulary lacks
      }
    }
  } catch (const lmdecode::file_error&) {
  } catch (const lmdecode::invalid_argument&) {
  }
  return 0;
}
