// One engine core (scheduler, job, journal and runner actors) over a memory
// log under CAF's test coordinator (STACK.md pitfall 10): nothing runs until
// the test runs it, and time moves only when the test advances it. The
// engine's wall clock is derived from the coordinator's clock. Shared by the
// deterministic actor tests.
#pragma once

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/detail/test_actor_clock.hpp>

#include "actors/caf_error.hpp"
#include "actors/engine_actors.hpp"
#include "events/codec.hpp"
#include "store/memory_log.hpp"

namespace jobsmith::test {

/// One engine core over a memory log, driven by the test coordinator.
struct sim {
  static constexpr millis base = 1'800'000'000'000;  // wall time at the start
  millis wall_offset = 0;  // jump_wall() moves the wall clock, not test time

  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  caf::actor_clock::time_point start;
  std::unique_ptr<store::event_log> log = store::make_memory_log();
  engine_options options;
  engine_core core;
  std::unique_ptr<caf::scoped_actor> self;

  sim() {
    cfg.set("scheduler.policy", caf::atom("testing"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    start = sys->clock().now();
    self = std::make_unique<caf::scoped_actor>(*sys);
  }

  ~sim() {
    if (core.scheduler) stop_core(core);
    sched->run();
    self.reset();
  }

  /// The engine's wall clock: `base` plus the test time that has passed.
  millis now() const {
    return base + wall_offset +
           std::chrono::duration_cast<std::chrono::milliseconds>(sys->clock().now() - start).count();
  }

  /// The wall clock jumps by `ms` (back when negative) while the monotonic
  /// clock, which leases use, does not move.
  void jump_wall(millis ms) { wall_offset += ms; }

  void spawn(recovered_state seed = {}) {
    core = spawn_core(*sys, *log, std::move(seed), queue_view{}, options, [this] { return now(); },
                      false);
    sched->run();
  }

  /// Moves time forward and runs everything that became due.
  void advance(millis ms) {
    sched->advance_time(std::chrono::milliseconds(ms));
    sched->run();
  }

  template <class R, class Handle, class... Ts>
  result<R> ask(const Handle& dest, Ts&&... xs) {
    auto rh = (*self)->request(dest, caf::infinite, std::forward<Ts>(xs)...);
    sched->run();
    BOOST_REQUIRE_MESSAGE(!(*self)->mailbox().empty(), "the actor did not answer");
    result<R> out = engine_error{engine_errc::closed, "no answer"};
    rh.receive([&](R& value) { out = std::move(value); },
               [&](caf::error& err) { out = from_caf(err); });
    return out;
  }

  std::vector<job_id> submit(std::vector<job_submitted> specs) {
    auto ids = ask<std::vector<job_id>>(core.scheduler, atom::submit::value, std::move(specs),
                                        std::string{"user:test"});
    BOOST_REQUIRE_MESSAGE(ids.ok(), (ids.ok() ? "" : ids.error().to_string()));
    return *ids;
  }

  job_id submit(job_submitted spec) { return submit(std::vector<job_submitted>{spec}).front(); }

  result<job_record> command(job_id id, job_command cmd, std::string principal = "user:test") {
    return ask<job_record>(core.scheduler, atom::command::value, id, std::move(cmd),
                           std::move(principal));
  }

  /// With `wait` > 0 the answer must come without time passing.
  std::vector<job_record> lease(std::string worker, std::uint32_t max_jobs = 1, millis wait = 0) {
    lease_request req;
    req.worker = std::move(worker);
    req.max_jobs = max_jobs;
    req.wait = wait;
    auto leased = ask<std::vector<job_record>>(core.scheduler, atom::lease::value, req);
    BOOST_REQUIRE_MESSAGE(leased.ok(), (leased.ok() ? "" : leased.error().to_string()));
    return *leased;
  }

  result<heartbeat_reply> heartbeat(job_id id, std::uint64_t token) {
    heartbeat_request hb;
    hb.id = id;
    hb.lease_token = token;
    return ask<heartbeat_reply>(core.scheduler, atom::heartbeat::value, hb);
  }

  std::string phase(job_id id) {
    auto why = ask<dispatch_explanation>(core.scheduler, atom::waits::value, id);
    BOOST_REQUIRE(why.ok());
    return why->phase;
  }

  std::vector<event> history(job_id id) {
    auto events = read_job_events(*log, id);
    BOOST_REQUIRE(events.ok());
    return *events;
  }

  job_record job(job_id id) {
    job_record rec;
    for (auto& ev : history(id)) apply(rec, ev);
    return rec;
  }

  template <class T>
  std::vector<std::pair<millis, T>> bodies(job_id id) {
    std::vector<std::pair<millis, T>> out;
    for (auto& ev : history(id))
      if (auto b = std::get_if<T>(&ev.body)) out.emplace_back(ev.time, *b);
    return out;
  }
};

inline job_submitted spec_of(std::string kind) {
  job_submitted s;
  s.kind = std::move(kind);
  s.retry.jitter = 0;
  return s;
}

/// A handler that returns at once (runners are not detached here), with the
/// outcome chosen per attempt.
struct scripted {
  std::vector<outcome> by_attempt;  // the last one repeats
  std::atomic<int> calls{0};
  job_handler handler() {
    return [this](job_context& ctx) {
      ++calls;
      auto i = std::min<std::size_t>(ctx.attempt(), by_attempt.size()) - 1;
      return by_attempt.at(i);
    };
  }
};

}  // namespace jobsmith::test
