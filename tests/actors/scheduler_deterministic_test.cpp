#define BOOST_TEST_MODULE actors_scheduler_deterministic
#include <boost/test/unit_test.hpp>

// The scheduler, job, journal and runner actors under CAF's test
// coordinator (tests/actors/sim.hpp): due times, retry backoffs, lease
// deadlines and phase limits are checked to the millisecond.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/actors/print.hpp"
#include "tests/actors/sim.hpp"

using namespace jobsmith;
using namespace jobsmith::test;
using namespace std::chrono_literals;

// -- due times ------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_delayed_job_starts_when_its_due_time_has_passed_and_not_before) {
  sim s;
  scripted work{{outcome::success()}};
  s.options.handlers.add("work", work.handler());
  s.spawn();
  auto spec = spec_of("work");
  spec.run_at = s.now() + 1'000;
  auto id = s.submit(spec);
  BOOST_TEST(s.job(id).due_at == sim::base + 1'000);
  BOOST_TEST(s.phase(id) == "scheduled");

  s.advance(999);
  BOOST_TEST(work.calls.load() == 0);
  BOOST_TEST(s.job(id).state == job_state::scheduled);
  BOOST_TEST(s.phase(id) == "scheduled");

  s.advance(2);
  BOOST_TEST(work.calls.load() == 1);
  BOOST_TEST(s.job(id).state == job_state::succeeded);
  auto started = s.bodies<job_started>(id);
  BOOST_REQUIRE_EQUAL(started.size(), 1u);
  BOOST_TEST(started[0].first >= sim::base + 1'000);
  BOOST_TEST(started[0].first <= sim::base + 1'001);
}

BOOST_AUTO_TEST_CASE(a_due_job_starts_without_time_passing) {
  sim s;
  scripted work{{outcome::success(R"({"n":1})")}};
  s.options.handlers.add("work", work.handler());
  s.spawn();
  auto id = s.submit(spec_of("work"));
  BOOST_TEST(work.calls.load() == 1);
  auto job = s.job(id);
  BOOST_TEST(job.state == job_state::succeeded);
  BOOST_TEST(job.result == R"({"n":1})");
  BOOST_TEST(job.finished_at == sim::base);
}

BOOST_AUTO_TEST_CASE(run_now_starts_a_delayed_job_at_once) {
  sim s;
  scripted work{{outcome::success()}};
  s.options.handlers.add("work", work.handler());
  s.spawn();
  auto spec = spec_of("work");
  spec.run_at = s.now() + 60'000;
  auto id = s.submit(spec);
  s.advance(10);
  BOOST_TEST(work.calls.load() == 0);
  auto r = s.command(id, cmd_request{request_kind::run_now});
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(work.calls.load() == 1);
  BOOST_TEST(s.job(id).state == job_state::succeeded);
  BOOST_TEST(s.bodies<job_started>(id).at(0).first == sim::base + 10);
}

// -- wall clock jumps (the monotonic clock keeps going) -----------------------------------------

constexpr millis hour = 3'600'000;

BOOST_AUTO_TEST_CASE(a_wall_clock_jump_back_does_not_start_a_delayed_job_early) {
  sim s;
  scripted work{{outcome::success()}};
  s.options.handlers.add("work", work.handler());
  s.spawn();
  auto spec = spec_of("work");
  spec.run_at = s.now() + 10'000;
  auto id = s.submit(spec);
  s.advance(5'000);
  s.jump_wall(-hour);  // the wall clock now reads base + 5 s - 1 h
  s.advance(6'000);    // 11 s of real time: past the due time's first timer
  BOOST_TEST(work.calls.load() == 0);
  BOOST_TEST(s.job(id).state == job_state::scheduled);
  // Due when the wall clock reaches base + 10 s again, an hour later.
  s.advance(spec.run_at - s.now() - 1);
  BOOST_TEST(s.now() == spec.run_at - 1);
  BOOST_TEST(work.calls.load() == 0);
  s.advance(2);
  BOOST_TEST(work.calls.load() == 1);
  auto started = s.bodies<job_started>(id);
  BOOST_REQUIRE_EQUAL(started.size(), 1u);
  BOOST_TEST(started[0].first >= spec.run_at);
  BOOST_TEST(started[0].first <= spec.run_at + 1);
}

BOOST_AUTO_TEST_CASE(a_wall_clock_jump_forward_starts_a_job_now_due_within_a_second) {
  sim s;
  scripted work{{outcome::success()}};
  s.options.handlers.add("work", work.handler());
  s.spawn();
  auto spec = spec_of("work");
  spec.run_at = s.now() + hour / 2;
  auto id = s.submit(spec);
  s.advance(100);
  s.jump_wall(hour);  // now half an hour past its due time
  s.advance(899);     // the scheduler's timer has not read the wall clock yet
  BOOST_TEST(work.calls.load() == 0);
  s.advance(2);  // 1 s after it last armed its timer, it reads the wall clock
  BOOST_TEST(work.calls.load() == 1);
  BOOST_TEST(s.job(id).state == job_state::succeeded);
  BOOST_TEST(s.bodies<job_started>(id).at(0).first >= spec.run_at);
}

BOOST_AUTO_TEST_CASE(wall_clock_jumps_neither_expire_nor_extend_a_lease) {
  for (millis jump : {hour, -hour}) {
    BOOST_TEST_CONTEXT("wall clock jump " << jump << " ms") {
      sim s;
      s.spawn();
      auto spec = spec_of("remote");
      spec.timeouts.heartbeat = 5'000;
      auto id = s.submit(spec);
      auto leased = s.lease("w1");
      BOOST_REQUIRE_EQUAL(leased.size(), 1u);
      s.advance(1'000);
      s.jump_wall(jump);
      s.advance(3'000);  // 4 s after the lease on the monotonic clock
      BOOST_TEST(s.job(id).state == job_state::running);
      BOOST_REQUIRE(s.heartbeat(id, leased[0].lease_token).ok());
      s.advance(4'999);  // the heartbeat's lease ends 5 s after it
      BOOST_TEST(s.job(id).state == job_state::running);
      s.advance(1);
      BOOST_TEST(s.job(id).state != job_state::running);
      BOOST_TEST(s.bodies<job_reclaimed>(id).size() == 1u);
    }
  }
}

// -- failed writes ----------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_schedule_delete_that_fails_to_commit_leaves_the_schedule_in_place) {
  sim s;
  scripted tick{{outcome::success()}};
  s.options.handlers.add("tick", tick.handler());
  s.spawn();
  auto spec = spec_of("tick");
  spec.recur.interval = 60'000;
  auto first_run = s.submit(spec);
  const schedule_id id = first_run;  // a schedule's id is its first run's
  auto& disk = dynamic_cast<store::memory_log&>(*s.log);
  disk.fail_writes(store::status::io_error("the disk is gone"));
  auto refused = s.ask<bool>(s.core.scheduler, atom::schedule::value, id, std::string{"user:test"});
  BOOST_REQUIRE(!refused.ok());
  BOOST_TEST(refused.error().code == engine_errc::storage);

  // Writes resume; the schedule was never deleted, so deleting it works now.
  disk.heal();
  s.advance(2'000);  // the journal retries resume() on its timer
  auto deleted = s.ask<bool>(s.core.scheduler, atom::schedule::value, id, std::string{"user:test"});
  BOOST_REQUIRE_MESSAGE(deleted.ok(), (deleted.ok() ? "" : deleted.error().to_string()));
  auto again = s.ask<bool>(s.core.scheduler, atom::schedule::value, id, std::string{"user:test"});
  BOOST_REQUIRE(!again.ok());
  BOOST_TEST(again.error().code == engine_errc::not_found);
}

// A recurring job's next run is submitted by the engine when the last one
// ends. If the log refuses that write, the schedule must not stall until a
// restart: the next run is submitted again once the log takes writes.
BOOST_AUTO_TEST_CASE(a_recurring_run_that_fails_to_commit_is_submitted_again_once_writes_resume) {
  sim s;
  scripted tick{{outcome::success()}};
  s.options.handlers.add("tick", tick.handler());
  s.spawn();
  auto spec = spec_of("tick");
  spec.recur.interval = 60'000;
  spec.run_at = s.now() + 1'000;
  const job_id first_run = s.submit(spec);
  const schedule_id id = first_run;  // a schedule's id is its first run's
  // The first run becomes due; step until its success is committed, before
  // the schedule's next run is appended.
  s.sched->advance_time(std::chrono::milliseconds(1'000));
  while (s.job(first_run).state != job_state::succeeded) BOOST_REQUIRE(s.sched->try_run_once());
  auto& disk = dynamic_cast<store::memory_log&>(*s.log);
  disk.fail_next_append(store::status::io_error("the disk hiccuped"));
  s.sched->run();
  // Runs of the schedule after the first, by id (a failed submit uses up an id).
  auto next_runs = [&] {
    std::vector<job_record> out;
    for (job_id j = first_run + 1; j <= first_run + 5; ++j)
      if (auto rec = s.job(j); rec.spec.schedule == id) out.push_back(rec);
    return out;
  };
  BOOST_TEST(next_runs().empty());  // the write failed
  s.advance(1'000);  // the journal resumes its log; the schedule tries again
  s.advance(1'000);
  auto runs = next_runs();
  BOOST_REQUIRE_EQUAL(runs.size(), 1u);
  BOOST_TEST(runs[0].state == job_state::scheduled);
  // Due an interval after it was submitted, as if the write had not failed late.
  BOOST_TEST(runs[0].due_at - runs[0].submitted_at == 60'000);
}

// -- retry backoff ----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_failed_attempt_waits_exactly_its_backoff) {
  sim s;
  scripted flaky{{outcome::retry("one"), outcome::retry("two"), outcome::success()}};
  s.options.handlers.add("flaky", flaky.handler());
  s.spawn();
  auto spec = spec_of("flaky");
  spec.retry.max_attempts = 3;
  spec.retry.initial_interval = 500;
  spec.retry.backoff_coefficient = 2;
  auto id = s.submit(spec);

  // Attempt 1 failed at once: due again exactly 500 ms later.
  BOOST_TEST(flaky.calls.load() == 1);
  auto failures = s.bodies<job_failed>(id);
  BOOST_REQUIRE_EQUAL(failures.size(), 1u);
  BOOST_TEST(failures[0].second.next_run_at == sim::base + 500);
  BOOST_TEST(s.job(id).due_at == sim::base + 500);
  BOOST_TEST(s.job(id).state == job_state::scheduled);

  s.advance(499);
  BOOST_TEST(flaky.calls.load() == 1);
  s.advance(2);  // t = 501
  BOOST_TEST(flaky.calls.load() == 2);

  // Attempt 2 failed at 501: the delay doubles.
  failures = s.bodies<job_failed>(id);
  BOOST_REQUIRE_EQUAL(failures.size(), 2u);
  auto failed_at = failures[1].first;
  BOOST_TEST(failed_at == sim::base + 501);
  BOOST_TEST(failures[1].second.next_run_at == failed_at + 1'000);
  s.advance(998);  // t = 1499
  BOOST_TEST(flaky.calls.load() == 2);
  BOOST_TEST(s.job(id).state == job_state::scheduled);
  s.advance(3);  // t = 1502
  BOOST_TEST(flaky.calls.load() == 3);
  BOOST_TEST(s.job(id).state == job_state::succeeded);
  BOOST_TEST(s.job(id).attempts == 3u);
}

BOOST_AUTO_TEST_CASE(the_last_attempt_failing_discards_without_waiting) {
  sim s;
  scripted broken{{outcome::retry("no")}};
  s.options.handlers.add("broken", broken.handler());
  s.spawn();
  auto spec = spec_of("broken");
  spec.retry.max_attempts = 2;
  spec.retry.initial_interval = 100;
  auto id = s.submit(spec);
  s.advance(101);
  BOOST_TEST(broken.calls.load() == 2);
  auto job = s.job(id);
  BOOST_TEST(job.state == job_state::discarded);
  BOOST_TEST(job.finished_at == sim::base + 101);
  BOOST_TEST(s.bodies<job_failed>(id).back().second.next_run_at == 0);
  s.advance(10'000);
  BOOST_TEST(broken.calls.load() == 2);
}

// -- leases (remote workers) --------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_lease_without_heartbeat_is_reclaimed_exactly_at_its_deadline) {
  sim s;  // no handlers: remote workers only
  s.spawn();
  auto spec = spec_of("remote");
  spec.timeouts.heartbeat = 5'000;
  spec.retry.initial_interval = 1'000;
  auto id = s.submit(spec);
  auto leased = s.lease("w1");
  BOOST_REQUIRE_EQUAL(leased.size(), 1u);
  auto token = leased[0].lease_token;
  BOOST_TEST(leased[0].id == id);

  s.advance(4'999);
  BOOST_TEST(s.job(id).state == job_state::running);
  BOOST_TEST(s.phase(id) == "running");
  s.advance(1);  // t = 5000: the lease ends
  auto reclaims = s.bodies<job_reclaimed>(id);
  BOOST_REQUIRE_EQUAL(reclaims.size(), 1u);
  BOOST_TEST(reclaims[0].first == sim::base + 5'000);
  BOOST_TEST(reclaims[0].second.reason.find("lease expired") != std::string::npos);
  BOOST_TEST(reclaims[0].second.next_run_at == sim::base + 6'000);
  auto job = s.job(id);
  BOOST_TEST(job.state == job_state::scheduled);
  auto late = s.heartbeat(id, token);
  BOOST_REQUIRE(!late.ok());
  BOOST_TEST(late.error().code == engine_errc::stale_token);

  // Leased again once its backoff is over, under a new token.
  BOOST_TEST(s.lease("w2").empty());
  s.advance(1'001);
  auto again = s.lease("w2");
  BOOST_REQUIRE_EQUAL(again.size(), 1u);
  BOOST_TEST(again[0].attempts == 2u);
  BOOST_TEST(again[0].lease_token != token);
  auto stale = s.command(id, cmd_succeed{token, "null"}, "worker:w1");
  BOOST_REQUIRE(!stale.ok());
  BOOST_TEST(stale.error().code == engine_errc::stale_token);
  auto done = s.command(id, cmd_succeed{again[0].lease_token, "null"}, "worker:w2");
  BOOST_REQUIRE(done.ok());
  BOOST_TEST(done->state == job_state::succeeded);
}

BOOST_AUTO_TEST_CASE(a_heartbeat_before_the_deadline_keeps_the_lease) {
  sim s;
  s.spawn();
  auto spec = spec_of("remote");
  spec.timeouts.heartbeat = 5'000;
  auto id = s.submit(spec);
  auto leased = s.lease("w1");
  BOOST_REQUIRE_EQUAL(leased.size(), 1u);
  auto token = leased[0].lease_token;

  s.advance(4'000);
  auto beat = s.heartbeat(id, token);
  BOOST_REQUIRE(beat.ok());
  BOOST_TEST(beat->lease_ms == 5'000);
  s.advance(1'000);  // t = 5000: the first deadline passes harmlessly
  BOOST_TEST(s.job(id).state == job_state::running);
  s.advance(3'999);  // t = 8999
  BOOST_TEST(s.job(id).state == job_state::running);
  BOOST_TEST(s.bodies<job_reclaimed>(id).empty());
  s.advance(1);  // t = 9000 = last heartbeat + 5000
  BOOST_REQUIRE_EQUAL(s.bodies<job_reclaimed>(id).size(), 1u);
  BOOST_TEST(s.bodies<job_reclaimed>(id)[0].first == sim::base + 9'000);
}

BOOST_AUTO_TEST_CASE(a_job_over_its_time_to_run_is_reclaimed_despite_heartbeats) {
  sim s;
  s.spawn();
  auto spec = spec_of("remote");
  spec.timeouts.heartbeat = 1'000;
  spec.timeouts.to_run = 2'500;
  spec.retry.max_attempts = 1;
  auto id = s.submit(spec);
  auto leased = s.lease("w1");
  BOOST_REQUIRE_EQUAL(leased.size(), 1u);
  auto token = leased[0].lease_token;
  for (int i = 0; i < 4; ++i) {  // t = 600, 1200, 1800, 2400
    s.advance(600);
    BOOST_REQUIRE(s.heartbeat(id, token).ok());
  }
  s.advance(99);  // t = 2499
  BOOST_TEST(s.job(id).state == job_state::running);
  s.advance(1);  // t = 2500
  auto reclaims = s.bodies<job_reclaimed>(id);
  BOOST_REQUIRE_EQUAL(reclaims.size(), 1u);
  BOOST_TEST(reclaims[0].first == sim::base + 2'500);
  BOOST_TEST(reclaims[0].second.reason.find("time to run") != std::string::npos,
             reclaims[0].second.reason);
  BOOST_TEST(s.job(id).state == job_state::discarded);  // no attempts left
}

// -- time to start -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_job_not_started_within_its_time_to_start_expires) {
  sim s;  // nobody leases: the job waits
  s.spawn();
  auto spec = spec_of("remote");
  spec.run_at = s.now() + 1'000;
  spec.timeouts.to_start = 300;
  auto id = s.submit(spec);
  s.advance(1'001);
  BOOST_TEST(s.phase(id) == "ready");
  s.advance(298);  // t = 1299
  BOOST_TEST(s.job(id).state == job_state::scheduled);
  s.advance(2);  // t = 1301: past due + to_start
  auto job = s.job(id);
  BOOST_TEST(job.state == job_state::expired);
  BOOST_TEST(job.finished_at >= sim::base + 1'300);
  BOOST_TEST(job.finished_at <= sim::base + 1'301);
  BOOST_TEST(s.phase(id) == "not live");
  BOOST_TEST(s.lease("w1").empty());
}

BOOST_AUTO_TEST_CASE(a_job_started_in_time_does_not_expire) {
  sim s;
  s.spawn();
  auto spec = spec_of("remote");
  spec.timeouts.to_start = 300;
  spec.timeouts.heartbeat = 10'000;
  auto id = s.submit(spec);
  s.advance(299);
  BOOST_REQUIRE_EQUAL(s.lease("w1").size(), 1u);
  s.advance(1'000);
  BOOST_TEST(s.job(id).state == job_state::running);
}

// -- dispatch order and recovery ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(higher_priority_then_earlier_due_then_lower_id_is_leased_first) {
  sim s;
  s.spawn();
  auto low = spec_of("remote");
  auto high = spec_of("remote");
  high.priority = 5;
  auto ids = s.submit({low, low, high});
  std::vector<job_id> order;
  for (int i = 0; i < 3; ++i) {
    auto leased = s.lease("w1");
    BOOST_REQUIRE_EQUAL(leased.size(), 1u);
    order.push_back(leased[0].id);
  }
  BOOST_TEST(order == (std::vector<job_id>{ids[2], ids[0], ids[1]}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_job_requested_to_run_now_is_leased_before_the_due_backlog) {
  sim s;
  s.spawn();
  auto urgent = spec_of("remote");
  urgent.priority = 5;
  std::vector<job_id> backlog = s.submit(std::vector<job_submitted>(10, urgent));
  auto delayed = spec_of("remote");
  delayed.run_at = s.now() + hour;
  auto late = s.submit(delayed);
  auto due_low = s.submit(spec_of("remote"));  // already due, priority 0
  s.advance(10);
  BOOST_REQUIRE(s.command(late, cmd_request{request_kind::run_now}).ok());
  BOOST_TEST(s.job(late).requested_at == sim::base + 10);
  s.advance(10);
  // Run now on a job that is due already moves it ahead too, behind the
  // earlier request.
  BOOST_REQUIRE(s.command(due_low, cmd_request{request_kind::run_now}).ok());
  std::vector<job_id> order;
  for (int i = 0; i < 3; ++i) {
    auto leased = s.lease("w1");
    BOOST_REQUIRE_EQUAL(leased.size(), 1u);
    order.push_back(leased[0].id);
    BOOST_TEST(leased[0].requested_at == 0);  // the wait it answered is over
  }
  BOOST_TEST(order == (std::vector<job_id>{late, due_low, backlog[0]}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_run_now_request_keeps_its_place_after_a_restart) {
  sim s;
  // The log of a process that stopped after job 11 was requested to run now.
  auto urgent = spec_of("remote");
  urgent.priority = 5;
  auto delayed = spec_of("remote");
  delayed.run_at = sim::base + hour;
  std::vector<event> events;
  for (job_id id = 1; id <= 10; ++id) events.push_back({0, id, sim::base - 20, "user:test", urgent});
  events.push_back({0, 11, sim::base - 20, "user:test", delayed});
  events.push_back({0, 11, sim::base - 10, "user:test", job_requested{request_kind::run_now}});
  std::vector<store::record_input> records;
  for (auto& ev : events) records.push_back(store::record_input{ev.job, encode(ev)});
  BOOST_REQUIRE(s.log->append(records, nullptr).is_ok());
  auto seed = recover(*s.log);
  BOOST_REQUIRE(seed.ok());
  s.spawn(std::move(*seed));
  auto leased = s.lease("w1");
  BOOST_REQUIRE_EQUAL(leased.size(), 1u);
  BOOST_TEST(leased[0].id == 11u);
}

BOOST_AUTO_TEST_CASE(jobs_submitted_overdue_are_leased_in_the_order_of_their_due_times) {
  sim s;
  s.spawn();
  std::vector<job_id> ids;
  for (millis late : {1'000, 2'000, 3'000}) {  // the most overdue is submitted last
    auto spec = spec_of("remote");
    spec.run_at = s.now() - late;
    ids.push_back(s.submit(spec));
    s.advance(1);
  }
  auto due_now = s.submit(spec_of("remote"));
  std::vector<job_id> order;
  for (int i = 0; i < 4; ++i) {
    auto leased = s.lease("w1");
    BOOST_REQUIRE_EQUAL(leased.size(), 1u);
    order.push_back(leased[0].id);
  }
  BOOST_TEST(order == (std::vector<job_id>{ids[2], ids[1], ids[0], due_now}),
             boost::test_tools::per_element());
  BOOST_TEST(s.job(ids[2]).due_at == sim::base + 2 - 3'000);
}

BOOST_AUTO_TEST_CASE(a_job_submitted_overdue_has_its_whole_time_to_start) {
  sim s;  // nobody leases: the job waits
  s.spawn();
  auto spec = spec_of("remote");
  spec.run_at = s.now() - 60'000;
  spec.timeouts.to_start = 300;
  auto id = s.submit(spec);
  BOOST_TEST(s.phase(id) == "ready");
  s.advance(299);
  BOOST_TEST(s.job(id).state == job_state::scheduled);
  s.advance(2);  // past submission + to_start
  BOOST_TEST(s.job(id).state == job_state::expired);
}

BOOST_AUTO_TEST_CASE(a_waiting_lease_takes_only_the_jobs_of_one_dispatch_round) {
  // Two long polls of one worker wait; job a is ready, job b becomes due
  // while a's start is still on its way to the log. b must go to the
  // second poll: added to the first, it would hold that answer back by
  // another start commit (and, while jobs kept trickling in, until full).
  sim s;
  s.spawn();
  auto a = s.submit(spec_of("remote"));
  auto later = spec_of("remote");
  later.run_at = s.now() + 1;
  auto b = s.submit(later);

  lease_request req;
  req.worker = "w1";
  req.max_jobs = 10;
  req.wait = 60'000;
  auto first = (*s.self)->request(s.core.scheduler, caf::infinite, atom::lease::value, req);
  auto second = (*s.self)->request(s.core.scheduler, caf::infinite, atom::lease::value, req);
  // The scheduler takes both polls; the first gets a and sends its start.
  for (int i = 0; i < 2; ++i) {
    BOOST_REQUIRE(s.sched->prioritize(s.core.scheduler));
    s.sched->run_once();
  }
  // b is due; the scheduler's tick fires 1 ms after a due time.
  s.sched->advance_time(std::chrono::milliseconds(2));
  s.sched->run();

  std::vector<job_id> first_ids, second_ids;
  BOOST_REQUIRE(!(*s.self)->mailbox().empty());
  first.receive([&](std::vector<job_record>& jobs) { for (auto& j : jobs) first_ids.push_back(j.id); },
                [](caf::error& err) { BOOST_FAIL(caf::to_string(err)); });
  BOOST_REQUIRE_MESSAGE(!(*s.self)->mailbox().empty(), "the second poll got no answer");
  second.receive([&](std::vector<job_record>& jobs) { for (auto& j : jobs) second_ids.push_back(j.id); },
                 [](caf::error& err) { BOOST_FAIL(caf::to_string(err)); });
  BOOST_TEST(first_ids == std::vector<job_id>{a}, boost::test_tools::per_element());
  BOOST_TEST(second_ids == std::vector<job_id>{b}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(recovered_in_process_attempts_are_reclaimed_and_retried_after_backoff) {
  sim s;
  scripted work{{outcome::success()}};
  s.options.handlers.add("work", work.handler());
  // The log of a process that died while its pool ran job 1; job 2 was leased
  // to a remote worker.
  auto spec = spec_of("work");
  spec.retry.initial_interval = 700;
  auto remote = spec_of("remote");
  remote.timeouts.heartbeat = 2'000;
  std::vector<store::record_input> records;
  for (auto ev : {event{0, 1, sim::base - 10, "user:test", spec},
                  event{0, 1, sim::base - 5, "engine", job_started{1, "local:dead", 9}},
                  event{0, 2, sim::base - 10, "user:test", remote},
                  event{0, 2, sim::base - 5, "engine", job_started{1, "w1", 10}}})
    records.push_back(store::record_input{ev.job, encode(ev)});
  BOOST_REQUIRE(s.log->append(records, nullptr).is_ok());
  auto seed = recover(*s.log);
  BOOST_REQUIRE(seed.ok());
  s.spawn(std::move(*seed));

  auto reclaims = s.bodies<job_reclaimed>(1);
  BOOST_REQUIRE_EQUAL(reclaims.size(), 1u);
  BOOST_TEST(reclaims[0].second.reason.find("restarted") != std::string::npos);
  BOOST_TEST(reclaims[0].second.next_run_at == sim::base + 700);
  BOOST_TEST(work.calls.load() == 0);
  s.advance(699);
  BOOST_TEST(work.calls.load() == 0);
  s.advance(2);
  BOOST_TEST(work.calls.load() == 1);
  BOOST_TEST(s.job(1).state == job_state::succeeded);

  // The remote lease got a fresh deadline at recovery (t = 0): 2000 ms.
  BOOST_TEST(s.job(2).state == job_state::running);
  BOOST_REQUIRE(s.heartbeat(2, 10).ok());  // t = 701: renewed to 2701
  s.advance(1'999);                        // t = 2700
  BOOST_TEST(s.job(2).state == job_state::running);
  s.advance(1);  // t = 2701
  BOOST_REQUIRE_EQUAL(s.bodies<job_reclaimed>(2).size(), 1u);
}

BOOST_AUTO_TEST_CASE(ticks_in_flight_stay_few_however_many_jobs_are_leased_and_completed) {
  // A lease without wait is due at once; while its job starts, nothing is
  // due but the lease clock's save. Before, a tick armed ahead of the one
  // in flight left both going and every arrival armed one more: the timer
  // thread had thousands of ticks to deliver, several per job.
  sim s;
  s.spawn();
  auto spec = spec_of("remote");
  spec.timeouts.heartbeat = 60'000;
  constexpr int jobs = 300;
  std::vector<job_submitted> specs(jobs, spec);
  s.submit(specs);
  auto& clock = dynamic_cast<caf::detail::test_actor_clock&>(s.sys->clock());
  std::size_t most = 0;
  for (int i = 0; i < jobs; ++i) {
    auto leased = s.lease("w1");
    BOOST_REQUIRE_EQUAL(leased.size(), 1u);
    BOOST_REQUIRE(s.command(leased[0].id, cmd_succeed{leased[0].lease_token, "null"}, "worker:w1").ok());
    s.advance(1);
    most = std::max(most, clock.schedule().size());
  }
  BOOST_TEST(most <= 3u);
}
