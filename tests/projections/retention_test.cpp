// Retention in the queue view (projections/queue_view.hpp, "retention"): a
// finished job leaves lists, counts and queues when its retirement time
// passes; the time is fixed when it ends, moved by later settings within
// their rules, kept by a snapshot, and every answer is a function of the
// events and the moment asked about.
#define BOOST_TEST_MODULE projections_retention
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "events/time_text.hpp"
#include "projections/queue_view.hpp"

using namespace jobsmith;

namespace {

constexpr millis t0 = 1'790'000'000'000;
constexpr millis hour = 3'600'000;

/// Folds events at chosen times; jobs run one attempt each.
struct folded {
  queue_view view;
  sequence_t seq = 0;

  void at(millis time, job_id job, event_body body) {
    view.apply(event{++seq, job, time, "test", std::move(body)});
  }
  void submit(millis time, job_id job, const std::string& queue = "q") {
    job_submitted s;
    s.kind = "k";
    s.queue = queue;
    at(time, job, s);
  }
  void succeed(millis time, job_id job) {
    at(time, job, job_started{1, "w", 7});
    at(time, job, job_succeeded{1, "null"});
  }
  void discard(millis time, job_id job) { at(time, job, job_discarded{"no"}); }
  void retention(millis time, const std::string& queue, millis ok, millis failed) {
    at(time, 0, queue_retention{queue, ok, failed});
  }

