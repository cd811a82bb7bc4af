#include "actors/journal.hpp"

#include <chrono>
#include <thread>

#include "actors/caf_error.hpp"
#include "actors/lease_clock.hpp"
#include "actors/recovery.hpp"
#include "events/codec.hpp"

namespace jobsmith {

namespace {

void raise_max(std::atomic<std::uint64_t>& slot, std::uint64_t value) {
  auto seen = slot.load(std::memory_order_relaxed);
  while (value > seen && !slot.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

using self_ptr = journal_actor::stateful_pointer<journal_state>;

/// What a requester hears about a write the log failed or refused.
engine_error write_error(const store::status& s) {
  if (s.is_no_space())
    return {engine_errc::no_space,
            "the disk of the data directory is full: nothing of this request was written, and "
            "writes resume by themselves once space is freed (" + s.to_string() + ")"};
  return {engine_errc::storage, "the event log could not be written: nothing of this request "
                                "was written (" + s.to_string() + ")"};
}

/// While refusing: a flush (atom::flush) in resume_interval that retries.
/// A tick already on its way is not doubled.
void arm_resume_tick(self_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now();  // the actor clock: tests drive it
  if (st.tick_due > now) return;
  st.tick_due = now + st.config.resume_interval;
  self->delayed_send(self, st.config.resume_interval, atom::flush::value);
}

/// Tries event_log::resume() unless it was tried within resume_interval.
/// True when writes are accepted (again).
bool try_resume(self_ptr self) {
  auto& st = self->state;
  if (!st.refusal) return true;
  auto now = self->clock().now();  // the actor clock: tests drive it
  if (now - st.last_resume < st.config.resume_interval) return false;
  st.last_resume = now;
  auto status = st.log->resume();
  if (status.is_ok()) {
    st.refusal.reset();
    st.metrics->set_refusal(std::nullopt);
    st.metrics->resumes.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // Keep the first failure's words; say why resuming failed this time.
  auto code = status.is_no_space() ? engine_errc::no_space : st.failure.code;
  st.refusal = engine_error{code, st.failure.message + "; not resumed yet: " + status.message()};
  st.metrics->set_refusal(st.refusal);
  return false;
}

/// Writes everything gathered since the last flush as one durable batch,
/// answers each requester, then publishes the batch.
void flush_pending(self_ptr self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  st.commit_delay_spent = false;
  if (st.pending.empty()) return;

  st.records.clear();
  st.records.reserve(st.pending_events);
  for (auto& p : st.pending) {
    for (auto& ev : p.events) {
      store::record_input rec;
      rec.job = ev.job;
      encode_to(ev, rec.body);
      st.records.push_back(std::move(rec));
    }
  }

  auto started = std::chrono::steady_clock::now();
  st.last_commit_start = started;
  sequence_t first = 0;
  auto status = st.log->append(st.records, &first);
  auto nanos = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                           started)
          .count());

  auto pending = std::move(st.pending);
  st.pending.clear();
  st.pending_events = 0;

  if (!status.is_ok()) {
    // Nothing of this batch is acknowledged. The log refuses later writes
    // until resume() finds it exactly as acknowledged, so no acknowledged
    // write can ever follow a lost one.
    st.failure = write_error(status);
    st.refusal = st.failure;
    st.metrics->set_refusal(st.refusal);
    st.metrics->write_failures.fetch_add(1, std::memory_order_relaxed);
    st.last_resume = self->clock().now();  // the disk just failed: wait a while
    arm_resume_tick(self);
    auto err = to_caf(st.failure.code, st.failure.message);
    for (auto& p : pending) p.promise.deliver(err);
    return;
  }

  auto batch = std::make_shared<std::vector<event>>();
  batch->reserve(st.records.size());
  auto seq = first;
  for (auto& p : pending) {
    for (auto& ev : p.events) {
      ev.seq = seq++;
      batch->push_back(std::move(ev));
    }
  }

  auto& m = *st.metrics;
  m.batches.fetch_add(1, std::memory_order_relaxed);
  m.events.fetch_add(batch->size(), std::memory_order_relaxed);
  m.write_nanos.fetch_add(nanos, std::memory_order_relaxed);
  raise_max(m.max_batch, batch->size());
  raise_max(m.max_write_nanos, nanos);

  // Publish before answering: whoever hears of this commit (a requester, and
  // through it a user) asks the scheduler or projector only afterwards, when
  // the batch already waits in their mailboxes. So a list() or heartbeat
  // after cancel() sees the cancel.
  committed_batch published = std::move(batch);
  for (auto& sub : st.subscribers) caf::anon_send(sub, atom::committed::value, published);
  seq = first;
  for (auto& p : pending) {
    p.promise.deliver(seq);
    seq += p.events.size();  // moved-from events, the count is kept
  }
}

/// With commit_delay: sleeps until commit_delay after the previous commit
/// started when that was recent and the batch is still small, and says
/// whether it did. The journal's own thread sleeps (it is detached); appends
/// wait in its mailbox meanwhile, and the caller re-sends the flush behind
/// them so that they join this batch.
bool waited_for_commit_delay(self_ptr self) {
  auto& st = self->state;
  if (st.config.commit_delay.count() <= 0 || st.commit_delay_spent ||
      st.pending_events >= st.config.commit_delay_below)
    return false;
  auto due = st.last_commit_start + st.config.commit_delay;
  auto now = std::chrono::steady_clock::now();
  if (now >= due) return false;
  st.commit_delay_spent = true;
  std::this_thread::sleep_for(due - now);
  return true;
}

}  // namespace

result<std::vector<event>> read_job_events(const store::event_log& log, job_id job) {
  std::vector<event> out;
  std::string error;
  auto status = log.read_job(job, [&](const store::record& rec) {
    event ev;
    if (!decode_record(rec, ev, &error)) return false;
    out.push_back(std::move(ev));
    return true;
  });
  if (!error.empty()) return engine_error{engine_errc::corruption, error};
  if (!status.is_ok()) {
    auto code = status.code() == store::status_code::corruption ? engine_errc::corruption
                                                                 : engine_errc::storage;
    return engine_error{code, status.to_string()};
  }
  return out;
}

journal_actor::behavior_type journal(journal_actor::stateful_pointer<journal_state> self,
                                     store::event_log* log, journal_config config,
                                     std::shared_ptr<journal_metrics> metrics) {
  self->state.log = log;
  self->state.config = config;
  self->state.metrics = std::move(metrics);
  return {
      [=](atom::append, std::vector<event>& events) -> caf::result<sequence_t> {
        auto& st = self->state;
        if (st.refusal && !try_resume(self)) return to_caf(st.refusal->code, st.refusal->message);
        if (events.empty()) return st.log->head() + 1;
        if (st.pending_events + events.size() > st.config.max_pending_events) {
          st.metrics->refused_overloaded.fetch_add(1, std::memory_order_relaxed);
          return to_caf(engine_errc::overloaded,
                        "journal has " + std::to_string(st.pending_events) +
                            " events waiting for disk; try again later");
        }
        auto promise = self->make_response_promise<sequence_t>();
        st.pending_events += events.size();
        st.pending.push_back({std::move(events), promise});
        if (!st.flush_scheduled) {
          // The flush goes behind whatever already waits in the mailbox, so
          // it takes every append that arrived during the previous write.
          st.flush_scheduled = true;
          self->send(self, atom::flush::value);
        }
        return promise;
      },
      [=](atom::flush) {
        // While refusing, flushes are resume ticks (appends are refused then,
        // so nothing is pending).
        if (self->state.refusal && !try_resume(self)) {
          arm_resume_tick(self);
          return;
        }
        if (waited_for_commit_delay(self)) {
          self->send(self, atom::flush::value);
          return;
        }
        flush_pending(self);
      },
      [=](atom::read_job, job_id job) -> caf::result<std::vector<event>> {
        auto events = read_job_events(*self->state.log, job);
        if (!events) return to_caf(events.error().code, events.error().message);
        return std::move(*events);
      },
      [=](atom::subscribe, caf::actor& sub) {
        self->state.subscribers.push_back(std::move(sub));
      },
      [=](atom::unsubscrib, const caf::actor& sub) {
        auto& subs = self->state.subscribers;
        std::erase(subs, sub);
      },
      [=](atom::leases, const std::string& record) {
        // A failure leaves the log refusing, and the next append finds out.
        if (!self->state.refusal)
          (void)self->state.log->put_meta_unsynced(leases_meta_key, record);
      },
  };
}

}  // namespace jobsmith
