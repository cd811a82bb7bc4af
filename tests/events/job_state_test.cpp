// The job state machine (events/job_state.hpp): what each command decides,
// what each event does to a job, and the refusals a caller meets.
#define BOOST_TEST_MODULE events_job_state_test
#include "events/job_state.hpp"
#include "tests/events/job_harness.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

using namespace jobsmith;
using namespace jobsmith::test;

namespace {

std::string validation_message(const std::function<void(job_submitted&)>& change) {
  job_submitted s = make_spec();
  change(s);
  const auto err = validate(s);
  BOOST_TEST_REQUIRE(err.has_value());
  BOOST_TEST((err->code == job_errc::invalid_argument));
  return err->message;
}

}  // namespace

// -- names ------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(names)

BOOST_AUTO_TEST_CASE(states_print_and_parse_by_name) {
  for (int i = 0; i < job_state_count; ++i) {
    const auto s = static_cast<job_state>(i);
    BOOST_TEST((parse_job_state(to_string(s)) == s), to_string(s));
  }
  BOOST_TEST(to_string(job_state::pending_review) == "pending_review");
  BOOST_TEST(!parse_job_state("waiting").has_value());
}

BOOST_AUTO_TEST_CASE(terminal_states) {
  std::vector<std::string_view> terminal;
  for (int i = 0; i < job_state_count; ++i)
    if (is_terminal(static_cast<job_state>(i)))
      terminal.push_back(to_string(static_cast<job_state>(i)));
  const std::vector<std::string_view> expected = {"succeeded", "accepted",  "declined",
                                                  "discarded", "cancelled", "expired"};
  BOOST_TEST(terminal == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(error_codes_print_by_name) {
  BOOST_TEST(to_string(job_errc::invalid_argument) == "invalid_argument");
  BOOST_TEST(to_string(job_errc::illegal_transition) == "illegal_transition");
  BOOST_TEST(to_string(job_errc::stale_token) == "stale_token");
  BOOST_TEST(to_string(job_errc::unknown_job) == "unknown_job");
}

BOOST_AUTO_TEST_SUITE_END()

// -- validate ---------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(validation)

BOOST_AUTO_TEST_CASE(a_plain_submission_is_valid) {
  BOOST_TEST(!validate(make_spec()).has_value());
  job_submitted edge = make_spec();
  edge.kind = std::string(200, 'k');
  edge.queue = std::string(200, 'q');
  edge.unique_key = std::string(200, 'u');
  edge.retry = retry_policy{1, 0, 1.0, 0, 1.0};
  edge.resources = {{std::string(200, 'r'), lock_mode::shared}, {"b", lock_mode::exclusive}};
  edge.recur = recurrence{0, 1.0, 0, 0};
  BOOST_TEST(!validate(edge).has_value());
}

BOOST_AUTO_TEST_CASE(each_bad_field_is_named) {
  using S = job_submitted&;
  BOOST_TEST(validation_message([](S s) { s.kind = ""; }) == "kind must not be empty");
  BOOST_TEST(validation_message([](S s) { s.kind = std::string(201, 'k'); }) ==
             "kind is longer than 200 bytes");
  BOOST_TEST(validation_message([](S s) { s.kind = "a\nb"; }) ==
             "kind must not contain control characters");
  BOOST_TEST(validation_message([](S s) { s.kind = "a\x7f"; }) ==
             "kind must not contain control characters");
  BOOST_TEST(validation_message([](S s) { s.queue = ""; }) == "queue must not be empty");
  BOOST_TEST(validation_message([](S s) { s.queue = "q\t"; }) ==
             "queue must not contain control characters");
  BOOST_TEST(validation_message([](S s) { s.queue = std::string(201, 'q'); }) ==
             "queue is longer than 200 bytes");
  BOOST_TEST(validation_message([](S s) {
               s.payload = "{\"a\":";
             }).starts_with("payload is not valid JSON: [json.exception.parse_error"));
  BOOST_TEST(
      validation_message([](S s) { s.payload = ""; }).starts_with("payload is not valid JSON: "));
  BOOST_TEST(validation_message([](S s) { s.run_at = -1; }) == "run_at must not be negative");
  BOOST_TEST(validation_message([](S s) { s.retry.max_attempts = 0; }) ==
             "retry.max_attempts must be at least 1");
  BOOST_TEST(validation_message([](S s) { s.retry.initial_interval = -1; }) ==
             "retry.initial_interval must not be negative");
  const std::string coefficient = "retry.backoff_coefficient must be a finite number of at least 1";
  BOOST_TEST(validation_message([](S s) { s.retry.backoff_coefficient = 0.99; }) == coefficient);
  BOOST_TEST(validation_message([](S s) {
               s.retry.backoff_coefficient = std::numeric_limits<double>::infinity();
             }) == coefficient);
  BOOST_TEST(validation_message([](S s) { s.retry.backoff_coefficient = std::nan(""); }) ==
             coefficient);
  BOOST_TEST(validation_message([](S s) { s.retry.max_interval = 999; }) ==
             "retry.max_interval must be at least retry.initial_interval");
  BOOST_TEST(validation_message([](S s) { s.retry.jitter = 1.01; }) ==
             "retry.jitter must be between 0 and 1");
  BOOST_TEST(validation_message([](S s) { s.retry.jitter = -0.1; }) ==
             "retry.jitter must be between 0 and 1");
  BOOST_TEST(validation_message([](S s) { s.retry.jitter = std::nan(""); }) ==
             "retry.jitter must be between 0 and 1");
  BOOST_TEST(validation_message([](S s) { s.timeouts.to_start = -1; }) ==
             "timeouts.to_start must not be negative");
  BOOST_TEST(validation_message([](S s) { s.timeouts.to_run = -1; }) ==
             "timeouts.to_run must not be negative");
  BOOST_TEST(validation_message([](S s) { s.timeouts.heartbeat = -1; }) ==
             "timeouts.heartbeat must not be negative");
  BOOST_TEST(validation_message([](S s) {
               s.resources = {{"a"}, {""}};
             }) == "resources[1].name must not be empty");
  BOOST_TEST(validation_message([](S s) { s.resources = {{std::string(201, 'r')}}; }) ==
             "resources[0].name is longer than 200 bytes");
  BOOST_TEST(validation_message([](S s) {
               s.resources = {{"db", lock_mode::shared}, {"x"}, {"db", lock_mode::exclusive}};
             }) == "resource 'db' is listed more than once");
  BOOST_TEST(validation_message([](S s) { s.unique_key = std::string(201, 'u'); }) ==
             "unique_key is longer than 200 bytes");
  BOOST_TEST(validation_message([](S s) { s.recur.interval = -1; }) ==
             "recurrence.interval must not be negative");
  BOOST_TEST(validation_message([](S s) { s.recur.failure_backoff = 0.5; }) ==
             "recurrence.failure_backoff must be a finite number of at least 1");
  BOOST_TEST(validation_message([](S s) {
               s.recur.interval = 10;
               s.recur.max_interval = 9;
             }) == "recurrence.max_interval must be at least recurrence.interval");
}

BOOST_AUTO_TEST_SUITE_END()

// -- decide and apply -------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(transitions)

BOOST_AUTO_TEST_CASE(submit_creates_a_waiting_job) {
  job_harness h;
  job_submitted spec = make_spec();
  spec.payload = R"({"x":1})";
  const auto ev = only_event<job_submitted>(h.run(cmd_submit{spec}, 500));
  BOOST_TEST((ev == spec));
  BOOST_TEST(h.job.id == the_job);
  BOOST_TEST(h.job.state == job_state::scheduled);
  BOOST_TEST(h.job.submitted_at == 500);
  BOOST_TEST(h.job.due_at == 500);  // run_at 0 means now
  BOOST_TEST(h.job.max_attempts == 3u);
  BOOST_TEST(h.job.attempts == 0u);
  BOOST_TEST(h.job.last_seq == 1u);
  BOOST_TEST(h.job.event_count == 1u);
  BOOST_TEST(effective_state(h.job, 500) == job_state::queued);
}

BOOST_AUTO_TEST_CASE(an_invalid_submission_is_refused) {
  job_harness h;
  job_submitted spec = make_spec();
  spec.kind.clear();
  expect_refusal(h.run(cmd_submit{spec}, 0), job_errc::invalid_argument, "kind must not be empty");
  BOOST_TEST(h.job.event_count == 0u);
}

BOOST_AUTO_TEST_CASE(a_future_job_is_scheduled_until_due_then_queued) {
  job_harness h;
  job_submitted spec = make_spec();
  spec.run_at = 5000;
  h.submit(spec, 1000);
  BOOST_TEST(h.job.due_at == 5000);
  BOOST_TEST(effective_state(h.job, 4999) == job_state::scheduled);
  BOOST_TEST(effective_state(h.job, 5000) == job_state::queued);
  expect_refusal(h.run(cmd_start{"w", 1}, 4999), job_errc::illegal_transition,
                 "job 12 is scheduled until 5000; cannot start it before then");
  h.start(1, 5000);
  BOOST_TEST(effective_state(h.job, 5000) == job_state::running);
}

BOOST_AUTO_TEST_CASE(a_past_run_at_stays_the_due_time_and_the_job_is_due_at_once) {
  job_harness h;
  job_submitted spec = make_spec();
  spec.run_at = 300;
  h.submit(spec, 1000);
  BOOST_TEST(h.job.due_at == 300);
  BOOST_TEST(effective_state(h.job, 1000) == job_state::queued);
  BOOST_TEST(became_due_at(h.job) == 1000);  // time limits count from the submission
  h.start(1, 1000);
  BOOST_TEST(h.job.state == job_state::running);
}

BOOST_AUTO_TEST_CASE(commands_for_a_job_never_submitted_are_unknown) {
  const job_record none;
  const std::vector<job_command> commands = {cmd_start{"w", 1},    cmd_progress{1, "x", -1, {}},
                                             cmd_succeed{1},       cmd_fail{1, "e", true, ""},
                                             cmd_reclaim{"r"},     cmd_cancel{"c"},
                                             cmd_review{true, ""}, cmd_request{},
                                             cmd_expire{"e"},      cmd_discard{"d"}};
  for (const auto& cmd : commands) {
    BOOST_TEST_CONTEXT("command " << cmd.index()) {
      expect_refusal(decide(none, cmd, 0), job_errc::unknown_job);
    }
  }
}

BOOST_AUTO_TEST_CASE(start_leases_the_next_attempt) {
  job_harness h;
  h.submit(make_spec(), 0);
  const auto ev = only_event<job_started>(h.run(cmd_start{"worker:w1", 777}, 10));
  BOOST_TEST(ev.attempt == 1u);
  BOOST_TEST(ev.worker == "worker:w1");
  BOOST_TEST(ev.lease_token == 777u);
  BOOST_TEST(h.job.state == job_state::running);
  BOOST_TEST(h.job.attempts == 1u);
  BOOST_TEST(h.job.worker == "worker:w1");
  BOOST_TEST(h.job.lease_token == 777u);
  BOOST_TEST(h.job.started_at == 10);
  expect_refusal(h.run(cmd_start{"worker:w2", 778}, 11), job_errc::illegal_transition,
                 "job 12 is running; cannot start it");
}

BOOST_AUTO_TEST_CASE(progress_is_recorded_only_for_the_lease_holder) {
  job_harness h;
  h.submit(make_spec(), 0);
  h.start(5, 0);
  const auto ev = only_event<job_progress>(
      h.run(cmd_progress{5, "row 10", 40, {{log_level::warn, 1, "slow"}}}, 1));
  BOOST_TEST(ev.attempt == 1u);
  BOOST_TEST(ev.lines.size() == 1u);
  BOOST_TEST(h.job.detail == "row 10");
  BOOST_TEST(h.job.percent == 40);

  // Empty detail and unknown percent keep what was known.
  only_event<job_progress>(h.run(cmd_progress{5, "", -1, {{log_level::info, 2, "x"}}}, 2));
  BOOST_TEST(h.job.detail == "row 10");
  BOOST_TEST(h.job.percent == 40);

  // Nothing to report: no event.
  expect_nothing(h.run(cmd_progress{5, "", -1, {}}, 3));
  expect_refusal(h.run(cmd_progress{6, "row 11", 50, {}}, 3), job_errc::stale_token,
                 "job 12: lease token 6 is stale; a newer attempt (1) holds the job");
}

BOOST_AUTO_TEST_CASE(succeed_finishes_the_job_and_repeats_are_idempotent) {
  job_harness h;
  h.submit(make_spec(), 0);
  h.start(5, 0);
  expect_refusal(h.run(cmd_succeed{5, "{oops"}, 1), job_errc::invalid_argument);
  BOOST_TEST(h.job.state == job_state::running);

  const auto ev = only_event<job_succeeded>(h.run(cmd_succeed{5, R"({"rows":3})"}, 20));
  BOOST_TEST(ev.attempt == 1u);
  BOOST_TEST(h.job.state == job_state::succeeded);
  BOOST_TEST(h.job.result == R"({"rows":3})");
  BOOST_TEST(h.job.finished_at == 20);
  BOOST_TEST(h.job.worker == "worker:w1");  // who ran it stays on the record
  BOOST_TEST(to_string(h.job.last_end) == "succeeded");

  // A worker that lost the reply completes again: accepted, nothing recorded.
  const auto count = h.job.event_count;
  expect_nothing(h.run(cmd_succeed{5, R"({"rows":3})"}, 21));
  BOOST_TEST(h.job.event_count == count);
  // But it cannot turn the success into a failure.
  expect_refusal(h.run(cmd_fail{5, "late", true, ""}, 22), job_errc::stale_token,
                 "job 12 attempt 1 already succeeded; cannot fail it");
}

BOOST_AUTO_TEST_CASE(review_required_waits_for_a_reviewer) {
  job_harness h;
  job_submitted spec = make_spec();
  spec.review_required = true;
  h.submit(spec, 0);
  expect_refusal(h.run(cmd_review{true, "ok"}, 1), job_errc::illegal_transition,
                 "job 12 is not pending review (queued)");
  h.start(5, 1);
  expect_refusal(h.run(cmd_review{true, "ok"}, 2), job_errc::illegal_transition,
                 "job 12 is not pending review (running)");
  only_event<job_succeeded>(h.run(cmd_succeed{5, "1"}, 3));
  BOOST_TEST(h.job.state == job_state::pending_review);
  BOOST_TEST(h.job.finished_at == 0);
  BOOST_TEST(!is_terminal(h.job.state));

  const auto ev = only_event<job_reviewed>(h.run(cmd_review{false, "wrong rows"}, 9, "user:bob"));
  BOOST_TEST(!ev.accepted);
  BOOST_TEST(h.job.state == job_state::declined);
  BOOST_TEST(h.job.reviewer == "user:bob");
  BOOST_TEST(h.job.review_comment == "wrong rows");
  BOOST_TEST(h.job.finished_at == 9);
}

BOOST_AUTO_TEST_CASE(accepting_a_review_finalizes_the_job) {
  job_harness h;
  job_submitted spec = make_spec();
  spec.review_required = true;
  h.submit(spec, 0);
  h.start(5, 0);
  only_event<job_succeeded>(h.run(cmd_succeed{5, "1"}, 1));
  only_event<job_reviewed>(h.run(cmd_review{true, "fine"}, 2, "user:carol"));
  BOOST_TEST(h.job.state == job_state::accepted);
  BOOST_TEST(h.job.reviewer == "user:carol");
  expect_refusal(h.run(cmd_review{false, "changed my mind"}, 3), job_errc::illegal_transition,
                 "job 12 is not pending review (accepted)");
}

BOOST_AUTO_TEST_CASE(a_reclaimed_attempts_late_result_is_refused) {
  job_harness h;
  h.submit(make_spec(), 0);
  h.start(5, 0);
  const auto ev = only_event<job_reclaimed>(h.run(cmd_reclaim{"heartbeat missed"}, 100));
  BOOST_TEST(ev.attempt == 1u);
  BOOST_TEST(ev.next_run_at == 1100);  // first retry delay 1s
  BOOST_TEST(h.job.state == job_state::scheduled);
  BOOST_TEST(h.job.due_at == 1100);
  BOOST_TEST(h.job.last_error == "reclaimed: heartbeat missed");
  BOOST_TEST(h.job.worker == "worker:w1");  // the last attempt's, until the next starts
  expect_refusal(h.run(cmd_succeed{5, "1"}, 200), job_errc::stale_token,
                 "job 12 attempt 1 was reclaimed; cannot complete it");

  BOOST_TEST_REQUIRE(h.run(cmd_start{"worker:w2", 6}, 1100).ok());
  BOOST_TEST(h.job.attempts == 2u);
  BOOST_TEST(h.job.worker == "worker:w2");
  expect_refusal(h.run(cmd_succeed{5, "1"}, 1200), job_errc::stale_token,
                 "job 12: lease token 5 is stale; a newer attempt (2) holds the job");
  BOOST_TEST(h.job.state == job_state::running);
  only_event<job_succeeded>(h.run(cmd_succeed{6, "2"}, 1300));
  BOOST_TEST(h.job.result == "2");
  BOOST_TEST(h.job.worker == "worker:w2");  // the attempt that finished it
}

BOOST_AUTO_TEST_CASE(reclaim_needs_a_running_job) {
  job_harness h;
  h.submit(make_spec(), 0);
  expect_refusal(h.run(cmd_reclaim{"r"}, 1), job_errc::illegal_transition,
                 "job 12 is queued; only a running job can be reclaimed");
}

BOOST_AUTO_TEST_CASE(a_failure_waits_out_the_backoff_and_hands_over_state) {
  job_harness h;
  h.submit(make_spec(), 0);
  h.start(5, 0);
  expect_refusal(h.run(cmd_fail{5, "e", true, "{bad"}, 1), job_errc::invalid_argument);
  const auto ev = only_event<job_failed>(h.run(cmd_fail{5, "timeout", true, R"({"page":4})"}, 50));
  BOOST_TEST(ev.next_run_at == 1050);
  BOOST_TEST(ev.retryable);
  BOOST_TEST(h.job.state == job_state::scheduled);
  BOOST_TEST(h.job.due_at == 1050);
  BOOST_TEST(h.job.last_error == "timeout");
  BOOST_TEST(h.job.handover == R"({"page":4})");
  BOOST_TEST(effective_state(h.job, 1049) == job_state::scheduled);
  BOOST_TEST(effective_state(h.job, 1050) == job_state::queued);

  // The worker retries its fail call: accepted, nothing new.
  expect_nothing(h.run(cmd_fail{5, "timeout", true, R"({"page":4})"}, 60));
  expect_refusal(h.run(cmd_succeed{5, "1"}, 61), job_errc::stale_token,
                 "job 12 attempt 1 already failed; cannot complete it");
  expect_refusal(h.run(cmd_start{"w", 6}, 1049), job_errc::illegal_transition);
  h.start(6, 1050);
  // The second failure waits twice as long.
  BOOST_TEST(only_event<job_failed>(h.run(cmd_fail{6, "again", true, ""}, 2000)).next_run_at ==
             4000);
}

BOOST_AUTO_TEST_CASE(a_handover_stays_until_a_later_failure_gives_another) {
  job_harness h;
  job_submitted spec = make_spec();
  spec.retry.max_attempts = 4;
  h.submit(spec, 0);
  h.start(1, 0);
  only_event<job_failed>(h.run(cmd_fail{1, "timeout", true, R"({"page":4})"}, 10));
  h.start(2, 1010);
  // The second attempt fails before it gets anywhere: page 4 is still where to go on.
  only_event<job_failed>(h.run(cmd_fail{2, "no route", true, ""}, 1020));
  BOOST_TEST(h.job.handover == R"({"page":4})");
  h.start(3, 3020);
  BOOST_TEST(h.job.handover == R"({"page":4})");  // what the third attempt is handed
  only_event<job_failed>(h.run(cmd_fail{3, "timeout", true, R"({"page":9})"}, 3030));
  BOOST_TEST(h.job.handover == R"({"page":9})");
  h.start(4, 10'000);
  only_event<job_succeeded>(h.run(cmd_succeed{4, "1"}, 10'010));
  BOOST_TEST(h.job.handover == R"({"page":9})");
}

BOOST_AUTO_TEST_CASE(out_of_attempts_the_job_is_discarded) {
  job_harness h;
  h.submit(make_spec(), 0);  // max_attempts 3
  millis now = 0;
  for (std::uint64_t token = 1; token <= 3; ++token) {
    now = h.job.due_at;
    h.start(token, now);
    BOOST_TEST(h.job.attempts == token);
    const auto ev = only_event<job_failed>(h.run(cmd_fail{token, "boom", true, ""}, now + 1));
    BOOST_TEST((ev.next_run_at == 0) == (token == 3), "attempt " << token);
  }
  BOOST_TEST(h.job.state == job_state::discarded);
  BOOST_TEST(h.job.finished_at == now + 1);
  BOOST_TEST(h.job.last_error == "boom");
  expect_refusal(h.run(cmd_start{"w", 4}, now + 5000), job_errc::illegal_transition,
                 "job 12 is discarded; cannot start it");
}

BOOST_AUTO_TEST_CASE(a_reclaimed_attempt_counts_against_the_budget) {
  job_harness h;
  job_submitted spec = make_spec();
  spec.retry.max_attempts = 2;
  h.submit(spec, 0);
  h.start(1, 0);
  BOOST_TEST(only_event<job_reclaimed>(h.run(cmd_reclaim{"lost"}, 1)).next_run_at > 0);
  h.start(2, h.job.due_at);
  BOOST_TEST(only_event<job_reclaimed>(h.run(cmd_reclaim{"lost"}, 5000)).next_run_at == 0);
  BOOST_TEST(h.job.state == job_state::discarded);
  BOOST_TEST(h.job.finished_at == 5000);
}

BOOST_AUTO_TEST_CASE(a_permanent_error_discards_at_once) {
  job_harness h;
  h.submit(make_spec(), 0);
  h.start(1, 0);
  const auto ev = only_event<job_failed>(h.run(cmd_fail{1, "bad input", false, ""}, 3));
  BOOST_TEST(ev.next_run_at == 0);
  BOOST_TEST(!ev.retryable);
  BOOST_TEST(h.job.state == job_state::discarded);
  BOOST_TEST(h.job.attempts == 1u);
}

BOOST_AUTO_TEST_CASE(a_retry_is_never_due_at_zero) {
  // 0 means "discard", so a zero delay at time 0 still schedules a retry.
  job_harness h;
  job_submitted spec = make_spec();
  spec.retry.initial_interval = 0;
  h.submit(spec, 0);
  h.start(1, 0);
  BOOST_TEST(only_event<job_failed>(h.run(cmd_fail{1, "x", true, ""}, 0)).next_run_at == 1);
  BOOST_TEST(h.job.state == job_state::scheduled);
}

BOOST_AUTO_TEST_CASE(retry_times_saturate_instead_of_overflowing) {
  // validate() now refuses such intervals (max_duration), but a log written
  // before it may hold them: the job is made from its event, as replay does.
  job_harness h;
  job_submitted spec = make_spec();
  spec.retry.max_interval = std::numeric_limits<millis>::max();
  spec.retry.initial_interval = std::numeric_limits<millis>::max() / 2;
  BOOST_TEST_REQUIRE(validate(spec).has_value());
  apply(h.job, event{++h.seq, the_job, 0, "user:alice", spec});
  h.start(1, 0);
  const millis late = std::numeric_limits<millis>::max() - 10;
  BOOST_TEST(only_event<job_failed>(h.run(cmd_fail{1, "x", true, ""}, late)).next_run_at ==
             std::numeric_limits<millis>::max());
}

BOOST_AUTO_TEST_CASE(run_now_makes_a_scheduled_job_due) {
  job_harness h;
  job_submitted spec = make_spec();
  spec.run_at = 10'000;
  h.submit(spec, 0);
  only_event<job_requested>(h.run(cmd_request{request_kind::run_now}, 300));
  BOOST_TEST(h.job.due_at == 300);
  BOOST_TEST(h.job.requested_at == 300);
  BOOST_TEST(effective_state(h.job, 300) == job_state::queued);
  // Already requested: nothing to do.
  expect_nothing(h.run(cmd_request{request_kind::run_now}, 400));
  BOOST_TEST(h.job.requested_at == 300);
  h.start(1, 400);
  BOOST_TEST(h.job.requested_at == 0);  // the request is answered
  expect_refusal(h.run(cmd_request{request_kind::run_now}, 500), job_errc::illegal_transition,
                 "job 12 is running; run now applies only to a scheduled job");
}

BOOST_AUTO_TEST_CASE(run_now_on_a_due_job_is_recorded_to_put_it_first) {
  job_harness h;
  job_submitted spec = make_spec();
  spec.run_at = 100;
  h.submit(spec, 200);  // overdue: due at once
  only_event<job_requested>(h.run(cmd_request{request_kind::run_now}, 300));
  BOOST_TEST(h.job.due_at == 100);  // never later than it was
  BOOST_TEST(h.job.requested_at == 300);
  expect_nothing(h.run(cmd_request{request_kind::run_now}, 400));
  only_event<job_cancelled>(h.run(cmd_cancel{"not needed"}, 500));
  BOOST_TEST(h.job.requested_at == 0);  // a retry later waits like any other
  only_event<job_requested>(h.run(cmd_request{request_kind::retry}, 600));
  BOOST_TEST(h.job.requested_at == 0);
}

BOOST_AUTO_TEST_CASE(run_now_cuts_a_retry_backoff_short) {
  job_harness h;
  h.submit(make_spec(), 0);
  h.start(1, 0);
  only_event<job_failed>(h.run(cmd_fail{1, "x", true, ""}, 0));
  BOOST_TEST(h.job.due_at == 1000);
  only_event<job_requested>(h.run(cmd_request{request_kind::run_now}, 10));
  h.start(2, 10);
  BOOST_TEST(h.job.attempts == 2u);
}

BOOST_AUTO_TEST_CASE(retry_by_hand_raises_the_budget) {
  job_harness h;
  job_submitted spec = make_spec();
  spec.retry.max_attempts = 1;
  h.submit(spec, 0);
  h.start(1, 0);
  only_event<job_failed>(h.run(cmd_fail{1, "x", true, ""}, 1));
  BOOST_TEST(h.job.state == job_state::discarded);

  only_event<job_requested>(h.run(cmd_request{request_kind::retry}, 50));
  BOOST_TEST(h.job.state == job_state::scheduled);
  BOOST_TEST(h.job.due_at == 50);
  BOOST_TEST(h.job.max_attempts == 2u);
  BOOST_TEST(h.job.finished_at == 0);
  BOOST_TEST(effective_state(h.job, 50) == job_state::queued);
  h.start(2, 50);
  BOOST_TEST(h.job.attempts == 2u);
  // A failure of the new attempt is out of budget again.
  BOOST_TEST(only_event<job_failed>(h.run(cmd_fail{2, "x", true, ""}, 60)).next_run_at == 0);
  BOOST_TEST(h.job.state == job_state::discarded);
  // Each retry by hand adds a full budget on top of the attempts used.
  only_event<job_requested>(h.run(cmd_request{request_kind::retry}, 70));
  BOOST_TEST(h.job.max_attempts == 3u);
}

BOOST_AUTO_TEST_CASE(retry_applies_to_every_dead_end_but_not_to_live_jobs) {
  auto retried = [](const std::function<void(job_harness&)>& reach) {
    job_harness h;
    job_submitted spec = make_spec();
    spec.review_required = true;
    h.submit(spec, 0);
    reach(h);
    return h.run(cmd_request{request_kind::retry}, 100);
  };
  // cancelled, expired, declined
  only_event<job_requested>(retried([](job_harness& h) { h.run(cmd_cancel{}, 1); }));
  only_event<job_requested>(retried([](job_harness& h) { h.run(cmd_expire{"late"}, 1); }));
  only_event<job_requested>(retried([](job_harness& h) {
    h.start(1, 1);
    h.run(cmd_succeed{1}, 2);
    h.run(cmd_review{false, ""}, 3);
  }));
  expect_refusal(retried([](job_harness&) {}), job_errc::illegal_transition,
                 "job 12 is queued; only a discarded, expired, declined or cancelled job can "
                 "be retried");
  expect_refusal(retried([](job_harness& h) {
                   h.start(1, 1);
                   h.run(cmd_succeed{1}, 2);
                 }),
                 job_errc::illegal_transition);
}

BOOST_AUTO_TEST_CASE(a_job_not_started_in_time_expires) {
  job_harness h;
  h.submit(make_spec(), 0);
  only_event<job_expired>(h.run(cmd_expire{"not started within 5s"}, 5000));
  BOOST_TEST(h.job.state == job_state::expired);
  BOOST_TEST(h.job.finished_at == 5000);

  job_harness running;
  running.submit(make_spec(), 0);
  running.start(1, 0);
  expect_refusal(running.run(cmd_expire{"x"}, 1), job_errc::illegal_transition,
                 "job 12 is running; only a job that has not started can expire");
}

BOOST_AUTO_TEST_CASE(discard_by_hand_ends_any_live_job) {
  job_harness h;
  h.submit(make_spec(), 0);
  h.start(1, 0);
  only_event<job_discarded>(h.run(cmd_discard{"operator"}, 7));
  BOOST_TEST(h.job.state == job_state::discarded);
  BOOST_TEST(to_string(h.job.last_end) == "discarded");
  BOOST_TEST(h.job.last_error == "operator");
  BOOST_TEST(h.job.finished_at == 7);
  expect_refusal(h.run(cmd_succeed{1}, 8), job_errc::stale_token,
                 "job 12 attempt 1 was discarded; cannot complete it");
  expect_refusal(h.run(cmd_discard{"again"}, 8), job_errc::illegal_transition,
                 "job 12 is discarded; cannot discard it");

  job_harness waiting;
  waiting.submit(make_spec(), 0);
  waiting.job.last_error = "earlier";
  only_event<job_discarded>(waiting.run(cmd_discard{""}, 1));
  BOOST_TEST(waiting.job.last_error == "earlier");  // an empty reason keeps it
  BOOST_TEST(to_string(waiting.job.last_end) == "none");
}

BOOST_AUTO_TEST_CASE(events_that_do_not_fit_change_only_the_counters) {
  job_harness h;
  h.submit(make_spec(), 0);
  h.start(1, 0);
  only_event<job_succeeded>(h.run(cmd_succeed{1, "1"}, 1));
  const job_record before = h.job;

  const std::vector<event_body> misfits = {job_submitted{},
                                           job_started{2, "w", 9},
                                           job_progress{1, "d", 5, {}},
                                           job_succeeded{1, "2"},
                                           job_failed{1, "e", true, 5, ""},
                                           job_reclaimed{1, "r", 5},
                                           job_discarded{"d"},
                                           job_cancelled{"c"},
                                           job_reviewed{true, "c"},
                                           job_requested{request_kind::run_now},
                                           job_requested{request_kind::retry},
                                           job_expired{"x"},
                                           queue_paused{"q"},
                                           engine_started{"v", 1, 1}};
  sequence_t seq = 100;
  for (const auto& body : misfits) {
    apply(h.job, event{++seq, the_job, 99, "engine", body});
    job_record expected = before;
    expected.last_seq = seq;
    expected.event_count = before.event_count + (seq - 100);
    BOOST_TEST((h.job == expected), "event " << body.index());
  }
}

BOOST_AUTO_TEST_CASE(replaying_the_log_rebuilds_the_same_record) {
  job_harness live;
  std::vector<event> log;
  auto run = [&](const job_command& cmd, millis now) {
    const decision d = decide(live.job, cmd, now);
    for (const auto& body : d.events) {
      log.push_back(event{++live.seq, the_job, now, "user:x", body});
      apply(live.job, log.back());
    }
  };
  run(cmd_submit{make_spec()}, 0);
  run(cmd_start{"w", 1}, 0);
  run(cmd_progress{1, "half", 50, {}}, 1);
  run(cmd_fail{1, "x", true, R"({"n":1})"}, 2);
  run(cmd_start{"w", 2}, 1002);
  run(cmd_succeed{2, "true"}, 1003);
  BOOST_TEST(log.size() == 6u);

  job_record replayed;
  for (const auto& ev : log) apply(replayed, ev);
  BOOST_TEST((replayed == live.job));
  BOOST_TEST(replayed.state == job_state::succeeded);
  BOOST_TEST(replayed.handover == R"({"n":1})");
  BOOST_TEST(replayed.last_seq == 6u);
}

BOOST_AUTO_TEST_SUITE_END()

