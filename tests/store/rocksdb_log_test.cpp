// The RocksDB log's durability, by failure concern (as leveldb's log_test,
// recovery_test, corruption_test and fault_injection_test): what survives a
// reopen, what a damaged directory looks like to open(), read() and
// verify(), what a failed disk write leaves behind, and who may open a
// directory. The shared contract is in log_conformance_test.cpp.
#define BOOST_TEST_MODULE store_rocksdb_log
#include "store/rocksdb_log.hpp"

#include <fcntl.h>
#include <rocksdb/db.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/event_log.hpp"
#include "store/record_format.hpp"
#include "tests/store/fault_env.hpp"
#include "tests/store/raw_db.hpp"
#include "tests/store/temp_dir.hpp"

namespace js = jobsmith::store;
namespace bdata = boost::unit_test::data;
using jobsmith::job_id;
using jobsmith::sequence_t;

namespace {

std::unique_ptr<js::event_log> open_log(const std::string& dir, js::rocksdb_log_options o = {}) {
  std::unique_ptr<js::event_log> log;
  js::status s = js::open_rocksdb_log(dir, o, &log);
  BOOST_REQUIRE_MESSAGE(s.is_ok(), s.to_string());
  return log;
}

js::status try_open(const std::string& dir, js::rocksdb_log_options o = {}) {
  std::unique_ptr<js::event_log> log;
  return js::open_rocksdb_log(dir, o, &log);
}

js::rocksdb_log_options with_tail_verify(std::uint64_t n) {
  js::rocksdb_log_options o;
  o.tail_verify = n;
  return o;
}

std::string read_file_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<js::record> read_all(const js::event_log& log) {
  std::vector<js::record> out;
  js::status s = log.read(1, log.head(), [&](const js::record& r) {
    out.push_back(r);
    return true;
  });
  BOOST_REQUIRE_MESSAGE(s.is_ok(), s.to_string());
  return out;
}

// Record i (1-based) of a test log belongs to job 1 + i % 3.
void append_records(js::event_log& log, int n, const std::string& tag = "r") {
  std::vector<js::record_input> b;
  for (int i = 0; i < n; ++i) {
    const sequence_t seq = log.head() + 1 + i;
    b.push_back({1 + seq % 3, tag + "-" + std::to_string(seq) + "-{\"payload\":true}"});
  }
  js::status s = log.append(b, nullptr);
  BOOST_REQUIRE_MESSAGE(s.is_ok(), s.to_string());
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

using jobsmith::test::raw_db;  // tests/store/raw_db.hpp

void check_same_records(const std::vector<js::record>& got, const std::vector<js::record>& want) {
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    BOOST_TEST_CONTEXT("record " << want[i].seq) {
      BOOST_TEST(got[i].seq == want[i].seq);
      BOOST_TEST(got[i].job == want[i].job);
      BOOST_TEST(js::to_hex(got[i].hash) == js::to_hex(want[i].hash));
      BOOST_TEST(got[i].body == want[i].body);
    }
  }
}

std::map<std::string, std::uintmax_t> listing(const std::string& dir) {
  std::map<std::string, std::uintmax_t> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out[e.path().filename().string()] = e.is_regular_file() ? e.file_size() : 0;
  }
  return out;
}

}  // namespace

// -- recovery: what a reopen gives back ----------------------------------------

BOOST_AUTO_TEST_SUITE(recovery)

BOOST_AUTO_TEST_CASE(records_snapshots_and_meta_survive_close_and_reopen) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  std::vector<js::record> before;
  js::chain_hash head_hash;
  {
    auto log = open_log(dir);
    append_records(*log, 3);
    append_records(*log, 1);
    append_records(*log, 500);
    BOOST_TEST(log->put_snapshot("queues", {504, "views"}).is_ok());
    BOOST_TEST(log->put_meta("engine_id", "e-7").is_ok());
    before = read_all(*log);
    head_hash = log->head_hash();
  }
  auto log = open_log(dir);
  BOOST_TEST(log->head() == 504u);
  BOOST_TEST(js::to_hex(log->head_hash()) == js::to_hex(head_hash));
  check_same_records(read_all(*log), before);

  js::snapshot snap;
  BOOST_TEST(log->get_snapshot("queues", &snap).is_ok());
  BOOST_TEST(snap.covered == 504u);
  BOOST_TEST(snap.bytes == "views");
  std::string v;
  BOOST_TEST(log->get_meta("engine_id", &v).is_ok());
  BOOST_TEST(v == "e-7");
  int job2 = 0;
  BOOST_TEST(
      log->read_job(2, [&](const js::record& r) { return r.job == 2 && ++job2 > 0; }).is_ok());
  BOOST_TEST(job2 == 168);  // seq % 3 == 1 for seq in 1..504
}

