// The scheduler's tracked jobs: their actors, queue slots and schedules,
// what committed events do to them, and submissions (scheduler_internal.hpp).
#include <algorithm>

#include "actors/caf_error.hpp"
#include "actors/job_actor.hpp"
#include "actors/lease_clock.hpp"
#include "actors/lock_actor.hpp"
#include "actors/scheduler_internal.hpp"

namespace jobsmith::scheduling {

// -- job actors -----------------------------------------------------------------

job_actor spawn_job(self_ptr self, job_record rec, bool hydrated) {
  auto id = rec.id;
  // Not linked: a link costs the scheduler a linear scan when the job's
  // actor stops. Stopped actors report (atom::stop, id) instead, and the
  // scheduler stops the live ones when it exits.
  // lazy_init: the actor first runs when its first message arrives, which
  // saves a scheduling round per job.
  auto actor = self->spawn<caf::lazy_init>(
      job_behavior, std::move(rec), hydrated, self->state.journal,
      caf::actor_cast<scheduler_actor>(self), self->state.clock, self->state.runners);
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
void tell_job(self_ptr self, job_id id, job_command cmd, std::string principal) {
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
  tj.stop_deadline = time_point::max();
}

/// Puts a waiting job where its due time says: ready now, or a timer.
void place(self_ptr self, tracked_job& tj) {
  auto& st = self->state;
  auto now = wall_now(self);
  auto& rec = tj.rec;
  if (rec.spec.timeouts.to_start > 0)
    st.start_limits.emplace(became_due_at(rec) + rec.spec.timeouts.to_start, rec.id);
  if (rec.due_at <= now) {
    tj.ph = phase::ready;
    st.ready.insert(rec.spec.queue, {rec.id, rec.spec.priority, rec.due_at, rec.requested_at});
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
  s->second.consecutive_failures = streak_after(s->second.consecutive_failures, rec.state);
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
    case job_state::scheduled:
      place(self, tj);
      break;
    case job_state::pending_review:
      tj.ph = phase::review;
      break;
    default:
      break;  // running: the caller sets up the lease
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
    // A cancel was asked: an in-process handler sees it at once (its job
    // actor sets the stop flag); a remote worker at its next heartbeat,
    // which arms the stop then.
    if (rec.cancel_requested_at != 0 && tj.ph == phase::running && is_local_worker(tj.worker))
      arm_stop(self, tj);
    return;
  }
  bool was_attempt =
      tj.ph == phase::starting || tj.ph == phase::running || tj.ph == phase::reclaiming;
  if (was_attempt) end_attempt(self, tj);
  if (rec.state == job_state::scheduled) {
    if (was_attempt) {
      release_holds(self, tj);
      place(self, tj);
    } else if (tj.ph == phase::waiting) {
      place(self, tj);  // run now: due time moved
    } else if (tj.ph == phase::ready && self->state.ready.erase(rec.id)) {
      // run now of a due job: ahead of the others now
      self->state.ready.insert(rec.spec.queue,
                               {rec.id, rec.spec.priority, rec.due_at, rec.requested_at});
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
  if (auto k = std::get_if<kind_configured>(&ev.body)) {
    if (k->on_accept.empty())
      st.follow_up_kinds.erase(k->kind);
    else
      st.follow_up_kinds[k->kind] = k->on_accept;
    return false;
  }
  std::unordered_map<std::string, queue_settings> one;
  std::string name;
  if (auto p = std::get_if<queue_paused>(&ev.body))
    name = p->queue;
  else if (auto r = std::get_if<queue_resumed>(&ev.body))
    name = r->queue;
  else if (auto c = std::get_if<queue_configured>(&ev.body))
    name = c->queue;
  else
    return false;
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
    if (i == st.jobs.end()) {
      // An accepted review's follow-up, appended by the reviewed job's
      // actor: tracked from its commit (other submissions are tracked when
      // their append is answered, after this).
      auto spec = std::get_if<job_submitted>(&ev.body);
      if (spec && spec->follows != 0) {
        job_record rec;
        apply(rec, ev);
        track(self, std::move(rec)).holds_payload = true;
        changed = true;
      }
      continue;
    }
    auto& tj = i->second;
    if (ev.seq <= tj.rec.last_seq) continue;  // applied when it was submitted
    apply(tj.rec, ev);
    resync(self, tj);
    changed = true;
  }
  if (changed) dispatch(self);
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
    return fail(engine_errc::overloaded,
                std::to_string(st.jobs.size()) + " live jobs, the configured maximum is " +
                    std::to_string(st.config.max_live_jobs) + "; try again later");
  if (st.pending_submits + specs.size() > st.config.max_pending_submits)
    return fail(engine_errc::overloaded,
                std::to_string(st.pending_submits) +
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

}  // namespace jobsmith::scheduling
