// Job lists from the queue view: state in / not in, queue, kind, time
// ranges, error text, paging; and, on randomized histories, exactly the jobs
// a plain filter over apply()'s records picks.
#define BOOST_TEST_MODULE projections_job_filter
#include <boost/test/unit_test.hpp>

#include <map>
#include <random>

#include "projections/queue_view.hpp"

using namespace jobsmith;

namespace {

sequence_t next_seq = 1;

event make(job_id job, millis time, event_body body) {
  return event{next_seq++, job, time, "test", std::move(body)};
}

/// Jobs 1..4: 1 and 2 submitted at t=100 in queue a, 3 at t=200 in queue b
/// (kind "other"), 4 at t=300. 1 failed for good at t=150 ("disk full"),
/// 3 succeeded at t=250; 2 and 4 wait.
queue_view sample() {
  queue_view idx;
  job_submitted a;
  a.kind = "resize";
  a.queue = "a";
  idx.apply(make(1, 100, a));
  idx.apply(make(2, 100, a));
  job_submitted b = a;
  b.queue = "b";
  b.kind = "other";
  idx.apply(make(3, 200, b));
  idx.apply(make(4, 300, a));
  idx.apply(make(1, 120, job_started{1, "w", 11}));
  idx.apply(make(1, 150, job_failed{1, "disk full on /var", false, 0, ""}));
  idx.apply(make(3, 220, job_started{1, "w", 12}));
  idx.apply(make(3, 250, job_succeeded{1, "null"}));
  return idx;
}

std::vector<job_id> ids(const std::vector<job_id>& v) { return v; }

}  // namespace

