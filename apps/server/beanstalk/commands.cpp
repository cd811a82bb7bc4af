// What each beanstalkd command does to the engine (docs/beanstalk.md has
// the table). Writes use the facade's asynchronous calls, whose callbacks
// run once the events are durable: INSERTED, DELETED, RELEASED, BURIED go
// out only then, and many connections' writes share one group commit.
// Reads and by-id changes that have no asynchronous call (get, list,
// cancel, retry, run_now) run on the call pool (on_pool), never on an Asio
// thread. Peeks, stats, lists, kicks and pause-tube are in reports.cpp.
#include <algorithm>

#include "apps/server/beanstalk/connection.hpp"
#include "apps/server/beanstalk/job_body.hpp"

namespace jobsmith::server::beanstalk {

namespace {

/// Every protocol job may be released, or time out, this often before the
/// engine would discard it: the most validate() allows.
retry_policy protocol_retry() {
  retry_policy r;
  r.max_attempts = max_attempts_limit;
  r.initial_interval = 0;  // a release without delay is ready at once
  r.backoff_coefficient = 1;
  r.max_interval = 0;
  r.jitter = 0;
  return r;
}

bool stale_class(const engine_error& e) {
  return e.code == engine_errc::not_found || e.code == engine_errc::stale_token ||
         e.code == engine_errc::illegal_transition;
}

}  // namespace

void connection::run(command& c, const started& s) {
  switch (c.what) {
    case verb::put:
      return run_put(c, s);
    case verb::use:
      use(c.name);
      return finish(s, "USING " + used_ + "\r\n");
    case verb::watch:
      watch(c.name);
      return finish(s, "WATCHING " + std::to_string(watched_.size()) + "\r\n");
    case verb::ignore:
      return ignore(c.name, s);
    case verb::list_tube_used:
      return finish(s, "USING " + used_ + "\r\n");
    case verb::reserve:
      return run_reserve(s, std::nullopt);
    case verb::reserve_with_timeout:
      return run_reserve(s, steady::now() + std::chrono::seconds(c.seconds));
    case verb::delete_job:
    case verb::release:
    case verb::bury:
    case verb::touch:
      return run_held(c, s);
    case verb::quit:
      return finish(s, {}, true);
    case verb::auth: {
      if (svc_.tokens().empty()) return finish(s, line("AUTHORIZED"));  // nothing to check
      auto who = svc_.tokens().find(c.name);
      if (!who) return finish(s, line("UNAUTHORIZED"));  // changes nothing
      principal_ = who->name;
      who_ = who->who;
      authenticated_ = true;
      return finish(s, line("AUTHORIZED"));
    }
    default:
      return run_report(c, s);
  }
}

void connection::use(const std::string& tube) {
  if (tube == used_) return;
  svc_.using_tube(used_, -1);
  used_ = tube;
  svc_.using_tube(used_, 1);
}

void connection::watch(const std::string& tube) {
  if (std::find(watched_.begin(), watched_.end(), tube) != watched_.end()) return;
  watched_.push_back(tube);
  svc_.watching_tube(tube, 1);
}

void connection::ignore(const std::string& tube, const started& s) {
  auto it = std::find(watched_.begin(), watched_.end(), tube);
  if (it != watched_.end()) {
    if (watched_.size() == 1) return finish(s, line("NOT_IGNORED"));
    watched_.erase(it);
    svc_.watching_tube(tube, -1);
  }
  finish(s, "WATCHING " + std::to_string(watched_.size()) + "\r\n");
}

void connection::run_put(command& c, const started& s) {
  if (!allows(who_, permission::produce)) return finish(s, line("FORBIDDEN"));
  if (svc_.over_memory_budget()) return finish(s, line("OUT_OF_MEMORY"));
  const millis delay_ms = static_cast<millis>(c.seconds) * 1000;
  const millis ttr_ms = static_cast<millis>(std::max<std::uint32_t>(1, c.ttr)) * 1000;
  // The engine's bound on durations (10 years) is far below 2^32 seconds.
  if (delay_ms > max_duration || ttr_ms > max_duration) return finish(s, line("BAD_FORMAT"));
  job_submitted spec;
  spec.kind = "beanstalk";
  spec.queue = used_;
  spec.payload = payload_of(c.body, svc_.max_json_depth());
  spec.priority = priority_of(c.pri);
  spec.retry = protocol_retry();
  spec.timeouts.heartbeat = ttr_ms;  // TTR: a lease not touched within it is reclaimed
  // The due time goes into the submission (as the HTTP API does with its
  // "delay"), so stats-job can tell the put's delay from the log.
  if (delay_ms > 0) spec.run_at = system_wall_now() + delay_ms;
  if (!producer_) {
    producer_ = true;
    svc_.add_producer(1);
  }
  put_specs_.push_back(std::move(spec));
  put_started_.push_back(s);
  if (put_specs_.size() >= 256) submit_puts();
}

void connection::submit_puts() {
  if (put_specs_.empty()) return;
  // All or nothing: each spec is valid by construction (names checked by
  // the parser, payloads JSON by payload_of), so what refuses the batch
  // (overloaded, closing, a failed write) would refuse each put alone.
  submit_options opts;
  opts.principal = principal_;
  auto specs = std::move(put_specs_);
  auto puts = std::move(put_started_);
  put_specs_.clear();
  put_started_.clear();
  auto self = shared_from_this();
  svc_.write_started();
  svc_.eng().submit_many_async(
      std::move(specs), std::move(opts),
      [self, puts = std::move(puts)](result<std::vector<job_id>> ids) mutable {
        self->svc_.write_done();
        self->on_strand([self, puts = std::move(puts), ids = std::move(ids)] {
          self->pumping_ = true;  // one pump() for all of them, below
          for (std::size_t i = 0; i < puts.size(); ++i) {
            if (!ids)
              self->finish(puts[i], line(refusal_of(ids.error())));
            else
              self->finish(puts[i], "INSERTED " + std::to_string((*ids)[i]) + "\r\n");
          }
          self->pumping_ = false;
          self->pump();
        });
      });
}

void connection::run_reserve(const started& s, std::optional<steady::time_point> deadline) {
  if (!allows(who_, permission::work)) return finish(s, line("FORBIDDEN"));
  if (!worker_counted_) {
    worker_counted_ = true;
    svc_.add_worker(1);
  }
  waiting_for_job_ = true;
  svc_.waiting_on(watched_, 1);
  reserve_round(s, deadline);
}

void connection::reserve_round(const started& s, std::optional<steady::time_point> deadline) {
  lease_request lr;
  lr.worker = worker_;
  lr.queues = watched_;
  lr.max_jobs = 1;
  lr.principal = principal_;
  // Long polls of at most a poll slice (service.hpp), re-issued until a
  // job comes or the client's deadline passes.
  millis wait = eof_ ? 0  // after EOF: no waiting (on_leased)
                     : std::min<millis>(svc_.max_long_poll(), service::poll_slice.count());
  if (deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - steady::now());
    wait = std::clamp<millis>(left.count(), 0, wait);
  }
  lr.wait = wait;
  auto self = shared_from_this();
  svc_.poll_started();
  svc_.eng().lease_async(std::move(lr), [self, s, deadline](result<std::vector<job_record>> r) {
    if (self->closed_.load() && r) {
      // The client left while this long poll waited (or the server is
      // stopping): give the jobs back right here, on the engine's thread.
      for (auto& job : *r)
        self->release_now(job.id, job.lease_token, "the beanstalkd connection closed");
      r->clear();
    }
    self->svc_.poll_done();  // after release_now: a release is counted before the poll ends
    self->on_strand([self, s, deadline, r = std::move(r)]() mutable {
      self->on_leased(s, deadline, std::move(r));
    });
  });
}

