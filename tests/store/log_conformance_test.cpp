// The event_log contract (store/event_log.hpp), run against every
// implementation: each test is a template over the subjects below, so the
// in-memory log used by other suites cannot drift from the RocksDB log.
#define BOOST_TEST_MODULE store_log_conformance
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "store/event_log.hpp"
#include "store/memory_log.hpp"
#include "store/rocksdb_log.hpp"
#include "tests/store/fault_env.hpp"
#include "tests/store/temp_dir.hpp"

namespace js = jobsmith::store;
using jobsmith::job_id;
using jobsmith::sequence_t;

namespace {

// -- subjects: one per implementation -----------------------------------------

struct memory_subject {
  std::unique_ptr<js::memory_log> impl = std::make_unique<js::memory_log>();
  js::event_log& log() { return *impl; }
  void fail_next_append() { impl->fail_next_append(js::status::io_error("injected failure")); }
  // A full disk until heal().
  void fail_no_space() { impl->fail_writes(js::status::no_space("injected: no space")); }
  void heal() { impl->heal(); }
};

struct rocksdb_subject {
  // Destroyed in reverse: the log before the env it writes through.
  js::test::temp_dir dir;
  js::test::fault_env env;
  std::unique_ptr<js::event_log> impl;

  rocksdb_subject() {
    js::rocksdb_log_options o;
    o.env = &env;
    js::status s = js::open_rocksdb_log(dir.sub("log"), o, &impl);
    BOOST_REQUIRE_MESSAGE(s.is_ok(), s.to_string());
  }
  js::event_log& log() { return *impl; }
  // The disk starts refusing writes and stays that way.
  void fail_next_append() { env.fail_writes(true); }
  void fail_no_space() { env.fail_writes(true, js::test::fault_env::failure::no_space); }
  void heal() { env.fail_writes(false); }
};

using subjects = std::tuple<memory_subject, rocksdb_subject>;

// -- helpers -------------------------------------------------------------------

std::vector<js::record_input> batch_of(std::size_t n, job_id job, const std::string& tag) {
  std::vector<js::record_input> b;
  for (std::size_t i = 0; i < n; ++i) b.push_back({job, tag + "-" + std::to_string(i)});
  return b;
}

std::vector<js::record> read_all(const js::event_log& log, sequence_t from, sequence_t to) {
  std::vector<js::record> out;
  js::status s = log.read(from, to, [&](const js::record& r) {
    out.push_back(r);
    return true;
  });
  BOOST_REQUIRE_MESSAGE(s.is_ok(), s.to_string());
  return out;
}

std::vector<sequence_t> seqs_of(const std::vector<js::record>& rs) {
  std::vector<sequence_t> out;
  for (const auto& r : rs) out.push_back(r.seq);
  return out;
}

std::vector<sequence_t> range(sequence_t from, sequence_t to) {
  std::vector<sequence_t> out;
  for (sequence_t s = from; s <= to; ++s) out.push_back(s);
  return out;
}

void append_ok(js::event_log& log, const std::vector<js::record_input>& b,
               sequence_t* first = nullptr) {
  js::status s = log.append(b, first);
  BOOST_REQUIRE_MESSAGE(s.is_ok(), s.to_string());
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(sequences_start_at_one_and_are_gap_free_across_batches, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  BOOST_TEST(log.head() == 0u);
  BOOST_TEST((log.head_hash() == js::chain_hash{}));

  sequence_t first = 0;
  append_ok(log, batch_of(3, 1, "a"), &first);
  BOOST_TEST(first == 1u);
  BOOST_TEST(log.head() == 3u);
  append_ok(log, batch_of(1, 2, "b"), &first);
  BOOST_TEST(first == 4u);
  append_ok(log, batch_of(1000, 3, "c"), &first);
  BOOST_TEST(first == 5u);
  BOOST_TEST(log.head() == 1004u);
  append_ok(log, batch_of(2, 0, "d"));  // first_seq may be null

  BOOST_TEST(seqs_of(read_all(log, 1, 2000)) == range(1, 1006), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(an_empty_batch_is_a_no_op, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  BOOST_TEST(log.append({}, nullptr).is_ok());
  BOOST_TEST(log.head() == 0u);

  append_ok(log, batch_of(2, 1, "a"));
  const js::chain_hash before = log.head_hash();
  sequence_t first = 0;
  BOOST_TEST(log.append({}, &first).is_ok());
  BOOST_TEST(log.head() == 2u);
  BOOST_TEST((log.head_hash() == before));
  append_ok(log, batch_of(1, 1, "b"), &first);
  BOOST_TEST(first == 3u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_bounds_are_inclusive_and_stop_at_head, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  append_ok(log, batch_of(10, 1, "a"));

  BOOST_TEST(seqs_of(read_all(log, 3, 7)) == range(3, 7), boost::test_tools::per_element());
  BOOST_TEST(seqs_of(read_all(log, 5, 5)) == range(5, 5), boost::test_tools::per_element());
  BOOST_TEST(seqs_of(read_all(log, 8, 100)) == range(8, 10), boost::test_tools::per_element());
  BOOST_TEST(read_all(log, 11, 20).empty());
  BOOST_TEST(read_all(log, 7, 3).empty());

  std::vector<sequence_t> seen;
  BOOST_TEST(log.read(1, 10,
                      [&](const js::record& r) {
                        seen.push_back(r.seq);
                        return r.seq < 4;  // stop after 4
                      })
                 .is_ok());
  BOOST_TEST(seen == range(1, 4), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_returns_bodies_and_jobs_as_appended, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  const std::string binary("\0\x01\xff{\"a\":1}\0", 11);
  const std::vector<js::record_input> in = {
      {7, "{\"kind\":\"x\"}"}, {0, ""}, {~job_id{0}, binary}, {7, std::string(100'000, 'z')}};
  append_ok(log, in);
  const auto out = read_all(log, 1, 4);
  BOOST_REQUIRE_EQUAL(out.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    BOOST_TEST_CONTEXT("record " << i + 1) {
      BOOST_TEST(out[i].job == in[i].job);
      BOOST_TEST(out[i].body == in[i].body);
    }
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_job_returns_only_that_jobs_records_in_order, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  append_ok(log, {{1, "1a"}, {2, "2a"}, {1, "1b"}});
  append_ok(log, {{0, "engine"}, {2, "2b"}, {1, "1c"}});
  append_ok(log, {{3, "3a"}});

  auto job_records = [&](job_id job) {
    std::vector<std::string> bodies;
    std::vector<sequence_t> seqs;
    js::status s = log.read_job(job, [&](const js::record& r) {
      BOOST_TEST(r.job == job);
      bodies.push_back(r.body);
      seqs.push_back(r.seq);
      return true;
    });
    BOOST_TEST(s.is_ok(), s.to_string());
    return std::pair(seqs, bodies);
  };
  const auto [s1, b1] = job_records(1);
  BOOST_TEST(s1 == (std::vector<sequence_t>{1, 3, 6}), boost::test_tools::per_element());
  BOOST_TEST(b1 == (std::vector<std::string>{"1a", "1b", "1c"}), boost::test_tools::per_element());
  const auto [s2, b2] = job_records(2);
  BOOST_TEST(s2 == (std::vector<sequence_t>{2, 5}), boost::test_tools::per_element());
  const auto [s0, b0] = job_records(0);
  BOOST_TEST(s0 == (std::vector<sequence_t>{4}), boost::test_tools::per_element());
  BOOST_TEST(job_records(99).first.empty());

  int visits = 0;
  BOOST_TEST(log.read_job(1, [&](const js::record&) { return ++visits < 2; }).is_ok());
  BOOST_TEST(visits == 2);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(read_job_spans_many_records, S, subjects) {
  // More records than one lookup round of the RocksDB log.
  S subject;
  js::event_log& log = subject.log();
  std::vector<js::record_input> b;
  for (int i = 0; i < 1500; ++i) b.push_back({static_cast<job_id>(1 + i % 3), std::to_string(i)});
  append_ok(log, b);
  std::vector<sequence_t> seqs;
  BOOST_TEST(log.read_job(2,
                          [&](const js::record& r) {
                            seqs.push_back(r.seq);
                            return true;
                          })
                 .is_ok());
  BOOST_REQUIRE_EQUAL(seqs.size(), 500u);
  for (std::size_t i = 0; i < seqs.size(); ++i) BOOST_TEST(seqs[i] == 2 + 3 * i);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(chain_hashes_match_recomputation, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  append_ok(log, {{1, "a"}, {2, "b"}});
  append_ok(log, {{1, "c"}});
  append_ok(log, {{0, ""}});

  js::chain_hash prev{};
  for (const js::record& r : read_all(log, 1, 4)) {
    BOOST_TEST_CONTEXT("record " << r.seq) {
      BOOST_TEST(js::to_hex(r.hash) == js::to_hex(js::chain(prev, r.seq, r.job, r.body)));
    }
    prev = r.hash;
  }
  BOOST_TEST(js::to_hex(log.head_hash()) == js::to_hex(prev));
  // The first record chains to zeros.
  BOOST_TEST(js::to_hex(read_all(log, 1, 1).at(0).hash) ==
             js::to_hex(js::chain(js::chain_hash{}, 1, 1, "a")));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(verify_passes_on_a_clean_log, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  sequence_t bad = 0;
  BOOST_TEST(log.verify(1, 100, &bad).is_ok());  // empty
  append_ok(log, batch_of(20, 1, "a"));
  append_ok(log, batch_of(5, 2, "b"));
  BOOST_TEST(log.verify(1, 25, &bad).is_ok());
  BOOST_TEST(log.verify(7, 12, &bad).is_ok());
  BOOST_TEST(log.verify(25, 1000, &bad).is_ok());
  BOOST_TEST(log.verify(30, 40, &bad).is_ok());
  BOOST_TEST(bad == 0u);
  BOOST_TEST(log.verify(0, 10, &bad).code() == js::status_code::invalid_argument);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(after_a_failed_append_the_log_refuses_but_reads, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  append_ok(log, {{1, "a"}, {2, "b"}, {1, "c"}});
  const js::chain_hash hash = log.head_hash();

  subject.fail_next_append();
  sequence_t first = 0;
  js::status failed = log.append(batch_of(2, 1, "lost"), &first);
  BOOST_TEST(failed.code() == js::status_code::io_error, failed.to_string());
  BOOST_TEST(first == 0u);
  BOOST_TEST(log.head() == 3u);
  BOOST_TEST((log.head_hash() == hash));

  js::status refused = log.append(batch_of(1, 1, "later"), &first);
  BOOST_TEST(refused.code() == js::status_code::refused);
  BOOST_TEST(refused.message().find("failed write at seq 4") != std::string::npos,
             refused.message());
  BOOST_TEST(refused.message().find("writes resume once the disk accepts them again") !=
             std::string::npos);
  BOOST_TEST(!refused.is_no_space());
  BOOST_TEST(log.append({}, nullptr).code() == js::status_code::refused);
  BOOST_TEST(log.put_meta("k", "v").code() == js::status_code::refused);
  BOOST_TEST(log.put_meta_unsynced("k", "v").code() == js::status_code::refused);
  BOOST_TEST(log.put_snapshot("s", {1, "x"}).code() == js::status_code::refused);
  BOOST_TEST(log.head() == 3u);

  BOOST_TEST(seqs_of(read_all(log, 1, 10)) == range(1, 3), boost::test_tools::per_element());
  int job1 = 0;
  BOOST_TEST(log.read_job(1, [&](const js::record&) { return ++job1 > 0; }).is_ok());
  BOOST_TEST(job1 == 2);
  sequence_t bad = 0;
  BOOST_TEST(log.verify(1, 3, &bad).is_ok());
}

// A full disk, then space returns: no_space, refusals that say so, resume()
// failing until the disk works, then appends continue without a gap.
// (RocksDB resumes from a full disk by itself, checking every 5 s: hence the
// wait.)
BOOST_AUTO_TEST_CASE_TEMPLATE(after_a_full_disk_resume_continues_once_space_returns, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  append_ok(log, {{1, "a"}, {2, "b"}, {1, "c"}});
  BOOST_TEST(log.resume().is_ok());  // not refusing: nothing to do

  subject.fail_no_space();
  js::status failed = log.append(batch_of(2, 1, "lost"), nullptr);
  BOOST_TEST(failed.code() == js::status_code::no_space, failed.to_string());
  js::status refused = log.append(batch_of(1, 1, "later"), nullptr);
  BOOST_TEST(refused.code() == js::status_code::refused, refused.to_string());
  BOOST_TEST(refused.cause() == js::status_code::no_space);
  js::status still = log.resume();
  BOOST_TEST(still.is_no_space(), still.to_string());
  BOOST_TEST(log.append(batch_of(1, 1, "later"), nullptr).code() == js::status_code::refused);
  BOOST_TEST(log.head() == 3u);

  subject.heal();
  const auto start = std::chrono::steady_clock::now();
  js::status resumed = log.resume();
  while (!resumed.is_ok() && std::chrono::steady_clock::now() - start < std::chrono::seconds(15)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    resumed = log.resume();
  }
  BOOST_TEST_REQUIRE(resumed.is_ok(), resumed.to_string());
  sequence_t first = 0;
  BOOST_TEST(log.append(batch_of(2, 2, "after"), &first).is_ok());
  BOOST_TEST(first == 4u);
  BOOST_TEST(log.put_meta("k", "v").is_ok());
  BOOST_TEST(seqs_of(read_all(log, 1, 10)) == range(1, 5), boost::test_tools::per_element());
  sequence_t bad = 0;
  BOOST_TEST(log.verify(1, 5, &bad).is_ok());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(snapshots_round_trip, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  js::snapshot got;
  BOOST_TEST(log.get_snapshot("queues", &got).code() == js::status_code::not_found);

  BOOST_TEST(log.put_snapshot("queues", {5, "state at 5"}).is_ok());
  BOOST_TEST(log.put_snapshot("jobs", {0, ""}).is_ok());
  BOOST_TEST(log.get_snapshot("queues", &got).is_ok());
  BOOST_TEST(got.covered == 5u);
  BOOST_TEST(got.bytes == "state at 5");

  const std::string binary("\0\xff\0", 3);
  BOOST_TEST(log.put_snapshot("queues", {9, binary}).is_ok());
  BOOST_TEST(log.get_snapshot("queues", &got).is_ok());
  BOOST_TEST(got.covered == 9u);
  BOOST_TEST(got.bytes == binary);
  BOOST_TEST(log.get_snapshot("jobs", &got).is_ok());
  BOOST_TEST(got.covered == 0u);
  BOOST_TEST(got.bytes.empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(snapshots_list_by_prefix_and_delete, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  std::vector<js::snapshot_info> list;
  BOOST_TEST(log.list_snapshots("view@", &list).is_ok());
  BOOST_TEST(list.empty());

  BOOST_TEST(log.put_snapshot("view@30", {30, "thirty"}).is_ok());
  BOOST_TEST(log.put_snapshot("view@7", {7, "seven!!"}).is_ok());
  BOOST_TEST(log.put_snapshot("view", {99, "no @: another prefix"}).is_ok());
  BOOST_TEST(log.put_snapshot("other", {12, "x"}).is_ok());
  BOOST_TEST(log.list_snapshots("view@", &list).is_ok());
  // Oldest first, by covered sequence, not by name.
  BOOST_TEST_REQUIRE(list.size() == 2u);
  BOOST_TEST(list[0].name == "view@7");
  BOOST_TEST(list[0].covered == 7u);
  BOOST_TEST(list[0].size == 7u);
  BOOST_TEST(list[1].name == "view@30");
  BOOST_TEST(list[1].covered == 30u);
  BOOST_TEST(list[1].size == 6u);

  // Replacing keeps one entry with the new figures.
  BOOST_TEST(log.put_snapshot("view@30", {31, "thirty-one"}).is_ok());
  BOOST_TEST(log.list_snapshots("view@", &list).is_ok());
  BOOST_TEST_REQUIRE(list.size() == 2u);
  BOOST_TEST(list[1].covered == 31u);
  BOOST_TEST(list[1].size == 10u);

  BOOST_TEST(log.delete_snapshot("view@7").is_ok());
  BOOST_TEST(log.delete_snapshot("view@7").is_ok());  // none: still ok
  js::snapshot got;
  BOOST_TEST(log.get_snapshot("view@7", &got).code() == js::status_code::not_found);
  BOOST_TEST(log.list_snapshots("view@", &list).is_ok());
  BOOST_TEST_REQUIRE(list.size() == 1u);
  BOOST_TEST(list[0].name == "view@30");
  BOOST_TEST(log.list_snapshots("", &list).is_ok());
  BOOST_TEST(list.size() == 3u);
  // Names starting with byte 0xff are the store's own.
  BOOST_TEST(log.put_snapshot("\xffview@7", {7, "forged"}).code() == js::status_code::invalid_argument);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(meta_round_trips_and_format_belongs_to_the_store, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  std::string v;
  BOOST_TEST(log.get_meta("engine_id", &v).code() == js::status_code::not_found);
  BOOST_TEST(log.put_meta("engine_id", "e-1").is_ok());
  BOOST_TEST(log.get_meta("engine_id", &v).is_ok());
  BOOST_TEST(v == "e-1");
  BOOST_TEST(log.put_meta("engine_id", "e-2").is_ok());
  BOOST_TEST(log.get_meta("engine_id", &v).is_ok());
  BOOST_TEST(v == "e-2");
  BOOST_TEST(log.put_meta_unsynced("engine_id", "e-3").is_ok());
  BOOST_TEST(log.get_meta("engine_id", &v).is_ok());
  BOOST_TEST(v == "e-3");
  BOOST_TEST(log.put_meta_unsynced("format", "2").code() == js::status_code::invalid_argument);

  BOOST_TEST(log.get_meta("format", &v).is_ok());
  BOOST_TEST(v == "1");
  BOOST_TEST(log.put_meta("format", "2").code() == js::status_code::invalid_argument);
  BOOST_TEST(log.get_meta("format", &v).is_ok());
  BOOST_TEST(v == "1");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(reads_run_while_appends_are_in_flight, S, subjects) {
  S subject;
  js::event_log& log = subject.log();
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 100; ++i) {
      if (!log.append(batch_of(10, static_cast<job_id>(i % 4), "w"), nullptr).is_ok()) break;
    }
    done = true;
  });
  // Every read sees a gap-free prefix that ends at or before head().
  int rounds = 0;
  while (!done || rounds == 0) {
    const sequence_t head = log.head();
    std::vector<sequence_t> seen;
    js::status s = log.read(1, ~sequence_t{0}, [&](const js::record& r) {
      seen.push_back(r.seq);
      return true;
    });
    BOOST_REQUIRE_MESSAGE(s.is_ok(), s.to_string());
    BOOST_REQUIRE_GE(seen.size(), head);
    BOOST_REQUIRE(seen == range(1, seen.size()));
    ++rounds;
  }
  writer.join();
  BOOST_TEST(log.head() == 1000u);
  sequence_t bad = 0;
  BOOST_TEST(log.verify(1, 1000, &bad).is_ok());
}