BOOST_AUTO_TEST_CASE(records_survive_a_flush_to_table_files) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  std::vector<js::record> before;
  {
    auto log = open_log(dir);
    append_records(*log, 5000);
    before = read_all(*log);
  }
  raw_db(dir).flush();
  auto log = open_log(dir);
  BOOST_TEST(log->head() == 5000u);
  check_same_records(read_all(*log), before);
  sequence_t bad = 0;
  BOOST_TEST(log->verify(1, 5000, &bad).is_ok());
}

BOOST_AUTO_TEST_CASE(reopening_continues_the_sequence_and_the_chain) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  js::chain_hash hash5;
  {
    auto log = open_log(dir);
    append_records(*log, 5);
    hash5 = log->head_hash();
  }
  auto log = open_log(dir);
  sequence_t first = 0;
  BOOST_TEST(log->append(std::vector<js::record_input>{{9, "next"}, {9, "after"}}, &first).is_ok());
  BOOST_TEST(first == 6u);
  BOOST_TEST(log->head() == 7u);
  const auto all = read_all(*log);
  BOOST_TEST(js::to_hex(all.at(5).hash) == js::to_hex(js::chain(hash5, 6, 9, "next")));
  sequence_t bad = 0;
  BOOST_TEST(log->verify(1, 7, &bad).is_ok());
}

BOOST_AUTO_TEST_CASE(an_empty_log_reopens_empty) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  open_log(dir).reset();
  auto log = open_log(dir);
  BOOST_TEST(log->head() == 0u);
  BOOST_TEST((log->head_hash() == js::chain_hash{}));
  sequence_t first = 0;
  BOOST_TEST(log->append(std::vector<js::record_input>{{1, "a"}}, &first).is_ok());
  BOOST_TEST(first == 1u);
}

BOOST_AUTO_TEST_CASE(a_missing_directory_is_not_created_without_create_if_missing) {
  js::test::temp_dir tmp;
  js::rocksdb_log_options o;
  o.create_if_missing = false;
  js::status s = try_open(tmp.sub("absent"), o);
  BOOST_TEST(s.code() == js::status_code::not_found, s.to_string());
  BOOST_TEST(!std::filesystem::exists(tmp.sub("absent")));
}

// The log writes RocksDB's info LOG itself (rocksdb_log.cpp, info_logger):
// each open starts a new LOG, and RocksDB still prunes the old ones.
BOOST_AUTO_TEST_CASE(each_open_starts_a_new_info_log_and_old_ones_are_pruned) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  for (int i = 0; i < 14; ++i) {
    auto log = open_log(dir);
    append_records(*log, 1);
  }
  int old_logs = 0;
  for (const auto& [name, size] : listing(dir)) {
    if (name.starts_with("LOG.old.")) ++old_logs;
  }
  BOOST_TEST(old_logs >= 1);
  BOOST_TEST(old_logs <= 10);  // keep_log_file_num
  std::ifstream info(dir + "/LOG");
  std::string first_line;
  std::getline(info, first_line);
  BOOST_TEST(!first_line.empty());
}

