// What the audit test executables share: running the jobsmith binary
// (JOBSMITH_BINARY, a compile definition of each test target), making logs
// through the real RocksDB log, and tampering with them through a raw
// RocksDB handle.
#pragma once

#include <fcntl.h>
#include <rocksdb/db.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "events/codec.hpp"
#include "store/event_log.hpp"
#include "store/record_format.hpp"
#include "store/rocksdb_log.hpp"
#include "tests/store/raw_db.hpp"
#include "tests/test_support.hpp"

namespace jobsmith::test {
std::vector<event> sample_events();  // tests/events/sample_events.cpp
}

namespace jobsmith::test::audit {

namespace js = jobsmith::store;
namespace fs = std::filesystem;
using jobsmith::event;
using jobsmith::job_id;
using jobsmith::millis;
using jobsmith::sequence_t;
using jobsmith::test::temp_dir;
using nlohmann::json;

// 2026-11-22T14:00:00Z; record n of a test log has time base_time + n seconds.
inline constexpr millis base_time = 1'795'356'000'000;

// -- running the binary ---------------------------------------------------------

struct run_result {
  int code = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Runs `jobsmith args...` with stdout and stderr captured in files (not a
/// terminal: no progress bar), and waits for it.
inline run_result jobsmith_cmd(const std::vector<std::string>& args) {
  temp_dir io;
  const std::string out_path = io.sub("out");
  const std::string err_path = io.sub("err");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> all{JOBSMITH_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, JOBSMITH_BINARY, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  BOOST_REQUIRE_MESSAGE(rc == 0, "posix_spawn " << JOBSMITH_BINARY << ": " << rc);
  int status = 0;
  BOOST_REQUIRE(::waitpid(pid, &status, 0) == pid);
  run_result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

inline json verify_json(const std::string& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"audit", "verify", "--data", dir, "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  run_result r = jobsmith_cmd(args);
  BOOST_TEST_INFO("stdout: " << r.out << "\nstderr: " << r.err);
  json j = json::parse(r.out, nullptr, false);
  BOOST_REQUIRE(!j.is_discarded());
  j["exit"] = r.code;
  return j;
}


// -- making logs ------------------------------------------------------------------

inline std::unique_ptr<js::event_log> open_log(const std::string& dir, js::rocksdb_log_options o = {}) {
  std::unique_ptr<js::event_log> log;
  js::status s = js::open_rocksdb_log(dir, o, &log);
  BOOST_REQUIRE_MESSAGE(s.is_ok(), s.to_string());
  return log;
}

/// A log of `n` events: every event type in turn (sample_events), record n
/// belongs to job 1 + n % 7 (0 for queue and engine events), time base_time +
/// n s. Appended in batches of 50. Returns the events as appended, with seq
/// and job set.
inline std::vector<event> make_log(const std::string& dir, int n) {
  const auto samples = jobsmith::test::sample_events();
  auto log = open_log(dir);
  std::vector<event> all;
  std::vector<js::record_input> batch;
  for (int i = 1; i <= n; ++i) {
    event ev = samples[static_cast<std::size_t>(i) % samples.size()];
    ev.seq = static_cast<sequence_t>(i);
    const bool job_event = type_name(ev.body).substr(0, 4) == "job.";
    ev.job = job_event ? 1 + static_cast<job_id>(i % 7) : 0;
    ev.time = base_time + i * 1000;
    ev.principal = "user:p" + std::to_string(i % 3);
    batch.push_back({ev.job, jobsmith::encode(ev)});
    all.push_back(ev);
    if (batch.size() == 50 || i == n) {
      BOOST_REQUIRE(log->append(batch, nullptr).is_ok());
      batch.clear();
    }
  }
  return all;
}

inline std::vector<js::record> read_records(const std::string& dir) {
  js::rocksdb_log_options o;
  o.read_only = true;
  auto log = open_log(dir, o);
  std::vector<js::record> out;
  BOOST_REQUIRE(log->read(1, log->head(),
                          [&](const js::record& r) {
                            out.push_back(r);
                            return true;
                          })
                    .is_ok());
  return out;
}

using jobsmith::test::raw_db;  // tests/store/raw_db.hpp

/// name -> (size, mtime in ns) of every file under `dir`.
inline std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> listing(const std::string& dir) {
  std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    BOOST_REQUIRE(::stat(e.path().c_str(), &st) == 0);
    out[e.path().string()] = {static_cast<std::uintmax_t>(st.st_size),
                              st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
  }
  return out;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace jobsmith::test::audit
