// The scheduler's dispatch: leases, starting jobs on workers, and its timers
// (ticks, deadlines, the saved lease clock) (scheduler_internal.hpp).
#include <algorithm>
#include <unordered_map>

#include "actors/caf_error.hpp"
#include "actors/job_actor.hpp"
#include "actors/lease_clock.hpp"
#include "actors/lock_actor.hpp"
#include "actors/scheduler_internal.hpp"

namespace jobsmith::scheduling {

// -- dispatch ---------------------------------------------------------------------

namespace {

bool serves(const lease_request& req, const std::string& queue) {
  return req.queues.empty() ||
         std::find(req.queues.begin(), req.queues.end(), queue) != req.queues.end();
}

}  // namespace

void on_granted(self_ptr self, job_id id) {
  auto& st = self->state;
  auto i = st.jobs.find(id);
  if (i == st.jobs.end() || i->second.ph != phase::locking) return;
  i->second.ph = phase::granted;
  st.granted.push_back(id);
}

namespace {

/// The next job a worker serving `accepts` may start, in dispatch order:
/// jobs holding their locks first, then the ready index. Jobs that declare
/// resources leave the index to wait for their grant and the search goes on.
template <class Accepts>
tracked_job* next_startable(self_ptr self, Accepts&& accepts) {
  auto& st = self->state;
  for (auto it = st.granted.begin(); it != st.granted.end();) {
    auto j = st.jobs.find(*it);
    if (j == st.jobs.end() || j->second.ph != phase::granted) {
      it = st.granted.erase(it);
      continue;
    }
    if (accepts(j->second.rec.spec.queue)) {
      st.granted.erase(it);
      return &j->second;
    }
    ++it;
  }
  for (;;) {
    auto best =
        st.ready.best([&](const std::string& q) { return accepts(q) && queue_open(self, q); });
    if (!best) return nullptr;
    auto id = best->second.id;
    st.ready.erase(id);
    auto& tj = st.jobs.at(id);
    tj.holds_slot = true;
    ++queue_of(self, tj.rec.spec.queue).active;
    if (tj.rec.spec.resources.empty()) return &tj;
    tj.ph = phase::locking;
    tj.holds_locks = true;
    self->request(st.locks, caf::infinite, atom::acquire::value, id, tj.rec.spec.resources)
        .then(
            [self, id](bool now) {
              if (!now) return;  // (atom::granted, id) follows
              on_granted(self, id);
              dispatch(self);
            },
            [](const caf::error&) {});
  }
}

}  // namespace

void maybe_finish_lease(self_ptr self, std::uint64_t lease_id, bool expired) {
  auto& st = self->state;
  auto i = st.leases.find(lease_id);
  if (i == st.leases.end()) return;
  auto& l = i->second;
  if (l.starting > 0) return;
  bool full = l.leased.size() >= l.request.max_jobs;
  if (!full && l.leased.empty() && !expired) {
    l.filled = false;  // every start was refused: open for jobs again
    return;            // keep polling
  }
  if (l.leased.size() > 1) {
    std::unordered_map<job_id, std::size_t> rank;
    for (std::size_t k = 0; k < l.taken.size(); ++k) rank.emplace(l.taken[k], k);
    std::sort(l.leased.begin(), l.leased.end(),
              [&](const job_record& a, const job_record& b) { return rank[a.id] < rank[b.id]; });
  }
  l.promise.deliver(std::move(l.leased));
  st.leases.erase(i);
}

/// Marks a started job running and arms its time-to-run limit.
void mark_running(self_ptr self, tracked_job& tj) {
  auto& st = self->state;
  tj.ph = phase::running;
  ++st.dispatched;
  if (tj.rec.spec.timeouts.to_run > 0) {
    tj.run_deadline = mono_now(self) + std::chrono::milliseconds(tj.rec.spec.timeouts.to_run);
    st.deadlines.emplace(tj.run_deadline, std::make_pair(tj.rec.id, tj.token));
    arm_tick(self);
  }
}

/// The running attempt's worker was told of a cancel: the job is cancelled
/// timeouts.to_stop from now unless the attempt ends first. Once per attempt.
void arm_stop(self_ptr self, tracked_job& tj) {
  if (tj.stop_deadline != time_point::max()) return;
  tj.stop_deadline = mono_now(self) + std::chrono::milliseconds(tj.rec.spec.timeouts.to_stop);
  self->state.deadlines.emplace(tj.stop_deadline, std::make_pair(tj.rec.id, tj.token));
  arm_tick(self);
}

/// A remote start was committed: the job joins the lease request's answer.
void on_started(self_ptr self, job_id id, std::uint64_t token, job_record& rec,
                std::uint64_t lease_id) {
  auto& st = self->state;
  auto i = st.jobs.find(id);
  bool current = i != st.jobs.end() && i->second.ph == phase::starting && i->second.token == token;
  auto lease = st.leases.find(lease_id);
  if (lease != st.leases.end()) --lease->second.starting;
  if (current) {
    auto& tj = i->second;
    mark_running(self, tj);
    tj.lease_deadline = mono_now(self) + std::chrono::milliseconds(tj.rec.spec.timeouts.heartbeat);
    st.deadlines.emplace(tj.lease_deadline, std::make_pair(id, token));
    st.leased.insert(id);
    // A lease request that went away meanwhile: the job stays leased to the
    // worker by name and is reclaimed if it never heartbeats.
    if (lease != st.leases.end()) lease->second.leased.push_back(std::move(rec));
    arm_tick(self);
  }
  maybe_finish_lease(self, lease_id, false);
}

void on_start_failed(self_ptr self, job_id id, std::uint64_t token, const caf::error& err,
                     std::uint64_t lease_id) {
  auto& st = self->state;
  if (auto lease = st.leases.find(lease_id); lease != st.leases.end()) --lease->second.starting;
  auto i = st.jobs.find(id);
  if (i != st.jobs.end() && i->second.ph == phase::starting && i->second.token == token) {
    auto& tj = i->second;
    end_attempt(self, tj);
    // Not started (overloaded journal, or not due): back in line, keeping
    // its slot and locks so its place is not lost.
    (void)err;
    tj.ph = phase::granted;
    st.granted.push_front(id);
  }
  maybe_finish_lease(self, lease_id, false);
}

void start(self_ptr self, tracked_job& tj, scheduler_state::worker_entry& worker,
           std::uint64_t lease_id) {
  auto& st = self->state;
  // 53 bits: exact in JSON numbers (JavaScript, jq); never 0.
  auto token = (st.rng() >> 11) | 1;
  auto id = tj.rec.id;
  tj.ph = phase::starting;
  tj.token = token;
  tj.worker = worker.name;
  ++worker.held;
  if (worker.local) {
    // One way: the job actor hands the committed start to a runner itself,
    // the scheduler sees job.started in the committed batch, and a refusal
    // comes back as (atom::refused, id, token).
    caf::anon_send(actor_of(self, id), atom::command::value,
                   job_command{cmd_start{worker.name, token}}, std::string{engine_principal});
    return;
  }
  // The start is the lease caller's doing: its principal goes on job.started.
  std::string principal = "worker:" + worker.name;
  if (auto lease = st.leases.find(lease_id); lease != st.leases.end()) {
    ++lease->second.starting;
    lease->second.taken.push_back(id);
    if (!lease->second.request.principal.empty()) principal = lease->second.request.principal;
  }
  self->request(actor_of(self, id), caf::infinite, atom::command::value,
                job_command{cmd_start{worker.name, token}}, std::move(principal))
      .then([self, id, token,
             lease_id](job_record& rec) { on_started(self, id, token, rec, lease_id); },
            [self, id, token, lease_id](const caf::error& err) {
              on_start_failed(self, id, token, err, lease_id);
            });
}

namespace {

bool has_room(const scheduler_state::worker_entry& w) { return w.limit == 0 || w.held < w.limit; }

}  // namespace

void dispatch(self_ptr self) {
  auto& st = self->state;
  if (st.runners) {
    auto& local = st.workers[st.config.local_worker];
    while (has_room(local)) {
      auto tj = next_startable(self, [](const std::string&) { return true; });
      if (!tj) break;
      start(self, *tj, local, 0);
    }
  }
  for (auto& [lease_id, l] : st.leases) {
    // A lease is filled in one round. Each job added later would postpone
    // its answer by another start commit, for as long as jobs kept arriving
    // faster than starts commit (docs/decisions.md, "Leases are filled in
    // one round"). Later jobs go to the other waiting leases or to the
    // worker's next lease call.
    if (l.filled) continue;
    auto& worker = st.workers[l.request.worker];
    // A reference, not the binding: clang before 16 cannot capture a
    // structured binding in a lambda (the fuzz build uses clang 14).
    const auto& request = l.request;
    while (l.leased.size() + l.starting < l.request.max_jobs && has_room(worker)) {
      auto tj = next_startable(self, [&](const std::string& q) { return serves(request, q); });
      if (!tj) break;
      start(self, *tj, worker, lease_id);
      l.filled = true;
    }
  }
}

// -- timers -------------------------------------------------------------------------

void arm_tick(self_ptr self) {
  auto& st = self->state;
  auto now_mono = mono_now(self);
  auto now_wall = wall_now(self);
  auto earliest = time_point::max();
  auto from_wall = [&](millis at) {
    // +1 ms: never fire before the due time; the tick re-checks anyway.
    // Due times are wall times, and the wall clock can jump (NTP, an
    // operator): waiting at most wall_recheck_ms before reading it again
    // starts a job within that long of a jump forward past its due time,
    // and a jump back never starts one early (on_tick compares wall times).
    const millis wait = std::max<millis>(0, at - now_wall) + 1;
    return now_mono + std::chrono::milliseconds(std::min(wait, wall_recheck_ms));
  };
  if (!st.due_timers.empty())
    earliest = std::min(earliest, from_wall(st.due_timers.begin()->first));
  if (!st.start_limits.empty())
    earliest = std::min(earliest, from_wall(st.start_limits.begin()->first));
  if (!st.deadlines.empty()) earliest = std::min(earliest, st.deadlines.begin()->first);
  if (!st.leased.empty() || !st.saved_no_leases) earliest = std::min(earliest, st.next_lease_save);
  // A lease whose jobs are starting is answered when their starts commit,
  // not at its deadline: a tick for it (a lease without wait is due at
  // once) would only wake the timer thread.
  for (auto& [id, l] : st.leases)
    if (l.starting == 0) earliest = std::min(earliest, l.deadline);
  if (!st.schedule_retries.empty())
    earliest = std::min(earliest, st.schedule_retries.begin()->first);
  if (earliest == time_point::max()) return;
  if (!st.ticks_in_flight.empty() && *st.ticks_in_flight.begin() <= earliest) return;
  st.ticks_in_flight.insert(earliest);
  auto delay = std::max(earliest - now_mono, caf::actor_clock::duration_type::zero());
  self->delayed_send(self, delay, atom::tick::value);
}

/// Saves what is left of every remote lease (actors/lease_clock.hpp).
void save_lease_clock(self_ptr self, time_point now_mono) {
  auto& st = self->state;
  st.next_lease_save = now_mono + lease_save_interval;
  std::vector<saved_lease> leases;
  leases.reserve(st.leased.size());
  for (auto it = st.leased.begin(); it != st.leased.end();) {
    auto i = st.jobs.find(*it);
    if (i == st.jobs.end() || i->second.ph != phase::running ||
        i->second.lease_deadline == time_point::max()) {
      it = st.leased.erase(it);
      continue;
    }
    const auto& tj = i->second;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(tj.lease_deadline - now_mono);
    leases.push_back(
        {tj.rec.id, tj.token, static_cast<std::uint64_t>(std::max<std::int64_t>(0, left.count()))});
    ++it;
  }
  if (leases.empty() && st.saved_no_leases) return;
  st.saved_no_leases = leases.empty();
  self->send(st.journal, atom::leases::value, encode_leases(leases));
}

void on_tick(self_ptr self) {
  auto& st = self->state;
  if (!st.ticks_in_flight.empty()) st.ticks_in_flight.erase(st.ticks_in_flight.begin());
  auto now_wall = wall_now(self);
  auto now_mono = mono_now(self);
  if (st.next_lease_save <= now_mono) save_lease_clock(self, now_mono);
  while (!st.due_timers.empty() && st.due_timers.begin()->first <= now_wall) {
    auto id = st.due_timers.begin()->second;
    st.due_timers.erase(st.due_timers.begin());
    auto i = st.jobs.find(id);
    if (i != st.jobs.end() && i->second.ph == phase::waiting && i->second.rec.due_at <= now_wall)
      place(self, i->second);
  }
  while (!st.start_limits.empty() && st.start_limits.begin()->first <= now_wall) {
    auto id = st.start_limits.begin()->second;
    st.start_limits.erase(st.start_limits.begin());
    auto i = st.jobs.find(id);
    if (i == st.jobs.end()) continue;
    auto& tj = i->second;
    bool not_started = tj.ph == phase::waiting || tj.ph == phase::ready ||
                       tj.ph == phase::locking || tj.ph == phase::granted;
    auto limit = tj.rec.spec.timeouts.to_start;
    if (not_started && limit > 0 && became_due_at(tj.rec) + limit <= now_wall)
      tell_job(self, id,
               cmd_expire{"not started within " + std::to_string(limit) + " ms of its due time"});
  }
  while (!st.schedule_retries.empty() && st.schedule_retries.begin()->first <= now_mono) {
    auto id = st.schedule_retries.begin()->second;
    st.schedule_retries.erase(st.schedule_retries.begin());
    if (auto s = st.schedules.find(id); s != st.schedules.end() && s->second.last_run_ended)
      continue_schedule(self, s->second);
  }
  while (!st.deadlines.empty() && st.deadlines.begin()->first <= now_mono) {
    auto [id, token] = st.deadlines.begin()->second;
    st.deadlines.erase(st.deadlines.begin());
    auto i = st.jobs.find(id);
    if (i == st.jobs.end()) continue;
    auto& tj = i->second;
    if (tj.ph != phase::running || tj.token != token) continue;
    if (tj.stop_deadline <= now_mono) {
      flush_progress(self, tj);
      tj.ph = phase::reclaiming;
      tell_job(self, id,
               cmd_cancel{"cancelled on request; attempt " + std::to_string(tj.rec.attempts) +
                              " did not stop within its time to stop (" +
                              std::to_string(tj.rec.spec.timeouts.to_stop) + " ms)",
                          /*at_once=*/true});
      continue;
    }
    std::string reason;
    if (tj.run_deadline <= now_mono)
      reason = "time to run exceeded (" + std::to_string(tj.rec.spec.timeouts.to_run) + " ms)";
    else if (tj.lease_deadline <= now_mono)
      reason = "lease expired: no heartbeat from " + tj.worker + " within " +
               std::to_string(tj.rec.spec.timeouts.heartbeat) + " ms";
    else
      continue;                // a deadline that was extended since
    flush_progress(self, tj);  // what the attempt reported before it went quiet
    tj.ph = phase::reclaiming;
    ++st.reclaimed;
    tell_job(self, id, cmd_reclaim{reason, std::uniform_real_distribution<double>(0, 1)(st.rng)});
  }
  std::vector<std::uint64_t> expired;
  for (auto& [lease_id, l] : st.leases)
    if (l.deadline <= now_mono) expired.push_back(lease_id);
  for (auto lease_id : expired) maybe_finish_lease(self, lease_id, true);
  dispatch(self);
  arm_tick(self);
}

}  // namespace jobsmith::scheduling
