// The queue view: every job's current state in compact form, the queues'
// settings, counts per queue and state, who holds which resource and who
// waits for it, what is leased to whom. It answers "what did the queue look
// like at sequence S" (fold the log up to S) and "why is job N not running".
//
// A pure fold over committed events in sequence order: no CAF, no I/O, the
// same code live and in replay. Rows are compact (names interned, no
// payloads, results or handovers: the log keeps those and a job's own view
// reads them from its stream), about 170 bytes a job, and a retired job's
// row is let go (row_store.hpp), so memory follows the jobs not retired.
//
// The job fields follow events/job_state.cpp's apply() exactly;
// tests/projections/queue_view_test.cpp checks every row against apply()
// after every event of randomized runs.
#pragma once

#include <algorithm>
#include <array>
#include <map>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../events/event.hpp"
#include "../events/job_state.hpp"
#include "job_filter.hpp"
#include "row_store.hpp"

namespace jobsmith {

/// Small ids for names that repeat (queues, kinds, workers, resources).
/// Id 0 is the empty name.
class name_table {
 public:
  std::uint32_t intern(std::string_view name);
  std::optional<std::uint32_t> find(std::string_view name) const;
  const std::string& name(std::uint32_t id) const { return names_[id]; }
  std::size_t size() const { return names_.size(); }

 private:
  struct hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::string> names_{std::string()};
  std::unordered_map<std::string, std::uint32_t, hash, std::equal_to<>> ids_{{std::string(), 0}};
};

/// One job as the view keeps it. Name fields are name_table ids.
struct job_row {
  job_id id = 0;  // 0: no job.submitted was seen for this id
  job_state state = job_state::scheduled;  // stored state, as job_record::state
  attempt_end last_end = attempt_end::none;
  bool review_required = false;
  std::int32_t priority = 0;
  std::uint32_t queue = 0;
  std::uint32_t kind = 0;
  std::uint32_t worker = 0;  // worker of the current or last attempt, 0 = none yet
  std::uint32_t attempts = 0;
  std::uint32_t max_attempts = 0;
  std::uint32_t retry_budget = 0;  // spec.retry.max_attempts, for a retry by hand
  std::uint32_t resources = 0;     // 1 + index of its resource set, 0 = none
  millis submitted_at = 0;
  millis due_at = 0;
  millis requested_at = 0;  // as job_record::requested_at
  millis started_at = 0;
  millis finished_at = 0;
  std::uint64_t lease_token = 0;
  sequence_t submitted_seq = 0;
  sequence_t last_seq = 0;
  std::uint64_t event_count = 0;
  schedule_id schedule = 0;  // spec.schedule: the recurring schedule it is a run of
  // When the finished job leaves the live views (retention), fixed when it
  // ends; 0 while it is live, or when its retention keeps it.
  millis retire_at = 0;
  std::string last_error;
};

using row_store = basic_row_store<job_row>;

/// How long finished jobs stay in the live views (queue.retention): after
/// a success (succeeded, accepted) and after any other end (discarded,
/// declined, cancelled, expired). 0 = kept.
struct retention_policy {
  millis succeeded = 0;
  millis failed = 0;
  friend bool operator==(const retention_policy&, const retention_policy&) = default;
};

/// A recurring schedule as the log tells it (schedule.created until
/// schedule.deleted): its latest run and that run's failure streak. The run's
/// job.submitted is the template of the next run.
struct schedule_row {
  schedule_id id = 0;
  job_id last_run = 0;
  bool last_run_ended = false;
  std::uint32_t consecutive_failures = 0;
};

/// A queue's settings and its jobs per state.
struct queue_row {
  std::string name;
  bool paused = false;
  std::uint32_t concurrency = 0;  // 0 = unlimited
  std::array<std::uint64_t, job_state_count> by_state{};  // effective states, retired jobs not counted
  std::uint64_t retired = 0;  // finished jobs past their retention, rows let go or not
  retention_policy retention;  // in force: the queue's own, else the default
};

/// Events of the whole log by what they did (an event the job rules ignore
/// is counted in `events` only).
struct event_counts {
  std::uint64_t events = 0;
  std::uint64_t submitted = 0;
  std::uint64_t started = 0;
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;
  std::uint64_t reclaimed = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t expired = 0;
  friend bool operator==(const event_counts&, const event_counts&) = default;
};

/// A resource with the running jobs that hold it and the due jobs that
/// wait for it (in the scheduler's order).
struct resource_row {
  std::string name;
  std::vector<std::pair<job_id, lock_mode>> holders;
  std::vector<std::pair<job_id, lock_mode>> waiters;
};

/// Registered kinds by name: the last kind.configured of each (a kind
/// configured with no follow-up and no schema is absent).
using kind_table = std::map<std::string, kind_configured, std::less<>>;
/// Folds kind.configured into `kinds`; ignores other events.
void apply_kind_event(kind_table& kinds, const event& ev);

class queue_view {
 public:
  /// Version of this fold's rules and of its snapshot encoding; a snapshot
  /// of another version is rebuilt from the log, never read.
  /// 2: schedules, and each row's schedule id. 3: rows in checksummed
  /// chunks, read in parallel. 4: event counts. 5: rows stored against
  /// the row before them, and a word-wise checksum (half the bytes of 4).
  /// 6: registered kinds. 7: a finished attempt keeps its worker; a past
  /// run_at stays the due time; rows keep the time of a run-now request
  /// (flag bit 8, then the time after the error text). 8: retention
  /// settings (after the kinds), and rows their retirement time (flag bit
  /// 9, then the time after the request's). 9: rows of retired jobs let
  /// go (the highest job id, the released blocks and the jobs let go per
  /// queue, after the retention settings); the rule that events of a
  /// retired job change nothing.
  static constexpr std::uint32_t version = 9;

