// `jobsmith audit verify` against damage that leaves the records' chain
// intact: the by_job index (a flipped byte in its table file, an entry
// under the wrong job, an entry gone), a stored snapshot that no longer
// decodes, and a byte flipped in the write-ahead log's last write after a
// SIGKILL, which a read-write open drops. Each is made for real (the log or
// the engine writes, then a file is damaged), and verify, run as the real
// binary, must exit 1 naming the class and the records.
#define BOOST_TEST_MODULE apps_audit_verify_damage
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "actors/engine.hpp"
#include "tests/apps/audit/audit_test_support.hpp"

using namespace jobsmith::test::audit;

namespace {

/// Inverts byte `offset` of `file` in place.
void flip_file_byte(const fs::path& file, std::uintmax_t offset) {
  BOOST_REQUIRE_LT(offset, fs::file_size(file));
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(~c));
  BOOST_REQUIRE(f.good());
}

/// The files of `dir` whose names end in `ext` (".log", ".blob").
std::vector<fs::path> files_ending(const std::string& dir, const std::string& ext) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ext) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

/// The job make_log gives record `seq`.
job_id job_of(const std::string& dir, sequence_t seq) {
  for (const auto& r : read_records(dir))
    if (r.seq == seq) return r.job;
  BOOST_FAIL("no record " << seq);
  return 0;
}

/// Records as make_log builds them (every event type in turn, jobs 1..7),
/// numbered from `first`: what the writer child appends.
std::vector<js::record_input> inputs(sequence_t first, int n) {
  const auto samples = jobsmith::test::sample_events();
  std::vector<js::record_input> out;
  for (sequence_t seq = first; seq < first + static_cast<sequence_t>(n); ++seq) {
    event ev = samples[seq % samples.size()];
    ev.seq = seq;
    ev.job = type_name(ev.body).substr(0, 4) == "job." ? 1 + static_cast<job_id>(seq % 7) : 0;
    ev.time = base_time + static_cast<millis>(seq) * 1000;
    out.push_back({ev.job, jobsmith::encode(ev)});
  }
  return out;
}

}  // namespace

// -- the write-ahead log --------------------------------------------------------------

// First in this file: the writer is a forked child, forked before any test
// here started threads (RocksDB's, CAF's) that a child would lack.
//
// A writer killed with SIGKILL leaves its records in the WAL only (no flush).
// A byte flipped inside its last write, records 802..1001: a read-write open
// drops that write (store/rocksdb_log.hpp) and with it 200 acknowledged
// records. verify, which never writes, must report exactly that range.
BOOST_AUTO_TEST_CASE(a_flipped_byte_in_the_last_wal_write_after_a_kill_names_the_dropped_records) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  int sizes[2];
  BOOST_REQUIRE(::pipe(sizes) == 0);
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    // The writer: 1..801 in four batches (200, 200, 200, 201), then 802..1001
    // in one; after each, the WAL's size goes to the parent. No Boost here.
    ::close(sizes[0]);
    std::unique_ptr<js::event_log> log;
    if (!js::open_rocksdb_log(dir, {}, &log).is_ok()) ::_exit(2);
    sequence_t next = 1;
    for (int n : {200, 200, 200, 201, 200}) {
      if (!log->append(inputs(next, n), nullptr).is_ok()) ::_exit(3);
      next += static_cast<sequence_t>(n);
      const auto wal = files_ending(dir, ".log");
      const std::uint64_t size = wal.empty() ? 0 : fs::file_size(wal.back());
      if (::write(sizes[1], &size, sizeof size) != sizeof size) ::_exit(4);
    }
    for (;;) ::pause();  // killed here, the log still open
  }
  ::close(sizes[1]);
  std::vector<std::uint64_t> wal_size_after;
  std::uint64_t size = 0;
  while (wal_size_after.size() < 5 && ::read(sizes[0], &size, sizeof size) == sizeof size)
    wal_size_after.push_back(size);
  ::close(sizes[0]);
  BOOST_REQUIRE(::kill(child, SIGKILL) == 0);
  int status = 0;
  BOOST_REQUIRE(::waitpid(child, &status, 0) == child);
  BOOST_REQUIRE_EQUAL(wal_size_after.size(), 5u);
  BOOST_REQUIRE(WIFSIGNALED(status));

  const auto wal = files_ending(dir, ".log");
  BOOST_REQUIRE(!wal.empty());
  BOOST_REQUIRE_EQUAL(fs::file_size(wal.back()), wal_size_after[4]);
  BOOST_REQUIRE(files_ending(dir, ".sst").empty());  // nothing was flushed
  flip_file_byte(wal.back(), (wal_size_after[3] + wal_size_after[4]) / 2);
  const auto before = listing(dir);

  const json j = verify_json(dir);
  BOOST_TEST(j["exit"] == 1);
  BOOST_TEST(j["ok"] == false);
  BOOST_TEST(j["problem"] == "wal_tail_damaged");
  BOOST_TEST(j["first_bad"] == 802);
  BOOST_TEST(j["head"] == 801);
  BOOST_TEST(j["checked"] == 801);  // what is kept checks out
  BOOST_TEST(j["wal"]["dropped"]["first"] == 802);
  BOOST_TEST(j["wal"]["dropped"]["last"] == 1001);
  BOOST_TEST(j["wal"]["dropped"]["whole"] == true);
  BOOST_TEST(j["wal"]["dropped"]["kept"] == 801);

  const run_result text = jobsmith_cmd({"audit", "verify", "--data", dir});
  BOOST_TEST(text.code == 1);
  BOOST_TEST(contains(text.out, "FAILED: the write-ahead log's last write is damaged"), text.out);
  BOOST_TEST(contains(text.out, "drops it and with it records 802..1001"), text.out);
  BOOST_TEST(contains(text.out, "problem: wal_tail_damaged (write-ahead log)"), text.out);
  BOOST_TEST((listing(dir) == before));  // verify changed nothing

  // What verify predicted is what a read-write open (the engine's) does.
  const std::string copy = tmp.sub("copy");
  fs::copy(dir, copy, fs::copy_options::recursive);
  std::unique_ptr<js::event_log> log;
  std::string warning;
  BOOST_REQUIRE(js::open_rocksdb_log(copy, {}, &log, &warning).is_ok());
  BOOST_TEST(log->head() == 801u);
  BOOST_TEST(contains(warning, "records 802..1001 go with it"), warning);
}

