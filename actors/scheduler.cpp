#include "actors/scheduler.hpp"

#include <algorithm>

#include "actors/caf_error.hpp"
#include "actors/job_actor.hpp"
#include "actors/lease_clock.hpp"
#include "actors/lock_actor.hpp"

namespace jobsmith {

namespace {

using self_ptr = scheduler_actor::stateful_pointer<scheduler_state>;
using tracked_job = scheduler_state::tracked_job;
using phase = scheduler_state::phase;
using time_point = scheduler_state::time_point;

constexpr const char* engine_principal = "engine";
// The longest the scheduler sleeps on a wall-clock timer before reading the
// wall clock again (see arm_tick). Leases and phase limits run on the
// monotonic clock and are not affected by wall jumps at all.
constexpr millis wall_recheck_ms = 1'000;
// How soon a schedule's next run is submitted again after the log refused it.
constexpr std::chrono::milliseconds schedule_retry_interval{1'000};

bool is_local_worker(const std::string& name) { return name.rfind("local:", 0) == 0; }

millis wall_now(self_ptr self) { return self->state.clock(); }
time_point mono_now(self_ptr self) { return self->clock().now(); }

void dispatch(self_ptr self);
void arm_tick(self_ptr self);
void submit_internal(self_ptr self, std::vector<job_submitted> specs, std::string principal,
                     caf::typed_response_promise<std::vector<job_id>>* promise,
                     schedule_id continues = 0);

// -- job actors -----------------------------------------------------------------

job_actor spawn_job(self_ptr self, job_record rec, bool hydrated) {
  auto id = rec.id;
  // Not linked: a link costs the scheduler a linear scan when the job's
  // actor stops. Stopped actors report (atom::stop, id) instead, and the
  // scheduler stops the live ones when it exits.
  // lazy_init: the actor first runs when its first message arrives, which
  // saves a scheduling round per job.
  auto actor = self->spawn<caf::lazy_init>(job_behavior, std::move(rec), hydrated, self->state.journal,
                           caf::actor_cast<scheduler_actor>(self), self->state.clock,
                           self->state.runners);
  self->state.actors[id] = actor;
  return actor;
}

/// The job's actor, spawned on first need. A tracked job that never had one
/// is spawned from the scheduler's record: while no actor exists nobody else
/// appends for the job, so that fold is the job's whole committed stream.
job_actor actor_of(self_ptr self, job_id id) {
  auto& st = self->state;
  auto i = st.actors.find(id);
  if (i != st.actors.end()) return i->second;
  if (auto j = st.jobs.find(id); j != st.jobs.end() && j->second.holds_payload) {
    auto& tj = j->second;
    tj.holds_payload = false;
    auto rec = tj.rec;
    // The scheduler keeps no payload once the actor has it, except for a
    // schedule's template.
    if (tj.rec.spec.schedule == 0) std::string{}.swap(tj.rec.spec.payload);
    return spawn_job(self, std::move(rec), true);
  }
  job_record shell;
  shell.id = id;
  return spawn_job(self, std::move(shell), false);
}

/// Sends a command whose answer nobody waits for (engine decisions: expire,
/// reclaim, progress). The outcome arrives as committed events.
void tell_job(self_ptr self, job_id id, job_command cmd,
              std::string principal = std::string{engine_principal}) {
  self->request(actor_of(self, id), caf::infinite, atom::command::value, std::move(cmd),
                std::move(principal))
      .then([](const job_record&) {}, [](const caf::error&) {});
}

/// Sends what heartbeats buffered (detail, percent, log lines) to the job's
/// actor as one progress command; nothing when there is nothing new.
/// Heartbeats are written at most once per progress_interval this way, and
/// an attempt's end flushes them first.
void flush_progress(self_ptr self, scheduler_state::tracked_job& tj) {
  auto& buf = tj.buffered;
  if (buf.detail.empty() && buf.percent < 0 && buf.lines.empty()) return;
  tj.last_progress = wall_now(self);
  auto principal = buf.principal.empty() ? "worker:" + tj.worker : std::move(buf.principal);
  tell_job(self, tj.rec.id,
           cmd_progress{tj.token, std::move(buf.detail), buf.percent, std::move(buf.lines)},
           std::move(principal));
  buf = heartbeat_request{};
}

// -- queues and slots -------------------------------------------------------------

scheduler_state::queue_slot& queue_of(self_ptr self, const std::string& name) {
  return self->state.queues[name];
}

bool queue_open(self_ptr self, const std::string& name) {
  auto& q = queue_of(self, name);
  return !q.settings.paused && (q.settings.concurrency == 0 || q.active < q.settings.concurrency);
}

/// Withdraws the job from everything that waits or holds on its behalf:
/// the ready index, its queue slot, its locks, the grant list (lazily).
void release_holds(self_ptr self, tracked_job& tj) {
  auto& st = self->state;
  st.ready.erase(tj.rec.id);
  if (tj.holds_slot) {
    auto& q = queue_of(self, tj.rec.spec.queue);
    if (q.active > 0) --q.active;
    tj.holds_slot = false;
  }
  if (tj.holds_locks) {
    self->send(st.locks, atom::release::value, tj.rec.id);
    tj.holds_locks = false;
  }
}

/// The attempt of a starting/running job is over: free the worker's slot.
/// (An in-process handler still at it is told to stop by its job actor.)
void end_attempt(self_ptr self, tracked_job& tj) {
  auto& st = self->state;
  if (auto w = st.workers.find(tj.worker); w != st.workers.end() && w->second.held > 0)
    --w->second.held;
  tj.worker.clear();
  st.leased.erase(tj.rec.id);
  tj.lease_deadline = time_point::max();
  tj.run_deadline = time_point::max();
}

/// Puts a waiting job where its due time says: ready now, or a timer.
void place(self_ptr self, tracked_job& tj) {
  auto& st = self->state;
  auto now = wall_now(self);
  auto& rec = tj.rec;
  if (rec.spec.timeouts.to_start > 0)
    st.start_limits.emplace(rec.due_at + rec.spec.timeouts.to_start, rec.id);
  if (rec.due_at <= now) {
    tj.ph = phase::ready;
    st.ready.insert(rec.spec.queue, {rec.id, rec.spec.priority, rec.due_at});
  } else {
    tj.ph = phase::waiting;
    st.due_timers.emplace(rec.due_at, rec.id);
  }
}

// -- schedules --------------------------------------------------------------------

void append_engine_events(self_ptr self, std::vector<event> events) {
  self->request(self->state.journal, caf::infinite, atom::append::value, std::move(events))
      .then([](sequence_t) {}, [](const caf::error&) {});
}

/// The last run of a schedule ended: submit the next or end the schedule.
void continue_schedule(self_ptr self, schedule_info& s) {
  auto& st = self->state;
  auto now = wall_now(self);
  const auto& rec = s.spec.recur;
  if (rec.failure_limit > 0 && s.consecutive_failures >= rec.failure_limit) {
    auto id = s.id;
    auto reason = std::to_string(s.consecutive_failures) + " consecutive failed runs";
    st.schedules.erase(id);
    append_engine_events(self, {event{0, 0, now, engine_principal, schedule_deleted{id, reason}}});
    return;
  }
  auto spec = s.spec;
  spec.run_at = next_recurrence(rec, now, s.consecutive_failures);
  s.last_run_ended = false;
  submit_internal(self, {std::move(spec)}, engine_principal, nullptr, s.id);
}

/// The next run of schedule `id` was not committed (a failed or refused
/// write): the schedule is due for a run again, tried once a second until
/// the log takes it, as the journal retries its disk.
void retry_schedule_later(self_ptr self, schedule_id id) {
  auto& st = self->state;
  auto s = st.schedules.find(id);
  if (s == st.schedules.end()) return;  // deleted meanwhile
  s->second.last_run_ended = true;
  st.schedule_retries.emplace(mono_now(self) + schedule_retry_interval, id);
  arm_tick(self);
}

void schedule_run_ended(self_ptr self, const job_record& rec) {
  auto& st = self->state;
  if (rec.spec.schedule == 0) return;
  auto s = st.schedules.find(rec.spec.schedule);
  if (s == st.schedules.end() || s->second.last_run != rec.id) return;
  s->second.last_run_ended = true;
  switch (verdict_of(rec.state)) {
    case run_verdict::success: s->second.consecutive_failures = 0; break;
    case run_verdict::failure: ++s->second.consecutive_failures; break;
    case run_verdict::neutral: break;
  }
  continue_schedule(self, s->second);
}

// -- tracking -----------------------------------------------------------------------

void untrack(self_ptr self, job_id id) {
  auto& st = self->state;
  auto i = st.jobs.find(id);
  if (i == st.jobs.end()) return;
  auto& tj = i->second;
  release_holds(self, tj);
  if (!tj.rec.spec.unique_key.empty()) {
    auto k = st.unique_keys.find(tj.rec.spec.unique_key);
    if (k != st.unique_keys.end() && k->second == id) st.unique_keys.erase(k);
  }
  auto rec = std::move(tj.rec);
  st.jobs.erase(i);
  // Only a terminal commit untracks a job, and the actor that committed it
  // stops without a stop notice (job_actor.cpp, stop_after_terminal_commit).
  st.actors.erase(id);
  schedule_run_ended(self, rec);
}

/// Starts tracking a live job (new, recovered or revived).
tracked_job& track(self_ptr self, job_record rec) {
  auto& st = self->state;
  auto id = rec.id;
  auto& tj = st.jobs[id];
  tj = tracked_job{};
  tj.rec = std::move(rec);
  if (!tj.rec.spec.unique_key.empty()) st.unique_keys[tj.rec.spec.unique_key] = id;
  // Only a schedule that still exists: a run submitted just before its
  // schedule was deleted (or recovered after that) must not bring it back.
  // New schedules are created from their schedule.created (submit_internal).
  if (auto s = st.schedules.find(tj.rec.spec.schedule);
      tj.rec.spec.schedule != 0 && s != st.schedules.end()) {
    if (s->second.last_run <= id) {
      s->second.last_run = id;
      s->second.last_run_ended = false;
      s->second.spec = tj.rec.spec;
    }
  }
  queue_of(self, tj.rec.spec.queue);  // the queue exists from its first job on
  switch (tj.rec.state) {
    case job_state::scheduled: place(self, tj); break;
    case job_state::pending_review: tj.ph = phase::review; break;
    default: break;  // running: the caller sets up the lease
  }
  return tj;
}

void mark_running(self_ptr self, tracked_job& tj);

/// After a committed event changed tj.rec: move the job to where its new
/// state says.
void resync(self_ptr self, tracked_job& tj) {
  auto& rec = tj.rec;
  if (rec.state == job_state::running) {
    // Our own start. A local one is running now (its job actor handed it to
    // a runner); a remote one waits for the reply that carries it to the lease.
    if (tj.ph == phase::starting && tj.token == rec.lease_token && is_local_worker(tj.worker))
      mark_running(self, tj);
    return;
  }
  bool was_attempt = tj.ph == phase::starting || tj.ph == phase::running ||
                     tj.ph == phase::reclaiming;
  if (was_attempt) end_attempt(self, tj);
  if (rec.state == job_state::scheduled) {
    if (was_attempt) {
      release_holds(self, tj);
      place(self, tj);
    } else if (tj.ph == phase::waiting) {
      place(self, tj);  // run now: due time moved
    }
    return;
  }
  release_holds(self, tj);
  if (rec.state == job_state::pending_review) {
    tj.ph = phase::review;
    return;
  }
  if (is_terminal(rec.state)) untrack(self, rec.id);
}

/// Queue and schedule events. Idempotent: the handler that appended a queue
/// event applies it on the reply already.
bool apply_engine_event(self_ptr self, const event& ev) {
  auto& st = self->state;
  if (auto d = std::get_if<schedule_deleted>(&ev.body)) {
    st.schedules.erase(d->id);
    return false;
  }
  std::unordered_map<std::string, queue_settings> one;
  std::string name;
  if (auto p = std::get_if<queue_paused>(&ev.body)) name = p->queue;
  else if (auto r = std::get_if<queue_resumed>(&ev.body)) name = r->queue;
  else if (auto c = std::get_if<queue_configured>(&ev.body)) name = c->queue;
  else return false;
  auto& slot = queue_of(self, name);
  one[name] = slot.settings;
  apply_queue_event(one, ev);
  slot.settings = one[name];
  return true;
}

void on_committed(self_ptr self, const std::vector<event>& batch) {
  auto& st = self->state;
  bool changed = false;
  for (auto& ev : batch) {
    if (ev.job == 0) {
      changed |= apply_engine_event(self, ev);
      continue;
    }
    auto i = st.jobs.find(ev.job);
    if (i == st.jobs.end()) continue;
    auto& tj = i->second;
    if (ev.seq <= tj.rec.last_seq) continue;  // applied when it was submitted
    apply(tj.rec, ev);
    resync(self, tj);
    changed = true;
  }
  if (changed) dispatch(self);
}

// -- dispatch ---------------------------------------------------------------------

bool serves(const lease_request& req, const std::string& queue) {
  return req.queues.empty() ||
         std::find(req.queues.begin(), req.queues.end(), queue) != req.queues.end();
}

void on_granted(self_ptr self, job_id id) {
  auto& st = self->state;
  auto i = st.jobs.find(id);
  if (i == st.jobs.end() || i->second.ph != phase::locking) return;
  i->second.ph = phase::granted;
  st.granted.push_back(id);
}

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
    auto best = st.ready.best([&](const std::string& q) { return accepts(q) && queue_open(self, q); });
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
    (void) err;
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
    if (!lease->second.request.principal.empty()) principal = lease->second.request.principal;
  }
  self->request(actor_of(self, id), caf::infinite, atom::command::value,
                job_command{cmd_start{worker.name, token}}, std::move(principal))
      .then([self, id, token, lease_id](
                job_record& rec) { on_started(self, id, token, rec, lease_id); },
            [self, id, token, lease_id](const caf::error& err) {
              on_start_failed(self, id, token, err, lease_id);
            });
}

bool has_room(const scheduler_state::worker_entry& w) { return w.limit == 0 || w.held < w.limit; }

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
  if (!st.due_timers.empty()) earliest = std::min(earliest, from_wall(st.due_timers.begin()->first));
  if (!st.start_limits.empty())
    earliest = std::min(earliest, from_wall(st.start_limits.begin()->first));
  if (!st.deadlines.empty()) earliest = std::min(earliest, st.deadlines.begin()->first);
  if (!st.leased.empty() || !st.saved_no_leases) earliest = std::min(earliest, st.next_lease_save);
  // A lease whose jobs are starting is answered when their starts commit,
  // not at its deadline: a tick for it (a lease without wait is due at
  // once) would only wake the timer thread.
  for (auto& [id, l] : st.leases)
    if (l.starting == 0) earliest = std::min(earliest, l.deadline);
  if (!st.schedule_retries.empty()) earliest = std::min(earliest, st.schedule_retries.begin()->first);
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
    leases.push_back({tj.rec.id, tj.token, static_cast<std::uint64_t>(std::max<std::int64_t>(0, left.count()))});
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
    if (not_started && limit > 0 && tj.rec.due_at + limit <= now_wall)
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
    std::string reason;
    if (tj.run_deadline <= now_mono)
      reason = "time to run exceeded (" + std::to_string(tj.rec.spec.timeouts.to_run) + " ms)";
    else if (tj.lease_deadline <= now_mono)
      reason = "lease expired: no heartbeat from " + tj.worker + " within " +
               std::to_string(tj.rec.spec.timeouts.heartbeat) + " ms";
    else
      continue;  // a deadline that was extended since
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

// -- submissions ----------------------------------------------------------------------

/// Assigns ids, resolves unique keys, appends; answers `promise` (if any)
/// once durable.
void submit_internal(self_ptr self, std::vector<job_submitted> specs, std::string principal,
                     caf::typed_response_promise<std::vector<job_id>>* promise,
                     schedule_id continues) {
  auto& st = self->state;
  auto fail = [&](engine_errc code, std::string msg) {
    if (promise) promise->deliver(to_caf(code, std::move(msg)));
    if (continues != 0 && code == engine_errc::overloaded) retry_schedule_later(self, continues);
  };
  // A schedule's next run keeps the interval it was accepted with, even if
  // the minimum has risen since (a log written by an older version).
  const millis min_recurrence = continues != 0 ? 1 : st.config.min_recurrence_interval;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (auto problem = validate(specs[i], min_recurrence)) {
      auto where = specs.size() > 1 ? "jobs[" + std::to_string(i) + "]: " : std::string{};
      return fail(engine_errc::invalid_argument, where + problem->message);
    }
  }
  if (st.jobs.size() + specs.size() > st.config.max_live_jobs)
    return fail(engine_errc::overloaded, std::to_string(st.jobs.size()) +
                                             " live jobs, the configured maximum is " +
                                             std::to_string(st.config.max_live_jobs) +
                                             "; try again later");
  if (st.pending_submits + specs.size() > st.config.max_pending_submits)
    return fail(engine_errc::overloaded, std::to_string(st.pending_submits) +
                                             " submitted jobs are waiting for disk; try again later");
  auto now = wall_now(self);
  std::vector<job_id> ids;
  ids.reserve(specs.size());
  std::vector<event> events;
  events.reserve(specs.size());
  std::vector<std::string> reserved_keys;
  for (auto& spec : specs) {
    if (!spec.unique_key.empty()) {
      if (auto k = st.unique_keys.find(spec.unique_key); k != st.unique_keys.end()) {
        ids.push_back(k->second);
        continue;
      }
    }
    auto id = st.next_job_id++;
    ids.push_back(id);
    if (!spec.unique_key.empty()) {
      st.unique_keys[spec.unique_key] = id;
      reserved_keys.push_back(spec.unique_key);
    }
    if (spec.recur.interval > 0 && spec.schedule == 0) {
      spec.schedule = id;
      events.push_back(event{0, 0, now, principal, schedule_created{id, id}});
    }
    events.push_back(event{0, id, now, principal, std::move(spec)});
  }
  if (events.empty()) {
    if (promise) promise->deliver(std::move(ids));
    return;
  }
  auto count = events.size();
  st.pending_submits += count;
  // The jobs' records as they will be once committed (the fold of their
  // job.submitted), each with the offset of its event in the batch.
  std::vector<std::pair<job_record, sequence_t>> records;
  records.reserve(events.size());
  for (sequence_t offset = 0; offset < events.size(); ++offset) {
    if (!std::holds_alternative<job_submitted>(events[offset].body)) continue;
    records.emplace_back(job_record{}, offset);
    apply(records.back().first, events[offset]);
  }
  auto rp = promise ? *promise : caf::typed_response_promise<std::vector<job_id>>{};
  self->request(st.journal, caf::infinite, atom::append::value, std::move(events))
      .then(
          [self, count, records = std::move(records), ids, rp](sequence_t first) mutable {
            auto& st = self->state;
            st.pending_submits -= count;
            // A new schedule exists from its first run on (see track()).
            for (auto& [rec, offset] : records)
              if (rec.spec.schedule == rec.id) st.schedules[rec.id].id = rec.id;
            for (auto& [rec, offset] : records) {
              rec.last_seq = first + offset;
              // Its actor is spawned when the job first needs one (start,
              // command): a waiting job costs a record, not an actor.
              track(self, std::move(rec)).holds_payload = true;
            }
            if (rp.pending()) rp.deliver(std::move(ids));
            dispatch(self);
            arm_tick(self);
          },
          [self, count, reserved_keys, rp, continues](caf::error& err) mutable {
            auto& st = self->state;
            st.pending_submits -= count;
            for (auto& key : reserved_keys) st.unique_keys.erase(key);
            if (rp.pending()) rp.deliver(std::move(err));
            if (continues != 0) retry_schedule_later(self, continues);
          });
}