  /// Folds one committed event; `ev.seq` must follow the last one applied.
  void apply(const event& ev);

  sequence_t head() const { return head_; }
  millis head_time() const { return head_time_; }
  std::uint64_t jobs() const { return job_count_; }
  const event_counts& totals() const { return totals_; }

  /// The job's row, or nullptr.
  const job_row* find(job_id id) const;
  const name_table& names() const { return names_; }
  /// The resource set of a row (empty when it declares none).
  const std::vector<std::pair<std::uint32_t, lock_mode>>& resources_of(const job_row& row) const;
  /// Distinct resource sets the rows name (each is kept once).
  std::size_t resource_set_count() const { return resource_sets_.size(); }

  /// Jobs per effective state at wall time `now` (a waiting job is queued
  /// once due), indexed by job_state.
  std::array<std::uint64_t, job_state_count> counts(millis now) const;
  /// Ids of the jobs the filter matches, in id order, at most
  /// filter.limit; states are judged at wall time `now`.
  std::vector<job_id> match(const job_filter& filter, millis now) const;
  /// Every queue that has jobs or settings, by name.
  std::vector<queue_row> queues(millis now) const;
  /// Running jobs in id order: what is leased to whom.
  std::vector<const job_row*> running() const;
  /// Due jobs (queued at `now`) in the scheduler's order: those requested
  /// to run now first (earliest request first), then priority (higher
  /// first), then due time, then submission sequence.
  std::vector<const job_row*> ready(millis now) const;
  /// Resources held or waited for, by name.
  std::vector<resource_row> resources(millis now) const;
  /// Why job `id` is where it is at `now`, in one line: "running on w1
  /// (attempt 2)", "waiting for db:charts held by job 17", "queue 'mail' is
  /// paused", "due at 2026-11-22T14:02:00.000Z", "succeeded".
  std::string explain(job_id id, millis now) const;

  // -- retention ----------------------------------------------------------------
  // A finished job is retired once its row's retire_at has passed: lists,
  // counts, queues and explain() leave it out from then on (its events stay
  // in the log). retire_at is set when the job ends, from the retention in
  // force then; a queue.retention event moves it for the jobs it concerns
  // that are not retired yet (to no earlier than the event's time), so a
  // retired job never comes back and every query at `now` is a pure
  // function of the events up to now: replay --at T answers as live at T.

