#define BOOST_TEST_MODULE actors_recovery
#include <boost/test/unit_test.hpp>

// Recovery (actors/recovery.hpp): the engine closed and reopened on the same
// RocksDB directory, logs written by hand as a crashed process leaves them,
// and recover() itself folded over hand-built logs.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "actors/engine.hpp"
#include "tests/actors/engine_support.hpp"
#include "tests/actors/print.hpp"
#include "tests/test_support.hpp"
#include "actors/engine_actors.hpp"
#include "actors/lease_clock.hpp"
#include "actors/projector.hpp"
#include "actors/recovery.hpp"
#include "events/codec.hpp"
#include "store/memory_log.hpp"
#include "store/rocksdb_log.hpp"

using namespace jobsmith;
using namespace std::chrono_literals;
using namespace jobsmith::test;

namespace {

std::string phase_of(engine& eng, job_id id) {
  auto r = eng.explain(id);
  BOOST_REQUIRE_MESSAGE(r.ok(), why(r));
  return r->phase;
}

/// Every event of the log in `dir`, read with the engine closed.
std::vector<event> read_all(const std::string& dir) {
  std::unique_ptr<store::event_log> log;
  auto st = store::open_rocksdb_log(dir, {}, &log);
  BOOST_REQUIRE_MESSAGE(st.is_ok(), st.to_string());
  std::vector<event> out;
  auto read = log->read(1, log->head(), [&](const store::record& rec) {
    event ev;
    std::string error;
    BOOST_REQUIRE_MESSAGE(decode(rec.body, ev, &error), error);
    ev.seq = rec.seq;
    ev.job = rec.job;
    out.push_back(std::move(ev));
    return true;
  });
  BOOST_REQUIRE(read.is_ok());
  return out;
}

/// Appends `events` (seq ignored) to a log, one batch.
void append_all(store::event_log& log, const std::vector<event>& events) {
  std::vector<store::record_input> batch;
  for (auto& ev : events) batch.push_back(store::record_input{ev.job, encode(ev)});
  sequence_t first = 0;
  auto st = log.append(batch, &first);
  BOOST_REQUIRE_MESSAGE(st.is_ok(), st.to_string());
}

/// Writes `events` into a fresh RocksDB log in `dir`, as a process that
/// crashed right after leaves it.
void write_log(const std::string& dir, const std::vector<event>& events) {
  std::unique_ptr<store::event_log> log;
  auto st = store::open_rocksdb_log(dir, {}, &log);
  BOOST_REQUIRE_MESSAGE(st.is_ok(), st.to_string());
  append_all(*log, events);
}

event job_event(job_id job, millis time, event_body body, std::string principal = "user:test") {
  return event{0, job, time, std::move(principal), std::move(body)};
}

}  // namespace

// -- close and reopen ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(jobs_in_every_state_survive_a_restart) {
  temp_dir dir;
  auto make_options = [&] {
    engine_options opts;
    opts.data_dir = dir.path();
    opts.handlers.add("ok", [](job_context&) { return outcome::success(R"({"done":true})"); });
    opts.handlers.add("poison", [](job_context&) { return outcome::permanent("bad input"); });
    return opts;
  };
  std::map<std::string, job_id> ids;
  std::map<job_id, job_record> before;
  std::vector<job_record> listed_before;
  std::vector<std::size_t> counts_before;
  {
    auto eng = open_engine(make_options());
    BOOST_REQUIRE(eng->pause("held").ok());
    submit_options later;
    later.delay = 3'600'000;
    ids["scheduled"] = submit_ok(*eng, spec_of("ok"), later);
    ids["queued"] = submit_ok(*eng, spec_of("ok", "held"));
    auto review = spec_of("ok");
    review.review_required = true;
    ids["pending_review"] = submit_ok(*eng, review);
    ids["accepted"] = submit_ok(*eng, review);
    ids["declined"] = submit_ok(*eng, review);
    ids["succeeded"] = submit_ok(*eng, spec_of("ok"));
    ids["discarded"] = submit_ok(*eng, spec_of("poison"));
    ids["cancelled"] = submit_ok(*eng, spec_of("ok", "held"));
    auto expiring = spec_of("ok", "held");
    expiring.timeouts.to_start = 50;
    ids["expired"] = submit_ok(*eng, expiring);

    REQUIRE_STATE(*eng, ids["pending_review"], job_state::pending_review);
    REQUIRE_STATE(*eng, ids["accepted"], job_state::pending_review);
    REQUIRE_STATE(*eng, ids["declined"], job_state::pending_review);
    BOOST_REQUIRE(eng->review(ids["accepted"], true, "fine", "user:a").ok());
    BOOST_REQUIRE(eng->review(ids["declined"], false, "no", "user:b").ok());
    BOOST_REQUIRE(eng->cancel(ids["cancelled"]).ok());
    REQUIRE_STATE(*eng, ids["succeeded"], job_state::succeeded);
    REQUIRE_STATE(*eng, ids["discarded"], job_state::discarded);
    REQUIRE_STATE(*eng, ids["expired"], job_state::expired);
    for (auto& [name, id] : ids) {
      before[id] = record_of(*eng, id);
      BOOST_TEST(std::string{to_string(before[id].state)} ==
                     (name == "queued" ? "scheduled" : name),
                 name);
    }
    BOOST_TEST(before[ids["queued"]].due_at <= before[ids["queued"]].submitted_at);
    auto listed = eng->list(job_filter{});
    BOOST_REQUIRE(listed.ok());
    listed_before = *listed;
    auto counts = eng->counts();
    BOOST_REQUIRE(counts.ok());
    counts_before = *counts;
    eng->close();
  }

  auto eng = open_engine(make_options());
  BOOST_TEST(eng->recovered().live_jobs == 3u);  // scheduled, queued, pending_review
  for (auto& [name, id] : ids) {
    auto after = record_of(*eng, id);
    BOOST_TEST((after == before[id]), name << " changed over the restart");
  }
  // The read side was rebuilt to the same answers.
  auto listed = eng->list(job_filter{});
  BOOST_REQUIRE(listed.ok());
  BOOST_TEST((*listed == listed_before));
  auto counts = eng->counts();
  BOOST_REQUIRE(counts.ok());
  BOOST_TEST(*counts == counts_before, boost::test_tools::per_element());

  // And the scheduler took the live ones back where they were.
  BOOST_TEST(phase_of(*eng, ids["scheduled"]) == "scheduled");
  BOOST_TEST(phase_of(*eng, ids["queued"]) == "ready");
  BOOST_TEST(phase_of(*eng, ids["pending_review"]) == "pending_review");
  for (auto name : {"succeeded", "accepted", "declined", "discarded", "cancelled", "expired"})
    BOOST_TEST(phase_of(*eng, ids[name]) == "not live", name);

  auto accepted = eng->review(ids["pending_review"], true);
  BOOST_REQUIRE_MESSAGE(accepted.ok(), why(accepted));
  BOOST_TEST(accepted->state == job_state::accepted);
  BOOST_REQUIRE(eng->run_now(ids["scheduled"]).ok());
  REQUIRE_STATE(*eng, ids["scheduled"], job_state::succeeded);
  BOOST_REQUIRE(eng->resume("held").ok());
  REQUIRE_STATE(*eng, ids["queued"], job_state::succeeded);
  BOOST_TEST(record_of(*eng, ids["cancelled"]).state == job_state::cancelled);
  BOOST_TEST(record_of(*eng, ids["expired"]).state == job_state::expired);
  // The declined job can still be retried by hand after the restart.
  BOOST_REQUIRE(eng->retry(ids["declined"]).ok());
  REQUIRE_STATE(*eng, ids["declined"], job_state::pending_review);
}