BOOST_AUTO_TEST_CASE(size_bytes_counts_the_files_on_disk) {
  js::test::temp_dir tmp;
  auto log = open_log(tmp.sub("log"));
  const std::uint64_t empty = log->size_bytes();
  BOOST_TEST(empty > 0u);
  std::vector<js::record_input> b(100, js::record_input{1, std::string(10'000, 'x')});
  BOOST_TEST(log->append(b, nullptr).is_ok());
  BOOST_TEST(log->size_bytes() >= empty + 1'000'000);  // in the WAL
}

BOOST_AUTO_TEST_CASE(an_unsynced_meta_write_survives_a_crash_of_the_process) {
  // put_meta_unsynced returns once the OS has the write: a copy of the
  // directory taken while the log is still open (what a killed process
  // leaves; the page cache is not lost) holds it, and so do the records
  // appended before it.
  namespace fs = std::filesystem;
  js::test::temp_dir tmp;
  const std::string live = tmp.sub("log");
  const std::string crashed = tmp.sub("crashed");
  auto log = open_log(live);
  append_records(*log, 3);
  BOOST_REQUIRE(log->put_meta_unsynced("leases", "saved").is_ok());
  fs::copy(live, crashed, fs::copy_options::recursive);
  auto reopened = open_log(crashed);
  std::string v;
  BOOST_TEST(reopened->get_meta("leases", &v).is_ok());
  BOOST_TEST(v == "saved");
  BOOST_TEST(reopened->head() == 3u);
}

BOOST_AUTO_TEST_SUITE_END()

// -- corruption: damaged directories ----------------------------------------------

BOOST_AUTO_TEST_SUITE(corruption)

struct flip_case {
  const char* what;
  std::size_t offset;   // into the stored value
  const char* message;  // what open and verify say about record 7
};
std::ostream& operator<<(std::ostream& os, const flip_case& c) { return os << c.what; }

const flip_case flip_cases[] = {
    {"version byte", 0, "record 7: undecodable value"},
    {"job id", 1 + 7, "record 7: chain hash mismatch"},
    {"chain hash", 9 + 5, "record 7: chain hash mismatch"},
    {"body", js::format::value_header_size + 2, "record 7: chain hash mismatch"},
};

BOOST_DATA_TEST_CASE(a_flipped_byte_is_found_by_open_and_by_verify, bdata::make(flip_cases), c) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  BOOST_REQUIRE(open_log(dir)
                    ->append(std::vector<js::record_input>(10, {4, "{\"kind\":\"x\"}"}), nullptr)
                    .is_ok());
  raw_db(dir).flip_event_byte(7, c.offset);

  // Open verifies the last 64 records by default.
  js::status s = try_open(dir);
  BOOST_TEST(s.code() == js::status_code::corruption);
  BOOST_TEST(contains(s.message(), c.message), s.message());
  BOOST_TEST(contains(s.message(), "run `jobsmith audit verify`"), s.message());

  // With a tail window that ends after record 7 (and does not rest on it),
  // open succeeds and verify() names record 7.
  auto log = open_log(dir, with_tail_verify(2));
  BOOST_TEST(log->head() == 10u);
  sequence_t bad = 0;
  js::status v = log->verify(1, 10, &bad);
  BOOST_TEST(v.code() == js::status_code::corruption);
  BOOST_TEST(bad == 7u);
  BOOST_TEST(contains(v.message(), c.message), v.message());
  BOOST_TEST(log->verify(1, 6, &bad).is_ok());
  BOOST_TEST(log->verify(9, 10, &bad).is_ok());  // anchored on record 8, intact
}

// A crash image: the directory copied while the log is open, its records
// only in the write-ahead log: 12 batches of 1, 2, 3, 1, ... records.
struct wal_image {
  std::vector<js::record> written;
  std::vector<std::uintmax_t> wal_size_after;  // WAL bytes after each batch
  std::filesystem::path wal_name;              // the image's WAL file, in `dir`

  explicit wal_image(js::test::temp_dir& tmp) : dir(tmp.sub("image")) {
    namespace fs = std::filesystem;
    const std::string live = tmp.sub("log");
    auto log = open_log(live);
    for (int b = 0; b < 12; ++b) {
      std::vector<js::record_input> batch;
      for (int i = 0; i <= b % 3; ++i)
        batch.push_back({static_cast<job_id>(b + 1), "{\"batch\":" + std::to_string(b) + "}"});
      BOOST_REQUIRE(log->append(batch, nullptr).is_ok());
      wal_size_after.push_back(fs::file_size(wal_of(live)));
    }
    written = read_all(*log);
    fs::copy(live, dir, fs::copy_options::recursive);  // fsynced: what a crash leaves
    wal_name = wal_of(dir).filename();
  }

  /// Records in the first `batches` batches.
  static sequence_t records_in(std::size_t batches) {
    sequence_t n = 0;
    for (std::size_t b = 0; b < batches; ++b) n += b % 3 + 1;
    return n;
  }

  /// A fresh copy of the image in `copy` with byte `offset` of its WAL
  /// inverted; returns the WAL's path there.
  std::filesystem::path copy_flipped(const std::string& copy, std::uintmax_t offset) const {
    namespace fs = std::filesystem;
    fs::remove_all(copy);
    fs::copy(dir, copy, fs::copy_options::recursive);
    auto wal = fs::path(copy) / wal_name;
    std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(~c));
    return wal;
  }

  static std::filesystem::path wal_of(const std::string& d) {
    std::filesystem::path wal;
    for (auto& e : std::filesystem::directory_iterator(d))
      if (e.path().extension() == ".log" && (wal.empty() || e.path() > wal)) wal = e.path();
    return wal;
  }

  const std::string dir;
};

// The crash image's WAL cut at every byte offset of the last batch and
// every 5th of the two before (a write torn by the crash; each cut is a
// real open, so not every byte of all three: CI time): the log opens, keeps
// every whole batch before the cut, exactly as written, and continues the
// chain; a record appended then survives the next crash.
BOOST_AUTO_TEST_CASE(a_write_ahead_log_torn_at_any_byte_of_its_last_batches_keeps_every_whole_batch) {
  namespace fs = std::filesystem;
  js::test::temp_dir tmp;
  const wal_image img(tmp);
  const std::string image = img.dir;
  const auto& written = img.written;
  const auto& wal_size_after = img.wal_size_after;
  const auto wal_name = img.wal_name;
  const std::uintmax_t full = fs::file_size(image / wal_name);
  BOOST_REQUIRE_EQUAL(full, wal_size_after.back());
  const std::uintmax_t from = wal_size_after[wal_size_after.size() - 4];
  int opens = 0;
  const std::uintmax_t last_batch = wal_size_after[wal_size_after.size() - 2];
  for (std::uintmax_t cut = from; cut < full; cut += cut < last_batch ? 5 : 1) {
    const std::string copy = tmp.sub("cut");
    fs::remove_all(copy);
    fs::copy(image, copy, fs::copy_options::recursive);
    fs::resize_file(fs::path(copy) / wal_name, cut);
    // Whole batches are those whose last byte lies before the cut.
    std::size_t batches = 0;
    while (batches < wal_size_after.size() && wal_size_after[batches] <= cut) ++batches;
    const sequence_t kept = wal_image::records_in(batches);
    BOOST_TEST_CONTEXT("cut at byte " << cut << " of " << full) {
      auto log = open_log(copy);
      BOOST_TEST_REQUIRE(log->head() == kept);
      check_same_records(read_all(*log), {written.begin(), written.begin() + static_cast<std::ptrdiff_t>(kept)});
      sequence_t first = 0;
      BOOST_TEST(log->append(std::vector<js::record_input>{{99, "after"}}, &first).is_ok());
      BOOST_TEST(first == kept + 1);
      sequence_t bad = 0;
      BOOST_TEST(log->verify(1, kept + 1, &bad).is_ok());
      // A second crash now (the directory copied while open): the record
      // acknowledged behind the torn tail survives it.
      const std::string again = tmp.sub("again");
      fs::remove_all(again);
      fs::copy(copy, again, fs::copy_options::recursive);
      log.reset();
      auto reopened = open_log(again);
      BOOST_TEST(reopened->head() == kept + 1);
      BOOST_TEST(reopened->verify(1, kept + 1, &bad).is_ok());
    }
    ++opens;
  }
  BOOST_TEST_MESSAGE(opens << " cuts");
  BOOST_TEST(opens > 50);
}

// A byte flipped inside the WAL before its last write (damage on the disk,
// not a crash): the records behind it were acknowledged, so the log is not
// opened, writable or read-only; the error names the first record lost and
// the last one behind the damage. The WAL is left as it was.
BOOST_AUTO_TEST_CASE(a_write_ahead_log_damaged_before_its_last_write_fails_open_naming_the_records) {
  namespace fs = std::filesystem;
  js::test::temp_dir tmp;
  const wal_image img(tmp);
  for (std::size_t batch : {1, 4, 10}) {  // the 2nd, 5th and 11th of 12
    BOOST_TEST_CONTEXT("flipped in batch " << batch) {
      const std::string copy = tmp.sub("flipped");
      auto offset = (img.wal_size_after[batch - 1] + img.wal_size_after[batch]) / 2;
      auto wal = img.copy_flipped(copy, offset);
      const std::string damaged = read_file_bytes(wal);
      const auto first_lost = wal_image::records_in(batch) + 1;
      js::status s = try_open(copy);
      BOOST_TEST(s.code() == js::status_code::corruption);
      BOOST_TEST(s.message().find("damaged at record " + std::to_string(first_lost) + " (") !=
                     std::string::npos, s.message());
      BOOST_TEST(s.message().find(std::to_string(img.wal_size_after.size() - batch - 1) +
                                  " whole writes lie behind the damage") != std::string::npos,
                 s.message());
      js::rocksdb_log_options ro;
      ro.read_only = true;
      BOOST_TEST(try_open(copy, ro).code() == js::status_code::corruption);
      BOOST_TEST(read_file_bytes(wal) == damaged);
    }
  }
}

// Damage in the WAL's last write only: nothing whole follows it, as after a
// write torn by a crash. The log opens without that write, says so, and
// continues the chain.
BOOST_AUTO_TEST_CASE(a_write_ahead_log_damaged_in_its_last_write_drops_it_with_a_warning) {
  js::test::temp_dir tmp;
  const wal_image img(tmp);
  const auto n = img.wal_size_after.size();
  const std::string copy = tmp.sub("flipped");
  img.copy_flipped(copy, (img.wal_size_after[n - 2] + img.wal_size_after[n - 1]) / 2);
  const auto kept = wal_image::records_in(n - 1);
  std::unique_ptr<js::event_log> log;
  std::string warning;
  BOOST_TEST_REQUIRE(js::open_rocksdb_log(copy, {}, &log, &warning).is_ok());
  BOOST_TEST(log->head() == kept);
  BOOST_TEST(warning.find("last write was damaged (" + img.wal_name.string() + " at byte") !=
             std::string::npos, warning);
  BOOST_TEST(warning.find("and is dropped: the log ends at record " + std::to_string(kept)) !=
             std::string::npos, warning);
  check_same_records(read_all(*log), {img.written.begin(), img.written.begin() + static_cast<std::ptrdiff_t>(kept)});
  sequence_t first = 0;
  BOOST_TEST(log->append(std::vector<js::record_input>{{99, "after"}}, &first).is_ok());
  BOOST_TEST(first == kept + 1);
  sequence_t bad = 0;
  BOOST_TEST(log->verify(1, kept + 1, &bad).is_ok());
}

BOOST_AUTO_TEST_CASE(a_flipped_byte_in_the_head_record_fails_open) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  append_records(*open_log(dir), 10);
  raw_db(dir).flip_event_byte(10, js::format::value_header_size);
  js::status s = try_open(dir, with_tail_verify(1));
  BOOST_TEST(s.code() == js::status_code::corruption);
  BOOST_TEST(contains(s.message(), "record 10: chain hash mismatch"), s.message());
}

