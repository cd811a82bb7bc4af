// jobsmith-beanstalk-crash: the kill loop for the beanstalkd protocol.
// Starts `jobsmith serve --beanstalk-listen` on a fresh data directory,
// has a producer pipeline puts and workers reserve and delete (now and then
// release) over the protocol, SIGKILLs the server at a random moment,
// restarts it on the same directory and ports, and checks what the
// protocol acknowledged:
//   1. every INSERTED id exists after the restart, with its body byte for
//      byte (over HTTP, through the protocol's body mapping);
//   2. every DELETED job is `succeeded` after the restart;
//   3. a job is never RESERVED again after its DELETED, and a reserved
//      job's body is the one its put sent.
// Violations go to stdout, one per line; the exit status is 1 on any.
// Only the server process this program started is ever signalled.
//
//   jobsmith-beanstalk-crash --binary build/apps/jobsmith [--kills 5] [--seed S]
#include <atomic>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "apps/client/http_client.hpp"
#include "apps/server/beanstalk/job_body.hpp"
#include "tests/apps/server/beanstalk_socket.hpp"
#include "tests/crash/server_process.hpp"

namespace {

using namespace jobsmith::crash;
using jobsmith::test::beanstalk_socket;

struct settings {
  std::string binary;
  int kills = 5;
  std::uint64_t seed = 1;
  std::string work_dir;
  int min_ms = 150;  // a round lasts this long at least before the kill
  int max_ms = 700;
};

/// What the server acknowledged, shared by the load threads.
struct ledger {
  std::mutex mu;
  std::map<std::uint64_t, std::string> inserted;  // id -> body
  std::set<std::uint64_t> deleted;
  std::vector<std::string> violations;
  void violation(std::string text) {
    std::lock_guard<std::mutex> guard{mu};
    violations.push_back(std::move(text));
  }
};

/// Keeps `inflight` puts on the wire until the connection fails. Answers
/// come in command order, so the n-th answer is the n-th put's.
void produce(std::uint16_t port, int round, ledger& book, const std::atomic<bool>& stop) {
  beanstalk_socket s{port, std::chrono::seconds(10)};
  if (!s.ok() || !s.send("use crash\r\n") || !s.line()) return;
  std::deque<std::string> sent;
  std::uint64_t n = 0;
  auto put = [&] {
    std::string body = "job " + std::to_string(round) + "-" + std::to_string(n++);
    if (n % 5 == 0) body += std::string("\0\1\xff", 3);  // not UTF-8: the base64 envelope
    sent.push_back(body);
    return s.send("put 100 0 60 " + std::to_string(body.size()) + "\r\n" + body + "\r\n");
  };
  for (int i = 0; i < 16; ++i)
    if (!put()) return;
  while (!stop.load()) {
    auto l = s.line();
    if (!l) return;
    auto body = std::move(sent.front());
    sent.pop_front();
    if (l->rfind("INSERTED ", 0) == 0) {
      std::lock_guard<std::mutex> guard{book.mu};
      book.inserted[std::stoull(l->substr(9))] = std::move(body);
    }
    if (!put()) return;
  }
}

/// Reserves, then deletes (one in ten: releases), until the connection fails.
void work(std::uint16_t port, std::uint64_t seed, ledger& book, const std::atomic<bool>& stop) {
  beanstalk_socket s{port, std::chrono::seconds(10)};
  if (!s.ok() || !s.send("watch crash\r\nignore default\r\n") || !s.line() || !s.line()) return;
  std::mt19937_64 rng{seed};
  while (!stop.load()) {
    if (!s.send("reserve-with-timeout 1\r\n")) return;
    auto l = s.line();
    if (!l) return;
    unsigned long long id = 0;
    std::size_t size = 0;
    if (std::sscanf(l->c_str(), "RESERVED %llu %zu", &id, &size) != 2) continue;
    auto body = s.bytes(size + 2);
    if (!body) return;
    body->resize(size);
    {
      std::lock_guard<std::mutex> guard{book.mu};
      if (book.deleted.count(id) != 0)
        book.violations.push_back("job " + std::to_string(id) + " reserved again after DELETED");
      auto it = book.inserted.find(id);
      if (it != book.inserted.end() && it->second != *body)
        book.violations.push_back("job " + std::to_string(id) + " reserved with another body");
    }
    if (rng() % 10 == 0) {
      if (!s.send("release " + std::to_string(id) + " 100 0\r\n") || !s.line()) return;
      continue;
    }
    if (!s.send("delete " + std::to_string(id) + "\r\n")) return;
    auto d = s.line();
    if (!d) return;
    if (*d == "DELETED") {
      std::lock_guard<std::mutex> guard{book.mu};
      book.deleted.insert(id);
    }
  }
}

/// Checks the acknowledgements not yet checked against the restarted server.
void check(std::uint16_t http_port, ledger& book, std::size_t& inserts_checked,
           std::set<std::uint64_t>& deletes_checked) {
  jobsmith::http::url u;
  u.port = http_port;
  jobsmith::http::client c{u, {}, std::chrono::seconds(30)};
  std::map<std::uint64_t, std::string> inserted;
  std::set<std::uint64_t> deleted;
  {
    std::lock_guard<std::mutex> guard{book.mu};
    inserted = book.inserted;
    deleted = book.deleted;
  }
  std::size_t i = 0;
  for (auto& [id, body] : inserted) {
    if (i++ < inserts_checked) continue;  // ids only grow: the map's order
    auto r = c.get("/v1/jobs/" + std::to_string(id));
    auto j = r.json();
    if (r.status != 200 || !j.is_object()) {
      book.violation("job " + std::to_string(id) + ": acknowledged INSERTED, now HTTP " +
                     std::to_string(r.status));
      continue;
    }
    auto payload = j["job"]["spec"]["payload"].dump();
    if (jobsmith::server::beanstalk::body_of(payload) != body)
      book.violation("job " + std::to_string(id) + ": body changed to payload " + payload);
  }
  inserts_checked = inserted.size();
  for (auto id : deleted) {
    if (!deletes_checked.insert(id).second) continue;
    auto j = c.get("/v1/jobs/" + std::to_string(id)).json();
    std::string state = j.is_object() ? j["job"].value("state", "") : "";
    if (state != "succeeded")
      book.violation("job " + std::to_string(id) + ": acknowledged DELETED, now '" + state + "'");
  }
}

bool wait_for_port(std::uint16_t port) {
  auto end = proc_clock::now() + std::chrono::seconds(30);
  while (proc_clock::now() < end) {
    beanstalk_socket s{port};
    if (s.ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  settings o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "beanstalk-crash: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--binary")
      o.binary = value();
    else if (a == "--kills")
      o.kills = std::stoi(value());
    else if (a == "--seed")
      o.seed = std::stoull(value());
    else if (a == "--work-dir")
      o.work_dir = value();
    else if (a == "--min-ms")
      o.min_ms = std::stoi(value());
    else if (a == "--max-ms")
      o.max_ms = std::stoi(value());
    else {
      std::fprintf(stderr,
                   "usage: jobsmith-beanstalk-crash --binary PATH [--kills N] [--seed S] "
                   "[--work-dir DIR] [--min-ms MS] [--max-ms MS]\n");
      return 2;
    }
  }
  if (o.binary.empty() || o.kills < 1 || o.min_ms < 0 || o.max_ms < o.min_ms) {
    std::fprintf(
        stderr, "beanstalk-crash: --binary is required; --kills >= 1; 0 <= --min-ms <= --max-ms\n");
    return 2;
  }
  bool own = prepare_work_dir(o.work_dir, "beanstalk-crash");
  const std::uint16_t http_port = free_port();
  const std::uint16_t bs_port = free_port();
  server_process srv{o.binary,
                     o.work_dir + "/data",
                     http_port,
                     o.work_dir + "/server.log",
                     {"--beanstalk-listen", "127.0.0.1:" + std::to_string(bs_port)},
                     60};
  ledger book;
  std::mt19937_64 rng{o.seed};
  std::size_t inserts_checked = 0;
  std::set<std::uint64_t> deletes_checked;
  for (int round = 0; round <= o.kills; ++round) {
    std::string err;
    if (!srv.start(&err) || !wait_for_port(bs_port)) {
      std::printf("the server did not start: %s\n", err.c_str());
      return 1;
    }
    if (round > 0) check(http_port, book, inserts_checked, deletes_checked);
    if (round == o.kills) break;
    std::atomic<bool> stop{false};
    std::vector<std::thread> load;
    load.emplace_back(produce, bs_port, round, std::ref(book), std::cref(stop));
    for (int w = 0; w < 3; ++w)
      load.emplace_back(work, bs_port, rng(), std::ref(book), std::cref(stop));
    std::this_thread::sleep_for(std::chrono::milliseconds(
        o.min_ms + static_cast<int>(rng() % static_cast<std::uint64_t>(o.max_ms - o.min_ms + 1))));
    srv.kill_now();  // SIGKILL, the pid started here
    stop = true;
    for (auto& t : load) t.join();
  }
  srv.stop();
  std::size_t inserted = 0, deleted = 0;
  {
    std::lock_guard<std::mutex> guard{book.mu};
    inserted = book.inserted.size();
    deleted = book.deleted.size();
  }
  for (auto& v : book.violations) std::printf("%s\n", v.c_str());
  std::printf(
      "beanstalk-crash: %d kills, %zu INSERTED and %zu DELETED acknowledged and checked, "
      "%zu violations\n",
      o.kills, inserted, deleted, book.violations.size());
  if (book.violations.empty() && own) std::filesystem::remove_all(o.work_dir);
  return book.violations.empty() ? 0 : 1;
}
