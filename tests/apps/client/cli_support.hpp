// The fixture of the tests that run the real `jobsmith` binary
// (JOBSMITH_BINARY) as subprocesses against a real `jobsmith serve` on a free
// loopback port with a fresh data directory.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/client/http_client.hpp"
#include "tests/test_support.hpp"

extern char** environ;

namespace jobsmith::test::cli {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace http = jobsmith::http;

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// A `jobsmith` subprocess with stdout and stderr in files.
class process {
 public:
  process(const std::string& dir, std::vector<std::string> args, const std::string& stdin_text = {})
      : out_(dir + "/out-" + std::to_string(++counter)), err_(out_ + ".err"), in_(out_ + ".in") {
    std::ofstream(in_) << stdin_text;
    args.insert(args.begin(), JOBSMITH_BINARY);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in_.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    BOOST_TEST_REQUIRE(rc == 0, "spawn " << JOBSMITH_BINARY);
    what_ = args[1];
  }
  ~process() {
    if (!exited_) {
      ::kill(pid_, SIGKILL);
      wait(10s);
    }
  }
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  void signal(int sig) { ::kill(pid_, sig); }
  /// The exit code (128+signal when killed), or -1 when it did not end in time.
  int wait(std::chrono::milliseconds limit = 20s) {
    if (exited_) return code_;
    wait_until(
        [&] {
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
          exited_ = true;
          code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          return true;
        },
        limit);
    return exited_ ? code_ : -1;
  }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }
  pid_t pid() const { return pid_; }

 private:
  static inline int counter = 0;
  std::string out_, err_, in_, what_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int code_ = -1;
};

struct result {
  int code;
  std::string out, err;
};

/// `jobsmith serve` on a fresh directory; verbs run against it.
struct served {
  temp_dir dir;
  std::uint16_t port = free_port();
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  std::unique_ptr<process> server;

  served() { start_server(); }

  /// Stops the server (SIGTERM) and starts it again on the same port and data.
  void restart() {
    server->signal(SIGTERM);
    BOOST_TEST_REQUIRE(server->wait(15s) >= 0, "serve did not stop");
    start_server();
  }

  void start_server() {
    server = std::make_unique<process>(
        dir.path(), std::vector<std::string>{"serve", "--data", dir.sub("data"), "--listen",
                                             "127.0.0.1:" + std::to_string(port)});
    http::url u;
    u.port = port;
    bool ready = wait_until(
        [&] {
          http::client c(u, {}, 1s);
          return c.get("/readyz").status == 200;
        },
        20s);
    BOOST_TEST_REQUIRE(ready, "serve did not become ready: " << server->err());
  }
  ~served() {
    server->signal(SIGTERM);
    if (server->wait(15s) < 0) server->signal(SIGKILL);
  }

  /// Runs a verb to its end with --url added.
  result run(std::vector<std::string> args, const std::string& stdin_text = {}) {
    args.insert(args.begin() + 1, {"--url", url});
    process p(dir.path(), args, stdin_text);
    int code = p.wait(20s);
    return {code, p.out(), p.err()};
  }
  /// Starts a verb in the background with --url added.
  std::unique_ptr<process> start(std::vector<std::string> args) {
    args.insert(args.begin() + 1, {"--url", url});
    return std::make_unique<process>(dir.path(), args);
  }

  std::uint64_t submit(std::vector<std::string> args) {
    args.insert(args.begin(), "submit");
    auto r = run(args);
    // The server's stderr too: a submit once failed under ASan with "connection
    // closed by the server before it answered" and nothing else to go on.
    BOOST_TEST_REQUIRE(r.code == 0, r.err << "\n--- serve stderr:\n" << server->err());
    return std::stoull(r.out);
  }
  json job(std::uint64_t id) {
    http::url u;
    u.port = port;
    http::client c(u, {}, 5s);
    return c.get("/v1/jobs/" + std::to_string(id)).json();
  }
  std::string state(std::uint64_t id) {
    auto j = job(id);
    return j.contains("job") ? j["job"]["state"].get<std::string>() : "?";
  }
  bool wait_state(std::uint64_t id, const std::string& want,
                  std::chrono::milliseconds limit = 15s) {
    return wait_until([&] { return state(id) == want; }, limit);
  }
  /// The types of the job's events, in order.
  std::vector<std::string> history(std::uint64_t id) {
    std::vector<std::string> types;
    auto j = job(id);  // (a temporary's member in a range-for would dangle)
    for (auto& ev : j["history"]) types.push_back(ev["type"]);
    return types;
  }
};

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

inline const std::vector<std::string> ok_command = {"--", "sh", "-c", "cat >/dev/null; echo '{\"ok\":1}'"};

inline std::vector<std::string> work_args(std::vector<std::string> options,
                                   const std::vector<std::string>& command) {
  options.insert(options.begin(), "work");
  options.insert(options.end(), {"--wait", "500"});
  options.insert(options.end(), command.begin(), command.end());
  return options;
}

}  // namespace jobsmith::test::cli