BOOST_AUTO_TEST_CASE(a_deleted_table_file_in_the_middle_fails_open_naming_it) {
  namespace fs = std::filesystem;
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  for (int round = 0; round < 3; ++round) {
    append_records(*open_log(dir), 1000);
    raw_db(dir).flush();  // each round in table files of its own
  }
  std::vector<fs::path> tables;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".sst") tables.push_back(e.path());
  std::sort(tables.begin(), tables.end());
  BOOST_TEST_REQUIRE(tables.size() >= 3u);
  const fs::path gone = tables[tables.size() / 2];
  fs::remove(gone);
  const std::string number = gone.stem().string();  // "000012"
  for (bool read_only : {false, true}) {
    js::rocksdb_log_options o;
    o.read_only = read_only;
    std::unique_ptr<js::event_log> log;
    js::status s = js::open_rocksdb_log(dir, o, &log);
    BOOST_TEST(s.code() == js::status_code::corruption, s.to_string());
    BOOST_TEST(contains(s.message(), number), s.message());
    BOOST_TEST(!log);
  }
}

BOOST_AUTO_TEST_CASE(open_checks_only_the_tail_and_verify_checks_the_rest) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  append_records(*open_log(dir), 100);
  raw_db(dir).flip_event_byte(2, js::format::value_header_size);
  auto log = open_log(dir);  // records 37..100 are intact
  sequence_t bad = 0;
  js::status v = log->verify(1, 100, &bad);
  BOOST_TEST(v.code() == js::status_code::corruption);
  BOOST_TEST(bad == 2u);
}

