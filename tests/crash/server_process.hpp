// Child processes for the programs of tests/crash (the kill loop, the
// worker faults, the load test): start `jobsmith serve` on a loopback port,
// wait for it to be ready, stop or kill it by its pid, and read what /proc
// says about a process. Header-only; every wait has a deadline.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "apps/client/http_client.hpp"

namespace jobsmith::crash {

using proc_clock = std::chrono::steady_clock;

/// Runs `args` (args[0] is the program's path) with stdout and stderr
/// appended to `log`; returns its pid, or -1. The child dies with this
/// process (PR_SET_PDEATHSIG), so a test killed by its timeout leaves no
/// server behind, and inherits none of its descriptors.
inline pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fd);
  return pid;
}

/// waitpid with a deadline: the exit status as the shell shows it
/// (128+signal), -1 when `pid` is not a child, nullopt on timeout.
inline std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds limit) {
  auto end = proc_clock::now() + limit;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (r < 0) return -1;
    if (proc_clock::now() > end) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

inline std::string read_file(const std::string& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The last `lines` lines of `file`, each indented by four spaces.
inline std::string tail(const std::string& file, std::size_t lines) {
  std::ifstream in(file);
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  for (auto i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "    " + all[i] + "\n";
  return out;
}

/// A loopback port that was free a moment ago (bind to 0). Exits the
/// program (status 2) when there is none: nothing can be tested then.
inline std::uint16_t free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::perror("finding a free loopback port");
    std::exit(2);
  }
  ::close(s);
  return ntohs(a.sin_port);
}

/// Fills an empty `work_dir` with a fresh directory /tmp/jobsmith-NAME-XXXXXX
/// and creates it; true when the directory was made here (the program
/// removes it after a clean run), false when it was given. Exits the
/// program (status 2) when no directory can be made.
inline bool prepare_work_dir(std::string& work_dir, const std::string& name) {
  bool own = work_dir.empty();
  if (own) {
    std::string tmpl = "/tmp/jobsmith-" + name + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror((name + ": mkdtemp").c_str());
      std::exit(2);
    }
    work_dir = tmpl;
  }
  std::filesystem::create_directories(work_dir);
  return own;
}

/// The state letter (R, S, T for stopped, Z...) and parent pid of `pid`
/// from /proc/PID/stat; false when there is no such process.
inline bool proc_stat(pid_t pid, char& state, pid_t& parent) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');  // the command name may hold spaces and ')'
  if (close == std::string::npos) return false;
  std::istringstream in(stat.substr(close + 1));
  long ppid = -1;
  if (!(in >> state >> ppid)) return false;
  parent = static_cast<pid_t>(ppid);
  return true;
}

/// A "Vm...:" field of /proc/PID/status in bytes (VmRSS now, VmHWM the
/// peak), or 0 when the process or the field is gone.
inline std::uint64_t proc_memory(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream v(line.substr(field.size() + 1));
    std::uint64_t kb = 0;
    v >> kb;
    return kb * 1024;
  }
  return 0;
}

/// One `jobsmith serve` on 127.0.0.1:port over `data`, output appended to
/// `log`. Killed (SIGKILL, by its pid) when the object goes.
class server_process {
 public:
  /// `extra` is appended to the serve command line (limits, snapshot cadence).
  server_process(std::string binary, std::string data, std::uint16_t port, std::string log,
                 std::vector<std::string> extra, int ready_timeout_s)
      : binary_(std::move(binary)),
        data_(std::move(data)),
        port_(port),
        log_(std::move(log)),
        extra_(std::move(extra)),
        ready_timeout_s_(ready_timeout_s) {}
  ~server_process() { kill_now(); }
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  /// Starts the server and waits for `GET /readyz` to answer 200: the
  /// milliseconds that took, or nullopt with the reason in `error`.
  std::optional<std::int64_t> start(std::string* error) {
    auto t0 = proc_clock::now();
    // A port found free can be taken before the server binds it, or still
    // be held for a moment by a killed server's sockets: a start that exits
    // at once is tried again.
    for (int attempt = 0;; ++attempt) {
      starts = attempt + 1;
      std::vector<std::string> args{binary_, "serve", "--data", data_, "--listen",
                                    "127.0.0.1:" + std::to_string(port_)};
      args.insert(args.end(), extra_.begin(), extra_.end());
      pid_ = spawn(args, log_);
      if (pid_ < 0) {
        *error = "cannot start " + binary_;
        return std::nullopt;
      }
      http::url u;
      u.port = port_;
      http::client c(u, {}, std::chrono::seconds(2));
      auto end = proc_clock::now() + std::chrono::seconds(ready_timeout_s_);
      while (proc_clock::now() < end) {
        if (auto st = wait_for(pid_, std::chrono::milliseconds(0))) {
          pid_ = -1;
          if (attempt < 20) break;  // try again
          *error = "the server exited with status " + std::to_string(*st) +
                   " before it was ready; its log ends:\n" + tail(log_, 15);
          return std::nullopt;
        }
        if (c.get("/readyz").status == 200)
          return std::chrono::duration_cast<std::chrono::milliseconds>(proc_clock::now() - t0)
              .count();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      if (pid_ < 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      *error = "the server was not ready within " + std::to_string(ready_timeout_s_) +
               " s; its log ends:\n" + tail(log_, 15);
      kill_now();
      return std::nullopt;
    }
  }

  int starts = 0;  // processes the last start() needed (a busy port costs one)

  pid_t pid() const { return pid_; }
  const std::string& log() const { return log_; }

  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);  // only the pid this object started
    wait_for(pid_, std::chrono::seconds(60));
    pid_ = -1;
  }

  /// SIGTERM and wait: the exit status (-1 if it had to be killed).
  int stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    auto st = wait_for(pid_, std::chrono::seconds(60));
    if (!st) {
      kill_now();
      return -1;
    }
    pid_ = -1;
    return *st;
  }

 private:
  std::string binary_;
  std::string data_;
  std::uint16_t port_;
  std::string log_;
  std::vector<std::string> extra_;
  int ready_timeout_s_;
  pid_t pid_ = -1;
};

}  // namespace jobsmith::crash
