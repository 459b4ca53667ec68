// libFuzzer target: the generation_config.json and config.json loaders on arbitrary bytes.
// Malformed input must end in lmdecode's own exceptions, never in anything else.
#include <cstdint>
#include <string>

#include "lmdecode/io/generation_config_file.hpp"
#include "lmdecode/io/model_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json json;
  try {
    json = lmdecode::detail::parse_json(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
  } catch (const lmdecode::file_error&) {
    return 0;
  }
  try {
    lmdecode::generation_config_from_json(json);
  } catch (const lmdecode::invalid_argument&) {
  } catch (const lmdecode::file_error&) {
  }
  try {
    lmdecode::model_config_from_json(json);
  } catch (const lmdecode::invalid_argument&) {
  } catch (const lmdecode::file_error&) {
  }
  return 0;
}