BOOST_AUTO_TEST_CASE(a_deleted_record_is_reported_missing_with_its_sequence) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  append_records(*open_log(dir), 10);
  raw_db(dir).delete_event(5);

  js::status s = try_open(dir);
  BOOST_TEST(s.code() == js::status_code::corruption);
  BOOST_TEST(contains(s.message(), "record 5: missing"), s.message());

  auto log = open_log(dir, with_tail_verify(3));
  std::vector<sequence_t> seen;
  js::status r = log->read(1, 10, [&](const js::record& rec) {
    seen.push_back(rec.seq);
    return true;
  });
  BOOST_TEST(r.code() == js::status_code::corruption);
  BOOST_TEST(contains(r.message(), "record 5: missing"), r.message());
  BOOST_TEST(seen == (std::vector<sequence_t>{1, 2, 3, 4}), boost::test_tools::per_element());

  BOOST_TEST(log->read(6, 10, [](const js::record&) { return true; }).is_ok());

  sequence_t bad = 0;
  BOOST_TEST(log->verify(1, 10, &bad).code() == js::status_code::corruption);
  BOOST_TEST(bad == 5u);

  // Record 5 belongs to job 1 + 5 % 3 = 3; by_job still lists it.
  js::status j = log->read_job(3, [](const js::record&) { return true; });
  BOOST_TEST(j.code() == js::status_code::corruption);
  BOOST_TEST(contains(j.message(), "record 5: missing"), j.message());
}

BOOST_AUTO_TEST_CASE(a_log_that_does_not_start_at_one_fails_open) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  append_records(*open_log(dir), 3);
  raw_db(dir).delete_event(1);
  js::status s = try_open(dir, with_tail_verify(1));
  BOOST_TEST(s.code() == js::status_code::corruption);
  BOOST_TEST(contains(s.message(), "record 1: missing"), s.message());
}

BOOST_AUTO_TEST_CASE(an_unknown_format_is_refused) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  append_records(*open_log(dir), 1);
  raw_db(dir).put_meta("format", "2");
  js::status s = try_open(dir);
  BOOST_TEST(s.code() == js::status_code::invalid_argument);
  BOOST_TEST(contains(s.message(), "format \"2\""), s.message());
}

BOOST_AUTO_TEST_SUITE_END()

// -- fault injection: the disk refuses a write ------------------------------------

BOOST_AUTO_TEST_SUITE(fault_injection)