  /// The retention in force for a queue (its own setting, else the default).
  retention_policy retention_for(std::string_view queue) const;
  /// The default (queue.retention with an empty queue); {0, 0} = kept.
  retention_policy default_retention() const;
  /// Retention settings as recorded, by queue name id (0 = the default).
  const std::unordered_map<std::uint32_t, retention_policy>& retention_settings() const {
    return retention_;
  }
  /// When job `id` was retired if it is retired at `now`, else 0; -1 for
  /// an id whose row was let go (the time went with it; an id that never
  /// had a job answers -1 too, and its log has no events).
  millis retired_at(job_id id, millis now) const;

  /// Lets go of the rows of jobs retired at `before` (with whole blocks of
  /// rows: row_store.hpp), counting them per queue. Queries answer as
  /// before; events for those jobs change nothing, as for any retired
  /// job. Returns how many rows were let go.
  std::size_t release_retired(millis before);
  /// What the rows take: rows built in the blocks held, and in maps.
  std::size_t row_slots() const { return rows_.rows_held(); }
  /// Rows of retired jobs let go so far.
  std::uint64_t released() const;

  /// The whole view as bytes, for a snapshot:
  ///   "jsqv" | u32 LE version | u64 LE checksum of head | varint len | head
  ///     | varint chunk count | chunks
  ///   head:  sequence, time, job count, the name table, the resource sets,
  ///          the queue settings, the schedules, the event counts, the
  ///          registered kinds (kind, on_accept, schema: strings)
  ///   chunk: u64 LE checksum of rows | varint row count (<= 65,536)
  ///          | varint len | rows, in id order across all chunks
  ///   (events/binary_io.hpp encodings; each row as queue_view.cpp's
  ///   put_row describes, against the row before it in its chunk).
  std::string encode() const;
  /// The view `bytes` hold, or nullopt with *error saying why: another
  /// version, a checksum mismatch, or bytes that do not describe a
  /// consistent view. Safe on arbitrary input.
  static std::optional<queue_view> decode(std::string_view bytes, std::string* error);
  /// The checksum of a snapshot's head and of each chunk's rows (64 bits,
  /// word-wise; see queue_view.cpp), for tools that build or repair
  /// snapshot bytes.
  static std::uint64_t checksum(std::string_view bytes);

  /// Every settings change of a queue so far.
  struct queue_settings {
    bool paused = false;
    std::uint32_t concurrency = 0;
  };
  const std::unordered_map<std::uint32_t, queue_settings>& settings() const { return settings_; }
  /// Schedules not deleted, by id.
  const std::map<schedule_id, schedule_row>& schedules() const { return schedules_; }
  /// Registered kinds (kind.configured), by name.
  const kind_table& kinds() const { return kinds_; }
  /// The highest job id any event named (0 when none).
  job_id max_job() const { return rows_.max_id(); }
  /// Calls fn(row) for every job not in a terminal state, in id order.
  template <class Fn>
  void for_each_live(Fn&& fn) const {
    rows_.visit(0, [&](const job_row& r) {
      if (!is_terminal(r.state)) fn(r);
      return true;
    });
  }

 private:
  static bool retired(const job_row& r, millis now) { return r.retire_at != 0 && r.retire_at <= now; }
  retention_policy policy_of(std::uint32_t queue) const;
  void apply_retention(const queue_retention& setting, millis time);

  sequence_t head_ = 0;
  millis head_time_ = 0;
  std::uint64_t job_count_ = 0;
  name_table names_;
  row_store rows_;
  // Retired jobs whose rows were let go, per queue name id.
  std::unordered_map<std::uint32_t, std::uint64_t> released_;
  // Distinct resource sets, each once (a row names its set by 1 + index):
  // they grow with the kinds of work, not with history.
  std::vector<std::vector<std::pair<std::uint32_t, lock_mode>>> resource_sets_;
  std::map<std::vector<std::pair<std::uint32_t, lock_mode>>, std::uint32_t> resource_set_ids_;
  std::unordered_map<std::uint32_t, queue_settings> settings_;
  std::map<schedule_id, schedule_row> schedules_;
  kind_table kinds_;
  event_counts totals_;
  std::unordered_map<std::uint32_t, retention_policy> retention_;  // name id 0 = the default
};

}  // namespace jobsmith
