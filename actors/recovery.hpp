// Recovery: what the engine rebuilds from the log when it opens.
//
//   1. Open the store; it reads the head and verifies the tail records'
//      hash chain (store/rocksdb_log.hpp), refusing a corrupt log with the
//      record's sequence number.
//   2. Replay 1..head in order, folding each event with the same pure
//      functions the live engine uses: job records (events/job_state.hpp),
//      queue settings, schedules and registered kinds (below), the
//      highest job id.
//      With a snapshot (recover_from_snapshot): load the queue view the
//      projector last wrote, fold only the events after it, and read each
//      live job's record from its stream; a snapshot that does not decode,
//      is of another version or does not fit the log is ignored with a
//      warning and the log is replayed from the start.
//   3. Hand the live jobs to the scheduler (engine.cpp): waiting jobs get
//      their timers, running jobs keep their locks; running jobs whose
//      worker was this engine's in-process pool died with the process and
//      are reclaimed (then retried or discarded by their policy); jobs
//      leased to remote workers keep what was left of their lease when the
//      previous run last saved the lease clock (actors/lease_clock.hpp),
//      or the whole heartbeat timeout if it saved none. Schedules whose
//      last run ended without a successor get their next run.
//   4. Append engine.started; start serving.
//
// A plain fold, no actors: tests drive it on any log.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/engine_error.hpp"
#include "actors/lease_clock.hpp"
#include "events/event.hpp"
#include "events/job_state.hpp"
#include "projections/queue_view.hpp"
#include "store/event_log.hpp"

namespace jobsmith {

struct queue_settings {
  bool paused = false;
  std::uint32_t concurrency = 0;  // 0 = unlimited
};

/// Decodes a stored record into `out`, with its sequence and job. On failure
/// *error says "record N: body does not decode: <why>". For every reader of
/// the log (recovery, the journal, the engine, the offline tools).
bool decode_record(const store::record& rec, event& out, std::string* error);

/// Folds queue.paused / queue.resumed / queue.configured; ignores the rest.
void apply_queue_event(std::unordered_map<std::string, queue_settings>& queues, const event& ev);

/// A recurring schedule as far as the log tells.
struct schedule_info {
  schedule_id id = 0;
  job_id last_run = 0;
  bool last_run_ended = false;
  std::uint32_t consecutive_failures = 0;
  job_submitted spec;  // the last run's submission: the template of the next
};

struct recovered_state {
  std::vector<job_record> live_jobs;  // not terminal, in id order
  std::unordered_map<std::string, queue_settings> queues;
  std::unordered_map<schedule_id, schedule_info> schedules;  // not deleted
  kind_table kinds;  // registered kinds (kind.configured)
  job_id next_job_id = 1;
  sequence_t head = 0;
  std::uint64_t events_replayed = 0;
  std::uint64_t jobs_seen = 0;
  sequence_t snapshot_seq = 0;    // the snapshot recovery started from; 0 = none
  std::string snapshot_warning;   // why a stored snapshot was not used
  // The lease clock the previous run saved last (actors/lease_clock.hpp),
  // by job; empty when none was saved or it did not decode.
  std::unordered_map<job_id, saved_lease> saved_leases;
};

/// The projector stores each queue view snapshot under this prefix and the
/// sequence it covers, keeping older ones for `jobsmith replay --at`.
inline constexpr std::string_view queue_view_snapshot_prefix = "queue_view@";
/// "queue_view@" and `covered` in 20 digits (names sort like sequences).
std::string queue_view_snapshot_name(sequence_t covered);

/// The time of record `seq`, or nullopt when it is missing or undecodable.
std::optional<millis> record_time(const store::event_log& log, sequence_t seq);

/// A stored queue view and the sequence it covers.
struct stored_view {
  queue_view view;
  sequence_t covered = 0;
};

/// The newest stored queue view snapshot that covers at most `limit`, for
/// which `accept` (optional) holds, that decodes and fits the log (its head
/// is the sequence it claims, with that record's time). Snapshots passed
/// over for damage or misfit are named in *warnings, with why; nullopt when
/// none is usable (or the listing failed: also a warning).
std::optional<stored_view> load_queue_view(
    const store::event_log& log, sequence_t limit, std::vector<std::string>* warnings,
    const std::function<bool(const store::snapshot_info&)>& accept = {});

/// Step 2. `observe` (optional) sees every decoded event in order, for
/// projections that rebuild alongside.
result<recovered_state> recover(const store::event_log& log,
                                const std::function<void(const event&)>& observe = {});

/// Step 2 from the newest valid queue view snapshot (see the top; older
/// ones are tried when newer ones are damaged); `view` ends as the queue
/// view at the log's head either way. The same state as
/// recover() (tests/actors/recovery_test.cpp compares them).
result<recovered_state> recover_from_snapshot(const store::event_log& log, queue_view& view);

}  // namespace jobsmith
