#include "actors/job_actor.hpp"

#include "actors/caf_error.hpp"

namespace jobsmith {

namespace {

using self_ptr = job_actor::stateful_pointer<job_actor_state>;

void process_next(self_ptr self);

/// Stops the actor once the job is terminal and nothing waits.
void maybe_stop(self_ptr self) {
  auto& st = self->state;
  if (st.hydrated && !st.busy() && st.waiting.empty() && is_terminal(st.record.state)) {
    self->send(st.scheduler, atom::stop::value, st.record.id);
    self->quit();
  }
}

/// This actor just committed the event that made its job terminal. The
/// scheduler forgets the actor when it folds that event (the batch reaches
/// its mailbox before our append's answer reaches ours), so the actor stops
/// without a stop notice. Commands that queued up meanwhile go back to the
/// scheduler, behind that batch, which routes them to a fresh actor: never
/// two actors for one job.
void stop_after_terminal_commit(self_ptr self) {
  auto& st = self->state;
  for (auto& w : st.waiting)
    if (w.promise.pending())
      w.promise.delegate(st.scheduler, atom::command::value, st.record.id, std::move(w.command),
                         std::move(w.principal));
  st.waiting.clear();
  self->quit();
}

/// A start the scheduler asked for did not happen.
void report_refused_start(self_ptr self, const job_command& cmd) {
  if (auto start = std::get_if<cmd_start>(&cmd))
    self->send(self->state.scheduler, atom::refused::value, self->state.record.id,
               start->lease_token);
}

/// After events were applied: hand a fresh local attempt to its runner, or
/// tell a runner whose attempt ended under it to stop.
void after_commit(self_ptr self, std::uint64_t token_before) {
  auto& st = self->state;
  auto& rec = st.record;
  // Asked to stop (job.cancel_requested): the handler sees cancelled() now;
  // what it returns then ends the job as cancelled.
  if (st.stop_flag && rec.state == job_state::running && rec.lease_token == token_before &&
      rec.cancel_requested_at != 0)
    st.stop_flag->store(true);
  if (st.stop_flag && (rec.state != job_state::running || rec.lease_token != token_before)) {
    // Ended by anything but the handler's own outcome: cancel, reclaim, discard.
    if (rec.last_end != attempt_end::succeeded && rec.last_end != attempt_end::failed)
      st.stop_flag->store(true);
    st.stop_flag.reset();
  }
  if (rec.state == job_state::running && rec.lease_token != token_before && st.runners &&
      rec.worker == st.runners->worker_name) {
    st.stop_flag = std::make_shared<std::atomic<bool>>(false);
    st.runners->hand_over(job_run{rec.id, rec.attempts, rec.lease_token, rec.spec.kind,
                                  rec.spec.payload, rec.handover, st.stop_flag},
                          caf::actor_cast<job_actor>(self));
  }
}

/// A unique key the scheduler reserved for a job (`id`) this command may
/// create or revive; given back when the command writes nothing.
struct key_reservation {
  std::string key;  // empty = none
  job_id id = 0;
};

/// The follow-up job the scheduler reserved for an accepting review of
/// job `reviewed`.
key_reservation follow_up_reservation(job_id reviewed, const job_command& cmd) {
  auto review = std::get_if<cmd_review>(&cmd);
  if (!review || !review->accept || review->follow_up == 0 || review->follow_up_kind.empty())
    return {};
  return {follow_up_key(reviewed), review->follow_up};
}

void give_back(self_ptr self, const key_reservation& r) {
  if (!r.key.empty()) self->send(self->state.scheduler, atom::release::value, r.key, r.id);
}

void commit(self_ptr self, std::vector<event_body> bodies, millis now, const std::string& principal,
            caf::typed_response_promise<job_record>& promise, std::uint64_t start_token,
            key_reservation reserved, std::optional<event> follow_up = std::nullopt);

/// The events an accepting review appends beside its job.reviewed: the
/// kind's follow-up job, in the same commit (nullopt for any other command).
std::optional<event> follow_up_event(self_ptr self, const job_command& cmd, millis now,
                                     const std::string& principal) {
  auto review = std::get_if<cmd_review>(&cmd);
  if (!review || !review->accept || review->follow_up == 0 || review->follow_up_kind.empty())
    return std::nullopt;
  return event{0, review->follow_up, now, principal,
               follow_up_spec(self->state.record, review->follow_up_kind)};
}

/// An accept that passed decide() and whose kind has an on-accept hook:
/// claims the job and hands the hook to a thread of its own. The decision
/// is made again once the hook returned (on_hook_done).
bool claim_for_accept_hook(self_ptr self, const job_command& cmd, const std::string& principal,
                           caf::typed_response_promise<job_record>& promise) {
  auto& st = self->state;
  auto review = std::get_if<cmd_review>(&cmd);
  if (!review || !review->accept || !st.runners || !st.runners->has_accept_hook(st.record.spec.kind))
    return false;
  st.review = job_actor_state::review_claim{*review, principal, promise};
  const auto& rec = st.record;
  st.runners->run_accept_hook(self->system(),
                              accept_run{rec.id, rec.spec.kind, rec.spec.payload, rec.result},
                              caf::actor_cast<job_actor>(self));
  return true;
}

/// The claimed review's hook is done: record the acceptance, or reject the
/// review when the hook threw. Either way the claim ends.
void on_hook_done(self_ptr self, std::string& failure) {
  auto& st = self->state;
  if (!st.review) return;  // never: one hook_done per claim
  auto claim = std::move(*st.review);
  st.review.reset();
  const job_command cmd{claim.command};
  auto reserved = follow_up_reservation(st.record.id, cmd);
  if (!failure.empty()) {
    give_back(self, reserved);
    claim.promise.deliver(to_caf(engine_errc::rejected, std::move(failure)));
    process_next(self);
    return;
  }
  // Nothing was decided meanwhile (commands waited), so this decides as
  // before the hook; `now` is when the acceptance is recorded.
  auto now = st.clock();
  auto decided = decide(st.record, cmd, now);
  if (!decided.ok()) {
    give_back(self, reserved);
    claim.promise.deliver(to_caf(*decided.error));
    process_next(self);
    return;
  }
  commit(self, std::move(decided.events), now, claim.principal, claim.promise, 0,
         std::move(reserved), follow_up_event(self, cmd, now, claim.principal));
}

void process(self_ptr self, job_command& cmd, std::string& principal,
             caf::typed_response_promise<job_record>& promise) {
  auto& st = self->state;
  auto now = st.clock();
  auto decided = decide(st.record, cmd, now);
  if (!decided.ok()) {
    report_refused_start(self, cmd);
    give_back(self, follow_up_reservation(st.record.id, cmd));
    promise.deliver(to_caf(*decided.error));
    return;
  }
  if (decided.events.empty()) {
    // No requester (one-way starts and outcomes): skip copying the record.
    if (promise.pending()) promise.deliver(st.record);
    return;
  }
  if (claim_for_accept_hook(self, cmd, principal, promise)) return;
  auto start = std::get_if<cmd_start>(&cmd);
  std::uint64_t start_token = start ? start->lease_token : 0;
  // A retry makes a terminal job live again. Its unique key must not belong
  // to another live job (two live jobs would share it): the scheduler, which
  // owns the keys, reserves it first or refuses. Commands wait meanwhile.
  auto request = std::get_if<cmd_request>(&cmd);
  if (request && request->what == request_kind::retry && is_terminal(st.record.state) &&
      !st.record.spec.unique_key.empty()) {
    st.appending = true;
    auto key = st.record.spec.unique_key;
    self->request(st.scheduler, caf::infinite, atom::unique::value, key, st.record.id)
        .then(
            [self, bodies = std::move(decided.events), now, principal, promise,
             key](bool) mutable {
              self->state.appending = false;
              commit(self, std::move(bodies), now, principal, promise, 0,
                     key_reservation{std::move(key), self->state.record.id});
            },
            [self, promise](caf::error& err) mutable {
              self->state.appending = false;
              promise.deliver(std::move(err));
              process_next(self);
            });
    return;
  }
  commit(self, std::move(decided.events), now, principal, promise, start_token,
         follow_up_reservation(st.record.id, cmd), follow_up_event(self, cmd, now, principal));
}

/// Appends the events a command decided and applies them once committed.
/// `reserved`: a unique key the scheduler reserved for this command (a
/// retry's, a follow-up's), given back if the append fails. `follow_up`:
/// another job's job.submitted, appended after this job's events in the
/// same commit (the scheduler folds it from the committed batch).
void commit(self_ptr self, std::vector<event_body> bodies, millis now, const std::string& principal,
            caf::typed_response_promise<job_record>& promise, std::uint64_t start_token,
            key_reservation reserved, std::optional<event> follow_up) {
  auto& st = self->state;
  std::vector<event> events;
  events.reserve(bodies.size() + 1);
  for (auto& body : bodies)
    events.push_back(event{0, st.record.id, now, principal, std::move(body)});
  auto to_apply = events;  // applied only once committed; this job's events only
  if (follow_up) events.push_back(std::move(*follow_up));
  st.appending = true;
  auto was_terminal = is_terminal(st.record.state);
  auto token_before = st.record.lease_token;
  self->request(st.journal, caf::infinite, atom::append::value, std::move(events))
      .then(
          [self, promise, to_apply = std::move(to_apply), was_terminal,
           token_before](sequence_t first) mutable {
            auto& st = self->state;
            for (auto& ev : to_apply) {
              ev.seq = first++;
              apply(st.record, ev);
            }
            st.appending = false;
            after_commit(self, token_before);
            if (promise.pending()) promise.deliver(st.record);
            if (was_terminal && !is_terminal(st.record.state))
              self->send(st.scheduler, atom::revived::value, st.record);
            if (!was_terminal && is_terminal(st.record.state)) {
              stop_after_terminal_commit(self);
              return;
            }
            process_next(self);
          },
          [self, promise, start_token, reserved](caf::error& err) mutable {
            auto& st = self->state;
            st.appending = false;
            if (start_token != 0)
              self->send(st.scheduler, atom::refused::value, st.record.id, start_token);
            give_back(self, reserved);
            promise.deliver(std::move(err));
            process_next(self);
          });
}

void process_next(self_ptr self) {
  auto& st = self->state;
  while (st.hydrated && !st.busy() && !st.waiting.empty()) {
    auto next = std::move(st.waiting.front());
    st.waiting.pop_front();
    process(self, next.command, next.principal, next.promise);
  }
  maybe_stop(self);
}

void hydrate(self_ptr self) {
  auto& st = self->state;
  self->request(st.journal, caf::infinite, atom::read_job::value, st.record.id)
      .then(
          [self](std::vector<event>& events) {
            auto& st = self->state;
            if (events.empty()) {
              auto err = to_caf(engine_errc::not_found,
                                "job " + std::to_string(st.record.id) + " does not exist");
              for (auto& w : st.waiting) w.promise.deliver(err);
              st.waiting.clear();
              self->send(st.scheduler, atom::stop::value, st.record.id);
              self->quit();
              return;
            }
            for (auto& ev : events) apply(st.record, ev);
            st.hydrated = true;
            // The read can overtake the command this actor was spawned for;
            // a terminal job must not stop before answering it (the command
            // would bounce as request_receiver_down).
            if (!st.waiting.empty()) process_next(self);
          },
          [self](caf::error& err) {
            for (auto& w : self->state.waiting) w.promise.deliver(err);
            self->state.waiting.clear();
            self->send(self->state.scheduler, atom::stop::value, self->state.record.id);
            self->quit(err);
          });
}

}  // namespace

job_actor::behavior_type job_behavior(job_actor::stateful_pointer<job_actor_state> self,
                                      job_record record, bool hydrated, journal_actor journal,
                                      scheduler_actor scheduler, wall_clock clock,
                                      std::shared_ptr<const runner_set> runners) {
  auto& st = self->state;
  st.record = std::move(record);
  st.hydrated = hydrated;
  st.journal = std::move(journal);
  st.scheduler = std::move(scheduler);
  st.clock = std::move(clock);
  st.runners = std::move(runners);
  // On close the scheduler stops this actor. Answer whoever still waits
  // (the claimed review, queued commands): a blocking caller holds a
  // scoped actor, and close() waits for every actor, so an unanswered
  // caller would hang close().
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    auto err = to_caf(engine_errc::closed, "the engine is closing");
    if (st.review && st.review->promise.pending()) st.review->promise.deliver(err);
    st.review.reset();
    for (auto& w : st.waiting)
      if (w.promise.pending()) w.promise.deliver(err);
    st.waiting.clear();
    self->quit(msg.reason);
  });
  if (!hydrated) hydrate(self);
  return {
      [self](atom::command, job_command& cmd,
             std::string& principal) -> caf::typed_response_promise<job_record> {
        auto& st = self->state;
        auto promise = self->make_response_promise<job_record>();
        if (st.review && std::holds_alternative<cmd_review>(cmd)) {
          // 409 over HTTP. Refused, not queued: it would be decided against
          // a job that the claimed review is about to settle.
          promise.deliver(to_caf(engine_errc::illegal_transition,
                                 "a review of job " + std::to_string(st.record.id) +
                                     " is in progress"));
        } else if (st.hydrated && !st.busy() && st.waiting.empty()) {
          process(self, cmd, principal, promise);
          maybe_stop(self);
        } else {
          st.waiting.push_back({std::move(cmd), std::move(principal), promise});
        }
        return promise;
      },
      [self](atom::hook_done, std::string& failure) { on_hook_done(self, failure); },
  };
}

}  // namespace jobsmith