BOOST_AUTO_TEST_CASE(submitted_range_is_inclusive) {
  auto idx = sample();
  job_filter f;
  f.submitted_from = 100;
  f.submitted_to = 200;
  BOOST_TEST(ids(idx.match(f, 1000)) == (std::vector<job_id>{1, 2, 3}), boost::test_tools::per_element());
  f.submitted_from = 201;
  f.submitted_to = 0;
  BOOST_TEST(ids(idx.match(f, 1000)) == (std::vector<job_id>{4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(finished_range_matches_only_finished_jobs) {
  auto idx = sample();
  job_filter f;
  f.finished_from = 1;
  BOOST_TEST(ids(idx.match(f, 1000)) == (std::vector<job_id>{1, 3}), boost::test_tools::per_element());
  f.finished_from = 200;
  f.finished_to = 260;
  BOOST_TEST(ids(idx.match(f, 1000)) == (std::vector<job_id>{3}), boost::test_tools::per_element());
  f.finished_from = 0;
  f.finished_to = 149;
  BOOST_TEST(idx.match(f, 1000).empty());
}

BOOST_AUTO_TEST_CASE(error_text_is_a_substring_match) {
  auto idx = sample();
  job_filter f;
  f.error_contains = "disk full";
  BOOST_TEST(ids(idx.match(f, 1000)) == (std::vector<job_id>{1}), boost::test_tools::per_element());
  f.error_contains = "network";
  BOOST_TEST(idx.match(f, 1000).empty());
}

BOOST_AUTO_TEST_CASE(attempt_bounds_are_inclusive) {
  auto idx = sample();  // jobs 1 and 3 made one attempt, 2 and 4 none
  job_filter f;
  f.attempts_min = 1;
  BOOST_TEST(ids(idx.match(f, 1000)) == (std::vector<job_id>{1, 3}), boost::test_tools::per_element());
  f.attempts_max = 1;
  BOOST_TEST(ids(idx.match(f, 1000)) == (std::vector<job_id>{1, 3}), boost::test_tools::per_element());
  f.attempts_min.reset();
  f.attempts_max = 0;
  BOOST_TEST(ids(idx.match(f, 1000)) == (std::vector<job_id>{2, 4}), boost::test_tools::per_element());
  f.attempts_max.reset();
  f.attempts_min = 2;
  BOOST_TEST(idx.match(f, 1000).empty());
}

BOOST_AUTO_TEST_CASE(filters_combine_with_states_and_paging) {
  auto idx = sample();
  job_filter f;
  f.queue = "a";
  f.states_not_in = {job_state::discarded};
  f.submitted_from = 50;
  f.limit = 1;
  auto page = idx.match(f, 1000);
  BOOST_TEST(ids(page) == (std::vector<job_id>{2}), boost::test_tools::per_element());
  f.after = page.back();
  BOOST_TEST(ids(idx.match(f, 1000)) == (std::vector<job_id>{4}), boost::test_tools::per_element());
  job_filter k;
  k.kind = "other";
  k.states_in = {job_state::succeeded};
  BOOST_TEST(ids(idx.match(k, 1000)) == (std::vector<job_id>{3}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(names_the_view_never_saw_match_nothing) {
  auto idx = sample();
  job_filter f;
  f.queue = "nowhere";
  BOOST_TEST(idx.match(f, 1000).empty());
  f.queue.clear();
  f.kind = "nothing";
  BOOST_TEST(idx.match(f, 1000).empty());
}

BOOST_AUTO_TEST_CASE(far_ids_are_listed_after_dense_ones_in_id_order) {
  queue_view idx;
  job_submitted a;
  a.kind = "k";
  a.queue = "q";
  for (job_id id : {job_id{5'000'000'000}, job_id{2}, job_id{4'000'000'000}, job_id{1}})
    idx.apply(make(id, 100, a));
  job_filter f;
  BOOST_TEST(ids(idx.match(f, 1000)) ==
                 (std::vector<job_id>{1, 2, 4'000'000'000, 5'000'000'000}),
             boost::test_tools::per_element());
  f.after = 2;
  f.limit = 1;
  BOOST_TEST(ids(idx.match(f, 1000)) == (std::vector<job_id>{4'000'000'000}),
             boost::test_tools::per_element());
}

// Random jobs and events, random filters: match() picks exactly what a plain
// filter over the jobs' apply()-folded records picks.
BOOST_AUTO_TEST_CASE(match_equals_a_plain_filter_over_folded_records) {
  std::mt19937_64 rng(7);
  auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  static const char* queues[] = {"a", "b", "c"};
  static const char* kinds[] = {"x", "y"};
  static const char* errors[] = {"disk full", "timeout", "disk quota"};
  queue_view view;
  std::map<job_id, job_record> records;
  millis now = 1'000;
  for (int i = 0; i < 3000; ++i) {
    now += static_cast<millis>(pick(50));
    job_id id = records.empty() || pick(3) == 0 ? records.size() + 1 : 1 + pick(records.size());
    auto& rec = records[id];
    if (rec.id == 0) {
      job_submitted s;
      s.queue = queues[pick(3)];
      s.kind = kinds[pick(2)];
      s.run_at = pick(4) == 0 ? now + static_cast<millis>(pick(500)) : 0;
      s.retry.max_attempts = 2;
      event ev{next_seq++, id, now, "test", s};
      apply(rec, ev);
      view.apply(ev);
      continue;
    }
    job_command cmd;
    {
      switch (pick(5)) {
        case 0: cmd = cmd_start{"w", 1 + pick(1000)}; break;
        case 1: cmd = cmd_succeed{rec.lease_token, "null"}; break;
        case 2: cmd = cmd_fail{rec.lease_token, errors[pick(3)], pick(2) == 0, "", 0.5}; break;
        case 3: cmd = cmd_cancel{"by hand"}; break;
        default: cmd = cmd_request{request_kind::retry}; break;
      }
    }
    auto d = decide(rec, cmd, now);
    if (!d.ok()) continue;
    for (auto& body : d.events) {
      event ev{next_seq++, id, now, "test", std::move(body)};
      apply(rec, ev);
      view.apply(ev);
    }
  }
  std::size_t matched = 0;  // the filters must pick jobs, not only nothing
  for (int round = 0; round < 300; ++round) {
    job_filter f;
    if (pick(3) == 0) f.states_in = {static_cast<job_state>(pick(job_state_count))};
    if (pick(4) == 0) f.states_not_in = {static_cast<job_state>(pick(job_state_count))};
    if (pick(2) == 0) f.queue = queues[pick(3)];
    if (pick(3) == 0) f.kind = kinds[pick(2)];
    if (pick(4) == 0) f.submitted_from = static_cast<millis>(pick(static_cast<std::uint64_t>(now)));
    if (pick(4) == 0) f.submitted_to = static_cast<millis>(pick(static_cast<std::uint64_t>(now)));
    if (pick(4) == 0) f.finished_from = static_cast<millis>(pick(static_cast<std::uint64_t>(now)));
    if (pick(4) == 0) f.finished_to = static_cast<millis>(pick(static_cast<std::uint64_t>(now)));
    if (pick(4) == 0) f.error_contains = pick(2) == 0 ? "disk" : "timeout";
    if (pick(4) == 0) f.attempts_min = static_cast<std::uint32_t>(pick(3));
    if (pick(4) == 0) f.attempts_max = static_cast<std::uint32_t>(pick(3));
    f.after = pick(3) == 0 ? pick(records.size()) : 0;
    f.limit = 1 + pick(200);
    auto at = now - static_cast<millis>(pick(300));
    std::vector<job_id> want;
    for (auto& [id, rec] : records) {
      if (want.size() >= f.limit) break;
      if (rec.id == 0 || id <= f.after) continue;
      auto state = effective_state(rec, at);
      auto in = [](const std::vector<job_state>& v, job_state s) {
        return std::find(v.begin(), v.end(), s) != v.end();
      };
      if (!f.states_in.empty() && !in(f.states_in, state)) continue;
      if (in(f.states_not_in, state)) continue;
      if (!f.queue.empty() && rec.spec.queue != f.queue) continue;
      if (!f.kind.empty() && rec.spec.kind != f.kind) continue;
      if (f.submitted_from && rec.submitted_at < f.submitted_from) continue;
      if (f.submitted_to && rec.submitted_at > f.submitted_to) continue;
      if ((f.finished_from || f.finished_to) && rec.finished_at == 0) continue;
      if (f.finished_from && rec.finished_at < f.finished_from) continue;
      if (f.finished_to && rec.finished_at > f.finished_to) continue;
      if (!f.error_contains.empty() && rec.last_error.find(f.error_contains) == std::string::npos)
        continue;
      if (f.attempts_min && rec.attempts < *f.attempts_min) continue;
      if (f.attempts_max && rec.attempts > *f.attempts_max) continue;
      want.push_back(id);
    }
    BOOST_TEST(view.match(f, at) == want, boost::test_tools::per_element());
    matched += want.size();
  }
  BOOST_TEST(matched > 3000u, matched << " jobs matched in all");
}
