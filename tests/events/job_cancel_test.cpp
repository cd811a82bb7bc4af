// Cancelling a job (events/job_state.hpp): a job that is not running ends at
// once; a running one is asked to stop (job.cancel_requested) and ends as
// cancelled by whatever ends its attempt next: the worker's report, the
// engine (lease, time to run, time to stop), or a cancel at once.
#define BOOST_TEST_MODULE events_job_cancel_test
#include <boost/test/unit_test.hpp>
#include <string>

#include "events/job_state.hpp"
#include "tests/events/job_harness.hpp"

using namespace jobsmith;
using namespace jobsmith::test;

namespace {

// A job running attempt 1 under token 5, asked to stop at time 10.
job_harness running_and_asked() {
  job_harness h;
  h.submit(make_spec(), 0);
  h.start(5, 1);
  const auto ev = only_event<job_cancel_requested>(h.run(cmd_cancel{"wrong input"}, 10));
  BOOST_TEST(ev.attempt == 1u);
  BOOST_TEST(ev.reason == "wrong input");
  return h;
}

}  // namespace

BOOST_AUTO_TEST_CASE(cancel_is_idempotent_and_refused_once_finished) {
  job_harness h;
  h.submit(make_spec(), 0);
  only_event<job_cancelled>(h.run(cmd_cancel{"no longer needed"}, 5));
  BOOST_TEST(h.job.state == job_state::cancelled);
  BOOST_TEST(h.job.finished_at == 5);
  BOOST_TEST(to_string(h.job.last_end) == "none");  // it was not running
  expect_nothing(h.run(cmd_cancel{"again"}, 6));
  BOOST_TEST(h.job.finished_at == 5);

  job_harness done;
  done.submit(make_spec(), 0);
  done.start(1, 0);
  only_event<job_succeeded>(done.run(cmd_succeed{1}, 1));
  expect_refusal(done.run(cmd_cancel{"too late"}, 2), job_errc::illegal_transition,
                 "job 12 is succeeded; cannot cancel it");
}

BOOST_AUTO_TEST_CASE(a_running_job_is_asked_to_stop_and_stays_running) {
  auto h = running_and_asked();
  BOOST_TEST(h.job.state == job_state::running);
  BOOST_TEST(h.job.cancel_requested_at == 10);
  BOOST_TEST(h.job.finished_at == 0);
  // Asking again writes nothing; progress is still the holder's to report.
  expect_nothing(h.run(cmd_cancel{"again"}, 11));
  BOOST_TEST(h.job.cancel_requested_at == 10);
  only_event<job_progress>(h.run(cmd_progress{5, "cleaning up", -1, {}}, 12));
}

BOOST_AUTO_TEST_CASE(the_workers_report_ends_the_job_as_cancelled_whatever_it_says) {
  {
    auto h = running_and_asked();
    const auto ev = only_event<job_cancelled>(h.run(cmd_fail{5, "exit code 143", true, ""}, 20));
    BOOST_TEST(ev.reason ==
               "cancelled on request; attempt 1 ended: the worker reported failure: exit code 143");
    BOOST_TEST(h.job.state == job_state::cancelled);
    BOOST_TEST(to_string(h.job.last_end) == "cancelled");
    BOOST_TEST(h.job.finished_at == 20);
    // No retry although attempts were left and the failure was retryable.
    BOOST_TEST(h.job.attempts == 1u);
    expect_refusal(h.run(cmd_fail{5, "again", true, ""}, 21), job_errc::stale_token,
                   "job 12 is cancelled; cannot fail it");
  }
  {
    auto h = running_and_asked();
    const auto ev = only_event<job_cancelled>(h.run(cmd_succeed{5, "{\"rows\":3}"}, 20));
    BOOST_TEST(ev.reason ==
               "cancelled on request; attempt 1 ended: the worker reported success");
    BOOST_TEST(h.job.state == job_state::cancelled);
    BOOST_TEST(h.job.result == "null");  // the stopped attempt's result is not kept
  }
}

