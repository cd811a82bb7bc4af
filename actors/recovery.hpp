// Recovery: what the engine rebuilds from the log when it opens.
//
//   1. Open the store; it reads the head and verifies the tail records'
//      hash chain (store/rocksdb_log.hpp), refusing a corrupt log with the
//      record's sequence number.
//   2. Replay 1..head in order, folding each event with the same pure
//      functions the live engine uses: job records (events/job_state.hpp),
//      queue settings and schedules (below), the highest job id.
//   3. Hand the live jobs to the scheduler (engine.cpp): waiting jobs get
//      their timers, running jobs keep their locks; running jobs whose
//      worker was this engine's in-process pool died with the process and
//      are reclaimed (then retried or discarded by their policy); jobs
//      leased to remote workers get a fresh lease deadline. Schedules whose
//      last run ended without a successor get their next run.
//   4. Append engine.started; start serving.
//
// A plain fold, no actors: tests drive it on any log.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/engine_error.hpp"
#include "events/event.hpp"
#include "events/job_state.hpp"
#include "store/event_log.hpp"

namespace jobsmith {

struct queue_settings {
  bool paused = false;
  std::uint32_t concurrency = 0;  // 0 = unlimited
};

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

/// How a run's terminal state counts for its schedule's failure streak.
enum class run_verdict { success, failure, neutral };
run_verdict verdict_of(job_state terminal);

struct recovered_state {
  std::vector<job_record> live_jobs;  // not terminal, in id order
  std::unordered_map<std::string, queue_settings> queues;
  std::unordered_map<schedule_id, schedule_info> schedules;  // not deleted
  job_id next_job_id = 1;
  sequence_t head = 0;
  std::uint64_t events_replayed = 0;
  std::uint64_t jobs_seen = 0;
};

/// Step 2. `observe` (optional) sees every decoded event in order, for
/// projections that rebuild alongside.
result<recovered_state> recover(const store::event_log& log,
                                const std::function<void(const event&)>& observe = {});

}  // namespace jobsmith
