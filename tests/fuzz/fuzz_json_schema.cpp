// libFuzzer target: JSON Schema to a grammar on arbitrary JSON. What a grammar cannot say must end
// in lmdecode's own exceptions, never in a crash, a hang or unbounded memory.
#include <cstdint>

#include "fuzz_json.hpp"
#include "lmdecode/grammar/json_schema.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto json = fuzz_json(data, size);
  if (!json) return 0;
  try {
    lmdecode::grammar_from_json_schema(nlohmann::ordered_json(*json));
  } catch (const lmdecode::invalid_argument&) {
  }
  return 0;
}