BOOST_AUTO_TEST_CASE(the_engine_ending_the_attempt_cancels_instead_of_retrying) {
  auto h = running_and_asked();
  const auto ev = only_event<job_cancelled>(h.run(cmd_reclaim{"lease expired", 0.5}, 30));
  BOOST_TEST(ev.reason == "cancelled on request; attempt 1 ended: lease expired");
  BOOST_TEST(h.job.state == job_state::cancelled);
  BOOST_TEST(h.job.due_at == 0);  // never scheduled again
}

BOOST_AUTO_TEST_CASE(a_cancel_at_once_ends_a_running_job_without_waiting) {
  {
    auto h = running_and_asked();
    only_event<job_cancelled>(h.run(cmd_cancel{"time to stop ran out", true}, 40));
    BOOST_TEST(h.job.state == job_state::cancelled);
    BOOST_TEST(to_string(h.job.last_end) == "cancelled");
    expect_refusal(h.run(cmd_succeed{5, "1"}, 41), job_errc::stale_token,
                   "job 12 is cancelled; cannot complete it");
  }
  {
    job_harness h;
    h.submit(make_spec(), 0);
    h.start(5, 0);
    only_event<job_cancelled>(h.run(cmd_cancel{"user asked", true}, 1));
    BOOST_TEST(h.job.state == job_state::cancelled);
    BOOST_TEST(h.job.cancel_requested_at == 0);
    BOOST_TEST(h.job.finished_at == 1);
  }
}

BOOST_AUTO_TEST_CASE(a_time_to_stop_of_zero_cancels_a_running_job_at_once) {
  job_harness h;
  auto spec = make_spec();
  spec.timeouts.to_stop = 0;
  h.submit(spec, 0);
  h.start(5, 0);
  only_event<job_cancelled>(h.run(cmd_cancel{"user asked"}, 1));
  BOOST_TEST(h.job.state == job_state::cancelled);
  expect_refusal(h.run(cmd_fail{5, "x", true, ""}, 2), job_errc::stale_token,
                 "job 12 is cancelled; cannot fail it");
}

BOOST_AUTO_TEST_CASE(a_retried_job_starts_without_the_old_request) {
  auto h = running_and_asked();
  only_event<job_cancelled>(h.run(cmd_fail{5, "stopped", true, ""}, 20));
  only_event<job_requested>(h.run(cmd_request{request_kind::retry}, 30));
  BOOST_TEST_REQUIRE(h.run(cmd_start{"worker:w2", 6}, 31).ok());
  BOOST_TEST(h.job.cancel_requested_at == 0);
  only_event<job_succeeded>(h.run(cmd_succeed{6, "2"}, 32));
  BOOST_TEST(h.job.state == job_state::succeeded);
}

BOOST_AUTO_TEST_CASE(a_request_for_another_attempt_changes_nothing) {
  job_harness h;
  h.submit(make_spec(), 0);
  h.start(5, 1);
  // As replay meets it: a request naming an attempt that is not the current one.
  apply(h.job, event{++h.seq, the_job, 2, "user:alice", job_cancel_requested{7, "old"}});
  BOOST_TEST(h.job.cancel_requested_at == 0);
  only_event<job_succeeded>(h.run(cmd_succeed{5, "1"}, 3));
  BOOST_TEST(h.job.state == job_state::succeeded);
}

BOOST_AUTO_TEST_CASE(time_to_stop_is_a_bounded_duration) {
  auto spec = make_spec();
  spec.timeouts.to_stop = -1;
  auto err = validate(spec);
  BOOST_TEST_REQUIRE(err.has_value());
  BOOST_TEST(err->message == "timeouts.to_stop must not be negative");
  spec.timeouts.to_stop = max_duration + 1;
  err = validate(spec);
  BOOST_TEST_REQUIRE(err.has_value());
  BOOST_TEST(err->message == "timeouts.to_stop must be at most 315360000000 ms (10 years)");
}