BOOST_AUTO_TEST_CASE(a_job_running_in_process_when_the_engine_closed_is_reclaimed_and_retried) {
  temp_dir dir;
  gate release;
  std::atomic<bool> running{false};
  auto make_options = [&] {
    engine_options opts;
    opts.data_dir = dir.path();
    opts.worker_threads = 1;
    opts.handlers.add("slow", [&](job_context& ctx) {
      if (ctx.attempt() == 1) {
        running = true;
        release.wait();
      }
      return outcome::success(R"({"attempt":)" + std::to_string(ctx.attempt()) + "}");
    });
    return opts;
  };
  job_id id = 0;
  {
    auto eng = open_engine(make_options());
    auto spec = spec_of("slow");
    spec.resources = {{"db:x", lock_mode::exclusive}};
    id = submit_ok(*eng, spec);
    BOOST_REQUIRE(wait_until([&] { return running.load(); }));
    REQUIRE_STATE(*eng, id, job_state::running);
    // close() waits for the runner, which is inside the handler. Let the
    // handler go only once every other actor (journal, job) is gone, so its
    // success can no longer be recorded: the log ends as a crash leaves it.
    auto& sys = actor_system_of(*eng);
    std::atomic<bool> only_runner_left{false};
    std::thread releaser([&] {
      only_runner_left = wait_until([&] { return sys.registry().running() == 1; });
      release.open();
    });
    eng->close();
    releaser.join();
    BOOST_REQUIRE(only_runner_left.load());
  }
  {
    auto events = read_all(dir.path());
    BOOST_REQUIRE(!events.empty());
    auto last_of_job = std::find_if(events.rbegin(), events.rend(),
                                    [&](const event& ev) { return ev.job == id; });
    BOOST_REQUIRE(last_of_job != events.rend());
    BOOST_TEST(std::holds_alternative<job_started>(last_of_job->body));
  }

  auto eng = open_engine(make_options());
  BOOST_TEST(eng->recovered().live_jobs == 1u);
  REQUIRE_STATE(*eng, id, job_state::succeeded);
  auto job = record_of(*eng, id);
  BOOST_TEST(job.attempts == 2u);
  BOOST_TEST(job.result == R"({"attempt":2})");
  auto history = history_of(*eng, id);
  auto reclaims = bodies_of<job_reclaimed>(history);
  BOOST_REQUIRE_EQUAL(reclaims.size(), 1u);
  BOOST_TEST(reclaims[0].reason.find("restarted") != std::string::npos, reclaims[0].reason);
  BOOST_TEST(reclaims[0].next_run_at > 0);
  // The reclaimed attempt released its lock: another job on it runs.
  auto other = spec_of("slow");
  other.resources = {{"db:x", lock_mode::exclusive}};
  auto next = submit_ok(*eng, other);
  REQUIRE_STATE(*eng, next, job_state::succeeded);
}

BOOST_AUTO_TEST_CASE(a_crash_mid_attempt_is_reclaimed_on_open_or_discarded_without_attempts_left) {
  temp_dir dir;
  auto now = system_wall_now();
  auto retried = spec_of("work");
  retried.retry.max_attempts = 2;
  auto last_chance = spec_of("work");
  last_chance.retry.max_attempts = 1;
  write_log(dir.path(), {
                            job_event(1, now, retried),
                            job_event(2, now, last_chance),
                            job_event(1, now, job_started{1, "local:deadbeef", 77}, "engine"),
                            job_event(2, now, job_started{1, "local:deadbeef", 78}, "engine"),
                        });
  std::atomic<int> calls{0};
  engine_options opts;
  opts.data_dir = dir.path();
  opts.handlers.add("work", [&](job_context&) {
    ++calls;
    return outcome::success();
  });
  auto eng = open_engine(std::move(opts));
  BOOST_TEST(eng->recovered().live_jobs == 2u);
  BOOST_TEST(eng->recovered().events_replayed == 4u);
  REQUIRE_STATE(*eng, 1, job_state::succeeded);
  REQUIRE_STATE(*eng, 2, job_state::discarded);
  auto reclaims = bodies_of<job_reclaimed>(history_of(*eng, 2));
  BOOST_REQUIRE_EQUAL(reclaims.size(), 1u);
  BOOST_TEST(reclaims[0].next_run_at == 0);
  BOOST_TEST(reclaims[0].reason.find("local:deadbeef") != std::string::npos, reclaims[0].reason);
  BOOST_TEST(calls.load() == 1);
  // New jobs continue after the highest id in the log.
  auto id = submit_ok(*eng, spec_of("work"));
  BOOST_TEST(id == 3u);
  eng->close();
  auto events = read_all(dir.path());
  auto started = std::find_if(events.begin(), events.end(), [](const event& ev) {
    return std::holds_alternative<engine_started>(ev.body);
  });
  BOOST_REQUIRE(started != events.end());
  BOOST_TEST(std::get<engine_started>(started->body).recovered_events == 4u);
  BOOST_TEST(std::get<engine_started>(started->body).reclaimed_jobs == 2u);
}

