// Plain value types of the engine's API that several actors and the facade
// share. No CAF here, so the facade header stays CAF-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lock_table.hpp"
#include "../events/event.hpp"

namespace jobsmith {

/// A worker asks for up to `max_jobs` jobs from `queues` (all when empty).
struct lease_request {
  std::string worker;
  std::vector<std::string> queues;
  std::uint32_t max_jobs = 1;
  std::uint32_t worker_limit = 0;  // the worker's own cap on jobs held at once; 0 = none
  millis wait = 0;                 // long poll: how long to wait for work
  /// Who asked (an API token's name): recorded on the job.started events of
  /// the jobs this lease takes. Empty = "worker:<worker>".
  std::string principal;
};

/// A heartbeat from a remote worker: renews the lease, may carry progress.
struct heartbeat_request {
  job_id id = 0;
  std::uint64_t lease_token = 0;
  std::string detail;
  std::int32_t percent = -1;
  std::vector<log_line> lines;
  /// Who reported: recorded on the job.progress event the heartbeat's
  /// content goes into. Empty = "worker:<the job's worker>".
  std::string principal;
};

struct heartbeat_reply {
  millis lease_ms = 0;  // the lease now ends this long from now
  /// A cancel of the job was asked: stop the attempt and report.
  bool cancel_requested = false;
  /// With cancel_requested: the job ends as cancelled this long from now
  /// unless the worker reports first (what is left of timeouts.to_stop).
  millis stop_ms = 0;
};

enum class queue_op : std::uint8_t { pause, resume, configure };

struct queue_command {
  queue_op op = queue_op::pause;
  std::string queue;
  std::uint32_t concurrency = 0;  // for configure; 0 = unlimited
};

/// A recurring schedule that has not been deleted, as the scheduler holds it.
struct schedule_view {
  schedule_id id = 0;          // the id of its first run
  job_submitted spec;          // the latest run's submission: the next run's template
  job_id last_run = 0;         // the latest run (live, or ended with no successor yet)
  bool last_run_ended = false;
  std::uint32_t consecutive_failures = 0;
};

/// One queue as the scheduler sees it now.
struct queue_info {
  std::string name;
  bool paused = false;
  std::uint32_t concurrency = 0;
  std::uint64_t scheduled = 0;  // waiting for their due time
  std::uint64_t ready = 0;      // due, waiting for a slot
  std::uint64_t locking = 0;    // waiting for resources
  std::uint64_t running = 0;    // starting or running
};

/// Why a job that is not running is not running yet.
struct dispatch_explanation {
  job_id id = 0;
  std::string phase;  // "scheduled", "ready", "locking", "running", "not live"
  std::string text;   // "waiting for db:charts held by job 17", ...
  std::vector<lock_table::wait_reason> lock_waits;
};

/// A worker (the in-process pool or a remote one) as the scheduler counts it.
struct worker_info {
  std::string name;
  std::uint32_t limit = 0;  // 0 = none
  std::uint32_t held = 0;   // jobs leased to it now
  bool local = false;
};

struct scheduler_stats {
  std::uint64_t live_jobs = 0;
  std::uint64_t running = 0;
  std::uint64_t dispatched = 0;  // starts since the engine opened
  std::uint64_t reclaimed = 0;
  std::vector<worker_info> workers;
};

}  // namespace jobsmith
