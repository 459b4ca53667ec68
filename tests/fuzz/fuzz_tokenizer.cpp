// libFuzzer target: the tokenizer.json loader on arbitrary bytes; a tokenizer that loads then
// encodes and decodes a fixed text and the input itself.
#include <algorithm>
#include <cstdint>
#include <string>

#include "fuzz_json.hpp"
#include "lmdecode/text/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto json = fuzz_json(data, size);
  if (!json) return 0;
  try {
    lmdecode::Tokenizer tokenizer(*json, "fuzz input");
    tokenizer.token_texts();
    // A seed's "long_line": a line of about that many bytes (at most 2 MiB), the fixed text repeated;
    // for the first 4 inputs of a run that ask, enough for the smoke run's seeds to reach it without
    // every mutation of them costing a megabyte.
    static int long_lines_left = 4;
    std::string long_line;
    if (long_lines_left > 0 && json->is_object() && json->contains("long_line") && (*json)["long_line"].is_number_unsigned()) {
      --long_lines_left;
      while (long_line.size() < std::min<uint64_t>((*json)["long_line"].get<uint64_t>(), uint64_t{2} << 20))
        long_line += "Hello, world! 你好 🙂 ";
    }
    for (const std::string text : {std::string("Hello, world! 你好 🙂 <|end|>"), std::string(reinterpret_cast<const char*>(data), size), long_line}) {
      try {
        tokenizer.decode(tokenizer.encode(text));
        tokenizer.decode(tokenizer.encode(text, /*add_special_tokens=*/true), /*skip_special_tokens=*/true);
      } catch (const lmdecode::invalid_argument&) {  // invalid UTF-8 input, or ids the vocabulary lacks
      }
    }
  } catch (const lmdecode::file_error&) {
  } catch (const lmdecode::invalid_argument&) {
  }
  return 0;
}
