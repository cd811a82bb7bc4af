// jobsmith-beanstalk-load: one producer connection keeps `--inflight` puts
// pipelined, `--workers` connections each reserve then delete, until
// `--jobs` jobs went through. Prints jobs/s and the server's CPU time per
// job (utime + stime from /proc/PID/stat, before and after).
//
// It starts the servers itself, alternating when given both, so a
// comparison shares the machine's state:
//   jobsmith-beanstalk-load --jobsmith build/apps/jobsmith
//       --beanstalkd /usr/bin/beanstalkd --rounds 3 --jobs 20000
// `jobsmith serve` gets a fresh data directory and --beanstalk-listen on a
// free loopback port; beanstalkd runs as `beanstalkd -l 127.0.0.1 -p PORT
// -b DIR -f0` (fsync at every write, as jobsmith does per group commit).
// Both are stopped by the pid started here. `--port P --pid PID` loads a
// server started by hand instead (a profiler attached, other flags).
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/apps/server/beanstalk_socket.hpp"
#include "tests/crash/server_process.hpp"

namespace {

using namespace jobsmith::crash;
using clock_type = std::chrono::steady_clock;

struct settings {
  std::string jobsmith;
  std::string beanstalkd;
  std::size_t jobs = 20000;
  std::size_t workers = 8;
  std::size_t inflight = 32;
  std::size_t body_bytes = 32;
  int rounds = 1;
  std::string work_dir;
  std::uint16_t port = 0;  // a server already running (with --pid for its CPU)
  pid_t pid = 0;
};

/// The protocol socket; any failure ends the program (the server closed,
/// or did not answer within 30 s).
class conn {
 public:
  explicit conn(std::uint16_t port) : s_(port) {
    if (!s_.ok()) fail("connect");
  }
  void send(const std::string& bytes) {
    if (!s_.send(bytes)) fail("send");
  }
  std::string line() {
    auto l = s_.line();
    if (!l) fail("recv");
    return *l;
  }
  void skip(std::size_t n) {
    if (!s_.bytes(n)) fail("recv");
  }

