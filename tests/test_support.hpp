// What several test suites share: a temporary directory, waiting with a
// deadline instead of sleeping, a gate for handlers, readable failures, and
// running a program (the jobsmith binary) to its end.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "events/event.hpp"
#include "events/job_state.hpp"

namespace jobsmith::test {

/// A fresh directory under /tmp for one test, removed with everything in it
/// when the test ends.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = "/tmp/jobsmith-test-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  const std::string& path() const { return path_; }
  /// A path inside the directory that does not exist yet.
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Polls `pred` until it holds or `limit` passes; returns its last value.
template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

/// A one-shot gate handlers wait at (bounded, so a failing test never hangs
/// the engine's close).
class gate {
 public:
  void open() {
    std::lock_guard<std::mutex> g{mu_};
    open_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> l{mu_};
    return cv_.wait_for(l, limit, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// The error of a failed result, for failure messages.
template <class Result>
std::string why(const Result& r) {
  return r.ok() ? std::string{} : r.error().to_string();
}

/// The bodies of type T in a job's history, in order.
template <class T>
std::vector<T> bodies_of(const std::vector<event>& history) {
  std::vector<T> out;
  for (auto& ev : history)
    if (auto b = std::get_if<T>(&ev.body)) out.push_back(*b);
  return out;
}

/// What a program printed and how it ended.
struct command_result {
  int exit_code = -1;  // -1: it did not exit normally (killed by a signal)
  std::string out;
  std::string err;
};

/// Runs `argv` (argv[0] is the program's path) to its end with stdout and
/// stderr captured; throws when it cannot be started.
inline command_result run_command(const std::vector<std::string>& argv) {
  temp_dir capture;
  const std::string out_path = capture.sub("out"), err_path = capture.sub("err");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, argv.at(0).c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::to_string(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  command_result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

}  // namespace jobsmith::test