// heal: whether the disk works again before the log is closed (RocksDB must
// not write the failed batch out on close either).
BOOST_DATA_TEST_CASE(a_failed_append_leaves_exactly_the_acknowledged_records,
                     bdata::make({false, true}), heal) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  js::test::fault_env env;
  std::vector<js::record> acknowledged;
  {
    js::rocksdb_log_options o;
    o.env = &env;
    auto log = open_log(dir, o);
    append_records(*log, 4);
    append_records(*log, 2);
    acknowledged = read_all(*log);
    const js::chain_hash hash = log->head_hash();

    env.fail_writes(true);
    std::vector<js::record_input> lost(3, {1, "lost"});
    js::status failed = log->append(lost, nullptr);
    BOOST_TEST(failed.code() == js::status_code::io_error, failed.to_string());
    BOOST_TEST(env.refused_writes() > 0);
    BOOST_TEST(log->head() == 6u);
    BOOST_TEST(js::to_hex(log->head_hash()) == js::to_hex(hash));

    js::status refused = log->append(lost, nullptr);
    BOOST_TEST(refused.code() == js::status_code::refused);
    BOOST_TEST(contains(refused.message(), "after failed write at seq 7: "), refused.message());
    BOOST_TEST(contains(refused.message(), "injected write failure"), refused.message());
    check_same_records(read_all(*log), acknowledged);

    if (heal) {
      env.fail_writes(false);
      BOOST_TEST(log->append(lost, nullptr).code() == js::status_code::refused);
    }
  }
  auto log = open_log(dir);  // the default, healthy env
  BOOST_TEST(log->head() == 6u);
  check_same_records(read_all(*log), acknowledged);
  sequence_t first = 0;
  BOOST_TEST(log->append(std::vector<js::record_input>{{1, "after"}}, &first).is_ok());
  BOOST_TEST(first == 7u);
  sequence_t bad = 0;
  BOOST_TEST(log->verify(1, 7, &bad).is_ok());
}

BOOST_AUTO_TEST_CASE(a_failed_snapshot_write_also_stops_appends) {
  js::test::temp_dir tmp;
  js::test::fault_env env;
  js::rocksdb_log_options o;
  o.env = &env;
  auto log = open_log(tmp.sub("log"), o);
  append_records(*log, 2);
  env.fail_writes(true);
  BOOST_TEST(log->put_snapshot("views", {2, "x"}).code() == js::status_code::io_error);
  env.fail_writes(false);
  js::status s = log->append(std::vector<js::record_input>{{1, "a"}}, nullptr);
  BOOST_TEST(s.code() == js::status_code::refused);
  BOOST_TEST(contains(s.message(), "failed write at seq 3"), s.message());
  BOOST_TEST(log->head() == 2u);
}

// Resumes `log` once the disk works again: RocksDB recovers from a full
// disk by itself, checking every 5 s, and resume() answers no_space until
// then (while the disk has no free space it does not try). Returns the
// last status and how long it took.
js::status resume_within(js::event_log& log, std::chrono::seconds limit, double* seconds) {
  const auto start = std::chrono::steady_clock::now();
  js::status s = log.resume();
  while (!s.is_ok() && s.code() != js::status_code::refused &&
         std::chrono::steady_clock::now() - start < limit) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    s = log.resume();
  }
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

// The disk fills up, then space returns: the log answers no_space, keeps
// reading, refuses until resume() succeeds, then continues without a gap; a
// reopen verifies the chain and holds none of the failed batch.
BOOST_AUTO_TEST_CASE(a_full_disk_is_reported_and_the_log_resumes_once_space_returns) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  js::test::fault_env env;
  std::vector<js::record> acknowledged;
  {
    js::rocksdb_log_options o;
    o.env = &env;
    auto log = open_log(dir, o);
    append_records(*log, 5);
    const js::chain_hash hash = log->head_hash();

    env.fail_writes(true, js::test::fault_env::failure::no_space);
    std::vector<js::record_input> lost(3, {2, "lost"});
    js::status failed = log->append(lost, nullptr);
    BOOST_TEST(failed.code() == js::status_code::no_space, failed.to_string());
    BOOST_TEST(failed.is_no_space());
    BOOST_TEST(log->head() == 5u);
    BOOST_TEST(js::to_hex(log->head_hash()) == js::to_hex(hash));
    js::status refused = log->append(lost, nullptr);
    BOOST_TEST(refused.code() == js::status_code::refused, refused.to_string());
    BOOST_TEST(refused.is_no_space(), refused.to_string());
    BOOST_TEST(log->put_meta("k", "v").code() == js::status_code::refused);
    BOOST_TEST(read_all(*log).size() == 5u);
    int job2 = 0;
    BOOST_TEST(log->read_job(2, [&](const js::record&) { return ++job2 > 0; }).is_ok());
    BOOST_TEST(job2 == 2);  // records 2 and 5

    // Still full: resume() says so and the log keeps refusing.
    double waited = 0;
    js::status still = resume_within(*log, std::chrono::seconds(1), &waited);
    BOOST_TEST(still.code() == js::status_code::no_space, still.to_string());
    BOOST_TEST(log->append(lost, nullptr).code() == js::status_code::refused);
    BOOST_TEST(log->head() == 5u);

    env.fail_writes(false);
    js::status resumed = resume_within(*log, std::chrono::seconds(15), &waited);
    BOOST_TEST_MESSAGE("resumed after " << waited << " s: " << resumed);
    BOOST_TEST_REQUIRE(resumed.is_ok(), resumed.to_string());
    BOOST_TEST(log->resume().is_ok());  // idempotent
    sequence_t first = 0;
    BOOST_TEST(log->append(std::vector<js::record_input>{{2, "after-1"}, {3, "after-2"}}, &first)
                   .is_ok());
    BOOST_TEST(first == 6u);
    append_records(*log, 2);
    BOOST_TEST(log->head() == 9u);
    BOOST_TEST(log->put_meta("k", "v").is_ok());
    sequence_t bad = 0;
    BOOST_TEST(log->verify(1, 9, &bad).is_ok());
    acknowledged = read_all(*log);
  }
  auto log = open_log(dir, with_tail_verify(1000));  // the default, healthy env
  BOOST_TEST(log->head() == 9u);
  check_same_records(read_all(*log), acknowledged);
  for (const js::record& r : acknowledged) BOOST_TEST(r.body != "lost");
  sequence_t bad = 0;
  BOOST_TEST(log->verify(1, 9, &bad).is_ok());
}

