#pragma once
// Reading safetensors checkpoints (one file or an HF sharded set). The files are untrusted: the
// header length, the JSON, every dtype, shape and offset are checked before any byte is read, and
// each fault is a file_error naming the file and the tensor. Files are memory-mapped and each tensor
// is copied once, straight to the requested device and dtype.

#include <ATen/ATen.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmdecode/detail/device_check.hpp"
#include "lmdecode/detail/json_fields.hpp"
#include "lmdecode/error.hpp"

namespace lmdecode {

/// Tensors by name.
using TensorMap = std::map<std::string, at::Tensor>;

/// Where and as what loaded tensors land, for the safetensors reader and load_pretrained(). A set
/// dtype converts floating-point tensors only (integer and bool tensors keep theirs); unset, the
/// reader keeps each tensor's stored dtype and load_pretrained() runs the model in float32.
/// A set matrix_dtype converts floating-point tensors of two or more dimensions (weight matrices,
/// embeddings) to it instead, and keeps the others (norms, biases) in `dtype`.
struct TensorPlacement {
  at::Device device = at::kCPU;
  std::optional<at::ScalarType> dtype;
  std::optional<at::ScalarType> matrix_dtype;
};

namespace detail {

inline std::optional<at::ScalarType> safetensors_dtype(const std::string& name) {
  static const std::map<std::string, at::ScalarType> kTypes = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
      {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
      {"U8", at::kByte},    {"BOOL", at::kBool}};
  auto it = kTypes.find(name);
  if (it == kTypes.end()) return std::nullopt;
  return it->second;
}

/// A read-only memory map of a whole file, unmapped on destruction.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw file_error(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw file_error(fmt::format("{} is not a regular file", path.string()));
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw file_error(fmt::format("cannot map {}: {}", path.string(), std::strerror(errno)));
      }
      data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace detail

/// One safetensors file, mapped and with its header checked; tensors are read on demand.
class SafetensorsFile {
 public:
  /// Where one tensor's bytes are: [begin, end) relative to the start of the data section.
  struct Entry {
    at::ScalarType dtype;
    std::vector<int64_t> shape;
    uint64_t begin;
    uint64_t end;
  };

  /// Largest header accepted (the format's own reference reader caps it at 100 MB).
  static constexpr uint64_t kMaxHeaderBytes = 100u << 20;

  explicit SafetensorsFile(const std::filesystem::path& path) : file_(path) { parse_header(); }

  const std::filesystem::path& path() const { return file_.path(); }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }

