// `jobsmith audit export|verify|stats` and `jobsmith backup`, run as the real
// binary (JOBSMITH_BINARY) over real RocksDB data directories, by concern:
// what export gives back, what verify finds in a damaged log and how it
// exits, that the tools never write, and that a backup taken while an engine
// writes is a log that verifies and holds every acknowledged job.
#define BOOST_TEST_MODULE apps_audit
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <rocksdb/db.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "actors/engine.hpp"
#include "events/codec.hpp"
#include "events/json.hpp"
#include "store/event_log.hpp"
#include "store/record_format.hpp"
#include "store/rocksdb_log.hpp"
#include "tests/apps/audit/audit_test_support.hpp"
#include "tests/test_support.hpp"

namespace js = jobsmith::store;
namespace fs = std::filesystem;
namespace bdata = boost::unit_test::data;
using jobsmith::event;
using jobsmith::job_id;
using jobsmith::millis;
using jobsmith::sequence_t;
using jobsmith::test::temp_dir;
using nlohmann::json;
using namespace jobsmith::test::audit;

namespace {

/// The events of an export, parsed back with from_json, and their hashes.
std::vector<std::pair<event, std::string>> export_events(const std::string& dir,
                                                         std::vector<std::string> extra = {}) {
  temp_dir tmp;
  const std::string file = tmp.sub("export.jsonl");
  std::vector<std::string> args{"audit", "export", "--data", dir, "--out", file};
  args.insert(args.end(), extra.begin(), extra.end());
  run_result r = jobsmith_cmd(args);
  BOOST_REQUIRE_MESSAGE(r.code == 0, "export exited " << r.code << ": " << r.err);
  std::vector<std::pair<event, std::string>> out;
  std::istringstream lines(slurp(file));
  std::string line;
  while (std::getline(lines, line)) {
    json j = json::parse(line, nullptr, false);
    BOOST_REQUIRE_MESSAGE(j.is_object(), "not a JSON object: " << line);
    BOOST_REQUIRE(j.contains("hash"));
    std::string hash = j["hash"].get<std::string>();
    j.erase("hash");
    event ev;
    std::string error;
    BOOST_REQUIRE_MESSAGE(jobsmith::from_json(j, ev, &error), error << " in " << line);
    out.emplace_back(std::move(ev), std::move(hash));
  }
  return out;
}

/// Serves exactly one HTTP request on 127.0.0.1:<free port> from its own
/// thread: `answer(request)` returns the whole response. Stands in for
/// `jobsmith serve` where the server side is not wired yet.
class one_shot_server {
 public:
  explicit one_shot_server(std::function<std::string(const std::string&)> answer) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    BOOST_REQUIRE(::listen(fd_, 4) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, answer = std::move(answer)] {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 30'000) <= 0) return;
      const int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      std::string got;
      char buf[4096];
      for (;;) {  // head, then Content-Length bytes of body
        const auto end = got.find("\r\n\r\n");
        if (end != std::string::npos) {
          std::string head = got.substr(0, end);
          for (auto& ch : head)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          std::size_t length = 0;
          const auto cl = head.find("content-length:");
          if (cl != std::string::npos) length = std::stoul(head.substr(cl + 15));
          if (got.size() >= end + 4 + length) break;
        }
        pollfd c{conn, POLLIN, 0};
        if (::poll(&c, 1, 10'000) <= 0) break;
        const auto n = ::recv(conn, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
      }
      request_ = got;
      const std::string response = answer(got);
      ::send(conn, response.data(), response.size(), MSG_NOSIGNAL);
      ::close(conn);
    });
  }
  one_shot_server(const one_shot_server&) = delete;
  one_shot_server& operator=(const one_shot_server&) = delete;
  ~one_shot_server() {
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  /// The request as received; valid after the client finished.
  const std::string& request() const { return request_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::string request_;
  std::thread thread_;
};

std::string http_response(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

// -- export: what comes out is what was appended ------------------------------------

BOOST_AUTO_TEST_SUITE(export_)

BOOST_AUTO_TEST_CASE(export_of_all_gives_back_every_event_and_its_hash) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  const auto appended = make_log(dir, 400);
  const auto records = read_records(dir);
  const auto got = export_events(dir);
  BOOST_REQUIRE_EQUAL(got.size(), appended.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    BOOST_TEST_CONTEXT("record " << i + 1) {
      BOOST_TEST((got[i].first == appended[i]));
      BOOST_TEST(got[i].second == js::to_hex(records[i].hash));
    }
  }
}

BOOST_AUTO_TEST_CASE(export_of_a_sequence_range_is_inclusive) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  const auto appended = make_log(dir, 300);
  const auto got = export_events(dir, {"--from", "101", "--to", "200"});
  BOOST_REQUIRE_EQUAL(got.size(), 100u);
  for (std::size_t i = 0; i < got.size(); ++i) BOOST_TEST((got[i].first == appended[100 + i]));
  // --to past the head stops at the head.
  BOOST_TEST(export_events(dir, {"--from", "290", "--to", "5000"}).size() == 11u);
}

BOOST_AUTO_TEST_CASE(export_to_a_time_ends_at_the_last_event_at_or_before_it) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  make_log(dir, 300);
  // Record n has time base + n s: 14:04:10.500Z is between records 250 and 251.
  auto got = export_events(dir, {"--to", "2026-11-22T14:04:10.500Z"});
  BOOST_REQUIRE_EQUAL(got.size(), 250u);
  BOOST_TEST(got.back().first.seq == 250u);
  // The same bound as epoch milliseconds, and exactly on an event's time.
  got = export_events(dir, {"--to", std::to_string(base_time + 250'000)});
  BOOST_TEST(got.size() == 250u);
  got = export_events(dir, {"--from", "240", "--to", std::to_string(base_time + 250'000) + "ms"});
  BOOST_TEST(got.size() == 11u);
  // Before the first event: nothing.
  BOOST_TEST(export_events(dir, {"--to", "2026-11-22T13:00:00Z"}).empty());
}

BOOST_AUTO_TEST_CASE(export_of_one_job_is_its_history_in_order) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  const auto appended = make_log(dir, 350);
  std::vector<event> want;
  for (const auto& ev : appended)
    if (ev.job == 4) want.push_back(ev);
  BOOST_REQUIRE(!want.empty());
  const auto got = export_events(dir, {"--job", "4"});
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) BOOST_TEST((got[i].first == want[i]));
  // Combined with a range.
  const auto ranged = export_events(dir, {"--job", "4", "--from", "100", "--to", "200"});
  for (const auto& [ev, hash] : ranged) BOOST_TEST((ev.seq >= 100 && ev.seq <= 200 && ev.job == 4));
  BOOST_TEST(!ranged.empty());
  BOOST_TEST(export_events(dir, {"--job", "999"}).empty());
}

BOOST_AUTO_TEST_SUITE_END()

// -- verify: damage is found, named and reflected in the exit code --------------------

BOOST_AUTO_TEST_SUITE(verify)

BOOST_AUTO_TEST_CASE(a_clean_log_verifies_and_exits_zero) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  make_log(dir, 1000);
  const json j = verify_json(dir);
  BOOST_TEST(j["exit"] == 0);
  BOOST_TEST(j["ok"] == true);
  BOOST_TEST(j["checked"] == 1000);
  BOOST_TEST(j["head"] == 1000);
  BOOST_TEST(j["last_hash"] == js::to_hex(read_records(dir).back().hash));

  run_result text = jobsmith_cmd({"audit", "verify", "--data", dir});
  BOOST_TEST(text.code == 0);
  BOOST_TEST(contains(text.out, "checked 1,000 events"), text.out);
}

struct flip_case {
  std::size_t offset;   // into the stored value (record_format.hpp)
  const char* problem;  // what verify calls it
  int from_next_bad;    // first_bad of `verify --from 438` (0 = it checks out)
  const char* where;
};
std::ostream& operator<<(std::ostream& os, const flip_case& c) { return os << c.where; }

// A run from 438 anchors on record 437's stored hash: it cannot see a
// changed job id or body of 437 (a full run does), sees a changed stored hash
// as a mismatch at 438, and cannot read an undecodable 437 at all.
const flip_case flip_cases[] = {
    {0, "undecodable", 437, "version byte"},
    {5, "hash_mismatch", 0, "job id"},
    {20, "hash_mismatch", 438, "stored chain hash"},
    {js::format::value_header_size + 3, "hash_mismatch", 0, "body"},
};

BOOST_DATA_TEST_CASE(a_flipped_byte_is_found_at_its_sequence, bdata::make(flip_cases), c) {
  for (const bool in_table_file : {false, true}) {
    BOOST_TEST_CONTEXT((in_table_file ? "in an SST" : "in the WAL/memtable")) {
      temp_dir tmp;
      const std::string dir = tmp.sub("data");
      make_log(dir, 600);
      {
        raw_db db(dir);
        if (in_table_file) db.flush();
        db.flip_event_byte(437, c.offset);
        if (in_table_file) db.flush();
      }
      const json j = verify_json(dir);
      BOOST_TEST(j["exit"] == 1);
      BOOST_TEST(j["ok"] == false);
      BOOST_TEST(j["first_bad"] == 437);
      BOOST_TEST(j["problem"] == c.problem);
      BOOST_TEST(j["checked"] == 436);

      // A range that ends before the damage, or starts after it (anchored on
      // the stored hash of the record before it), checks out; one that
      // covers it does not.
      BOOST_TEST(verify_json(dir, {"--to", "436"})["exit"] == 0);
      const json from_next = verify_json(dir, {"--from", "438"});
      if (c.from_next_bad == 0) {
        BOOST_TEST(from_next["exit"] == 0);
      } else {
        BOOST_TEST(from_next["exit"] == 1);
        BOOST_TEST(from_next["first_bad"] == c.from_next_bad);
      }
      BOOST_TEST(verify_json(dir, {"--from", "400", "--to", "500"})["first_bad"] == 437);

      run_result text = jobsmith_cmd({"audit", "verify", "--data", dir});
      BOOST_TEST(text.code == 1);
      BOOST_TEST(contains(text.out, "FAILED: record 437:"), text.out);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_deleted_record_is_reported_missing_with_its_sequence) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  make_log(dir, 600);
  {
    raw_db db(dir);
    db.flush();
    db.delete_event(250);
  }
  const json j = verify_json(dir);
  BOOST_TEST(j["exit"] == 1);
  BOOST_TEST(j["first_bad"] == 250);
  BOOST_TEST(j["problem"] == "missing");
  BOOST_TEST(j["last_good"] == 249);

  // Export stops there too, after writing the records before it.
  run_result r = jobsmith_cmd({"audit", "export", "--data", dir});
  BOOST_TEST(r.code == 1);
  BOOST_TEST(std::count(r.out.begin(), r.out.end(), '\n') == 249);
  BOOST_TEST(contains(r.err, "record 250"), r.err);
}

BOOST_AUTO_TEST_CASE(a_record_whose_body_does_not_decode_is_named_even_with_a_valid_hash) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  make_log(dir, 100);
  {
    // Appended through the log, so its chain hash is right: only decoding
    // the body finds it.
    auto log = open_log(dir);
    std::vector<js::record_input> bad{{3, std::string("\xff\xfe not an event", 16)}};
    BOOST_REQUIRE(log->append(bad, nullptr).is_ok());
  }
  const json j = verify_json(dir);
  BOOST_TEST(j["exit"] == 1);
  BOOST_TEST(j["first_bad"] == 101);
  BOOST_TEST(j["problem"] == "body_undecodable");
}

BOOST_AUTO_TEST_CASE(usage_errors_and_unopenable_directories_exit_two) {
  temp_dir tmp;
  BOOST_TEST(jobsmith_cmd({"audit", "verify", "--data", tmp.sub("absent")}).code == 2);
  BOOST_TEST(!fs::exists(tmp.sub("absent")));
  BOOST_TEST(jobsmith_cmd({"audit", "verify"}).code == 2);
  const std::string dir = tmp.sub("data");
  make_log(dir, 10);
  BOOST_TEST(jobsmith_cmd({"audit", "verify", "--data", dir, "--to", "yesterday"}).code == 2);
  BOOST_TEST(jobsmith_cmd({"audit", "verify", "--data", dir, "--from", "11"}).code == 2);
  BOOST_TEST(jobsmith_cmd({"audit", "verify", "--data", dir, "--from", "10"}).code == 0);
  BOOST_TEST(jobsmith_cmd({"audit", "export", "--data", dir, "--from", "0"}).code == 2);
  BOOST_TEST(jobsmith_cmd({"audit", "export", "--data", dir, "--job", "x"}).code == 2);
  BOOST_TEST(jobsmith_cmd({"audit", "stats", "--data", tmp.sub("absent")}).code == 2);
  const json j = verify_json(tmp.sub("absent"));
  BOOST_TEST(j["exit"] == 2);
  BOOST_TEST(j["problem"] == "cannot_open");
}

BOOST_AUTO_TEST_SUITE_END()

// -- stats ----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(stats_count_what_was_appended) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  const auto appended = make_log(dir, 500);
  {
    auto log = open_log(dir);
    BOOST_REQUIRE(log->put_snapshot("queue_view@00000000000000000400", {400, "four hundred"}).is_ok());
  }
  std::map<std::string, int> by_type;
  std::set<job_id> jobs;
  for (const auto& ev : appended) {
    ++by_type[std::string(type_name(ev.body))];
    if (ev.job != 0) jobs.insert(ev.job);
  }
  run_result r = jobsmith_cmd({"audit", "stats", "--data", dir, "--json"});
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  const json j = json::parse(r.out);
  BOOST_TEST(j["head"] == 500);
  BOOST_TEST(j["events"] == 500);
  BOOST_TEST(j["jobs"] == jobs.size());
  for (const auto& [type, n] : by_type) BOOST_TEST(j["by_type"][type] == n, type);
  // base_time + 1..500 s all fall on 2026-11-22 (UTC).
  BOOST_TEST(j["by_day"]["2026-11-22"] == 500);
  BOOST_TEST(j["first_time"] == "2026-11-22T14:00:01.000Z");
  BOOST_TEST(j["last_time_ms"] == base_time + 500'000);
  BOOST_TEST(j["size_bytes"].get<std::uint64_t>() > 0u);
  BOOST_REQUIRE_EQUAL(j["snapshots"].size(), 1u);
  BOOST_TEST(j["snapshots"][0]["covered"] == 400);
  BOOST_TEST(j["snapshots"][0]["size_bytes"] == 12);
}

// -- the tools never write ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_audit_tools_leave_the_directory_untouched_and_run_on_a_read_only_one) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  make_log(dir, 800);
  {
    raw_db db(dir);  // some records in an SST, some only in the WAL
    db.flush();
  }
  {
    auto log = open_log(dir);
    std::vector<js::record_input> more{{1, jobsmith::encode(jobsmith::test::sample_events()[1])}};
    BOOST_REQUIRE(log->append(more, nullptr).is_ok());
  }
  const auto before = listing(dir);
  // Read-only for everyone: a write would fail (unless running as root; the
  // listing below catches writes then).
  for (const auto& [path, _] : before)
    fs::permissions(path, fs::perms::owner_read, fs::perm_options::replace);
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);

  BOOST_TEST(verify_json(dir)["exit"] == 0);
  BOOST_TEST(jobsmith_cmd({"audit", "export", "--data", dir, "--out", tmp.sub("e.jsonl")}).code ==
             0);
  BOOST_TEST(
      jobsmith_cmd({"audit", "export", "--data", dir, "--job", "2", "--out", tmp.sub("j")}).code ==
      0);
  BOOST_TEST(jobsmith_cmd({"audit", "stats", "--data", dir}).code == 0);
  const auto after = listing(dir);

  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
  for (const auto& [path, _] : before)
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write,
                    fs::perm_options::replace);
  BOOST_TEST((after == before));
}

// -- copies of a live directory -----------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_copy_of_a_live_directory_with_a_torn_wal_tail_opens_and_verifies) {
  // A copy taken while the log is open (LOCK held, records only in the WAL),
  // whose last WAL write is cut short as a crash or a racing copy leaves it.
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  make_log(dir, 300);  // 6 batches of 50
  auto live = open_log(dir);
  std::vector<js::record_input> last{{1, jobsmith::encode(jobsmith::test::sample_events()[1])}};
  BOOST_REQUIRE(live->append(last, nullptr).is_ok());  // record 301: the WAL's last write
  const std::string copy = tmp.sub("copy");
  fs::copy(dir, copy, fs::copy_options::recursive);
  BOOST_TEST(verify_json(copy)["checked"] == 301);