// -- the by_job index ---------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(by_job_index)

// The reproduction: one byte of by_job's table file flipped. The records
// and their chain are intact, but RocksDB's block checksum fails on every
// read of the index, so read_job (the API's GET /v1/jobs/ID, replay --job)
// fails, and verify must say so.
BOOST_AUTO_TEST_CASE(a_flipped_byte_in_the_by_job_table_file_is_a_read_error) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  make_log(dir, 838);  // closed cleanly: every column family is in table files
  std::vector<std::string> tables;
  {
    raw_db db(dir);
    tables = db.table_files(js::format::cf_by_job);
  }
  BOOST_REQUIRE_EQUAL(tables.size(), 1u);
  // Past the entries of job 0 (the log's engine and queue events), inside
  // those of job 1: a flip at 10 to 1,000 bytes changes no job's reads.
  flip_file_byte(tables[0], 3000);
  {
    js::rocksdb_log_options ro;
    ro.read_only = true;
    auto log = open_log(dir, ro);
    const js::status s = log->read_job(1, [](const js::record&) { return true; });
    BOOST_TEST(s.code() == js::status_code::corruption, s.to_string());
  }

  const json j = verify_json(dir);
  BOOST_TEST(j["exit"] == 1);
  BOOST_TEST(j["ok"] == false);
  BOOST_TEST(j["checked"] == 838);  // the chain checks out
  BOOST_TEST(j["problem"] == "read_error");
  BOOST_TEST(j["index"]["ok"] == false);
  BOOST_TEST(j["index"]["problem"] == "read_error");
  BOOST_TEST(contains(j["message"].get<std::string>(), "by_job"), j["message"]);

  const run_result text = jobsmith_cmd({"audit", "verify", "--data", dir});
  BOOST_TEST(text.code == 1);
  BOOST_TEST(contains(text.out, "ok: records 1..838"), text.out);
  BOOST_TEST(contains(text.out, "FAILED: by_job: read failed"), text.out);
  BOOST_TEST(contains(text.out, "problem: read_error (by_job index)"), text.out);
}