// -- commands and queries ----------------------------------------------------------------

/// What every command goes through before its job's actor gets it. False
/// when it was answered here (no such job).
bool before_command(self_ptr self, job_id id, const job_command& cmd,
                    caf::typed_response_promise<job_record>& rp) {
  if (id == 0 || id >= self->state.next_job_id) {
    rp.deliver(to_caf(engine_errc::not_found, "job " + std::to_string(id) + " does not exist"));
    return false;
  }
  // The attempt's end under its current lease: what its heartbeats
  // buffered goes to the job's actor first (in order: same sender).
  if (auto j = self->state.jobs.find(id); j != self->state.jobs.end()) {
    std::uint64_t token = 0;
    if (auto c = std::get_if<cmd_succeed>(&cmd)) token = c->lease_token;
    else if (auto f = std::get_if<cmd_fail>(&cmd)) token = f->lease_token;
    if (token != 0 && token == j->second.token && j->second.ph == phase::running)
      flush_progress(self, j->second);
  }
  return true;
}

void route(self_ptr self, job_id id, job_command cmd, std::string principal,
           caf::typed_response_promise<job_record> rp, bool may_retry) {
  auto actor = actor_of(self, id);
  self->request(actor, caf::infinite, atom::command::value, cmd, principal)
      .then([rp](job_record& rec) mutable { rp.deliver(std::move(rec)); },
            [self, id, cmd, principal, rp, may_retry, actor](caf::error& err) mutable {
              if (may_retry && err == caf::sec::request_receiver_down) {
                // The job's actor stopped (terminal) just before: rehydrate.
                auto& st = self->state;
                if (auto i = st.actors.find(id); i != st.actors.end() && i->second == actor)
                  st.actors.erase(i);
                route(self, id, std::move(cmd), std::move(principal), rp, false);
                return;
              }
              rp.deliver(std::move(err));
            });
}