  fs::path newest_wal;
  for (const auto& e : fs::directory_iterator(copy))
    if (e.path().extension() == ".log" &&
        (newest_wal.empty() || e.path().filename() > newest_wal.filename()))
      newest_wal = e.path();
  BOOST_REQUIRE(!newest_wal.empty());
  BOOST_REQUIRE_GT(fs::file_size(newest_wal), 10u);
  fs::resize_file(newest_wal, fs::file_size(newest_wal) - 10);
  const json j = verify_json(copy);
  BOOST_TEST(j["exit"] == 0);
  BOOST_TEST(j["head"] == 300);  // the torn batch is dropped, nothing before it
  BOOST_TEST(j["checked"] == j["head"]);
}

// -- backup ------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(backup)

BOOST_AUTO_TEST_CASE(a_backup_of_a_stopped_directory_verifies_and_exports_the_same) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  make_log(dir, 700);
  const std::string copy = tmp.sub("backup");
  run_result r = jobsmith_cmd({"backup", "--data", dir, "--to", copy});
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  BOOST_TEST(contains(r.out, "head 700"), r.out);
  BOOST_TEST(verify_json(copy)["exit"] == 0);
  const auto a = export_events(dir);
  const auto b = export_events(copy);
  BOOST_TEST((a == b));