 private:
  [[noreturn]] static void fail(const char* what) {
    std::fprintf(stderr,
                 "beanstalk-load: %s failed (the server closed or did not answer in 30 s)\n", what);
    std::exit(1);
  }
  jobsmith::test::beanstalk_socket s_;
};

/// utime + stime of `pid` in seconds.
double cpu_seconds(pid_t pid) {
  if (pid <= 0) return 0;
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct outcome {
  double seconds = 0;
  double cpu = 0;
};

outcome run_load(std::uint16_t port, pid_t pid, const settings& s) {
  const std::string body(s.body_bytes, 'x');
  const std::string put = "put 100 0 60 " + std::to_string(body.size()) + "\r\n" + body + "\r\n";
  std::atomic<std::size_t> deleted{0};
  std::vector<std::unique_ptr<conn>> worker_conns;
  for (std::size_t w = 0; w < s.workers; ++w) {
    worker_conns.push_back(std::make_unique<conn>(port));
    worker_conns.back()->send("use load\r\nwatch load\r\nignore default\r\n");
    for (int i = 0; i < 3; ++i) worker_conns.back()->line();
  }
  conn producer(port);
  producer.send("use load\r\n");
  producer.line();

  const double cpu0 = cpu_seconds(pid);
  const auto t0 = clock_type::now();
  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < s.workers; ++w)
    workers.emplace_back([&, w] {
      auto& c = *worker_conns[w];
      while (deleted.load() < s.jobs) {
        c.send("reserve-with-timeout 1\r\n");
        auto l = c.line();
        if (l == "TIMED_OUT") continue;
        std::size_t id = 0, bytes = 0;
        if (std::sscanf(l.c_str(), "RESERVED %zu %zu", &id, &bytes) != 2) {
          std::fprintf(stderr, "beanstalk-load: reserve answered '%s'\n", l.c_str());
          std::exit(1);
        }
        c.skip(bytes + 2);
        c.send("delete " + std::to_string(id) + "\r\n");
        if (auto d = c.line(); d != "DELETED") {
          std::fprintf(stderr, "beanstalk-load: delete answered '%s'\n", d.c_str());
          std::exit(1);
        }
        deleted.fetch_add(1);
      }
    });
  // The producer: `inflight` puts always on the wire.
  std::size_t sent = 0, answered = 0;
  auto send_some = [&](std::size_t n) {
    std::string batch;
    for (std::size_t i = 0; i < n && sent < s.jobs; ++i, ++sent) batch += put;
    if (!batch.empty()) producer.send(batch);
  };
  send_some(s.inflight);
  while (answered < s.jobs) {
    auto l = producer.line();
    if (l.rfind("INSERTED ", 0) != 0) {
      std::fprintf(stderr, "beanstalk-load: put answered '%s'\n", l.c_str());
      std::exit(1);
    }
    ++answered;
    send_some(1);
  }
  for (auto& t : workers) t.join();
  outcome o;
  o.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  o.cpu = cpu_seconds(pid) - cpu0;
  return o;
}

void report(const char* who, const outcome& o, const settings& s) {
  std::printf("%-10s %zu jobs in %.2f s: %8.0f jobs/s, server CPU %.2f s = %4.0f us/job\n", who,
              s.jobs, o.seconds, static_cast<double>(s.jobs) / o.seconds, o.cpu,
              o.cpu * 1e6 / static_cast<double>(s.jobs));
  std::fflush(stdout);
}

outcome run_jobsmith(const settings& s, int round) {
  auto dir = s.work_dir + "/jobsmith-" + std::to_string(round);
  std::filesystem::create_directories(dir);
  auto bport = free_port();
  server_process srv{s.jobsmith,
                     dir + "/data",
                     free_port(),
                     dir + "/server.log",
                     {"--beanstalk-listen", "127.0.0.1:" + std::to_string(bport)},
                     60};
  std::string err;
  if (!srv.start(&err)) {
    std::fprintf(stderr, "beanstalk-load: %s\n", err.c_str());
    std::exit(2);
  }
  auto o = run_load(bport, srv.pid(), s);
  srv.stop();
  return o;
}

outcome run_beanstalkd(const settings& s, int round) {
  auto dir = s.work_dir + "/beanstalkd-" + std::to_string(round);
  std::filesystem::create_directories(dir);
  auto port = free_port();
  pid_t pid = spawn({s.beanstalkd, "-l", "127.0.0.1", "-p", std::to_string(port), "-b", dir, "-f0"},
                    dir + ".log");
  // Ready once it accepts a connection.
  auto end = proc_clock::now() + std::chrono::seconds(10);
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (up) break;
    if (proc_clock::now() > end || wait_for(pid, std::chrono::milliseconds(0))) {
      std::fprintf(stderr, "beanstalk-load: beanstalkd did not start; see %s.log\n", dir.c_str());
      std::exit(2);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto o = run_load(port, pid, s);
  ::kill(pid, SIGTERM);  // only the pid started here
  if (!wait_for(pid, std::chrono::seconds(10))) {
    ::kill(pid, SIGKILL);
    wait_for(pid, std::chrono::seconds(10));
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "beanstalk-load: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--jobsmith")
      s.jobsmith = value();
    else if (a == "--beanstalkd")
      s.beanstalkd = value();
    else if (a == "--jobs")
      s.jobs = std::stoul(value());
    else if (a == "--workers")
      s.workers = std::stoul(value());
    else if (a == "--inflight")
      s.inflight = std::stoul(value());
    else if (a == "--body-bytes")
      s.body_bytes = std::stoul(value());
    else if (a == "--rounds")
      s.rounds = std::stoi(value());
    else if (a == "--work-dir")
      s.work_dir = value();
    else if (a == "--port")
      s.port = static_cast<std::uint16_t>(std::stoul(value()));
    else if (a == "--pid")
      s.pid = static_cast<pid_t>(std::stol(value()));
    else {
      std::fprintf(stderr,
                   "usage: jobsmith-beanstalk-load [--jobsmith BINARY] [--beanstalkd BINARY] "
                   "[--jobs N] [--workers N] [--inflight N] [--body-bytes N] [--rounds N] "
                   "[--work-dir DIR] [--port PORT --pid PID]\n");
      return 2;
    }
  }
  if (s.port != 0) {
    for (int r = 0; r < s.rounds; ++r) report("server", run_load(s.port, s.pid, s), s);
    return 0;
  }
  if (s.jobsmith.empty() && s.beanstalkd.empty()) {
    std::fprintf(stderr,
                 "beanstalk-load: give --jobsmith BINARY and/or --beanstalkd BINARY, or --port\n");
    return 2;
  }
  if (s.jobs == 0 || s.workers == 0 || s.inflight == 0 || s.rounds < 1 || s.rounds > 100) {
    std::fprintf(stderr,
                 "beanstalk-load: --jobs, --workers, --inflight must be > 0, --rounds 1..100\n");
    return 2;
  }
  bool own = prepare_work_dir(s.work_dir, "beanstalk-load");
  std::printf(
      "%zu jobs of %zu bytes; 1 producer with %zu puts in flight, %zu workers (reserve, delete)\n",
      s.jobs, s.body_bytes, s.inflight, s.workers);
  for (int r = 0; r < s.rounds; ++r) {
    if (!s.jobsmith.empty()) report("jobsmith", run_jobsmith(s, r), s);
    if (!s.beanstalkd.empty()) report("beanstalkd", run_beanstalkd(s, r), s);
  }
  if (own) std::filesystem::remove_all(s.work_dir);
  return 0;
}
