#pragma once
// Writes safetensors files for tests: well-formed ones from tensors, and raw ones with any header.

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace lmdecode_test {

/// A file made of an 8-byte little-endian header length, `header` and `data`.
inline void write_raw_safetensors(const std::filesystem::path& path, const std::string& header,
                                  const std::string& data, uint64_t declared_length) {
  std::ofstream out(path, std::ios::binary);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((declared_length >> (8 * i)) & 0xff));
  out << header << data;
}
inline void write_raw_safetensors(const std::filesystem::path& path, const std::string& header, const std::string& data) {
  write_raw_safetensors(path, header, data, header.size());
}

inline const char* safetensors_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return "F64";
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: return "?";
  }
}

inline void write_safetensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, tensor] : tensors) {
    auto t = tensor.contiguous().to(at::kCPU);
    const size_t begin = data.size();
    data.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
    header[name] = {{"dtype", safetensors_dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {begin, data.size()}}};
  }
  write_raw_safetensors(path, header.dump(), data);
}

}  // namespace lmdecode_test