void connection::on_leased(const started& s, std::optional<steady::time_point> deadline,
                           result<std::vector<job_record>> leased) {
  if (closing_) {
    // Leased after the client left: straight back.
    if (leased)
      for (auto& job : *leased)
        release_now(job.id, job.lease_token, "the beanstalkd connection closed");
    return finish(s, {});
  }
  auto stop_waiting = [this] {
    if (waiting_for_job_) svc_.waiting_on(watched_, -1);
    waiting_for_job_ = false;
  };
  if (!leased) {
    stop_waiting();
    return finish(s, line(refusal_of(leased.error())));
  }
  job_record* taken = nullptr;
  for (auto& job : *leased) {
    if (taken == nullptr && !svc_.being_deleted(job.id)) {
      taken = &job;
      continue;
    }
    // Being deleted by another connection (service.hpp), or more than one.
    release_now(job.id, job.lease_token, "a delete of this job was in progress");
  }
  if (taken != nullptr) {
    stop_waiting();
    auto& r = reserved_[taken->id];
    r.token = taken->lease_token;
    r.tube = taken->spec.queue;
    r.ttr_ms = taken->spec.timeouts.heartbeat;
    r.deadline = steady::now() + std::chrono::milliseconds(r.ttr_ms);
    // Jobs whose TTR ran out went back to the engine long ago; forget them
    // so a client that never deletes cannot grow this map without bound.
    if (reserved_.size() > 1024) {
      auto stale_before = steady::now() - std::chrono::seconds(5);
      for (auto it = reserved_.begin(); it != reserved_.end();)
        it = it->second.deadline < stale_before && busy_jobs_.count(it->first) == 0
                 ? reserved_.erase(it)
                 : std::next(it);
    }
    auto body = body_of(taken->spec.payload);
    std::string text =
        "RESERVED " + std::to_string(taken->id) + " " + std::to_string(body.size()) + "\r\n";
    text += body;
    text += "\r\n";
    return finish(s, std::move(text));
  }
  if (deadline && steady::now() >= *deadline) {
    stop_waiting();
    return finish(s, line("TIMED_OUT"));
  }
  if (eof_) {
    // The client hung up and nothing came: nobody is left to wait for.
    close_now();
    return finish(s, {});
  }
  reserve_round(s, deadline);
}

