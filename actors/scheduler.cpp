#include "actors/scheduler.hpp"

#include <algorithm>

#include "actors/caf_error.hpp"
#include "actors/job_actor.hpp"
#include "actors/lease_clock.hpp"
#include "actors/lock_actor.hpp"
#include "actors/scheduler_internal.hpp"

namespace jobsmith {

namespace scheduling {
namespace {

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
    if (auto c = std::get_if<cmd_succeed>(&cmd))
      token = c->lease_token;
    else if (auto f = std::get_if<cmd_fail>(&cmd))
      token = f->lease_token;
    if (token != 0 && token == j->second.token && j->second.ph == phase::running)
      flush_progress(self, j->second);
  }
  return true;
}

/// An accepting review of a job whose kind names an on-accept follow-up:
/// reserves the follow-up's id and unique key and tells the job's actor
/// (cmd_review::follow_up), which appends the follow-up's job.submitted
/// with the job.reviewed, or gives the key back. False when answered here:
/// another review's follow-up is being written.
bool attach_follow_up(self_ptr self, job_id id, job_command& cmd,
                      caf::typed_response_promise<job_record>& rp) {
  auto& st = self->state;
  auto review = std::get_if<cmd_review>(&cmd);
  if (!review || !review->accept) return true;
  auto j = st.jobs.find(id);
  if (j == st.jobs.end()) return true;  // not live: the job's actor refuses the review
  auto follow = st.follow_up_kinds.find(j->second.rec.spec.kind);
  if (follow == st.follow_up_kinds.end()) return true;
  auto key = follow_up_key(id);
  if (auto k = st.unique_keys.find(key); k != st.unique_keys.end()) {
    if (st.jobs.count(k->second) == 0) {
      rp.deliver(to_caf(engine_errc::illegal_transition,
                        "a review of job " + std::to_string(id) + " is in progress"));
      return false;
    }
    review->follow_up = k->second;  // a live job has the key: link to it
    return true;
  }
  review->follow_up = st.next_job_id++;
  review->follow_up_kind = follow->second;
  st.unique_keys.emplace(std::move(key), review->follow_up);
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
    case phase::waiting:
      return "scheduled";
    case phase::ready:
      return "ready";
    case phase::locking:
      return "locking";
    case phase::granted:
      return "granted";
    case phase::starting:
      return "starting";
    case phase::running:
      return "running";
    case phase::reclaiming:
      return "reclaiming";
    case phase::review:
      return "pending_review";
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
      case phase::waiting:
        ++info.scheduled;
        break;
      case phase::ready:
        ++info.ready;
        break;
      case phase::locking:
      case phase::granted:
        ++info.locking;
        break;
      case phase::starting:
      case phase::running:
      case phase::reclaiming:
        ++info.running;
        break;
      case phase::review:
        break;
    }
  }
  return info;
}

void recover_jobs(self_ptr self, recovered_state& seed) {
  auto& st = self->state;
  auto now = mono_now(self);
  for (auto& [name, settings] : seed.queues) queue_of(self, name).settings = settings;
  for (auto& [id, s] : seed.schedules) st.schedules[id] = s;
  for (auto& [kind, k] : seed.kinds)
    if (!k.on_accept.empty()) st.follow_up_kinds[kind] = k.on_accept;
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
      self->request(st.locks, caf::infinite, atom::acquire::value, tj.rec.id, tj.rec.spec.resources)
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
}  // namespace scheduling

using namespace scheduling;

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
        if (before_command(self, id, cmd, rp) && attach_follow_up(self, id, cmd, rp))
          route(self, id, std::move(cmd), std::move(principal), rp, true);
        return rp;
      },
      [self](atom::forward, job_id id, job_command& cmd,
             std::string& principal) -> caf::typed_response_promise<job_record> {
        auto rp = self->make_response_promise<job_record>();
        if (before_command(self, id, cmd, rp) && attach_follow_up(self, id, cmd, rp))
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
      [self](atom::lease,
             lease_request& req) -> caf::typed_response_promise<std::vector<job_record>> {
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
        heartbeat_reply reply{tj.rec.spec.timeouts.heartbeat};
        if (tj.rec.cancel_requested_at != 0) {
          // The worker learns of the cancel now: to_stop counts from here.
          arm_stop(self, tj);
          reply.cancel_requested = true;
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(tj.stop_deadline -
                                                                            mono_now(self));
          reply.stop_ms = std::max<millis>(0, left.count());
        }
        arm_tick(self);
        return reply;
      },
      [self](atom::kind, kind_configured& cfg,
             std::string& principal) -> caf::typed_response_promise<sequence_t> {
        auto rp = self->make_response_promise<sequence_t>();
        std::vector<event> events{event{0, 0, wall_now(self), principal, std::move(cfg)}};
        auto copy = events.front();
        self->request(self->state.journal, caf::infinite, atom::append::value, std::move(events))
            .then(
                [self, rp, copy](sequence_t seq) mutable {
                  copy.seq = seq;
                  apply_engine_event(self, copy);
                  rp.deliver(seq);
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
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
          case queue_op::pause:
            body = queue_paused{cmd.queue};
            break;
          case queue_op::resume:
            body = queue_resumed{cmd.queue};
            break;
          case queue_op::configure:
            body = queue_configured{cmd.queue, cmd.concurrency};
            break;
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
          rp.deliver(
              to_caf(engine_errc::not_found, "schedule " + std::to_string(id) + " does not exist"));
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
          case phase::granted:
            out.text = "holds its resources; waiting for a free worker";
            break;
          case phase::starting:
            out.text = "starting on " + tj.worker;
            break;
          case phase::running:
            out.text = "running on " + tj.worker;
            break;
          case phase::reclaiming:
            out.text = "being reclaimed from " + tj.worker;
            break;
          case phase::review:
            out.text = "waiting for a review";
            break;
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
        if (i != actors.end() &&
            i->second.address() == caf::actor_cast<caf::actor_addr>(self->current_sender()))
          actors.erase(i);
      },
  };
}

}  // namespace jobsmith