// Any other failed WAL write is fatal to RocksDB 7.8: resume() says the
// engine must restart, and a reopen continues from the acknowledged head.
BOOST_AUTO_TEST_CASE(another_failed_write_needs_a_reopen_which_continues_from_the_acknowledged_head) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  js::test::fault_env env;
  {
    js::rocksdb_log_options o;
    o.env = &env;
    auto log = open_log(dir, o);
    append_records(*log, 5);
    env.fail_writes(true, js::test::fault_env::failure::io_error);
    js::status failed = log->append(std::vector<js::record_input>{{2, "lost"}}, nullptr);
    BOOST_TEST(failed.code() == js::status_code::io_error, failed.to_string());
    BOOST_TEST(!failed.is_no_space());
    env.fail_writes(false);
    js::status resumed = log->resume();
    BOOST_TEST(resumed.code() == js::status_code::refused, resumed.to_string());
    BOOST_TEST(contains(resumed.message(), "restart the engine"), resumed.message());
    BOOST_TEST(log->append(std::vector<js::record_input>{{2, "lost"}}, nullptr).code() ==
               js::status_code::refused);
    BOOST_TEST(log->head() == 5u);
  }
  auto log = open_log(dir);
  BOOST_TEST(log->head() == 5u);
  sequence_t first = 0;
  BOOST_TEST(log->append(std::vector<js::record_input>{{1, "after"}}, &first).is_ok());
  BOOST_TEST(first == 6u);
  sequence_t bad = 0;
  BOOST_TEST(log->verify(1, 6, &bad).is_ok());
}

BOOST_AUTO_TEST_SUITE_END()

// -- snapshots: large values in blob files ------------------------------------------

BOOST_AUTO_TEST_SUITE(large_snapshots)

BOOST_AUTO_TEST_CASE(large_snapshots_survive_reopen_and_checkpoint_and_deleted_ones_leave_the_disk) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  auto big = [](char c) { return std::string(3u << 20, c); };  // 3 MB each
  auto blob_bytes = [&](const std::string& d) {
    std::uintmax_t n = 0;
    for (auto& e : std::filesystem::directory_iterator(d))
      if (e.path().extension() == ".blob") n += e.file_size();
    return n;
  };
  {
    auto log = open_log(dir);
    append_records(*log, 10);
    for (int i = 0; i < 6; ++i)
      BOOST_REQUIRE(log->put_snapshot("v@" + std::to_string(i), {static_cast<sequence_t>(i + 1), big(char('a' + i))}).is_ok());
    BOOST_TEST(blob_bytes(dir) >= 6u * (3u << 20));  // written once, as blobs
    for (int i = 0; i < 5; ++i) BOOST_REQUIRE(log->delete_snapshot("v@" + std::to_string(i)).is_ok());
    BOOST_REQUIRE(log->checkpoint(tmp.sub("copy")).is_ok());
  }
  for (const std::string& d : {dir, tmp.sub("copy")}) {
    auto log = open_log(d);
    std::vector<js::snapshot_info> list;
    BOOST_REQUIRE(log->list_snapshots("v@", &list).is_ok());
    BOOST_REQUIRE_EQUAL(list.size(), 1u);
    js::snapshot snap;
    BOOST_REQUIRE(log->get_snapshot("v@5", &snap).is_ok());
    BOOST_TEST(snap.covered == 6u);
    BOOST_TEST((snap.bytes == big('f')));
    // More snapshots: flushes and compactions drop the deleted ones' files.
    for (int i = 6; i < 14; ++i) {
      BOOST_REQUIRE(log->put_snapshot("v@" + std::to_string(i), {static_cast<sequence_t>(i + 1), big(char('a' + i))}).is_ok());
      BOOST_REQUIRE(log->delete_snapshot("v@" + std::to_string(i - 1)).is_ok());
    }
  }
  // One live 3 MB snapshot is left in `dir`; RocksDB deletes obsolete blob
  // files after compactions, which the reopen above let finish.
  {
    auto log = open_log(dir);
    js::snapshot snap;
    BOOST_REQUIRE(log->get_snapshot("v@13", &snap).is_ok());
    BOOST_TEST((snap.bytes == big(char('a' + 13))));
  }
  BOOST_TEST(blob_bytes(dir) < 8u * (3u << 20), "blob bytes " << blob_bytes(dir));
  BOOST_TEST_MESSAGE("blob bytes left " << blob_bytes(dir));
}