void connection::run_held(command& c, const started& s) {
  auto it = reserved_.find(c.id);
  if (it == reserved_.end()) {
    if (c.what == verb::delete_job) return run_delete_other(c, s);
    return finish(s, line("NOT_FOUND"));
  }
  if (!allows(who_, permission::work)) return finish(s, line("FORBIDDEN"));
  const job_id id = c.id;
  const auto& held = it->second;
  auto self = shared_from_this();
  // Answers of a command on a held job: `ok` on success; a refusal that
  // says the job is not ours any more forgets it.
  auto answer = [self, s, id](bool ok, std::string ok_text, const engine_error* err) {
    if (ok) {
      self->reserved_.erase(id);
      return self->finish(s, std::move(ok_text));
    }
    if (stale_class(*err)) self->reserved_.erase(id);
    self->finish(s, line(refusal_of(*err)));
  };
  switch (c.what) {
    case verb::delete_job: {
      svc_.write_started();
      auto tube = held.tube;
      svc_.eng().complete_async(
          id, held.token, "null", principal_,
          [self, s, id, tube, c, answer](result<job_record> r) mutable {
            self->svc_.write_done();
            self->on_strand([self, s, id, tube, c, answer, r = std::move(r)]() mutable {
              if (r) {
                self->svc_.count_tube_delete(tube);
                return answer(true, line("DELETED"), nullptr);
              }
              if (!stale_class(r.error())) return answer(false, {}, &r.error());
              // Its TTR ran out: the job is no longer this connection's,
              // and beanstalkd deletes a job no one holds.
              self->reserved_.erase(id);
              self->run_delete_other(c, s);
            });
          });
      return;
    }
    case verb::release:
      if (c.seconds > 0) {
        svc_.holds().hold(id, held.token, held.tube, held.ttr_ms, c.seconds, principal_,
                          [self, answer](result<bool> r) {
                            self->on_strand([answer, r = std::move(r)]() mutable {
                              answer(r.ok(), line("RELEASED"), r.ok() ? nullptr : &r.error());
                            });
                          });
        return;
      }
      [[fallthrough]];
    case verb::bury: {
      const bool release = c.what == verb::release;
      svc_.write_started();
      svc_.eng().fail_async(id, held.token, release ? "released" : "buried", release, principal_,
                            {}, [self, answer, release](result<job_record> r) {
                              self->svc_.write_done();
                              self->on_strand([answer, release, r = std::move(r)]() mutable {
                                answer(r.ok(), line(release ? "RELEASED" : "BURIED"),
                                       r.ok() ? nullptr : &r.error());
                              });
                            });
      return;
    }
    case verb::touch: {
      heartbeat_request hb;
      hb.id = id;
      hb.lease_token = held.token;
      hb.principal = principal_;
      svc_.eng().heartbeat_async(std::move(hb), [self, s, id](result<heartbeat_reply> r) {
        self->on_strand([self, s, id, r = std::move(r)]() mutable {
          auto it = self->reserved_.find(id);
          if (!r) {
            if (stale_class(r.error()) && it != self->reserved_.end()) self->reserved_.erase(it);
            return self->finish(s, line(refusal_of(r.error())));
          }
          if (it != self->reserved_.end())
            it->second.deadline = steady::now() + std::chrono::milliseconds(r->lease_ms);
          self->finish(s, line("TOUCHED"));
        });
      });
      return;
    }
    default:
      return finish(s, line("INTERNAL_ERROR"));
  }
}

