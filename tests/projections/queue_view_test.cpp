// The queue view against the state machine: randomized runs drive jobs
// through decide() (and some events decide would never produce), fold each
// event into job_records with apply() and into the view, and compare every
// field the view keeps after every event, plus counts and explanations.
#define BOOST_TEST_MODULE projections_queue_view
#include <boost/test/unit_test.hpp>

#include <map>
#include <random>

#include "events/job_state.hpp"
#include "events/time_text.hpp"
#include "projections/queue_view.hpp"

using namespace jobsmith;

namespace {

constexpr millis t0 = 1'790'000'000'000;  // 2026-09-21

struct run {
  std::mt19937_64 rng;
  millis now = t0;
  sequence_t seq = 0;
  std::map<job_id, job_record> oracle;
  queue_view view;
  std::vector<event> log;  // everything folded so far

  explicit run(std::uint64_t seed) : rng(seed) {}

  std::uint64_t pick(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); }

  void fold(job_id id, event_body body, std::string principal = "test") {
    event ev{++seq, id, now, std::move(principal), std::move(body)};
    if (id != 0) apply(oracle[id], ev);
    view.apply(ev);
    log.push_back(ev);
    if (id != 0) check_row(id);
  }

  void check_row(job_id id) {
    const job_record& rec = oracle[id];
    const job_row* row = view.find(id);
    if (rec.id == 0) {
      BOOST_TEST(row == nullptr);
      return;
    }
    BOOST_TEST_REQUIRE(row != nullptr);
    const auto& names = view.names();
    BOOST_TEST(row->id == rec.id);
    BOOST_TEST(static_cast<int>(row->state) == static_cast<int>(rec.state));
    BOOST_TEST(static_cast<int>(row->last_end) == static_cast<int>(rec.last_end));
    BOOST_TEST(row->attempts == rec.attempts);
    BOOST_TEST(row->max_attempts == rec.max_attempts);
    BOOST_TEST(row->submitted_at == rec.submitted_at);
    BOOST_TEST(row->due_at == rec.due_at);
    BOOST_TEST(row->requested_at == rec.requested_at);
    BOOST_TEST(row->started_at == rec.started_at);
    BOOST_TEST(row->finished_at == rec.finished_at);
    BOOST_TEST(row->lease_token == rec.lease_token);
    BOOST_TEST(row->last_seq == rec.last_seq);
    BOOST_TEST(row->event_count == rec.event_count);
    BOOST_TEST(row->schedule == rec.spec.schedule);
    BOOST_TEST(row->last_error == rec.last_error);
    BOOST_TEST(row->priority == rec.spec.priority);
    BOOST_TEST(names.name(row->queue) == rec.spec.queue);
    BOOST_TEST(names.name(row->kind) == rec.spec.kind);
    BOOST_TEST(names.name(row->worker) == rec.worker);
    const auto& set = view.resources_of(*row);
    BOOST_TEST_REQUIRE(set.size() == rec.spec.resources.size());
    for (std::size_t i = 0; i < set.size(); ++i) {
      BOOST_TEST(names.name(set[i].first) == rec.spec.resources[i].name);
      BOOST_TEST(static_cast<int>(set[i].second) == static_cast<int>(rec.spec.resources[i].mode));
    }
  }

  void check_counts() {
    std::array<std::uint64_t, job_state_count> want{};
    for (auto& [id, rec] : oracle)
      if (rec.id != 0) ++want[static_cast<std::size_t>(effective_state(rec, now))];
    auto got = view.counts(now);
    for (int i = 0; i < job_state_count; ++i)
      BOOST_TEST(got[static_cast<std::size_t>(i)] == want[static_cast<std::size_t>(i)],
                 "state " << to_string(static_cast<job_state>(i)));
    std::uint64_t in_queues = 0;
    for (const auto& q : view.queues(now))
      for (auto n : q.by_state) in_queues += n;
    BOOST_TEST(in_queues == view.jobs());
  }