  /// Copies one tensor out of the file onto `options.device`, converted to `options.dtype` if set.
  at::Tensor load(const std::string& name, const TensorPlacement& options = {}) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) throw file_error(fmt::format("{}: no tensor named \"{}\"", path().string(), name));
    const Entry& e = it->second;
    detail::check_device_available(options.device);
    const void* bytes = file_.data() + data_start_ + e.begin;
    // Read through an aligned host copy: offsets in the file need not be aligned for the dtype.
    auto host = at::empty(e.shape, at::TensorOptions().dtype(e.dtype));
    if (e.end > e.begin) std::memcpy(host.data_ptr(), bytes, e.end - e.begin);
    at::ScalarType target = e.dtype;
    if (options.matrix_dtype && at::isFloatingType(e.dtype) && e.shape.size() >= 2) target = *options.matrix_dtype;
    else if (options.dtype && at::isFloatingType(e.dtype)) target = *options.dtype;
    return host.to(options.device, target);
  }

  /// Every tensor in the file.
  TensorMap load_all(const TensorPlacement& options = {}) const {
    TensorMap out;
    for (const auto& [name, entry] : entries_) out.emplace(name, load(name, options));
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw file_error(fmt::format("{}: {}", path().string(), what));
  }

  void parse_header() {
    if (file_.size() < 8) fail(fmt::format("file is {} bytes, too short for the 8-byte header length", file_.size()));
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file_.data()[i];  // little endian
    if (header_len > kMaxHeaderBytes) fail(fmt::format("header length {} exceeds the {}-byte limit", header_len, kMaxHeaderBytes));
    if (header_len > file_.size() - 8)
      fail(fmt::format("header length {} is larger than the file ({} bytes after the length)", header_len, file_.size() - 8));
    data_start_ = 8 + header_len;
    const uint64_t data_size = file_.size() - data_start_;
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(file_.data() + 8, file_.data() + 8 + header_len);
    } catch (const nlohmann::json::exception& e) {
      fail(fmt::format("header is not valid JSON: {}", e.what()));
    }
    if (!header.is_object()) fail("header is not a JSON object");

    for (const auto& entry : header.items()) {
      const std::string& name = entry.key();  // not a structured binding: clang 14 cannot capture those
      const auto& info = entry.value();
      if (name == "__metadata__") continue;
      auto bad = [&](const std::string& why) { fail(fmt::format("tensor \"{}\": {}", name, why)); };
      if (!info.is_object()) bad("entry is not an object");
      if (!info.contains("dtype") || !info["dtype"].is_string()) bad("missing or non-string \"dtype\"");
      auto dtype = detail::safetensors_dtype(info["dtype"].get<std::string>());
      if (!dtype) bad(fmt::format("unknown dtype \"{}\"", info["dtype"].get<std::string>()));
      if (!info.contains("shape") || !info["shape"].is_array()) bad("missing or non-array \"shape\"");
      Entry e{*dtype, {}, 0, 0};
      uint64_t elements = 1;
      for (const auto& d : info["shape"]) {
        if (!d.is_number_unsigned()) bad(fmt::format("shape holds {}, not a non-negative integer", d.dump()));
        const uint64_t dim = d.get<uint64_t>();
        if (dim > static_cast<uint64_t>(INT64_MAX) || (dim != 0 && elements > UINT64_MAX / dim))
          bad("shape overflows");
        elements *= dim;
        e.shape.push_back(static_cast<int64_t>(dim));
      }
      const auto& offsets = info.contains("data_offsets") ? info["data_offsets"] : nlohmann::json();
      if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
          !offsets[1].is_number_unsigned())
        bad("\"data_offsets\" must be two non-negative integers");
      e.begin = offsets[0].get<uint64_t>();
      e.end = offsets[1].get<uint64_t>();
      if (e.begin > e.end) bad(fmt::format("data_offsets [{}, {}] run backwards", e.begin, e.end));
      if (e.end > data_size)
        bad(fmt::format("data_offsets end {} is past the data section ({} bytes)", e.end, data_size));
      const uint64_t item = c10::elementSize(*dtype);
      if (elements > UINT64_MAX / item || elements * item != e.end - e.begin)
        bad(fmt::format("shape [{}] of {} needs {} bytes but data_offsets span {}", fmt::join(e.shape, ", "),
                        info["dtype"].get<std::string>(), elements * item, e.end - e.begin));
      entries_.emplace(name, std::move(e));
    }
    // No two tensors may share bytes.
    std::vector<std::pair<const std::string*, const Entry*>> by_start;
    for (const auto& [name, e] : entries_) by_start.emplace_back(&name, &e);
    std::sort(by_start.begin(), by_start.end(),
              [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
    for (size_t i = 1; i < by_start.size(); ++i)
      if (by_start[i].second->begin < by_start[i - 1].second->end && by_start[i].second->begin != by_start[i].second->end)
        fail(fmt::format("tensors \"{}\" and \"{}\" overlap", *by_start[i - 1].first, *by_start[i].first));
  }

  detail::MappedFile file_;
  uint64_t data_start_ = 0;
  std::map<std::string, Entry> entries_;
};

/// Loads every tensor of a checkpoint folder: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json` (shard names must be plain file names inside the folder).
inline TensorMap load_safetensors_checkpoint(const std::filesystem::path& folder, const TensorPlacement& options = {}) {
  const auto single = folder / "model.safetensors";
  const auto index = folder / "model.safetensors.index.json";
  if (std::filesystem::exists(single)) return SafetensorsFile(single).load_all(options);
  if (!std::filesystem::exists(index))
    throw file_error(fmt::format("{} holds neither model.safetensors nor model.safetensors.index.json", folder.string()));
  auto json = detail::read_json_file(index);
  if (!json.is_object() || !json.contains("weight_map") || !json["weight_map"].is_object())
    throw file_error(fmt::format("{}: missing \"weight_map\" object", index.string()));
  std::map<std::string, std::vector<std::string>> names_by_shard;
  for (const auto& [name, shard] : json["weight_map"].items()) {
    if (!shard.is_string()) throw file_error(fmt::format("{}: shard of \"{}\" is not a string", index.string(), name));
    const auto file = shard.get<std::string>();
    if (file.empty() || file.find('/') != std::string::npos || file.find('\\') != std::string::npos || file == "." || file == "..")
      throw file_error(fmt::format("{}: shard \"{}\" of \"{}\" is not a plain file name", index.string(), file, name));
    names_by_shard[file].push_back(name);
  }
  TensorMap out;
  for (const auto& [shard, names] : names_by_shard) {
    SafetensorsFile file(folder / shard);
    for (const auto& name : names) out.emplace(name, file.load(name, options));
  }
  return out;
}

}  // namespace lmdecode