void connection::run_delete_other(command& c, const started& s) {
  // Deleting a job one does not hold is a producer's act (the HTTP API's
  // cancel needs the same role).
  if (!allows(who_, permission::produce)) return finish(s, line("FORBIDDEN"));
  const job_id id = c.id;
  on_pool(s, [svc = &svc_, id, principal = principal_]() -> std::string {
    auto& eng = svc->eng();
    svc->begin_delete(id);
    struct end_delete {
      service* svc;
      job_id id;
      ~end_delete() { svc->end_delete(id); }
    } guard{svc, id};
    const std::string why = "deleted over the beanstalkd protocol";
    if (svc->holds().take(id)) {
      // Released with a delay and held here: cancel ends the lease too, at
      // once (nobody runs it to be told).
      auto r = eng.cancel(id, why, principal, /*at_once=*/true);
      if (r) svc->count_tube_delete(r->spec.queue);
      return line(r ? "DELETED" : refusal_of(r.error()));
    }
    auto view = eng.get(id);
    if (!view) return line(refusal_of(view.error()));
    const auto& job = view->job;
    switch (effective_state(job, system_wall_now())) {
      case job_state::scheduled:
      case job_state::queued:
        break;
      case job_state::discarded:
      case job_state::expired: {
        // Buried: a terminal job cannot be cancelled, so it is retried and
        // cancelled right after; a reserve that leases it in between gives
        // it back (on_leased). docs/beanstalk.md, "Decisions".
        auto retried = eng.retry(id, principal);
        if (!retried) return line(refusal_of(retried.error()));
        break;
      }
      default:
        return line("NOT_FOUND");  // reserved by someone, or deleted already
    }
    auto r = eng.cancel(id, why, principal);
    if (!r) return line(refusal_of(r.error()));
    svc->count_tube_delete(job.spec.queue);
    return line("DELETED");
  });
}

void connection::on_pool(const started& s, std::function<std::string()> work) {
  auto self = shared_from_this();
  svc_.write_started();
  bool posted = svc_.pool().try_post([self, s, work = std::move(work)] {
    std::string text;
    try {
      text = work();
    } catch (const std::exception&) {
      text = line("INTERNAL_ERROR");
    }
    self->svc_.write_done();
    self->on_strand(
        [self, s, text = std::move(text)]() mutable { self->finish(s, std::move(text)); });
  });
  if (!posted) {
    svc_.write_done();
    finish(s, line(svc_.stopping() ? "DRAINING" : "OUT_OF_MEMORY"));
  }
}

}  // namespace jobsmith::server::beanstalk
