#pragma once
// How much more memory this process may take, as Linux says it: the address-space limit (ulimit -v)
// less what is mapped, the cgroup's limit less its use, and the memory the kernel has available;
// the least of those. A generation whose buffers cannot fit is refused before anything is allocated
// (DecodingLoop), rather than ending in an allocator's error or the OOM killer.

#include <sys/resource.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

namespace lmdecode::detail {

/// The number after `key` in a "key: value kB" file (/proc/meminfo, /proc/self/status), in bytes.
inline std::optional<int64_t> kilobytes_field(const char* path, const std::string& key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) {
      std::istringstream fields(line.substr(key.size()));
      int64_t kb = 0;
      if (fields >> kb) return kb * 1024;
    }
  return std::nullopt;
}

/// A number alone in a file (cgroup v2's memory.max, memory.current); none for "max" or no file.
inline std::optional<int64_t> number_file(const char* path) {
  std::ifstream in(path);
  int64_t value = 0;
  if (in >> value) return value;
  return std::nullopt;
}

/// Bytes this process can still allocate, or none where nothing says (not Linux).
inline std::optional<int64_t> available_memory_bytes() {
  std::optional<int64_t> room;
  auto least = [&](int64_t bytes) { room = room ? std::min(*room, bytes) : bytes; };
  if (auto available = kilobytes_field("/proc/meminfo", "MemAvailable:")) least(*available);
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    const auto mapped = kilobytes_field("/proc/self/status", "VmSize:").value_or(0);
    least(static_cast<int64_t>(std::min<rlim_t>(limit.rlim_cur, std::numeric_limits<int64_t>::max())) - mapped);
  }
  const auto cgroup_max = number_file("/sys/fs/cgroup/memory.max");
  if (cgroup_max) least(*cgroup_max - number_file("/sys/fs/cgroup/memory.current").value_or(0));
  return room;
}

}  // namespace lmdecode::detail