BOOST_AUTO_TEST_SUITE_END()

// -- access: read-only opens and the directory lock ------------------------------

BOOST_AUTO_TEST_SUITE(directory_access)

BOOST_AUTO_TEST_CASE(a_read_only_open_reads_but_never_writes) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  std::vector<js::record> before;
  {
    auto log = open_log(dir);
    append_records(*log, 20);
    BOOST_TEST(log->put_snapshot("views", {20, "v"}).is_ok());
    before = read_all(*log);
  }
  const auto files = listing(dir);

  js::rocksdb_log_options o;
  o.read_only = true;
  {
    auto log = open_log(dir, o);
    BOOST_TEST(log->head() == 20u);
    check_same_records(read_all(*log), before);
    sequence_t bad = 0;
    BOOST_TEST(log->verify(1, 20, &bad).is_ok());
    js::snapshot snap;
    BOOST_TEST(log->get_snapshot("views", &snap).is_ok());
    std::vector<js::snapshot_info> list;
    BOOST_TEST(log->list_snapshots("views", &list).is_ok());
    BOOST_TEST(list.size() == 1u);  // the index survives the reopen
    BOOST_TEST(log->delete_snapshot("views").code() == js::status_code::refused);

    BOOST_TEST(log->append(std::vector<js::record_input>{{1, "x"}}, nullptr).code() ==
               js::status_code::refused);
    BOOST_TEST(log->put_meta("k", "v").code() == js::status_code::refused);
    BOOST_TEST(log->put_snapshot("views", {21, "w"}).code() == js::status_code::refused);
    BOOST_TEST(log->head() == 20u);

    // Read-only opens do not take the lock: two can run side by side.
    auto second = open_log(dir, o);
    BOOST_TEST(second->head() == 20u);
  }
  BOOST_TEST(listing(dir) == files);

  o.create_if_missing = true;
  BOOST_TEST(try_open(tmp.sub("absent"), o).code() == js::status_code::not_found);
  BOOST_TEST(!std::filesystem::exists(tmp.sub("absent")));
}

BOOST_AUTO_TEST_CASE(a_second_open_in_this_process_fails_clearly) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  auto first = open_log(dir);
  append_records(*first, 2);

  js::status s = try_open(dir);
  BOOST_TEST(s.code() == js::status_code::io_error);
  BOOST_TEST(contains(s.message(), "LOCK"), s.message());

  // The failed open left the first one working.
  append_records(*first, 1);
  first.reset();
  BOOST_TEST(open_log(dir)->head() == 3u);
}

BOOST_AUTO_TEST_CASE(an_open_held_by_another_process_fails_clearly) {
  js::test::temp_dir tmp;
  const std::string dir = tmp.sub("log");
  append_records(*open_log(dir), 2);

  // The child takes the same lock RocksDB takes (fcntl, on dir/LOCK) and
  // holds it until the parent closes `release`. Only async-signal-safe calls
  // after fork().
  int locked[2];
  int release[2];
  BOOST_REQUIRE(::pipe(locked) == 0 && ::pipe(release) == 0);
  const std::string lock_path = dir + "/LOCK";
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    ::close(locked[0]);
    ::close(release[1]);
    const int fd = ::open(lock_path.c_str(), O_RDWR);
    struct flock fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    const char ok = (fd >= 0 && ::fcntl(fd, F_SETLK, &fl) == 0) ? 'y' : 'n';
    if (::write(locked[1], &ok, 1) != 1) ::_exit(2);
    char c;
    while (::read(release[0], &c, 1) > 0) {
    }
    ::_exit(0);
  }
  ::close(locked[1]);
  ::close(release[0]);
  char ok = 'n';
  BOOST_REQUIRE(::read(locked[0], &ok, 1) == 1);
  BOOST_REQUIRE(ok == 'y');

  js::status s = try_open(dir);
  BOOST_TEST(s.code() == js::status_code::io_error);
  BOOST_TEST(contains(s.message(), "LOCK"), s.message());

  ::close(release[1]);
  ::close(locked[0]);
  int wstatus = 0;
  BOOST_REQUIRE(::waitpid(child, &wstatus, 0) == child);
  BOOST_TEST(open_log(dir)->head() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