std::string phase_name(phase ph) {
  switch (ph) {
    case phase::waiting: return "scheduled";
    case phase::ready: return "ready";
    case phase::locking: return "locking";
    case phase::granted: return "granted";
    case phase::starting: return "starting";
    case phase::running: return "running";
    case phase::reclaiming: return "reclaiming";
    case phase::review: return "pending_review";
  }
  return "unknown";
}

queue_info info_of(self_ptr self, const std::string& name) {
  auto& st = self->state;
  queue_info info;
  info.name = name;
  auto& q = queue_of(self, name);
  info.paused = q.settings.paused;
  info.concurrency = q.settings.concurrency;
  for (auto& [id, tj] : st.jobs) {
    if (tj.rec.spec.queue != name) continue;
    switch (tj.ph) {
      case phase::waiting: ++info.scheduled; break;
      case phase::ready: ++info.ready; break;
      case phase::locking:
      case phase::granted: ++info.locking; break;
      case phase::starting:
      case phase::running:
      case phase::reclaiming: ++info.running; break;
      case phase::review: break;
    }
  }
  return info;
}

void recover_jobs(self_ptr self, recovered_state& seed) {
  auto& st = self->state;
  auto now = mono_now(self);
  for (auto& [name, settings] : seed.queues) queue_of(self, name).settings = settings;
  for (auto& [id, s] : seed.schedules) st.schedules[id] = s;
  st.next_job_id = seed.next_job_id;
  std::vector<job_id> dead_local;
  for (auto& rec : seed.live_jobs) {
    auto& tj = track(self, std::move(rec));
    tj.holds_payload = true;  // its actor is spawned on first need (actor_of)
    if (tj.rec.state != job_state::running) continue;
    // Step 3: a running job keeps its locks and its slot.
    tj.ph = phase::running;
    tj.worker = tj.rec.worker;
    tj.token = tj.rec.lease_token;
    tj.holds_slot = true;
    ++queue_of(self, tj.rec.spec.queue).active;
    if (!tj.rec.spec.resources.empty()) {
      tj.holds_locks = true;
      self->request(st.locks, caf::infinite, atom::acquire::value, tj.rec.id,
                    tj.rec.spec.resources)
          .then([](bool) {}, [](const caf::error&) {});
    }
    auto& worker = st.workers[tj.worker];
    worker.name = tj.worker;
    ++worker.held;
    if (is_local_worker(tj.worker)) {
      dead_local.push_back(tj.rec.id);
    } else {
      // What was left of the lease when the previous run last saved it
      // (actors/lease_clock.hpp); the whole timeout when nothing was saved.
      auto left = std::chrono::milliseconds(tj.rec.spec.timeouts.heartbeat);
      if (auto saved = seed.saved_leases.find(tj.rec.id);
          saved != seed.saved_leases.end() && saved->second.token == tj.token &&
          saved->second.remaining_ms < static_cast<std::uint64_t>(left.count()))
        left = std::chrono::milliseconds(static_cast<std::int64_t>(saved->second.remaining_ms));
      tj.lease_deadline = now + left;
      st.deadlines.emplace(tj.lease_deadline, std::make_pair(tj.rec.id, tj.token));
      st.leased.insert(tj.rec.id);
    }
  }
  // The in-process worker of a previous run died with its process.
  for (auto id : dead_local) {
    auto& tj = st.jobs.at(id);
    tj.ph = phase::reclaiming;
    ++st.reclaimed;
    tell_job(self, id,
             cmd_reclaim{"engine restarted while " + tj.worker + " ran it",
                         std::uniform_real_distribution<double>(0, 1)(st.rng)});
  }
  for (auto& [id, s] : st.schedules)
    if (s.last_run_ended) continue_schedule(self, s);
}

}  // namespace

