// The journal: the single writer of the event log, with group commit.
//
// While one write (a WriteBatch with sync=true) is in flight the actor is
// blocked, so every append that arrives meanwhile waits in its mailbox; the
// next flush takes all of them as one batch. Durability therefore costs one
// fsync per batch, and batches grow with load. Once a batch is durable it
// is published to subscribers, in sequence order; then each requester gets
// its first sequence number (so subscribers never lag behind an answer).
//
// Under light load a write gathers little: each append arriving alone costs
// a whole fsync (about 0.3 ms and, on a virtual disk, about as much CPU).
// commit_delay bounds that: while commits follow each other closely and
// the next batch is small, the next commit waits until commit_delay after
// the previous one started, gathering whatever arrives meanwhile. A lone
// append after a quiet spell, and any large batch, commits at once.
//
// A failed write (disk full, I/O error) acknowledges nothing of its batch.
// From then on the log refuses writes, and so does the journal: every append
// fails at once with no_space or storage, while reads go on. At most once
// per resume_interval, on a timer and when an append arrives, the journal
// calls event_log::resume(); once that succeeds (the disk works again and
// the stored head is the acknowledged one) appends are accepted again.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "actors/engine_error.hpp"
#include "actors/protocol.hpp"
#include "store/event_log.hpp"

namespace jobsmith {

/// Counters the journal updates and anyone may read (metrics, bench).
struct journal_metrics {
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> events{0};
  std::atomic<std::uint64_t> max_batch{0};
  std::atomic<std::uint64_t> write_nanos{0};      // sum over batches
  std::atomic<std::uint64_t> max_write_nanos{0};
  std::atomic<std::uint64_t> refused_overloaded{0};
  std::atomic<std::uint64_t> write_failures{0};  // failed batches
  std::atomic<std::uint64_t> resumes{0};         // times writes resumed after one

  /// Why the journal refuses writes now (no_space or storage); nullopt while
  /// it accepts them. Cheap while writes are accepted.
  std::optional<engine_error> refusal() const {
    if (!refusing_.load(std::memory_order_acquire)) return std::nullopt;
    std::lock_guard lock(refusal_mu_);
    return refusal_;
  }
  void set_refusal(std::optional<engine_error> r) {
    std::lock_guard lock(refusal_mu_);
    refusing_.store(r.has_value(), std::memory_order_release);
    refusal_ = std::move(r);
  }

 private:
  std::atomic<bool> refusing_{false};
  mutable std::mutex refusal_mu_;
  std::optional<engine_error> refusal_;
};

struct journal_config {
  /// Appends beyond this many buffered events are refused as overloaded.
  std::size_t max_pending_events = 200'000;
  /// While the log refuses writes, resume() is tried at most this often.
  std::chrono::milliseconds resume_interval{1000};
  /// Commits start at least this far apart while batches are smaller than
  /// commit_delay_below events (see above); zero = every flush at once.
  std::chrono::microseconds commit_delay{0};
  std::size_t commit_delay_below = 256;
};

struct journal_state {
  // Not an aggregate: CAF would construct the state from the self pointer.
  journal_state() = default;
  static inline const char* name = "journal";

  struct pending_append {
    std::vector<event> events;
    caf::typed_response_promise<sequence_t> promise;
  };

  // Constant after construction.
  store::event_log* log = nullptr;  // not owned; outlives the actor
  journal_config config;
  std::shared_ptr<journal_metrics> metrics;

  // Owned by the actor.
  std::vector<pending_append> pending;
  std::size_t pending_events = 0;
  bool flush_scheduled = false;
  /// The scheduled flush already waited for commit_delay once.
  bool commit_delay_spent = false;
  std::chrono::steady_clock::time_point last_commit_start{};
  /// Set while the log refuses writes (after a failed write): every append
  /// is answered with it until resume() succeeds.
  std::optional<engine_error> refusal;
  engine_error failure;  // the write failure that started the refusal
  caf::actor_clock::time_point last_resume{};  // last resume() attempt (actor clock)
  caf::actor_clock::time_point tick_due{};     // the pending resume tick
  std::vector<caf::actor> subscribers;
  std::vector<store::record_input> records;  // reused across flushes
};

/// REQUIRES: `log` outlives the actor. Spawn detached (it blocks on fsync),
/// except under CAF's deterministic test coordinator.
journal_actor::behavior_type journal(journal_actor::stateful_pointer<journal_state> self,
                                     store::event_log* log, journal_config config,
                                     std::shared_ptr<journal_metrics> metrics);

/// Reads and decodes one job's events from the log (used by the journal and
/// by readers holding the log directly; the log's reads are thread-safe).
result<std::vector<event>> read_job_events(const store::event_log& log, job_id job);

}  // namespace jobsmith
