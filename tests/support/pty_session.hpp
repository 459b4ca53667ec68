#pragma once
// Runs a program on a pseudo-terminal, as a person at a terminal runs it: what it prints (stdout and
// stderr together, as a terminal shows them) is read as it comes; typed lines and Ctrl-C go through
// the terminal's line discipline (Ctrl-C becomes SIGINT for the program). Every wait is bounded.

#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace lmdecode_test {

class PtySession {
 public:
  /// Starts `program` with `arguments` on a new terminal.
  PtySession(const std::string& program, const std::vector<std::string>& arguments) {
    std::vector<char*> argv{const_cast<char*>(program.c_str())};
    for (const auto& a : arguments) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_ = forkpty(&terminal_, nullptr, nullptr, nullptr);
    if (pid_ < 0) throw std::runtime_error("forkpty failed");
    if (pid_ == 0) {
      execv(program.c_str(), argv.data());
      _exit(127);
    }
  }

  PtySession(const PtySession&) = delete;
  PtySession& operator=(const PtySession&) = delete;

  ~PtySession() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(terminal_);
  }

  /// Types `text` (a line ends with "\r", as the Enter key sends it; "\x03" is Ctrl-C).
  void type(const std::string& text) {
    if (write(terminal_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) throw std::runtime_error("cannot type");
  }

  /// Reads until the output after `from` holds `wanted` or `seconds` pass; true if it came. The
  /// output so far is output().
  bool wait_for(const std::string& wanted, size_t from = 0, double seconds = 60) {
    const auto deadline = after(seconds);
    while (output_.find(wanted, from) == std::string::npos) {
      if (!read_some(deadline)) return false;
    }
    return true;
  }

  /// The exit status once the program has ended within `seconds` (reading what it still prints),
  /// else -1; a program ended by a signal gives 128 + the signal.
  int wait_exit(double seconds = 60) {
    const auto deadline = after(seconds);
    for (;;) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() > deadline) return -1;
      read_some(std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
    }
  }

  const std::string& output() const { return output_; }

 private:
  static std::chrono::steady_clock::time_point after(double seconds) {
    return std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
  }

  /// Reads what is there before `deadline`; false if nothing came.
  bool read_some(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return false;
    pollfd ready{terminal_, POLLIN, 0};
    if (poll(&ready, 1, static_cast<int>(left)) <= 0) return false;
    char chunk[4096];
    const ssize_t n = read(terminal_, chunk, sizeof chunk);
    if (n <= 0) return false;  // the program closed the terminal (EIO)
    output_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int terminal_ = -1;
  pid_t pid_ = -1;
  bool exited_ = false;
  std::string output_;
};

}  // namespace lmdecode_test