  job_submitted random_spec() {
    static const char* queues[] = {"default", "mail", "reports"};
    static const char* kinds[] = {"resize", "email", "import"};
    static const char* resources[] = {"db:charts", "db:users", "s3:bucket"};
    job_submitted s;
    s.kind = kinds[pick(3)];
    s.queue = queues[pick(3)];
    s.priority = static_cast<std::int32_t>(pick(5)) - 2;
    switch (pick(4)) {  // due later, overdue (kept as the due time), or now
      case 0: s.run_at = now + static_cast<millis>(pick(10'000)); break;
      case 1: s.run_at = now - static_cast<millis>(pick(10'000)); break;
      default: s.run_at = 0; break;
    }
    s.retry.max_attempts = static_cast<std::uint32_t>(1 + pick(3));
    s.review_required = pick(4) == 0;
    for (int i = 0, n = static_cast<int>(pick(3)); i < n; ++i)
      s.resources.push_back({resources[pick(3)], pick(2) ? lock_mode::shared : lock_mode::exclusive});
    return s;
  }

  job_command random_command(const job_record& rec) {
    switch (pick(11)) {
      case 0: return cmd_start{"worker-" + std::to_string(pick(3)), 1 + pick(1u << 20)};
      case 1: return cmd_progress{rec.lease_token, "step", static_cast<std::int32_t>(pick(100)), {}};
      case 2: return cmd_succeed{rec.lease_token, "{\"ok\":true}"};
      case 3: return cmd_fail{rec.lease_token, "boom " + std::to_string(pick(9)), pick(3) != 0, "", 0.5};
      case 4: return cmd_reclaim{"heartbeat missed", 0.5};
      case 5: return cmd_cancel{"by hand"};
      case 6: return cmd_review{pick(2) == 0, "looks right"};
      case 7: return cmd_request{request_kind::run_now};
      case 8: return cmd_request{request_kind::retry};
      case 9: return cmd_expire{"too late"};
      default: return cmd_discard{"by hand"};
    }
  }

  void step() {
    now += static_cast<millis>(pick(2000));
    auto roll = pick(20);
    if (roll < 4 || oracle.empty()) {
      job_id id = oracle.size() + 1;
      fold(id, random_spec());
      return;
    }
    if (roll == 4) {
      static const char* queues[] = {"default", "mail", "reports"};
      switch (pick(3)) {
        case 0: fold(0, queue_paused{queues[pick(3)]}); break;
        case 1: fold(0, queue_resumed{queues[pick(3)]}); break;
        default: fold(0, queue_configured{queues[pick(3)], static_cast<std::uint32_t>(pick(3))}); break;
      }
      return;
    }
    auto it = oracle.begin();
    std::advance(it, static_cast<long>(pick(oracle.size())));
    auto& rec = it->second;
    if (roll == 5) {
      // An event decide() would not produce here: both folds must ignore it
      // the same way.
      auto cmd = random_command(rec);
      job_record other = rec;
      other.state = static_cast<job_state>(pick(job_state_count));
      auto d = decide(other, cmd, now);
      for (auto& body : d.events) fold(rec.id, std::move(body));
      return;
    }
    auto d = decide(rec, random_command(rec), now);
    if (!d.ok()) return;
    for (auto& body : d.events) fold(rec.id, std::move(body), "worker:w");
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(rows_follow_apply_after_every_event) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    run r(seed);
    for (int i = 0; i < 1500; ++i) {
      r.step();
      if (i % 100 == 0) r.check_counts();
    }
    r.check_counts();
    BOOST_TEST(r.view.head() == r.seq);
  }
}

BOOST_AUTO_TEST_CASE(a_fold_from_zero_to_any_sequence_is_the_view_as_it_stood) {
  run live(42);
  std::map<sequence_t, std::array<std::uint64_t, job_state_count>> seen;
  for (int i = 0; i < 2000; ++i) {
    live.step();
    if (i % 97 == 0) seen[live.seq] = live.view.counts(live.log.back().time);
  }
  for (auto& [at, counts] : seen) {
    queue_view again;
    for (const auto& ev : live.log) {
      if (ev.seq > at) break;
      again.apply(ev);
    }
    BOOST_TEST(again.head() == at);
    auto got = again.counts(again.head_time());
    BOOST_TEST(got == counts);
  }
}

BOOST_AUTO_TEST_CASE(explain_names_the_holder_the_pause_and_the_due_time) {
  queue_view v;
  sequence_t seq = 0;
  auto fold = [&](job_id id, event_body body) { v.apply(event{++seq, id, t0, "test", std::move(body)}); };
  job_submitted a;
  a.kind = "chart";
  a.resources = {{"db:charts", lock_mode::exclusive}};
  fold(17, a);
  fold(17, job_started{1, "w1", 99});
  job_submitted b = a;
  fold(18, b);
  BOOST_TEST(v.explain(17, t0) == "running on w1 (attempt 1)");
  BOOST_TEST(v.explain(18, t0) == "waiting for db:charts held by job 17");
  auto res = v.resources(t0);
  BOOST_TEST_REQUIRE(res.size() == 1u);
  BOOST_TEST(res[0].holders.size() == 1u);
  BOOST_TEST(res[0].holders[0].first == 17u);
  BOOST_TEST(res[0].waiters[0].first == 18u);

  job_submitted later;
  later.kind = "mail";
  later.queue = "mail";
  later.run_at = t0 + 60'000;
  fold(19, later);
  BOOST_TEST(v.explain(19, t0) == "due at " + format_time(t0 + 60'000));
  fold(0, queue_paused{"mail"});
  BOOST_TEST(v.explain(19, t0 + 60'000) == "queue 'mail' is paused");
  BOOST_TEST(v.explain(99, t0) == "no such job");
  fold(17, job_succeeded{1, "null"});
  BOOST_TEST(v.explain(17, t0) == "succeeded");
  BOOST_TEST(v.explain(18, t0) == "ready, 0 jobs ahead");
}

BOOST_AUTO_TEST_CASE(ready_order_puts_run_now_requests_first_and_a_snapshot_keeps_it) {
  queue_view v;
  sequence_t seq = 0;
  auto fold = [&](job_id id, millis time, event_body body) {
    v.apply(event{++seq, id, time, "test", std::move(body)});
  };
  job_submitted urgent;
  urgent.kind = "k";
  urgent.priority = 5;
  job_submitted later = urgent;
  later.priority = 0;
  later.run_at = t0 + 3'600'000;
  fold(1, t0, urgent);
  fold(2, t0, urgent);
  fold(3, t0, later);
  fold(3, t0 + 10, job_requested{request_kind::run_now});
  auto ids = [](const std::vector<const job_row*>& rows) {
    std::vector<job_id> out;
    for (auto* r : rows) out.push_back(r->id);
    return out;
  };
  BOOST_TEST(ids(v.ready(t0 + 20)) == (std::vector<job_id>{3, 1, 2}), boost::test_tools::per_element());
  BOOST_TEST(v.explain(1, t0 + 20) == "ready, 1 job ahead");
  std::string error;
  auto back = queue_view::decode(v.encode(), &error);
  BOOST_REQUIRE_MESSAGE(back, error);
  BOOST_TEST(back->find(3)->requested_at == t0 + 10);
  BOOST_TEST(back->find(1)->requested_at == 0);
  BOOST_TEST(ids(back->ready(t0 + 20)) == (std::vector<job_id>{3, 1, 2}),
             boost::test_tools::per_element());
  fold(3, t0 + 30, job_started{1, "w1", 7});  // answered: the request is over
  BOOST_TEST(v.find(3)->requested_at == 0);
}

BOOST_AUTO_TEST_CASE(sparse_ids_do_not_grow_the_dense_rows) {
  queue_view v;
  job_submitted s;
  s.kind = "k";
  v.apply(event{1, 5'000'000'000ull, t0, "test", s});
  v.apply(event{2, 1, t0, "test", s});
  BOOST_TEST(v.jobs() == 2u);
  BOOST_TEST(v.find(5'000'000'000ull) != nullptr);
  BOOST_TEST(v.find(1) != nullptr);
  BOOST_TEST(v.find(2) == nullptr);
  BOOST_TEST(v.counts(t0)[static_cast<std::size_t>(job_state::queued)] == 2u);
}

BOOST_AUTO_TEST_CASE(times_format_and_parse_in_utc) {
  BOOST_TEST(format_time(0) == "1970-01-01T00:00:00.000Z");
  BOOST_TEST(format_time(1'795'356'120'123) == "2026-11-22T14:02:00.123Z");
  BOOST_TEST(parse_time("2026-11-22T14:02:00.123Z").value() == 1'795'356'120'123);
  BOOST_TEST(parse_time("2026-11-22T14:02:00Z").value() == 1'795'356'120'000);
  BOOST_TEST(parse_time("2026-11-22 14:02").value() == 1'795'356'120'000);
  BOOST_TEST(parse_time("2026-11-22").value() == 1'795'305'600'000);
  BOOST_TEST(parse_time("1795356120000").value() == 1'795'356'120'000);
  BOOST_TEST(!parse_time("yesterday"));
  BOOST_TEST(!parse_time("2026-13-01"));
  BOOST_TEST(!parse_time("2026-11-22T14:02:00+01:00"));
  BOOST_TEST(parse_time("2026-11-22T14:02:00+00:00").value() == 1'795'356'120'000);
  BOOST_TEST(!parse_time("2026-02-29"));
  BOOST_TEST(parse_time("2028-02-29").has_value());
  BOOST_TEST(!parse_time("2026-04-31T00:00:00Z"));
}

BOOST_AUTO_TEST_CASE(a_snapshot_decodes_to_the_same_view_and_folding_on_from_it_matches) {
  run live(7);
  std::vector<std::pair<std::size_t, std::string>> snapshots;  // events folded, bytes
  for (int i = 0; i < 3000; ++i) {
    live.step();
    if (i % 500 == 250) snapshots.emplace_back(live.log.size(), live.view.encode());
  }
  const std::string final_bytes = live.view.encode();
  for (auto& [folded, bytes] : snapshots) {
    std::string error;
    auto from = queue_view::decode(bytes, &error);
    BOOST_REQUIRE_MESSAGE(from, error);
    BOOST_TEST(from->encode() == bytes);  // nothing lost, nothing reordered
    for (std::size_t i = folded; i < live.log.size(); ++i) from->apply(live.log[i]);
    // Fold from the snapshot == fold from zero, byte for byte.
    BOOST_TEST(from->encode() == final_bytes);
    BOOST_TEST(from->counts(live.now) == live.view.counts(live.now));
    for (job_id id = 1; id <= live.oracle.size(); ++id)
      BOOST_TEST(from->explain(id, live.now) == live.view.explain(id, live.now));
  }
}

BOOST_AUTO_TEST_CASE(a_damaged_or_foreign_snapshot_is_refused_with_a_reason) {
  run live(9);
  for (int i = 0; i < 200; ++i) live.step();
  const std::string bytes = live.view.encode();
  std::string error;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    BOOST_TEST(!queue_view::decode(bad, &error), "flip at byte " << i);
  }
  for (std::size_t n = 0; n < bytes.size(); n += 7)
    BOOST_TEST(!queue_view::decode(bytes.substr(0, n), &error), "cut at " << n);

  std::string other_version = bytes;
  other_version[4] = static_cast<char>(queue_view::version + 1);
  BOOST_TEST(!queue_view::decode(other_version, &error));
  BOOST_TEST(error.find("version " + std::to_string(queue_view::version + 1)) != std::string::npos,
             error);
  BOOST_TEST(!queue_view::decode("not a snapshot at all", &error));
  BOOST_TEST(error.find("not a queue view snapshot") != std::string::npos, error);
}

// More rows than one chunk holds: read back on several threads, the same
// view; damage in a later chunk is found.
BOOST_AUTO_TEST_CASE(a_snapshot_of_many_chunks_round_trips_and_each_chunk_is_checked) {
  queue_view view;
  sequence_t seq = 0;
  job_submitted spec;
  spec.kind = "k";
  spec.queue = "q";
  for (job_id id = 1; id <= 150'000; ++id) {
    view.apply(event{++seq, id, t0, "test", spec});
    if (id % 3 == 0) view.apply(event{++seq, id, t0 + 1, "w", job_started{1, "w", id}});
  }
  const std::string bytes = view.encode();
  std::string error;
  auto back = queue_view::decode(bytes, &error);
  BOOST_TEST_REQUIRE(back.has_value(), error);
  BOOST_TEST(back->encode() == bytes);
  BOOST_TEST(back->jobs() == 150'000u);
  BOOST_TEST(back->counts(t0)[static_cast<std::size_t>(job_state::running)] == 50'000u);

  for (std::size_t at : {bytes.size() / 2, bytes.size() - 3}) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(bad[at] ^ 0x01);
    BOOST_TEST(!queue_view::decode(bad, &error), "flip at " << at);
    BOOST_TEST(error.find("checksum mismatch in rows") != std::string::npos, error);
  }
}

BOOST_AUTO_TEST_CASE(chunk_frames_claiming_more_rows_than_bytes_are_refused_before_any_allocation) {
  // Found by tests/fuzz/fuzz_snapshot_decoder: 300 empty chunks claiming
  // 65,536 rows each passed their checksums and made decode allocate rows
  // for all of them (gigabytes from 3.6 KB).
  auto fixed = [](std::string& out, std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  // head: seq 0, time 0, job count 300 * 65,536, no names, sets, settings,
  // schedules; eight zero totals; no kinds, no retention settings; highest
  // job 0, nothing let go.
  const std::string head = std::string("\x00\x00\x80\x80\xb0\x09", 6) + std::string(17, '\0');
  std::string bytes = "jsqv";
  fixed(bytes, queue_view::version, 4);
  fixed(bytes, queue_view::checksum(head), 8);
  bytes += static_cast<char>(head.size());
  bytes += head;
  bytes += "\xac\x02";  // 300 chunks
  for (int i = 0; i < 300; ++i) {
    fixed(bytes, queue_view::checksum(""), 8);
    bytes += std::string("\x80\x80\x04\x00", 4);  // 65,536 rows in 0 bytes
  }
  std::string error;
  BOOST_TEST(!queue_view::decode(bytes, &error));
  BOOST_TEST(error.find("chunk frame is damaged") != std::string::npos, error);
}

BOOST_AUTO_TEST_CASE(a_snapshot_with_gaps_and_far_ids_round_trips_across_chunks) {
  // Ids with holes in every chunk (the last too) and two far beyond the
  // dense range: decode places each row where the fold put it.
  queue_view view;
  sequence_t seq = 0;
  job_submitted spec;
  spec.kind = "k";
  std::vector<job_id> ids;
  for (job_id id = 1; id <= 140'000; ++id)
    if (id % 7 != 3 && !(id > 131'000 && id % 2 == 0)) ids.push_back(id);
  ids.push_back(5'000'000'000ull);
  ids.push_back(5'000'000'007ull);
  for (auto id : ids) view.apply(event{++seq, id, t0, "test", spec});
  const std::string bytes = view.encode();
  std::string error;
  auto back = queue_view::decode(bytes, &error);
  BOOST_TEST_REQUIRE(back.has_value(), error);
  BOOST_TEST(back->encode() == bytes);
  BOOST_TEST(back->jobs() == ids.size());
  for (auto id : ids) BOOST_TEST_REQUIRE(back->find(id) != nullptr, id);
  for (job_id missing : {job_id{3}, job_id{131'002}, job_id{140'001}, job_id{5'000'000'001ull}})
    BOOST_TEST(back->find(missing) == nullptr, missing);
  BOOST_TEST(back->max_job() == 5'000'000'007ull);
}