  // The target must be new.
  BOOST_TEST(jobsmith_cmd({"backup", "--data", dir, "--to", copy}).code == 2);
}

BOOST_AUTO_TEST_CASE(backup_with_data_refuses_a_directory_an_engine_holds) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  make_log(dir, 10);
  auto held = open_log(dir);  // takes RocksDB's LOCK
  run_result r = jobsmith_cmd({"backup", "--data", dir, "--to", tmp.sub("b")});
  BOOST_TEST(r.code == 2);
  BOOST_TEST(contains(r.err, "--url"), r.err);
  BOOST_TEST(!fs::exists(tmp.sub("b")));
}

BOOST_AUTO_TEST_CASE(a_checkpoint_taken_while_the_engine_writes_verifies_and_holds_every_ack) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  jobsmith::engine_options opts;
  opts.data_dir = dir;
  opts.allow_unknown_kinds = true;  // jobs stay queued: only submissions are written
  auto opened = jobsmith::engine::open(std::move(opts));
  BOOST_REQUIRE_MESSAGE(opened.ok(), jobsmith::test::why(opened));
  auto& eng = **opened;

  // A producer submits batches without pause; `acked` holds the ids whose
  // submit returned (durable) before the checkpoint began.
  std::atomic<bool> stop{false};
  std::atomic<int> batches{0};
  std::mutex mu;
  std::vector<job_id> acked;
  std::thread producer([&] {
    while (!stop) {
      std::vector<jobsmith::job_submitted> specs(50);
      for (auto& s : specs) s.kind = "backup-test";
      auto ids = eng.submit_many(std::move(specs));
      if (!ids.ok()) break;
      std::lock_guard<std::mutex> g{mu};
      acked.insert(acked.end(), ids->begin(), ids->end());
      ++batches;
    }
  });
  BOOST_REQUIRE(jobsmith::test::wait_until([&] { return batches >= 40; }));
  std::vector<job_id> acked_before;
  {
    std::lock_guard<std::mutex> g{mu};
    acked_before = acked;
  }
  const std::string copy = tmp.sub("checkpoint");
  auto cp = eng.checkpoint(copy);
  const int batches_at_end = batches;
  BOOST_REQUIRE_MESSAGE(cp.ok(), jobsmith::test::why(cp));
  BOOST_TEST(*cp == copy);
  // The engine kept writing around it.
  BOOST_REQUIRE(jobsmith::test::wait_until([&] { return batches > batches_at_end + 5; }));
  stop = true;
  producer.join();
  BOOST_TEST(!eng.checkpoint(copy).ok());  // exists
  eng.close();
  BOOST_TEST(!eng.checkpoint(tmp.sub("after-close")).ok());

  const json j = verify_json(copy);
  BOOST_TEST(j["exit"] == 0);
  BOOST_TEST(j["ok"] == true);

  std::set<job_id> in_copy;
  for (const auto& [ev, hash] : export_events(copy))
    if (std::holds_alternative<jobsmith::job_submitted>(ev.body)) in_copy.insert(ev.job);
  std::size_t missing = 0;
  for (job_id id : acked_before) missing += in_copy.count(id) == 0 ? 1 : 0;
  BOOST_TEST(missing == 0u);
  BOOST_TEST(acked_before.size() >= 2000u);
  BOOST_TEST(in_copy.size() >= acked_before.size());
}