BOOST_AUTO_TEST_CASE(an_entry_under_another_job_is_an_index_mismatch) {
  for (const bool in_table_file : {false, true}) {
    BOOST_TEST_CONTEXT((in_table_file ? "in an SST" : "in the WAL/memtable")) {
      temp_dir tmp;
      const std::string dir = tmp.sub("data");
      make_log(dir, 600);
      const job_id owner = job_of(dir, 437);
      const job_id other = owner == 3 ? 4 : 3;
      {
        raw_db db(dir);
        db.delete_index(owner, 437);
        db.put_index(other, 437);  // read_job(other) now shows another job's event
        if (in_table_file) db.flush();
      }
      const json j = verify_json(dir);
      BOOST_TEST(j["exit"] == 1);
      BOOST_TEST(j["checked"] == 600);
      BOOST_TEST(j["problem"] == "index_mismatch");
      BOOST_TEST(j["first_bad"] == 437);
      BOOST_TEST(j["index"]["job"] == other);
      BOOST_TEST(contains(j["message"].get<std::string>(),
                          "job " + std::to_string(other) + " lists record 437, which belongs to job " +
                              std::to_string(owner)),
                 j["message"]);
      // A range that leaves record 437 out checks out.
      BOOST_TEST(verify_json(dir, {"--to", "436"})["exit"] == 0);
      BOOST_TEST(verify_json(dir, {"--from", "438"})["exit"] == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_record_without_its_entry_is_index_missing) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  make_log(dir, 600);
  // A job's record near 512 (the samples cycle through job and engine events).
  sequence_t seq = 512;
  while (job_of(dir, seq) == 0) ++seq;
  const job_id owner = job_of(dir, seq);
  {
    raw_db db(dir);
    db.delete_index(owner, seq);  // read_job(owner) silently skips the record
    db.flush();
  }
  const json j = verify_json(dir);
  BOOST_TEST(j["exit"] == 1);
  BOOST_TEST(j["problem"] == "index_missing");
  BOOST_TEST(j["first_bad"] == seq);
  BOOST_TEST(j["index"]["job"] == owner);
  BOOST_TEST(j["index"]["records"] == 600);
  BOOST_TEST(j["index"]["entries"] == 599);

  const run_result text = jobsmith_cmd({"audit", "verify", "--data", dir});
  BOOST_TEST(text.code == 1);
  BOOST_TEST(contains(text.out, "FAILED: by_job: record " + std::to_string(seq) + " of job " +
                                    std::to_string(owner) +
                                    " has no entry"),
             text.out);
}

BOOST_AUTO_TEST_CASE(a_clean_log_reports_its_index_and_snapshots_as_checked) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  make_log(dir, 300);
  const json j = verify_json(dir);
  BOOST_TEST(j["exit"] == 0);
  BOOST_TEST(j["index"]["ok"] == true);
  BOOST_TEST(j["index"]["entries"] == 300);
  BOOST_TEST(j["snapshots"]["ok"] == true);
  BOOST_TEST(j["wal"]["ok"] == true);
  BOOST_TEST(!j.contains("problems"));
}

BOOST_AUTO_TEST_SUITE_END()

// -- snapshots --------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_snapshot_that_no_longer_decodes_is_reported) {
  temp_dir tmp;
  const std::string dir = tmp.sub("data");
  {
    jobsmith::engine_options opts;
    opts.data_dir = dir;
    opts.allow_unknown_kinds = true;  // jobs stay queued: the view holds them all
    auto opened = jobsmith::engine::open(std::move(opts));
    BOOST_REQUIRE_MESSAGE(opened.ok(), jobsmith::test::why(opened));
    std::vector<jobsmith::job_submitted> specs(400);
    for (auto& s : specs) s.kind = "snapshot-test";
    BOOST_REQUIRE((*opened)->submit_many(std::move(specs)).ok());
    (*opened)->close();  // stores the queue view snapshot
  }
  BOOST_TEST_REQUIRE(verify_json(dir)["snapshots"]["checked"] == 1);
  // The view of 400 jobs is over min_blob_size: it sits in a blob file,
  // which holds little else; its middle byte is the snapshot's.
  const auto blobs = files_ending(dir, ".blob");
  BOOST_REQUIRE_EQUAL(blobs.size(), 1u);
  flip_file_byte(blobs[0], fs::file_size(blobs[0]) / 2);

  const json j = verify_json(dir);
  BOOST_TEST(j["exit"] == 1);
  BOOST_TEST(j["checked"] == j["head"]);  // the records are fine
  BOOST_TEST(j["problem"] == "snapshot_undecodable");
  BOOST_TEST(j["snapshots"]["snapshot"].get<std::string>().starts_with("queue_view@"));
  const run_result text = jobsmith_cmd({"audit", "verify", "--data", dir});
  BOOST_TEST(text.code == 1);
  BOOST_TEST(contains(text.out, "FAILED: snapshot queue_view@"), text.out);
}
