#pragma once
// Runs a command-line tool the way a person would, through the shell, and keeps what it printed.

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace lmdecode_test {

struct CommandRun {
  int status;       // the exit code, -1 if the command did not exit normally
  std::string out;  // stdout and stderr together
};

/// Runs `command` with `sh -c`, its stderr joined to its stdout.
inline CommandRun run_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run: " + command);
  std::string out;
  std::array<char, 4096> buffer{};
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) out.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace lmdecode_test