  std::vector<job_id> listed(millis now) const {
    job_filter f;
    f.limit = 100;
    return view.match(f, now);
  }
  queue_row queue(const std::string& name, millis now) const {
    for (auto& q : view.queues(now))
      if (q.name == name) return q;
    BOOST_FAIL("no queue " << name);
    return {};
  }
  std::uint64_t succeeded(millis now) const {
    return view.counts(now)[static_cast<std::size_t>(job_state::succeeded)];
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(without_a_setting_finished_jobs_are_kept) {
  folded f;
  f.submit(t0, 1);
  f.succeed(t0 + 10, 1);
  BOOST_TEST(f.listed(t0 + 100 * 365 * 24 * hour) == std::vector<job_id>{1});
  BOOST_TEST(f.view.retired_at(1, t0 + 100 * 365 * 24 * hour) == 0);
  BOOST_TEST((f.view.default_retention() == retention_policy{}));
}

BOOST_AUTO_TEST_CASE(a_job_retires_exactly_its_retention_after_it_ends) {
  folded f;
  f.retention(t0, "", 1'000, 5'000);
  f.submit(t0, 1);
  f.submit(t0, 2);
  f.submit(t0, 3);
  f.succeed(t0 + 100, 1);
  f.discard(t0 + 200, 2);
  // Job 1: visible until 1,099 ms after its end, retired from 1,100 on.
  BOOST_TEST(f.listed(t0 + 1'099) == (std::vector<job_id>{1, 2, 3}));
  BOOST_TEST(f.succeeded(t0 + 1'099) == 1u);
  BOOST_TEST(f.listed(t0 + 1'100) == (std::vector<job_id>{2, 3}));
  BOOST_TEST(f.succeeded(t0 + 1'100) == 0u);
  BOOST_TEST(f.view.retired_at(1, t0 + 1'100) == t0 + 1'100);
  BOOST_TEST(f.view.retired_at(1, t0 + 1'099) == 0);
  BOOST_TEST(f.view.explain(1, t0 + 1'100) == "retired at " + format_time(t0 + 1'100));
  auto q = f.queue("q", t0 + 1'100);
  BOOST_TEST(q.retired == 1u);
  BOOST_TEST(q.by_state[static_cast<std::size_t>(job_state::discarded)] == 1u);
  // Job 2 (a failure) has the longer retention; job 3 is live, never retired.
  BOOST_TEST(f.listed(t0 + 5'199) == (std::vector<job_id>{2, 3}));
  BOOST_TEST(f.listed(t0 + 5'200) == (std::vector<job_id>{3}));
  BOOST_TEST(f.queue("q", t0 + 5'200).retired == 2u);
  BOOST_TEST(f.view.retired_at(3, t0 + 1000 * hour) == 0);
}

BOOST_AUTO_TEST_CASE(a_queue_setting_beats_the_default_and_zero_keeps) {
  folded f;
  f.retention(t0, "", 1'000, 1'000);
  f.retention(t0, "keep", 0, 0);
  f.retention(t0, "short", 10, 10);
  f.submit(t0, 1, "keep");
  f.submit(t0, 2, "short");
  f.submit(t0, 3, "other");
  for (job_id id : {1, 2, 3}) f.succeed(t0 + 100, id);
  BOOST_TEST(f.listed(t0 + 110) == (std::vector<job_id>{1, 3}));
  BOOST_TEST(f.listed(t0 + 1'100) == (std::vector<job_id>{1}));
  BOOST_TEST(f.listed(t0 + 1000 * hour) == (std::vector<job_id>{1}));
  BOOST_TEST(f.queue("keep", t0).retention.succeeded == 0);
  BOOST_TEST(f.queue("short", t0).retention.succeeded == 10);
  BOOST_TEST(f.queue("other", t0).retention.succeeded == 1'000);  // the default
}

BOOST_AUTO_TEST_CASE(a_shorter_setting_retires_from_its_own_time_not_before) {
  folded f;
  f.retention(t0, "", hour, hour);
  f.submit(t0, 1);
  f.succeed(t0 + 100, 1);
  // At t0 + 10 s the retention drops to 1 s: job 1 is past it, but it was
  // shown until then; it retires at the setting's time.
  f.retention(t0 + 10'000, "", 1'000, 1'000);
  BOOST_TEST(f.listed(t0 + 9'999) == std::vector<job_id>{1});
  BOOST_TEST(f.view.retired_at(1, t0 + 10'000) == t0 + 10'000);
  BOOST_TEST(f.listed(t0 + 10'000).empty());
}

BOOST_AUTO_TEST_CASE(a_longer_setting_keeps_jobs_not_yet_retired_and_never_revives_one) {
  folded f;
  f.retention(t0, "", 1'000, 1'000);
  f.submit(t0, 1);
  f.submit(t0, 2);
  f.succeed(t0, 1);         // retires at t0 + 1,000
  f.succeed(t0 + 900, 2);   // would retire at t0 + 1,900
  f.retention(t0 + 1'500, "", hour, hour);
  BOOST_TEST(f.view.retired_at(1, t0 + 1'500) == t0 + 1'000);  // stays retired
  BOOST_TEST(f.listed(t0 + 1'500) == std::vector<job_id>{2});
  BOOST_TEST(f.listed(t0 + 900 + hour - 1) == std::vector<job_id>{2});
  BOOST_TEST(f.listed(t0 + 900 + hour).empty());
  // Keeping (0) works the same way: job 2, not retired yet, and job 3,
  // finished under it, stay; job 1 stays retired.
  f.retention(t0 + 2'000, "", 0, 0);
  f.submit(t0 + 2'000, 3);
  f.succeed(t0 + 2'000, 3);
  BOOST_TEST(f.listed(t0 + 1000 * hour) == (std::vector<job_id>{2, 3}));
}

BOOST_AUTO_TEST_CASE(a_retried_job_is_live_again_and_retires_after_its_new_end) {
  folded f;
  f.retention(t0, "", 1'000, 1'000);
  f.submit(t0, 1);
  f.discard(t0 + 100, 1);
  f.at(t0 + 500, 1, job_requested{request_kind::retry});
  BOOST_TEST(f.view.find(1)->retire_at == 0);
  BOOST_TEST(f.listed(t0 + 5'000) == std::vector<job_id>{1});
  f.succeed(t0 + 6'000, 1);
  BOOST_TEST(f.view.retired_at(1, t0 + 7'000) == t0 + 7'000);
}

BOOST_AUTO_TEST_CASE(a_snapshot_keeps_settings_and_retirement_times) {
  folded f;
  f.retention(t0, "", 1'000, 2'000);
  f.retention(t0, "keep", 0, 0);
  f.submit(t0, 1);
  f.submit(t0, 2, "keep");
  f.submit(t0, 3);
  f.succeed(t0 + 100, 1);
  f.succeed(t0 + 100, 2);
  std::string error;
  auto back = queue_view::decode(f.view.encode(), &error);
  BOOST_TEST_REQUIRE(back.has_value(), error);
  BOOST_TEST(back->find(1)->retire_at == t0 + 1'100);
  BOOST_TEST(back->find(2)->retire_at == 0);
  BOOST_TEST((back->default_retention() == retention_policy{1'000, 2'000}));
  BOOST_TEST((back->retention_for("keep") == retention_policy{}));
  for (millis now : {t0 + 1'099, t0 + 1'100, t0 + 1000 * hour}) {
    job_filter all;
    all.limit = 100;
    BOOST_TEST(back->match(all, now) == f.view.match(all, now));
    BOOST_TEST(back->counts(now) == f.view.counts(now));
  }
  // Folding on from the snapshot and from the start agree.
  folded g;
  g.view = std::move(*back);
  g.seq = f.seq;
  f.retention(t0 + 50, "keep", 10, 10);
  g.retention(t0 + 50, "keep", 10, 10);
  BOOST_TEST(g.view.find(2)->retire_at == f.view.find(2)->retire_at);
  BOOST_TEST(f.view.find(2)->retire_at == t0 + 110);
}

BOOST_AUTO_TEST_CASE(durations_read_and_print_with_units) {
  BOOST_TEST(parse_duration("0").value() == 0);
  BOOST_TEST(parse_duration("1d").value() == 86'400'000);
  BOOST_TEST(parse_duration("12h").value() == 12 * hour);
  BOOST_TEST(parse_duration("30m").value() == 1'800'000);
  BOOST_TEST(parse_duration("45s").value() == 45'000);
  BOOST_TEST(parse_duration("1500ms").value() == 1'500);
  for (const char* bad : {"", "d", "1", "1 d", "1D", "-1d", "1.5h", "1dd", "99999999999999999d"})
    BOOST_TEST(!parse_duration(bad).has_value(), bad);
  BOOST_TEST(format_duration(0) == "0");
  BOOST_TEST(format_duration(86'400'000) == "1d");
  BOOST_TEST(format_duration(36 * hour) == "36h");
  BOOST_TEST(format_duration(90'000) == "90s");
  BOOST_TEST(format_duration(1'500) == "1500ms");
  for (millis d : std::vector<millis>{0, 1, 7 * 86'400'000, 61'000})
    BOOST_TEST(parse_duration(format_duration(d)).value() == d);
}