scheduler_actor::behavior_type scheduler(scheduler_actor::stateful_pointer<scheduler_state> self,
                                         scheduler_config config, recovered_state seed,
                                         journal_actor journal,
                                         std::shared_ptr<const runner_set> runners,
                                         wall_clock clock) {
  auto& st = self->state;
  st.config = std::move(config);
  st.journal = std::move(journal);
  st.runners = std::move(runners);
  st.clock = std::move(clock);
  st.rng.seed(st.config.seed);
  st.locks = self->spawn<caf::linked>(lock_behavior, caf::actor_cast<scheduler_actor>(self));
  if (st.runners) {
    auto& local = st.workers[st.config.local_worker];
    local.name = st.config.local_worker;
    local.limit = st.config.local_slots;
    local.local = true;
  }
  self->send(st.journal, atom::subscribe::value, caf::actor_cast<caf::actor>(self));
  // On shutdown the job actors stop with the scheduler.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Waiting leases hear `closed` now: a long poll would otherwise hold its
    // caller (and the actor system's shutdown) until its deadline.
    for (auto& [lease_id, l] : self->state.leases)
      if (l.promise.pending()) l.promise.deliver(to_caf(engine_errc::closed, "engine is closed"));
    self->state.leases.clear();
    for (auto& [id, actor] : self->state.actors) self->send_exit(actor, msg.reason);
    self->state.actors.clear();
    self->quit(msg.reason);
  });
  recover_jobs(self, seed);
  dispatch(self);
  arm_tick(self);
  return {
      [self](atom::submit, std::vector<job_submitted>& specs,
             std::string& principal) -> caf::typed_response_promise<std::vector<job_id>> {
        auto rp = self->make_response_promise<std::vector<job_id>>();
        submit_internal(self, std::move(specs), std::move(principal), &rp);
        return rp;
      },
      [self](atom::command, job_id id, job_command& cmd,
             std::string& principal) -> caf::typed_response_promise<job_record> {
        auto rp = self->make_response_promise<job_record>();
        if (before_command(self, id, cmd, rp))
          route(self, id, std::move(cmd), std::move(principal), rp, true);
        return rp;
      },
      [self](atom::forward, job_id id, job_command& cmd,
             std::string& principal) -> caf::typed_response_promise<job_record> {
        auto rp = self->make_response_promise<job_record>();
        if (before_command(self, id, cmd, rp))
          rp.delegate(actor_of(self, id), atom::command::value, std::move(cmd),
                      std::move(principal));
        return rp;
      },
      [self](atom::committed, const committed_batch& batch) {
        on_committed(self, *batch);
        arm_tick(self);
      },
      [self](atom::granted, job_id id) {
        on_granted(self, id);
        dispatch(self);
      },
      [self](atom::unique, std::string& key, job_id id) -> caf::typed_response_promise<bool> {
        auto& st = self->state;
        auto rp = self->make_response_promise<bool>();
        auto [k, fresh] = st.unique_keys.emplace(key, id);
        if (!fresh && k->second != id)
          rp.deliver(to_caf(engine_errc::illegal_transition,
                            "job " + std::to_string(id) + " cannot be retried: its unique key '" +
                                key + "' belongs to live job " + std::to_string(k->second)));
        else
          rp.deliver(true);
        return rp;
      },
      [self](atom::release, std::string& key, job_id id) {
        auto& st = self->state;
        auto k = st.unique_keys.find(key);
        if (k != st.unique_keys.end() && k->second == id && st.jobs.count(id) == 0)
          st.unique_keys.erase(k);
      },
      [self](atom::revived, job_record& rec) {
        auto& st = self->state;
        if (st.jobs.count(rec.id) != 0 || is_terminal(rec.state)) return;
        if (rec.spec.schedule == 0) std::string{}.swap(rec.spec.payload);  // its actor has it
        track(self, std::move(rec));
        dispatch(self);
        arm_tick(self);
      },
      [self](atom::lease, lease_request& req) -> caf::typed_response_promise<std::vector<job_record>> {
        auto& st = self->state;
        auto rp = self->make_response_promise<std::vector<job_record>>();
        if (req.worker.empty() || is_local_worker(req.worker)) {
          rp.deliver(to_caf(engine_errc::invalid_argument,
                            "worker name must be non-empty and not start with 'local:'"));
          return rp;
        }
        if (req.max_jobs == 0) {
          rp.deliver(std::vector<job_record>{});
          return rp;
        }
        auto& worker = st.workers[req.worker];
        worker.name = req.worker;
        worker.limit = req.worker_limit;
        auto wait = std::clamp<millis>(req.wait, 0, st.config.max_lease_wait);
        auto id = st.next_lease_id++;
        auto& l = st.leases[id];
        l.id = id;
        l.request = std::move(req);
        l.promise = rp;
        l.deadline = mono_now(self) + std::chrono::milliseconds(wait);
        dispatch(self);
        maybe_finish_lease(self, id, wait == 0);
        arm_tick(self);
        return rp;
      },
      [self](atom::heartbeat, heartbeat_request& hb) -> caf::result<heartbeat_reply> {
        auto& st = self->state;
        auto i = st.jobs.find(hb.id);
        if (i == st.jobs.end() || i->second.ph != phase::running ||
            i->second.token != hb.lease_token) {
          return to_caf(engine_errc::stale_token,
                        "job " + std::to_string(hb.id) +
                            " is not leased under this token (reclaimed, cancelled or finished)");
        }
        auto& tj = i->second;
        auto heartbeat = std::chrono::milliseconds(tj.rec.spec.timeouts.heartbeat);
        tj.lease_deadline = mono_now(self) + heartbeat;
        st.deadlines.emplace(tj.lease_deadline, std::make_pair(hb.id, tj.token));
        auto& buf = tj.buffered;
        if (!hb.detail.empty()) buf.detail = std::move(hb.detail);
        if (!hb.principal.empty()) buf.principal = std::move(hb.principal);
        if (hb.percent >= 0) buf.percent = hb.percent;
        for (auto& line : hb.lines)
          if (buf.lines.size() < 1000) buf.lines.push_back(std::move(line));
        if (wall_now(self) - tj.last_progress >= st.config.progress_interval)
          flush_progress(self, tj);
        arm_tick(self);
        return heartbeat_reply{tj.rec.spec.timeouts.heartbeat, false};
      },
      [self](atom::queue_op, queue_command& cmd,
             std::string& principal) -> caf::typed_response_promise<queue_info> {
        auto rp = self->make_response_promise<queue_info>();
        // The rules of a queue named in a submission: a name from a URL
        // path must not write what a body could not.
        if (auto problem = validate_name("queue name", cmd.queue)) {
          rp.deliver(to_caf(engine_errc::invalid_argument, problem->message));
          return rp;
        }
        event_body body;
        switch (cmd.op) {
          case queue_op::pause: body = queue_paused{cmd.queue}; break;
          case queue_op::resume: body = queue_resumed{cmd.queue}; break;
          case queue_op::configure: body = queue_configured{cmd.queue, cmd.concurrency}; break;
        }
        std::vector<event> events{event{0, 0, wall_now(self), principal, std::move(body)}};
        auto copy = events.front();
        self->request(self->state.journal, caf::infinite, atom::append::value, std::move(events))
            .then(
                [self, rp, copy](sequence_t seq) mutable {
                  copy.seq = seq;
                  apply_engine_event(self, copy);
                  rp.deliver(info_of(self, std::visit(
                                                 [](auto& b) -> std::string {
                                                   if constexpr (requires { b.queue; })
                                                     return b.queue;
                                                   else
                                                     return {};
                                                 },
                                                 copy.body)));
                  dispatch(self);
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](atom::queues) {
        std::vector<queue_info> out;
        std::vector<std::string> names;
        for (auto& [name, q] : self->state.queues) names.push_back(name);
        std::sort(names.begin(), names.end());
        for (auto& name : names) out.push_back(info_of(self, name));
        return out;
      },
      [self](atom::schedule) {
        std::vector<schedule_view> out;
        for (auto& [id, s] : self->state.schedules)
          out.push_back({id, s.spec, s.last_run, s.last_run_ended, s.consecutive_failures});
        std::sort(out.begin(), out.end(),
                  [](const schedule_view& a, const schedule_view& b) { return a.id < b.id; });
        return out;
      },
      [self](atom::schedule, schedule_id id,
             std::string& principal) -> caf::typed_response_promise<bool> {
        auto& st = self->state;
        auto rp = self->make_response_promise<bool>();
        auto it = st.schedules.find(id);
        if (it == st.schedules.end()) {
          rp.deliver(to_caf(engine_errc::not_found,
                            "schedule " + std::to_string(id) + " does not exist"));
          return rp;
        }
        // Gone at once, so no run is submitted while the delete commits; back
        // if the append fails (writes can resume later: the log still has it).
        auto saved = std::move(it->second);
        st.schedules.erase(it);
        std::vector<event> events{
            event{0, 0, wall_now(self), principal, schedule_deleted{id, "deleted by request"}}};
        self->request(st.journal, caf::infinite, atom::append::value, std::move(events))
            .then([rp](sequence_t) mutable { rp.deliver(true); },
                  [self, rp, id, saved = std::move(saved)](caf::error& err) mutable {
                    self->state.schedules.emplace(id, std::move(saved));
                    rp.deliver(std::move(err));
                  });
        return rp;
      },
      [self](atom::waits, job_id id) -> caf::typed_response_promise<dispatch_explanation> {
        auto& st = self->state;
        auto rp = self->make_response_promise<dispatch_explanation>();
        dispatch_explanation out;
        out.id = id;
        auto i = st.jobs.find(id);
        if (i == st.jobs.end()) {
          out.phase = "not live";
          out.text = "job " + std::to_string(id) + " is not waiting or running";
          rp.deliver(std::move(out));
          return rp;
        }
        auto& tj = i->second;
        out.phase = phase_name(tj.ph);
        auto& q = queue_of(self, tj.rec.spec.queue);
        switch (tj.ph) {
          case phase::waiting:
            out.text = "due at " + std::to_string(tj.rec.due_at) + " (in " +
                       std::to_string(tj.rec.due_at - wall_now(self)) + " ms)";
            break;
          case phase::ready:
            if (q.settings.paused)
              out.text = "queue " + tj.rec.spec.queue + " is paused";
            else if (q.settings.concurrency > 0 && q.active >= q.settings.concurrency)
              out.text = "queue " + tj.rec.spec.queue + " is at its concurrency limit (" +
                         std::to_string(q.active) + " of " +
                         std::to_string(q.settings.concurrency) + ")";
            else
              out.text = "waiting for a free worker; position " +
                         std::to_string(st.ready.position(id).value_or(0)) + " in " +
                         tj.rec.spec.queue;
            break;
          case phase::locking: {
            self->request(st.locks, caf::infinite, atom::waits::value, id)
                .then(
                    [rp, out](std::vector<lock_table::wait_reason>& waits) mutable {
                      std::string text;
                      for (auto& w : waits) {
                        if (!text.empty()) text += "; ";
                        text += "waiting for ";
                        text += w.resource;
                        if (!w.holders.empty()) {
                          text += " held by job";
                          for (auto h : w.holders) {
                            text += ' ';
                            text += std::to_string(h);
                          }
                        }
                        if (!w.queued_ahead.empty()) {
                          text += " (";
                          text += std::to_string(w.queued_ahead.size());
                          text += " queued ahead)";
                        }
                      }
                      out.text = text.empty() ? "acquiring its resources" : text;
                      out.lock_waits = std::move(waits);
                      rp.deliver(std::move(out));
                    },
                    [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
            return rp;
          }
          case phase::granted: out.text = "holds its resources; waiting for a free worker"; break;
          case phase::starting: out.text = "starting on " + tj.worker; break;
          case phase::running: out.text = "running on " + tj.worker; break;
          case phase::reclaiming: out.text = "being reclaimed from " + tj.worker; break;
          case phase::review: out.text = "waiting for a review"; break;
        }
        rp.deliver(std::move(out));
        return rp;
      },
      [self](atom::stats) {
        auto& st = self->state;
        scheduler_stats out;
        out.live_jobs = st.jobs.size();
        out.dispatched = st.dispatched;
        out.reclaimed = st.reclaimed;
        for (auto& [name, w] : st.workers) {
          out.running += w.held;
          out.workers.push_back(worker_info{w.name, w.limit, w.held, w.local});
        }
        return out;
      },
      [self](atom::tick) { on_tick(self); },
      [self](atom::refused, job_id id, std::uint64_t token) {
        on_start_failed(self, id, token, caf::error{}, 0);
      },
      [self](atom::stop, job_id id) {
        auto& actors = self->state.actors;
        auto i = actors.find(id);
        if (i != actors.end() && i->second.address() == caf::actor_cast<caf::actor_addr>(self->current_sender()))
          actors.erase(i);
      },
  };
}

}  // namespace jobsmith
