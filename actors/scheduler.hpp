// The scheduler decides what runs, and when.
//
// Its view of the jobs is a fold of committed events (the journal publishes
// every batch to it) applied with the same `apply` as everywhere else; its
// decisions go back through the job actors as commands. It owns:
// - the ready index (actors/ready_index.hpp): due jobs, run-now requests
//   first, then by priority, due time, id; timers for jobs due later, retry
//   backoffs and time-to-start;
// - per-queue pause and concurrency limits, counted from the moment a job
//   asks for its locks until its attempt ends;
// - workers: the in-process pool (pushed to) and remote workers (which
//   lease by long poll), each with its own limit;
// - leases: a remote job's lease ends `timeouts.heartbeat` after its last
//   heartbeat, on the monotonic clock; an expired lease or an exceeded
//   time-to-run is reclaimed (job.reclaimed, then retry or discard);
// - unique keys of live jobs, recurring schedules, the next job id;
// - the directory of job actors (it stops them when it stops).
//
// Locks are asked of the lock actor only for jobs that declare resources;
// a job waits for its grant holding its queue slot but no worker slot.
#pragma once

#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actors/clock.hpp"
#include "actors/protocol.hpp"
#include "actors/ready_index.hpp"
#include "actors/recovery.hpp"
#include "actors/worker_pool.hpp"

namespace jobsmith {

struct scheduler_config {
  /// Name of the in-process worker pool ("local:<instance>"); empty = none.
  std::string local_worker;
  std::uint32_t local_slots = 256;
  /// Submissions beyond this many live (not terminal) jobs are refused.
  std::size_t max_live_jobs = 1'000'000;
  /// validate()'s shortest recurrence interval for new submissions.
  millis min_recurrence_interval = jobsmith::min_recurrence_interval;
  /// Submitted events not yet durable beyond which submits are refused.
  std::size_t max_pending_submits = 100'000;
  millis max_lease_wait = 60'000;
  /// Heartbeat progress becomes job.progress at most this often per job.
  millis progress_interval = 1000;
  std::uint64_t seed = 0x6a6f62736d697468ULL;
};

struct scheduler_state {
  // Not an aggregate: CAF would construct the state from the self pointer.
  scheduler_state() = default;
  static inline const char* name = "scheduler";
  using time_point = caf::actor_clock::time_point;

  enum class phase : std::uint8_t {
    waiting,     // scheduled: due later
    ready,       // in the ready index
    locking,     // asked the lock actor
    granted,     // holds its locks, waits for a worker
    starting,    // cmd_start sent to the job actor
    running,     // started; leased to `worker`
    reclaiming,  // cmd_reclaim sent
    review,      // pending_review: nothing to schedule
  };

  struct tracked_job {
    job_record rec;
    phase ph = phase::waiting;
    bool holds_slot = false;   // counted in its queue's active jobs
    bool holds_locks = false;  // acquire sent, not yet released
    std::string worker;
    std::uint64_t token = 0;   // the token this scheduler issued for the attempt
    std::uint64_t lease_id = 0;  // remote lease request being served, while starting
    time_point lease_deadline = time_point::max();
    time_point run_deadline = time_point::max();
    // A cancel was asked and the worker told: the job is cancelled at this
    // point unless the attempt ends first (timeouts.to_stop).
    time_point stop_deadline = time_point::max();
    millis last_progress = 0;
    heartbeat_request buffered;  // progress not yet recorded
    // rec.spec.payload is the job's payload: no job actor was spawned from
    // this record yet. The first command spawns one from it (hydrated, no
    // read of the log) and the payload moves there.
    bool holds_payload = false;
  };

  struct queue_slot {
    queue_settings settings;
    std::uint32_t active = 0;
  };

  struct worker_entry {
    std::string name;
    std::uint32_t limit = 0;  // 0 = none
    std::uint32_t held = 0;
    bool local = false;
  };

  struct pending_lease {
    std::uint64_t id = 0;
    lease_request request;
    caf::typed_response_promise<std::vector<job_record>> promise;
    std::vector<job_record> leased;
    /// The jobs given to it, in the order taken: the answer's order, since
    /// their starts commit (and are answered) in any order.
    std::vector<job_id> taken;
    std::uint32_t starting = 0;
    /// Jobs were given to it in one dispatch round; it takes no more and is
    /// answered once their starts commit. Reset if none of them started.
    bool filled = false;
    time_point deadline;
  };

  // Constant after construction.
  scheduler_config config;
  journal_actor journal;
  std::shared_ptr<const runner_set> runners;  // null without an in-process pool
  lock_actor locks;
  wall_clock clock;

  // Owned by the actor.
  std::unordered_map<job_id, tracked_job> jobs;
  std::unordered_map<job_id, job_actor> actors;
  ready_index ready;
  std::deque<job_id> granted;
  std::multimap<millis, job_id> due_timers;     // wall clock
  std::multimap<millis, job_id> start_limits;   // wall clock: became_due_at + to_start
  std::multimap<time_point, std::pair<job_id, std::uint64_t>> deadlines;  // monotonic
  std::unordered_map<std::string, queue_slot> queues;
  std::unordered_map<std::string, job_id> unique_keys;
  /// Kinds whose accepted reviews submit a follow-up job: kind -> the
  /// follow-up's kind (kind.configured's on_accept).
  std::unordered_map<std::string, std::string> follow_up_kinds;
  std::unordered_map<schedule_id, schedule_info> schedules;
  // Schedules whose next run could not be submitted (the log refused the
  // write): tried again at these (monotonic) times.
  std::multimap<time_point, schedule_id> schedule_retries;
  std::unordered_map<std::string, worker_entry> workers;
  std::map<std::uint64_t, pending_lease> leases;
  std::uint64_t next_lease_id = 1;
  job_id next_job_id = 1;
  std::size_t pending_submits = 0;
  // Due times of the ticks in flight (delayed atom::tick messages), one
  // entry each. A tick is armed only when none in flight is due at or
  // before the time needed, and each arriving tick takes out the earliest
  // entry: so every tick in flight was needed when armed, and ticks never
  // multiply (earlier, a tick armed ahead of one in flight left both going,
  // and each arrival armed another).
  std::multiset<time_point> ticks_in_flight;
  // The lease clock (actors/lease_clock.hpp): when it is saved next, and
  // whether the last save held no lease (then an empty one is not repeated).
  time_point next_lease_save{};
  bool saved_no_leases = true;
  // Jobs leased to remote workers (a lease deadline is armed); an attempt's
  // end removes its job, the lease clock drops any left over.
  std::unordered_set<job_id> leased;
  std::mt19937_64 rng;
  std::uint64_t dispatched = 0;
  std::uint64_t reclaimed = 0;
};

/// `seed` is what recovery rebuilt. `runners` may be null (no in-process pool).
scheduler_actor::behavior_type scheduler(scheduler_actor::stateful_pointer<scheduler_state> self,
                                         scheduler_config config, recovered_state seed,
                                         journal_actor journal,
                                         std::shared_ptr<const runner_set> runners,
                                         wall_clock clock);

}  // namespace jobsmith
