#define BOOST_TEST_MODULE actors_stop
#include <boost/test/unit_test.hpp>

// Cancelling a running job under the simulated clock (tests/actors/sim.hpp):
// the worker is told at its next heartbeat and has the job's
// timeouts.to_stop from then; the job is cancelled by the worker's report,
// by the end of to_stop, or by the end of its lease, to the millisecond.

#include <string>
#include <vector>

#include "tests/actors/print.hpp"
#include "tests/actors/sim.hpp"

using namespace jobsmith;
using namespace jobsmith::test;

namespace {

/// A remote job with a 5 s lease and a 3 s time to stop, leased to w1.
struct leased_job {
  job_id id = 0;
  std::uint64_t token = 0;
};

leased_job submit_and_lease(sim& s, job_submitted spec = spec_of("remote")) {
  spec.timeouts.heartbeat = 5'000;
  spec.timeouts.to_stop = 3'000;
  auto id = s.submit(spec);
  auto leased = s.lease("w1");
  BOOST_REQUIRE_EQUAL(leased.size(), 1u);
  BOOST_REQUIRE_EQUAL(leased[0].id, id);
  return {id, leased[0].lease_token};
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_worker_is_told_at_its_heartbeat_and_its_report_cancels_the_job) {
  sim s;
  s.spawn();
  auto job = submit_and_lease(s);
  s.advance(1'000);
  auto asked = s.command(job.id, cmd_cancel{"wrong input"}, "user:carol");
  BOOST_REQUIRE(asked.ok());
  BOOST_TEST(asked->state == job_state::running);
  BOOST_TEST(asked->cancel_requested_at == sim::base + 1'000);

  s.advance(1'000);  // t = 2000: the worker's heartbeat
  auto beat = s.heartbeat(job.id, job.token);
  BOOST_REQUIRE(beat.ok());
  BOOST_TEST(beat->cancel_requested);
  BOOST_TEST(beat->stop_ms == 3'000);
  s.advance(1'000);  // t = 3000: told again, with what is left
  beat = s.heartbeat(job.id, job.token);
  BOOST_REQUIRE(beat.ok());
  BOOST_TEST(beat->stop_ms == 2'000);

  s.advance(500);  // t = 3500: the command exited on SIGTERM
  auto reported = s.command(job.id, cmd_fail{job.token, "exit code 143", true, ""}, "worker:w1");
  BOOST_REQUIRE(reported.ok());
  BOOST_TEST(reported->state == job_state::cancelled);
  auto history = s.history(job.id);
  BOOST_REQUIRE_GE(history.size(), 3u);
  const auto& request = history[history.size() - 2];
  BOOST_REQUIRE(std::holds_alternative<job_cancel_requested>(request.body));
  BOOST_TEST(request.principal == "user:carol");
  BOOST_TEST(request.time == sim::base + 1'000);
  const auto& end = history.back();
  BOOST_REQUIRE(std::holds_alternative<job_cancelled>(end.body));
  BOOST_TEST(end.principal == "worker:w1");
  BOOST_TEST(end.time == sim::base + 3'500);
  BOOST_TEST(std::get<job_cancelled>(end.body).reason ==
             "cancelled on request; attempt 1 ended: the worker reported failure: exit code 143");
  BOOST_TEST(s.bodies<job_failed>(job.id).empty());

  // Nothing fires later: the stop's deadline went with the attempt.
  s.advance(10'000);
  BOOST_TEST(s.history(job.id).size() == history.size());
}

BOOST_AUTO_TEST_CASE(a_worker_that_does_not_stop_is_cancelled_when_to_stop_runs_out) {
  sim s;
  s.spawn();
  auto job = submit_and_lease(s);
  BOOST_REQUIRE(s.command(job.id, cmd_cancel{"stop"}).ok());
  s.advance(2'000);
  BOOST_REQUIRE(s.heartbeat(job.id, job.token).ok());  // told at t = 2000
  s.advance(2'000);
  BOOST_REQUIRE(s.heartbeat(job.id, job.token).ok());  // the lease stays renewed
  s.advance(999);  // t = 4999
  BOOST_TEST(s.job(job.id).state == job_state::running);
  s.advance(1);  // t = 5000 = told + to_stop
  auto cancels = s.bodies<job_cancelled>(job.id);
  BOOST_REQUIRE_EQUAL(cancels.size(), 1u);
  BOOST_TEST(cancels[0].first == sim::base + 5'000);
  BOOST_TEST(cancels[0].second.reason ==
             "cancelled on request; attempt 1 did not stop within its time to stop (3000 ms)");
  BOOST_TEST(s.history(job.id).back().principal == "engine");
  auto job_now = s.job(job.id);
  BOOST_TEST(job_now.state == job_state::cancelled);
  BOOST_TEST(to_string(job_now.last_end) == "cancelled");
  // The worker's late report and heartbeat are refused.
  auto late = s.command(job.id, cmd_fail{job.token, "killed by signal 9", true, ""}, "worker:w1");
  BOOST_REQUIRE(!late.ok());
  BOOST_TEST(late.error().code == engine_errc::stale_token);
  BOOST_TEST(!s.heartbeat(job.id, job.token).ok());
}

BOOST_AUTO_TEST_CASE(a_worker_gone_silent_is_cancelled_at_its_lease_end_not_retried) {
  sim s;
  s.spawn();
  auto job = submit_and_lease(s);  // lease to t = 5000; attempts left
  s.advance(1'000);
  BOOST_REQUIRE(s.command(job.id, cmd_cancel{"stop"}).ok());
  s.advance(3'999);  // never told: no heartbeat comes
  BOOST_TEST(s.job(job.id).state == job_state::running);
  s.advance(1);  // t = 5000: the lease ends
  auto cancels = s.bodies<job_cancelled>(job.id);
  BOOST_REQUIRE_EQUAL(cancels.size(), 1u);
  BOOST_TEST(cancels[0].first == sim::base + 5'000);
  BOOST_TEST(cancels[0].second.reason.find("cancelled on request; attempt 1 ended: lease expired") ==
             0u);
  BOOST_TEST(s.bodies<job_reclaimed>(job.id).empty());
  s.advance(60'000);
  BOOST_TEST(s.job(job.id).state == job_state::cancelled);
  BOOST_TEST(s.lease("w2").empty());
}

BOOST_AUTO_TEST_CASE(a_cancel_at_once_or_a_zero_time_to_stop_ends_the_attempt_now) {
  sim s;
  s.spawn();
  auto job = submit_and_lease(s);
  auto now = s.command(job.id, cmd_cancel{"operator", true});
  BOOST_REQUIRE(now.ok());
  BOOST_TEST(now->state == job_state::cancelled);
  BOOST_TEST(s.bodies<job_cancel_requested>(job.id).empty());

  auto spec = spec_of("remote");
  spec.timeouts.to_stop = 0;
  auto id = s.submit(spec);
  auto leased = s.lease("w1");
  BOOST_REQUIRE_EQUAL(leased.size(), 1u);
  auto ended = s.command(id, cmd_cancel{"stop"});
  BOOST_REQUIRE(ended.ok());
  BOOST_TEST(ended->state == job_state::cancelled);
  BOOST_TEST(!s.heartbeat(id, leased[0].lease_token).ok());
}

BOOST_AUTO_TEST_CASE(a_running_job_keeps_its_lock_until_it_stops_then_frees_it) {
  sim s;
  s.spawn();
  auto spec = spec_of("remote");
  spec.resources = {{"db:x", lock_mode::exclusive}};
  spec.timeouts.heartbeat = 60'000;
  auto ids = s.submit({spec, spec});
  auto first = s.lease("w1", 2, 1'000);
  BOOST_REQUIRE_EQUAL(first.size(), 1u);  // the second waits for db:x
  BOOST_TEST(first[0].id == ids[0]);
  BOOST_TEST(s.phase(ids[1]) == "locking");
  BOOST_REQUIRE(s.command(ids[0], cmd_cancel{"stop"}).ok());
  BOOST_TEST(s.phase(ids[1]) == "locking");  // the first still runs
  BOOST_REQUIRE(
      s.command(ids[0], cmd_fail{first[0].lease_token, "stopped", true, ""}, "worker:w1").ok());
  BOOST_TEST(s.job(ids[0]).state == job_state::cancelled);
  BOOST_TEST(s.phase(ids[1]) == "granted");
  auto second = s.lease("w1", 1, 1'000);
  BOOST_REQUIRE_EQUAL(second.size(), 1u);
  BOOST_TEST(second[0].id == ids[1]);
}

BOOST_AUTO_TEST_CASE(a_cancel_request_survives_a_restart_and_is_told_again) {
  sim s;
  s.spawn();
  auto job = submit_and_lease(s);
  BOOST_REQUIRE(s.command(job.id, cmd_cancel{"stop"}).ok());
  // Recovery rebuilds the running job from its events; the next heartbeat
  // tells the worker, and to_stop counts from there.
  stop_core(s.core);
  s.sched->run();
  auto seed = recover(*s.log);
  BOOST_REQUIRE(seed.ok());
  s.spawn(std::move(*seed));
  s.advance(1'000);
  auto beat = s.heartbeat(job.id, job.token);
  BOOST_REQUIRE(beat.ok());
  BOOST_TEST(beat->cancel_requested);
  BOOST_TEST(beat->stop_ms == 3'000);
  s.advance(3'000);
  BOOST_TEST(s.job(job.id).state == job_state::cancelled);
}