BOOST_AUTO_TEST_CASE(a_remote_lease_survives_a_restart_and_expires_without_heartbeat) {
  temp_dir dir;
  auto make_options = [&] {
    engine_options opts;
    opts.data_dir = dir.path();
    opts.allow_unknown_kinds = true;
    return opts;
  };
  job_id kept = 0, lost = 0;
  std::uint64_t kept_token = 0, lost_token = 0;
  {
    auto eng = open_engine(make_options());
    auto patient = spec_of("render");
    patient.timeouts.heartbeat = 5'000;
    kept = submit_ok(*eng, patient);
    lease_request req;
    req.worker = "w1";
    auto first = eng->lease(req);
    BOOST_REQUIRE(first.ok() && first->size() == 1u);
    kept_token = first->front().lease_token;
    auto hasty = spec_of("render");
    hasty.timeouts.heartbeat = 300;
    lost = submit_ok(*eng, hasty);
    req.worker = "w2";
    auto second = eng->lease(req);
    BOOST_REQUIRE(second.ok() && second->size() == 1u);
    BOOST_TEST(second->front().id == lost);
    lost_token = second->front().lease_token;
    eng->close();
  }
  auto eng = open_engine(make_options());
  auto job = record_of(*eng, kept);
  BOOST_TEST(job.state == job_state::running);
  BOOST_TEST(job.lease_token == kept_token);
  BOOST_TEST(job.worker == "w1");
  BOOST_TEST(phase_of(*eng, kept) == "running");
  heartbeat_request hb;
  hb.id = kept;
  hb.lease_token = kept_token;
  auto beat = eng->heartbeat(hb);
  BOOST_REQUIRE_MESSAGE(beat.ok(), why(beat));

  // w2 never heartbeats: reclaimed after its lease ran out, as before.
  BOOST_REQUIRE(wait_until([&] { return !bodies_of<job_reclaimed>(history_of(*eng, lost)).empty(); }));
  auto reclaims = bodies_of<job_reclaimed>(history_of(*eng, lost));
  BOOST_TEST(reclaims[0].reason.find("lease expired") != std::string::npos, reclaims[0].reason);
  auto late = eng->complete(lost, lost_token, "{}", "worker:w2");
  BOOST_REQUIRE(!late.ok());
  BOOST_TEST(late.error().code == engine_errc::stale_token);

  auto done = eng->complete(kept, kept_token, "{}", "worker:w1");
  BOOST_REQUIRE_MESSAGE(done.ok(), why(done));
  BOOST_TEST(done->state == job_state::succeeded);
  BOOST_TEST(bodies_of<job_reclaimed>(history_of(*eng, kept)).empty());
}

