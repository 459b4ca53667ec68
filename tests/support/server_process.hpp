#pragma once
// A program run in the background for a test: lmdecode-serve on a free port, read from the line it
// prints ("listening on http://HOST:PORT"); stopped with a signal, its exit code kept, or killed
// when the test ends without stopping it.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace lmdecode_test {

class ServerProcess {
 public:
  /// Starts `program` with `args` and waits (up to `startup`) for its "listening on http://H:P" line.
  ServerProcess(const std::string& program, std::vector<std::string> args, std::chrono::seconds startup = std::chrono::seconds(60)) {
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe failed");
    log_ = std::string("/tmp/lmdecode-serve-test-") + std::to_string(getpid()) + "-" + std::to_string(++started()) + ".log";
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      const int err = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(err, STDERR_FILENO);
      close(out[0]);
      std::vector<char*> argv{const_cast<char*>(program.c_str())};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(program.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    out_ = out[0];
    port_ = read_port(startup);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() {
    if (!exit_code_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_);
    std::remove(log_.c_str());
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

  /// The server's resident memory now, in KiB.
  long rss_kib() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
  }

  void signal(int number) const { kill(pid_, number); }

  /// Waits up to `limit` for the program to exit: its exit code, or nothing if it has not exited
  /// (-1: it ended by a signal).
  std::optional<int> wait_exit(std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!exit_code_) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      else if (std::chrono::steady_clock::now() > end) break;
      else std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return exit_code_;
  }

  /// What the program wrote on stderr so far.
  std::string log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  static int& started() {
    static int n = 0;
    return n;
  }

  int read_port(std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    std::string text;
    const std::string listening = "listening on http://";
    while (std::chrono::steady_clock::now() < end) {
      pollfd ready{out_, POLLIN, 0};
      if (poll(&ready, 1, 100) <= 0) continue;
      char buffer[512];
      const ssize_t n = read(out_, buffer, sizeof buffer);
      if (n <= 0) break;
      text.append(buffer, static_cast<size_t>(n));
      const size_t at = text.find(listening);
      const size_t colon = at == std::string::npos ? at : text.find(':', at + listening.size());
      const size_t end = colon == std::string::npos ? colon : text.find_first_not_of("0123456789", colon + 1);
      if (end != std::string::npos && end > colon + 1) return std::stoi(text.substr(colon + 1, end - colon - 1));
    }
    throw std::runtime_error("the server did not say where it listens; it printed: " + text + "\n" + log());
  }

  pid_t pid_ = -1;
  int out_ = -1;
  int port_ = 0;
  std::string log_;
  std::optional<int> exit_code_;
};

}  // namespace lmdecode_test
