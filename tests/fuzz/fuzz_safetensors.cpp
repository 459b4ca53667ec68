// libFuzzer target: the safetensors reader on arbitrary bytes. Any exception other than
// lmdecode::file_error, and any sanitizer report, is a finding.
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "lmdecode/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/dev/shm/lmdecode_fuzz_" + std::to_string(getpid()) + ".safetensors";
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    lmdecode::SafetensorsFile file(path);
    file.load_all({at::kCPU, at::kFloat});
  } catch (const lmdecode::file_error&) {
  }
  return 0;
}