BOOST_AUTO_TEST_CASE(a_lease_runs_out_over_restarts_that_come_faster_than_its_timeout) {
  // A worker that vanished must not keep its job (and its locks) forever
  // because the engine restarts more often than the heartbeat timeout: the
  // lease clock carries what was left of the lease into the next run
  // (actors/lease_clock.hpp). Before it, each open gave a fresh 3 s.
  // Runs of 1 s against a 3 s timeout leave 2 s for the first close and
  // open to use up before the check of run 1 (an ASan build under load
  // takes about 0.5 s for both).
  temp_dir dir;
  engine_options opts;
  opts.data_dir = dir.path();
  opts.allow_unknown_kinds = true;
  job_id id = 0;
  {
    auto eng = open_engine(opts);
    auto spec = spec_of("render");
    spec.timeouts.heartbeat = 3'000;
    id = submit_ok(*eng, spec);
    lease_request req;
    req.worker = "gone";
    auto leased = eng->lease(req);
    BOOST_REQUIRE(leased.ok() && leased->size() == 1u);
    std::this_thread::sleep_for(std::chrono::milliseconds(1'000));
    eng->close();
  }
  int runs = 1;
  bool reclaimed = false;
  for (; runs < 8 && !reclaimed; ++runs) {
    auto eng = open_engine(opts);
    if (runs == 1) {
      // About 1 s of the lease was used, not all of it: still running.
      BOOST_TEST(record_of(*eng, id).state == job_state::running);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1'000));
    reclaimed = !bodies_of<job_reclaimed>(history_of(*eng, id)).empty();
    eng->close();
  }
  // 3 s of uptime is used up in the third run (3 s and the closes); seven
  // give room.
  BOOST_TEST(reclaimed, "still running after " << runs << " runs of 1 s");
}

BOOST_AUTO_TEST_CASE(the_lease_clock_record_round_trips_and_refuses_damage) {
  std::vector<saved_lease> leases{{1, 77, 0}, {4'000'000'000ull, (1ull << 53) - 1, 86'400'000}};
  auto bytes = encode_leases(leases);
  auto back = decode_leases(bytes);
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST((*back == leases));
  BOOST_TEST(decode_leases(encode_leases({})).has_value());
  for (std::size_t cut = 0; cut < bytes.size(); ++cut)
    BOOST_TEST(!decode_leases(bytes.substr(0, cut)).has_value(), "cut at " << cut);
  BOOST_TEST(!decode_leases(bytes + '\0').has_value());
  auto other_version = bytes;
  other_version[0] = 2;
  BOOST_TEST(!decode_leases(other_version).has_value());
}

BOOST_AUTO_TEST_CASE(queue_settings_survive_a_restart) {
  temp_dir dir;
  std::atomic<int> calls{0};
  auto make_options = [&] {
    engine_options opts;
    opts.data_dir = dir.path();
    opts.handlers.add("work", [&](job_context&) {
      ++calls;
      return outcome::success();
    });
    return opts;
  };
  {
    auto eng = open_engine(make_options());
    BOOST_REQUIRE(eng->pause("mail").ok());
    BOOST_REQUIRE(eng->pause("reports").ok());
    BOOST_REQUIRE(eng->resume("reports").ok());
    BOOST_REQUIRE(eng->configure("imports", 2).ok());
  }  // closed by the destructor
  auto eng = open_engine(make_options());
  auto queues = eng->queues();
  BOOST_REQUIRE(queues.ok());
  std::map<std::string, queue_info> by_name;
  for (auto& q : *queues) by_name[q.name] = q;
  BOOST_TEST(by_name["mail"].paused);
  BOOST_TEST(!by_name["reports"].paused);
  BOOST_TEST(by_name["imports"].concurrency == 2u);
  auto id = submit_ok(*eng, spec_of("work", "mail"));
  auto why_not = eng->explain(id);
  BOOST_REQUIRE(why_not.ok());
  BOOST_TEST(why_not->text.find("paused") != std::string::npos, why_not->text);
  auto other = submit_ok(*eng, spec_of("work", "reports"));
  REQUIRE_STATE(*eng, other, job_state::succeeded);
  BOOST_TEST(record_of(*eng, id).attempts == 0u);
  BOOST_REQUIRE(eng->resume("mail").ok());
  REQUIRE_STATE(*eng, id, job_state::succeeded);
  BOOST_TEST(calls.load() == 2);
}

BOOST_AUTO_TEST_CASE(unique_keys_of_live_jobs_survive_a_restart) {
  temp_dir dir;
  auto make_options = [&] {
    engine_options opts;
    opts.data_dir = dir.path();
    opts.handlers.add("sync", [](job_context&) { return outcome::success(); });
    return opts;
  };
  auto spec = spec_of("sync", "held");
  spec.unique_key = "sync:7";
  job_id first = 0;
  {
    auto eng = open_engine(make_options());
    BOOST_REQUIRE(eng->pause("held").ok());
    first = submit_ok(*eng, spec);
  }
  auto eng = open_engine(make_options());
  auto head = eng->metrics().head;
  BOOST_TEST(submit_ok(*eng, spec) == first);
  BOOST_TEST(eng->metrics().head == head);
  BOOST_REQUIRE(eng->resume("held").ok());
  REQUIRE_STATE(*eng, first, job_state::succeeded);
  BOOST_REQUIRE(wait_until([&] { return phase_of(*eng, first) == "not live"; }));
  auto second = submit_ok(*eng, spec);
  BOOST_TEST(second != first);
}

BOOST_AUTO_TEST_CASE(every_open_appends_engine_started) {
  temp_dir dir;
  std::vector<sequence_t> heads;
  for (int i = 0; i < 3; ++i) {
    engine_options opts;
    opts.data_dir = dir.path();
    opts.allow_unknown_kinds = true;
    opts.snapshot_every = 0;  // no snapshots: every open folds the whole log
    auto eng = open_engine(std::move(opts));
    heads.push_back(eng->recovered().head);
    BOOST_TEST(eng->recovered().events_replayed == eng->recovered().head);
    BOOST_TEST(eng->recovered().snapshot_seq == 0u);
    BOOST_TEST(eng->metrics().head == eng->recovered().head + 1);
    if (i == 0) submit_ok(*eng, spec_of("x"));
  }
  auto events = read_all(dir.path());
  std::vector<engine_started> started;
  for (auto& ev : events)
    if (auto s = std::get_if<engine_started>(&ev.body)) {
      started.push_back(*s);
      BOOST_TEST(ev.principal == "engine");
      BOOST_TEST(ev.job == 0u);
    }
  BOOST_REQUIRE_EQUAL(started.size(), 3u);
  BOOST_TEST(started[0].recovered_events == 0u);
  BOOST_TEST(started[1].recovered_events == heads[1]);
  BOOST_TEST(started[2].recovered_events == heads[2]);
  BOOST_TEST(started[1].reclaimed_jobs == 0u);  // the live job waits; nothing reclaimed
  BOOST_TEST(heads[1] == 2u);                   // engine.started + job.submitted
  BOOST_TEST(heads[2] == 3u);
}

BOOST_AUTO_TEST_CASE(a_schedule_whose_last_run_ended_gets_its_next_run_on_open) {
  temp_dir dir;
  auto now = system_wall_now();
  auto run = spec_of("tick");
  run.recur.interval = 10;
  run.schedule = 1;
  write_log(dir.path(), {
                            job_event(0, now, schedule_created{1, 1}),
                            job_event(1, now, run),
                            job_event(1, now, job_started{1, "local:deadbeef", 5}, "engine"),
                            job_event(1, now, job_succeeded{1, "null"}, "worker:local:deadbeef"),
                        });
  std::atomic<int> calls{0};
  engine_options opts;
  opts.data_dir = dir.path();
  opts.handlers.add("tick", [&](job_context&) {
    ++calls;
    return outcome::success();
  });
  auto eng = open_engine(std::move(opts));
  BOOST_TEST(eng->recovered().live_jobs == 0u);
  BOOST_REQUIRE(wait_until([&] { return calls.load() >= 2; }));
  auto next = record_of(*eng, 2);
  BOOST_TEST(next.spec.schedule == 1u);
  BOOST_TEST(next.spec.kind == "tick");
  BOOST_TEST(history_of(*eng, 2).front().principal == "engine");
}

BOOST_AUTO_TEST_CASE(a_deleted_schedule_stays_deleted_over_a_restart_while_a_run_is_live) {
  temp_dir dir;
  auto now = system_wall_now();
  auto run = spec_of("tick");
  run.recur.interval = 10;
  run.schedule = 1;
  write_log(dir.path(), {
                            job_event(0, now, schedule_created{1, 1}),
                            job_event(1, now, run),
                            job_event(0, now, schedule_deleted{1, "deleted by request"}),
                        });
  std::atomic<int> calls{0};
  engine_options opts;
  opts.data_dir = dir.path();
  opts.handlers.add("tick", [&](job_context&) {
    ++calls;
    return outcome::success();
  });
  auto eng = open_engine(std::move(opts));
  REQUIRE_STATE(*eng, 1, job_state::succeeded);
  BOOST_REQUIRE(wait_until([&] { return phase_of(*eng, 1) == "not live"; }));
  std::this_thread::sleep_for(100ms);  // ten intervals
  BOOST_TEST(calls.load() == 1);
  auto next = eng->get(2);
  BOOST_TEST(!next.ok(), "the deleted schedule submitted run 2");
  auto again = eng->delete_schedule(1);
  BOOST_REQUIRE(!again.ok());
  BOOST_TEST(again.error().code == engine_errc::not_found);
}

// -- recover() on hand-built logs -----------------------------------------------------------

BOOST_AUTO_TEST_CASE(recover_folds_live_jobs_queues_schedules_and_the_next_id) {
  auto log = store::make_memory_log();
  millis t = 1'000;
  auto plain = spec_of("k");
  auto recurring = spec_of("k");
  recurring.recur.interval = 60'000;
  auto run1 = recurring;
  run1.schedule = 1;
  auto run5 = recurring;
  run5.schedule = 5;
  run5.retry.max_attempts = 1;
  auto run6 = run5;
  auto run9 = recurring;
  run9.schedule = 9;
  append_all(*log, {
                       // schedule 1: one run that succeeded, no successor yet
                       job_event(0, t, schedule_created{1, 1}),
                       job_event(1, t, run1),
                       job_event(1, t, job_started{1, "w", 11}, "engine"),
                       job_event(1, t, job_succeeded{1, R"({"a":1})"}, "worker:w"),
                       // a plain job waiting, one running remotely
                       job_event(2, t, plain),
                       job_event(3, t, plain),
                       job_event(3, t, job_started{1, "w", 33}, "engine"),
                       // queues
                       job_event(0, t, queue_paused{"mail"}),
                       job_event(0, t, queue_configured{"mail", 3}),
                       job_event(0, t, queue_paused{"other"}),
                       job_event(0, t, queue_resumed{"other"}),
                   });
  append_all(*log, {
                       // schedule 5: run 5 discarded, run 6 live
                       job_event(0, t, schedule_created{5, 5}),
                       job_event(5, t, run5),
                       job_event(5, t, job_started{1, "w", 55}, "engine"),
                       job_event(5, t, job_failed{1, "boom", true, 0, ""}, "worker:w"),
                       job_event(6, t, run6, "engine"),
                       // schedule 9: deleted
                       job_event(0, t, schedule_created{9, 9}),
                       job_event(9, t, run9),
                       job_event(0, t, schedule_deleted{9, "by hand"}),
                       // job 12 was cancelled, job 10 cancelled then retried by hand
                       job_event(10, t, plain),
                       job_event(10, t, job_cancelled{"no"}),
                       job_event(12, t, plain),
                       job_event(12, t, job_cancelled{"no"}),
                       job_event(10, t + 5, job_requested{request_kind::retry}),
                   });
  std::vector<sequence_t> observed;
  auto recovered = recover(*log, [&](const event& ev) { observed.push_back(ev.seq); });
  BOOST_REQUIRE_MESSAGE(recovered.ok(), why(recovered));
  auto& r = *recovered;
  BOOST_TEST(r.head == log->head());
  BOOST_TEST(r.events_replayed == log->head());
  BOOST_REQUIRE_EQUAL(observed.size(), log->head());
  for (std::size_t i = 0; i < observed.size(); ++i) BOOST_TEST(observed[i] == i + 1);
  BOOST_TEST(r.next_job_id == 13u);
  BOOST_TEST(r.jobs_seen == 8u);  // 1 2 3 5 6 9 10 12

  std::vector<job_id> live;
  for (auto& j : r.live_jobs) live.push_back(j.id);
  BOOST_TEST(live == (std::vector<job_id>{2, 3, 6, 9, 10}), boost::test_tools::per_element());
  auto live_job = [&](job_id id) {
    return *std::find_if(r.live_jobs.begin(), r.live_jobs.end(),
                         [&](const job_record& j) { return j.id == id; });
  };
  BOOST_TEST(live_job(3).state == job_state::running);
  BOOST_TEST(live_job(3).lease_token == 33u);
  BOOST_TEST(live_job(10).state == job_state::scheduled);  // revived by the retry
  BOOST_TEST(live_job(10).due_at == t + 5);

  BOOST_TEST(r.queues.at("mail").paused);
  BOOST_TEST(r.queues.at("mail").concurrency == 3u);
  BOOST_TEST(!r.queues.at("other").paused);

  BOOST_REQUIRE_EQUAL(r.schedules.size(), 2u);
  auto& s1 = r.schedules.at(1);
  BOOST_TEST(s1.id == 1u);
  BOOST_TEST(s1.last_run == 1u);
  BOOST_TEST(s1.last_run_ended);
  BOOST_TEST(s1.consecutive_failures == 0u);
  BOOST_TEST((s1.spec == run1));
  auto& s5 = r.schedules.at(5);
  BOOST_TEST(s5.last_run == 6u);
  BOOST_TEST(!s5.last_run_ended);
  BOOST_TEST(s5.consecutive_failures == 1u);
  BOOST_TEST(r.schedules.count(9) == 0u);
}

BOOST_AUTO_TEST_CASE(recover_counts_consecutive_failures_and_resets_on_success) {
  auto log = store::make_memory_log();
  millis t = 1'000;
  auto run = spec_of("k");
  run.recur.interval = 1'000;
  run.retry.max_attempts = 1;
  run.schedule = 1;
  std::vector<event> events{job_event(0, t, schedule_created{1, 1})};
  // runs 1, 2 fail; 3 succeeds; 4, 5 fail (4 expires), 6 is cancelled (neutral)
  auto fail = [&](job_id id) {
    events.push_back(job_event(id, t, run));
    events.push_back(job_event(id, t, job_started{1, "w", id}, "engine"));
    events.push_back(job_event(id, t, job_failed{1, "x", false, 0, ""}, "worker:w"));
  };
  fail(1);
  fail(2);
  events.push_back(job_event(3, t, run));
  events.push_back(job_event(3, t, job_started{1, "w", 3}, "engine"));
  events.push_back(job_event(3, t, job_succeeded{1, "null"}, "worker:w"));
  fail(4);
  events.push_back(job_event(5, t, run));
  events.push_back(job_event(5, t, job_expired{"late"}, "engine"));
  events.push_back(job_event(6, t, run));
  events.push_back(job_event(6, t, job_cancelled{"by hand"}));
  append_all(*log, events);
  auto recovered = recover(*log);
  BOOST_REQUIRE_MESSAGE(recovered.ok(), why(recovered));
  auto& s = recovered->schedules.at(1);
  BOOST_TEST(s.last_run == 6u);
  BOOST_TEST(s.last_run_ended);
  BOOST_TEST(s.consecutive_failures == 2u);  // 4 and 5; the cancel leaves it
  BOOST_TEST(recovered->live_jobs.empty());
}

BOOST_AUTO_TEST_CASE(recover_refuses_a_record_that_does_not_decode) {
  auto log = store::make_memory_log();
  append_all(*log, {job_event(1, 1'000, spec_of("k"))});
  std::vector<store::record_input> garbage{store::record_input{1, "\xff\xff not an event"}};
  BOOST_REQUIRE(log->append(garbage, nullptr).is_ok());
  auto recovered = recover(*log);
  BOOST_REQUIRE(!recovered.ok());
  BOOST_TEST(recovered.error().code == engine_errc::corruption);
  BOOST_TEST(recovered.error().message.find("record 2") != std::string::npos,
             recovered.error().message);
}

BOOST_AUTO_TEST_CASE(an_empty_log_recovers_to_nothing) {
  auto log = store::make_memory_log();
  auto recovered = recover(*log);
  BOOST_REQUIRE(recovered.ok());
  BOOST_TEST(recovered->head == 0u);
  BOOST_TEST(recovered->next_job_id == 1u);
  BOOST_TEST(recovered->live_jobs.empty());
  BOOST_TEST(recovered->schedules.empty());
}

// -- recovery from the queue view snapshot --------------------------------------------------

namespace {

/// A log with every kind of history: successes, retries, permanent
/// failures, reviews, cancels, a paused queue, delayed jobs and a recurring
/// schedule with a failure limit. Written by a real engine, without
/// snapshots of its own.
void write_mixed_log(const std::string& dir) {
  engine_options opts;
  opts.data_dir = dir;
  opts.snapshot_every = 0;
  opts.progress_flush = 5ms;
  opts.min_recurrence_interval = 1;  // the tick schedule runs every 5 ms
  opts.handlers.add("ok", [](job_context&) { return outcome::success(); });
  opts.handlers.add("flaky", [](job_context& ctx) {
    return ctx.attempt() == 1 ? outcome::retry("first try fails") : outcome::success();
  });
  opts.handlers.add("bad", [](job_context&) { return outcome::permanent("never works"); });
  opts.handlers.add("tick", [](job_context& ctx) {
    return ctx.id() % 3 == 0 ? outcome::permanent("every third run fails") : outcome::success();
  });
  auto eng = open_engine(std::move(opts));
  BOOST_REQUIRE(eng->pause("held").ok());
  BOOST_REQUIRE(eng->configure("narrow", 1).ok());
  std::vector<job_id> ids;
  for (int i = 0; i < 40; ++i) {
    static const char* kinds[] = {"ok", "flaky", "bad"};
    auto spec = spec_of(kinds[i % 3], i % 5 == 0 ? "held" : (i % 4 == 0 ? "narrow" : "default"));
    spec.review_required = i % 7 == 0;
    submit_options o;
    if (i % 6 == 0) o.delay = 3'600'000;  // still scheduled when the log ends
    ids.push_back(submit_ok(*eng, spec, o));
  }
  auto tick = spec_of("tick");
  tick.recur.interval = 5;
  tick.recur.failure_limit = 50;
  submit_ok(*eng, tick);
  for (std::size_t i = 0; i < ids.size(); i += 9) (void) eng->cancel(ids[i], "not needed");
  // Settled: nothing runs, and only the paused queue's jobs wait in line.
  auto settled = [&] {
    for (auto id : ids) {
      auto rec = record_of(*eng, id);
      auto state = effective_state(rec, system_wall_now());
      if (state == job_state::running) return false;
      if (state == job_state::queued && rec.spec.queue != "held") return false;
    }
    return true;
  };
  BOOST_REQUIRE(wait_until(settled));
  for (auto id : ids) {
    if (record_of(*eng, id).state == job_state::pending_review) (void) eng->review(id, id % 2 == 0);
    if (record_of(*eng, id).state == job_state::discarded) (void) eng->retry(id);
  }
  BOOST_REQUIRE(wait_until(settled));
  std::this_thread::sleep_for(50ms);  // a few more schedule runs
  eng->close();

  // As a crash between a schedule's run failing and its next run leaves
  // it: the schedule's last run ended, one failure in its streak.
  std::unique_ptr<store::event_log> log;
  BOOST_REQUIRE(store::open_rocksdb_log(dir, {}, &log).is_ok());
  auto seed = recover(*log);
  BOOST_REQUIRE(seed.ok());
  auto id = seed->next_job_id;
  auto run = spec_of("tick");
  run.recur.interval = 60'000;
  run.schedule = id;
  auto t = system_wall_now();
  append_all(*log, {job_event(0, t, schedule_created{id, id}), job_event(id, t, run),
                    job_event(id, t, job_started{1, "local:deadbeef", 7}, "engine"),
                    job_event(id, t, job_failed{1, "boom", false, 0, ""}, "worker:local:deadbeef")});
}

void require_same_state(const recovered_state& a, const recovered_state& b) {
  BOOST_TEST(a.head == b.head);
  BOOST_TEST(a.next_job_id == b.next_job_id);
  BOOST_TEST(a.jobs_seen == b.jobs_seen);
  BOOST_REQUIRE_EQUAL(a.live_jobs.size(), b.live_jobs.size());
  for (std::size_t i = 0; i < a.live_jobs.size(); ++i)
    BOOST_TEST((a.live_jobs[i] == b.live_jobs[i]), "live job " << a.live_jobs[i].id);
  BOOST_REQUIRE_EQUAL(a.queues.size(), b.queues.size());
  for (auto& [name, s] : a.queues) {
    auto it = b.queues.find(name);
    BOOST_REQUIRE_MESSAGE(it != b.queues.end(), "queue " << name);
    BOOST_TEST(it->second.paused == s.paused);
    BOOST_TEST(it->second.concurrency == s.concurrency);
  }
  BOOST_REQUIRE_EQUAL(a.schedules.size(), b.schedules.size());
  for (auto& [id, s] : a.schedules) {
    auto it = b.schedules.find(id);
    BOOST_REQUIRE_MESSAGE(it != b.schedules.end(), "schedule " << id);
    BOOST_TEST(it->second.last_run == s.last_run);
    BOOST_TEST(it->second.last_run_ended == s.last_run_ended);
    BOOST_TEST(it->second.consecutive_failures == s.consecutive_failures);
    BOOST_TEST((it->second.spec == s.spec));
  }
}

/// The mixed log, opened, with what a full replay of it recovers.
struct mixed_log {
  temp_dir dir;
  std::vector<event> events;
  std::unique_ptr<store::event_log> log;
  queue_view full_view;
  recovered_state full;

  mixed_log() {
    write_mixed_log(dir.path());
    events = read_all(dir.path());
    BOOST_REQUIRE(store::open_rocksdb_log(dir.path(), {}, &log).is_ok());
    auto replayed = recover(*log, [&](const event& ev) { full_view.apply(ev); });
    BOOST_REQUIRE_MESSAGE(replayed.ok(), why(replayed));
    full = std::move(*replayed);
  }
};

void drop_all_snapshots(store::event_log& log) {
  std::vector<store::snapshot_info> stored;
  BOOST_REQUIRE(log.list_snapshots("", &stored).is_ok());
  for (auto& s : stored) BOOST_REQUIRE(log.delete_snapshot(s.name).is_ok());
}

}  // namespace

BOOST_AUTO_TEST_CASE(recovery_from_a_snapshot_at_any_sequence_equals_a_full_replay) {
  mixed_log m;
  auto& [dir, events, log, full_view, full] = m;
  BOOST_TEST(full.schedules.size() == 2u);  // the engine's and the hand-written one
  BOOST_TEST(std::count_if(full.schedules.begin(), full.schedules.end(),
                           [](auto& s) { return s.second.last_run_ended && s.second.consecutive_failures == 1; }) == 1);
  BOOST_TEST(!full.live_jobs.empty());

  for (std::size_t k : {std::size_t{1}, events.size() / 5, events.size() / 2, events.size() - 7,
                        events.size()}) {
    queue_view at_k;
    for (std::size_t i = 0; i < k; ++i) at_k.apply(events[i]);
    BOOST_REQUIRE(log->put_snapshot(queue_view_snapshot_name(at_k.head()),
                                    {at_k.head(), at_k.encode()}).is_ok());
    queue_view view;
    auto fast = recover_from_snapshot(*log, view);
    BOOST_REQUIRE_MESSAGE(fast.ok(), why(fast));
    BOOST_TEST(fast->snapshot_warning == "");
    BOOST_TEST(fast->snapshot_seq == events[k - 1].seq);
    BOOST_TEST(fast->events_replayed == events.size() - k);
    require_same_state(full, *fast);
    BOOST_TEST(view.encode() == full_view.encode(), "the views differ after a snapshot at " << k);
  }
}

BOOST_AUTO_TEST_CASE(thousands_of_live_jobs_recover_from_a_snapshot_as_from_a_full_replay) {
  // Enough live jobs that recovery reads their streams on several threads.
  temp_dir dir;
  std::unique_ptr<store::event_log> log;
  BOOST_REQUIRE(store::open_rocksdb_log(dir.path(), {}, &log).is_ok());
  const millis t = system_wall_now();
  std::vector<event> events;
  for (job_id id = 1; id <= 3000; ++id) {
    auto spec = spec_of(id % 2 ? "ok" : "slow", id % 3 ? "default" : "other");
    spec.priority = static_cast<std::int32_t>(id % 5);
    events.push_back(job_event(id, t + static_cast<millis>(id), spec));
  }
  for (job_id id = 1; id <= 3000; id += 2)
    events.push_back(job_event(id, t + 5000, job_started{1, "w" + std::to_string(id % 7), id * 11},
                               "engine"));
  for (job_id id = 1; id <= 3000; id += 6)
    events.push_back(job_event(id, t + 6000, job_succeeded{1, "{}"}, "worker:w"));
  append_all(*log, events);
  queue_view at_head;
  BOOST_REQUIRE(log->read(1, log->head(), [&](const store::record& rec) {
                       event ev;
                       std::string error;
                       BOOST_REQUIRE_MESSAGE(decode_record(rec, ev, &error), error);
                       at_head.apply(ev);
                       return true;
                     }).is_ok());
  BOOST_REQUIRE(log->put_snapshot(queue_view_snapshot_name(at_head.head()),
                                  {at_head.head(), at_head.encode()}).is_ok());

  queue_view view;
  auto fast = recover_from_snapshot(*log, view);
  BOOST_REQUIRE_MESSAGE(fast.ok(), why(fast));
  BOOST_TEST(fast->snapshot_seq == at_head.head());
  BOOST_TEST(fast->live_jobs.size() == 2500u);  // 3000 less the 500 that succeeded
  auto full = recover(*log);
  BOOST_REQUIRE_MESSAGE(full.ok(), why(full));
  require_same_state(*full, *fast);
}

BOOST_AUTO_TEST_CASE(a_damaged_or_old_snapshot_is_ignored_with_a_warning_and_the_log_replayed) {
  mixed_log m;
  auto& [dir, events, log, full_view, full] = m;
  queue_view half;
  for (std::size_t i = 0; i < events.size() / 2; ++i) half.apply(events[i]);
  auto good = half.encode();

  auto flipped = good;
  flipped[flipped.size() / 2] ^= 0x10;
  auto old_version = good;
  old_version[4] = 1;  // u32 LE version right after the magic
  struct damaged {
    std::string bytes;
    sequence_t covered;
    std::string says;
  };
  for (auto& d : {damaged{flipped, half.head(), "checksum mismatch"},
                  damaged{old_version, half.head(), "version 1"},
                  damaged{good, half.head() + 1, "covers sequence"},
                  damaged{"junk", half.head(), "not a queue view snapshot"},
                  damaged{good, log->head() + 5,
                          "it covers more than the log, which ends at " +
                              std::to_string(log->head())}}) {
    drop_all_snapshots(*log);
    BOOST_REQUIRE(log->put_snapshot(queue_view_snapshot_name(d.covered), {d.covered, d.bytes}).is_ok());
    queue_view view;
    auto out = recover_from_snapshot(*log, view);
    BOOST_REQUIRE_MESSAGE(out.ok(), why(out));
    BOOST_TEST(out->snapshot_warning.find(d.says) != std::string::npos, out->snapshot_warning);
    BOOST_TEST(out->snapshot_warning.find("replayed the log from the start") != std::string::npos);
    BOOST_TEST(out->snapshot_seq == 0u);
    BOOST_TEST(out->events_replayed == events.size());
    require_same_state(full, *out);
    BOOST_TEST(view.encode() == full_view.encode());
  }
}

BOOST_AUTO_TEST_CASE(a_damaged_newest_snapshot_falls_back_to_the_newest_good_one) {
  mixed_log m;
  auto& [dir, events, log, full_view, full] = m;
  queue_view third, half;
  for (std::size_t i = 0; i < events.size() / 2; ++i) {
    if (i < events.size() / 3) third.apply(events[i]);
    half.apply(events[i]);
  }
  auto flipped = half.encode();
  flipped[flipped.size() / 2] ^= 0x01;
  BOOST_REQUIRE(log->put_snapshot(queue_view_snapshot_name(third.head()), {third.head(), third.encode()}).is_ok());
  BOOST_REQUIRE(log->put_snapshot(queue_view_snapshot_name(half.head()), {half.head(), flipped}).is_ok());
  queue_view view;
  auto out = recover_from_snapshot(*log, view);
  BOOST_REQUIRE_MESSAGE(out.ok(), why(out));
  BOOST_TEST(out->snapshot_seq == third.head());
  BOOST_TEST(out->snapshot_warning.find("snapshot at " + std::to_string(half.head()) +
                                        ": checksum mismatch") != std::string::npos,
             out->snapshot_warning);
  BOOST_TEST(out->snapshot_warning.find("used the one at " + std::to_string(third.head())) !=
                 std::string::npos,
             out->snapshot_warning);
  require_same_state(full, *out);
  BOOST_TEST(view.encode() == full_view.encode());

  // A snapshot from another log (same sequence, other time) does not fit.
  drop_all_snapshots(*log);
  queue_view other;
  for (std::size_t i = 0; i < events.size() / 3; ++i) {
    event e = events[i];
    e.time += 1;
    other.apply(e);
  }
  BOOST_REQUIRE(log->put_snapshot(queue_view_snapshot_name(other.head()), {other.head(), other.encode()}).is_ok());
  queue_view again;
  auto misfit = recover_from_snapshot(*log, again);
  BOOST_REQUIRE_MESSAGE(misfit.ok(), why(misfit));
  BOOST_TEST(misfit->snapshot_seq == 0u);
  BOOST_TEST(misfit->snapshot_warning.find("does not fit the log") != std::string::npos,
             misfit->snapshot_warning);
  BOOST_TEST(again.encode() == full_view.encode());
}

BOOST_AUTO_TEST_CASE(the_kept_snapshots_stay_spread_over_the_log) {
  for (std::size_t keep : {std::size_t{1}, std::size_t{3}, std::size_t{8}}) {
    std::vector<store::snapshot_info> stored;
    for (sequence_t i = 1; i <= 500; ++i) {
      stored.push_back({queue_view_snapshot_name(i * 1000), i * 1000, 0});
      auto drop = snapshots_to_drop(stored, keep);
      std::erase_if(stored, [&](auto& s) {
        return std::find(drop.begin(), drop.end(), s.name) != drop.end();
      });
      BOOST_REQUIRE_EQUAL(stored.size(), std::min<std::size_t>(i, keep));
      BOOST_REQUIRE_EQUAL(stored.back().covered, i * 1000);  // the newest stays
      // No gap (from sequence 0) is wider than twice an even spread.
      sequence_t left = 0, widest = 0;
      for (auto& s : stored) {
        widest = std::max(widest, s.covered - left);
        left = s.covered;
      }
      if (i >= keep) BOOST_TEST(widest <= 2 * i * 1000 / keep, "keep " << keep << " at " << i);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_engine_snapshots_as_it_goes_and_at_close_and_reopens_from_it) {
  temp_dir dir;
  job_id waiting = 0;
  {
    engine_options opts;
    opts.data_dir = dir.path();
    opts.snapshot_every = 10;
    opts.snapshots_kept = 3;
    opts.handlers.add("ok", [](job_context&) { return outcome::success(); });
    auto eng = open_engine(std::move(opts));
    std::vector<job_id> ids;
    for (int i = 0; i < 20; ++i) ids.push_back(submit_ok(*eng, spec_of("ok")));
    for (auto id : ids) REQUIRE_STATE(*eng, id, job_state::succeeded);
    submit_options later;
    later.delay = 3'600'000;
    waiting = submit_ok(*eng, spec_of("ok"), later);
  }
  auto events = read_all(dir.path());
  {
    // Some 60 events stored 6 or more snapshots; 3 are kept, the newest
    // covering the whole log.
    std::unique_ptr<store::event_log> log;
    store::rocksdb_log_options ro;
    ro.read_only = true;
    BOOST_REQUIRE(store::open_rocksdb_log(dir.path(), ro, &log).is_ok());
    std::vector<store::snapshot_info> stored;
    BOOST_REQUIRE(log->list_snapshots(queue_view_snapshot_prefix, &stored).is_ok());
    BOOST_TEST(stored.size() == 3u);
    BOOST_TEST(stored.back().covered == events.back().seq);
  }
  {
    engine_options opts;
    opts.data_dir = dir.path();
    opts.snapshot_every = 10;
    opts.handlers.add("ok", [](job_context&) { return outcome::success(); });
    auto eng = open_engine(std::move(opts));
    // The close stored a snapshot of everything: nothing left to fold.
    BOOST_TEST(eng->recovered().snapshot_seq == events.back().seq);
    BOOST_TEST(eng->recovered().events_replayed == 0u);
    BOOST_TEST(eng->recovered().snapshot_warning == "");
    BOOST_TEST(eng->recovered().live_jobs == 1u);
    BOOST_TEST(record_of(*eng, waiting).state == job_state::scheduled);
    job_filter f;
    f.states_in = {job_state::succeeded};
    f.limit = 1000;
    auto done = eng->list(f);
    BOOST_REQUIRE(done.ok());
    BOOST_TEST(done->size() == 20u);
    BOOST_REQUIRE(eng->run_now(waiting).ok());
    REQUIRE_STATE(*eng, waiting, job_state::succeeded);
    auto next = submit_ok(*eng, spec_of("ok"));
    BOOST_TEST(next == waiting + 1);
  }
}