BOOST_AUTO_TEST_CASE(an_in_memory_engine_has_nothing_to_checkpoint) {
  temp_dir tmp;
  jobsmith::engine_options opts;
  opts.in_memory = true;
  auto opened = jobsmith::engine::open(std::move(opts));
  BOOST_REQUIRE_MESSAGE(opened.ok(), jobsmith::test::why(opened));
  auto cp = (*opened)->checkpoint(tmp.sub("copy"));
  BOOST_REQUIRE(!cp.ok());
  BOOST_TEST((cp.error().code == jobsmith::engine_errc::invalid_argument));
  BOOST_TEST(!fs::exists(tmp.sub("copy")));
}

BOOST_AUTO_TEST_CASE(backup_with_url_asks_the_server_and_verifies_what_it_wrote) {
  // The server side of POST /v1/admin/backup as the lead wires it: parse
  // {"to": DIR}, call engine::checkpoint(DIR), answer 200 with the directory.
  temp_dir tmp;
  jobsmith::engine_options opts;
  opts.data_dir = tmp.sub("data");
  opts.allow_unknown_kinds = true;
  auto opened = jobsmith::engine::open(std::move(opts));
  BOOST_REQUIRE_MESSAGE(opened.ok(), jobsmith::test::why(opened));
  auto& eng = **opened;
  std::vector<jobsmith::job_submitted> specs(300);
  for (auto& spec : specs) spec.kind = "url-backup";
  BOOST_REQUIRE(eng.submit_many(std::move(specs)).ok());

  one_shot_server server([&](const std::string& request) {
    const auto body_at = request.find("\r\n\r\n");
    const json body = json::parse(request.substr(body_at + 4), nullptr, false);
    if (!body.is_object() || !body.contains("to"))
      return http_response(400, R"({"error":{"code":"bad_request","message":"no to"}})");
    auto done = eng.checkpoint(body["to"].get<std::string>());
    if (!done.ok()) return http_response(503, json{{"error", done.error().to_string()}}.dump());
    return http_response(200, json{{"backup", {{"dir", *done}}}}.dump());
  });
  const std::string copy = tmp.sub("copy");
  run_result r = jobsmith_cmd({"backup", "--url", server.url(), "--to", copy, "--json"});
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  BOOST_TEST(contains(server.request(), "POST /v1/admin/backup "), server.request());
  BOOST_TEST(contains(server.request(), "{\"to\":\"" + copy + "\"}"), server.request());
  const json report = json::parse(r.out);
  BOOST_TEST(report["head"].get<sequence_t>() >= 301u);  // engine.started + 300 submissions
  BOOST_TEST(report["verified"] == report["head"]);
  eng.close();
  BOOST_TEST(verify_json(copy)["exit"] == 0);
}

BOOST_AUTO_TEST_CASE(backup_with_url_reports_a_server_without_the_endpoint) {
  temp_dir tmp;
  one_shot_server server([](const std::string&) {
    return http_response(404, R"({"error":{"code":"not_found","message":"no route"}})");
  });
  run_result r = jobsmith_cmd({"backup", "--url", server.url(), "--to", tmp.sub("copy")});
  BOOST_TEST(r.code == 2);
  BOOST_TEST(contains(r.err, "/v1/admin/backup"), r.err);
}

BOOST_AUTO_TEST_SUITE_END()
