// libFuzzer target: the generation_config.json and config.json loaders on arbitrary bytes.
// Malformed input must end in lmdecode's own exceptions, never in anything else.
#include <cstdint>
#include <string>

#include "fuzz_json.hpp"
#include "lmdecode/io/generation_config_file.hpp"
#include "lmdecode/models/model_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto json = fuzz_json(data, size);
  if (!json) return 0;
  try {
    lmdecode::generation_config_from_json(*json);
  } catch (const lmdecode::invalid_argument&) {
  } catch (const lmdecode::file_error&) {
  }
  try {
    lmdecode::model_config_from_json(*json);
  } catch (const lmdecode::invalid_argument&) {
  } catch (const lmdecode::file_error&) {
  }
  return 0;
}
