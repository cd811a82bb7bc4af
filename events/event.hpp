// The event catalog: every fact jobsmith records, as plain value types.
//
// An event is immutable once the journal has committed it. Each body type
// carries its own schema version (`version`); the codec writes it next to
// the type tag and a reader refuses versions newer than it knows
// (events/codec.hpp). Times are wall-clock milliseconds since the Unix epoch;
// durations are milliseconds. Payloads and results are JSON text, kept as
// text so the log stores exactly what the user sent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace jobsmith {

using job_id = std::uint64_t;       // 0 means "no job" (queue and engine events)
using sequence_t = std::uint64_t;   // journal position, 1-based, gap-free
using schedule_id = std::uint64_t;  // 0 means "not part of a recurring schedule"
using millis = std::int64_t;        // wall time or duration in milliseconds

enum class lock_mode : std::uint8_t { shared = 0, exclusive = 1 };

/// A resource a job holds while it runs, e.g. {"db:charts", exclusive}.
struct resource_claim {
  std::string name;
  lock_mode mode = lock_mode::exclusive;
  friend bool operator==(const resource_claim&, const resource_claim&) = default;
};

/// When and how often a failed attempt is tried again.
/// delay(n) = min(initial_interval * coefficient^(n-1), max_interval),
/// then spread by +-jitter (a fraction, 0.1 = 10%). n is the attempt that
/// failed, counting from 1.
struct retry_policy {
  std::uint32_t max_attempts = 3;  // >= 1; an attempt counts when it starts
  millis initial_interval = 1000;  // >= 0
  double backoff_coefficient = 2.0;  // >= 1
  millis max_interval = 300'000;   // >= initial_interval
  double jitter = 0.1;             // in [0, 1]
  friend bool operator==(const retry_policy&, const retry_policy&) = default;
};

/// Time limits per phase; 0 means "no limit".
struct phase_timeouts {
  millis to_start = 0;   // from becoming due to starting, else job.expired
  millis to_run = 0;     // from start to outcome, else job.reclaimed
  millis heartbeat = 30'000;  // lease length; a lease not renewed within it is reclaimed
  /// From the moment a running attempt's worker is told of a cancel (its
  /// next heartbeat; at once in-process) to the job's end as cancelled if
  /// the worker has not reported by then. 0 = cancel at once, without
  /// waiting for the worker (job.submitted version 3).
  millis to_stop = 10'000;
  friend bool operator==(const phase_timeouts&, const phase_timeouts&) = default;
};

/// A recurring job: after each run ends, the next run is submitted `interval`
/// later; after consecutive failures the gap grows by `failure_backoff` per
/// failure (capped at `max_interval`), and `failure_limit` consecutive
/// failures (0 = unlimited) end the schedule.
struct recurrence {
  millis interval = 0;  // 0 = not recurring
  double failure_backoff = 2.0;
  millis max_interval = 86'400'000;
  std::uint32_t failure_limit = 0;
  friend bool operator==(const recurrence&, const recurrence&) = default;
};

enum class log_level : std::uint8_t { info = 0, warn = 1, error = 2 };

struct log_line {
  log_level level = log_level::info;
  millis time = 0;
  std::string text;
  friend bool operator==(const log_line&, const log_line&) = default;
};

// -- job events ---------------------------------------------------------------

/// A job entered the system. Its id is the event's job id.
struct job_submitted {
  static constexpr std::string_view type_name = "job.submitted";
  static constexpr std::uint16_t version = 3;
  std::string kind;
  std::string queue = "default";
  std::string payload = "{}";  // JSON text
  std::int32_t priority = 0;   // higher runs first
  millis run_at = 0;           // due time; <= event time means "due now"
  retry_policy retry;
  phase_timeouts timeouts;
  std::vector<resource_claim> resources;
  std::string unique_key;  // empty = none
  bool review_required = false;
  recurrence recur;
  schedule_id schedule = 0;  // set on runs of a recurring schedule
  /// Version 2. Set on an on-accept follow-up: the reviewed job whose
  /// acceptance submitted it (in the same commit as that job.reviewed).
  job_id follows = 0;
  friend bool operator==(const job_submitted&, const job_submitted&) = default;
};

/// An attempt began: the job was leased to `worker` under `lease_token`.
struct job_started {
  static constexpr std::string_view type_name = "job.started";
  static constexpr std::uint16_t version = 1;
  std::uint32_t attempt = 0;  // 1-based
  std::string worker;
  std::uint64_t lease_token = 0;
  friend bool operator==(const job_started&, const job_started&) = default;
};

/// What a running attempt reported for people: detail, percent, log lines.
/// Heartbeats themselves are not events; their content is coalesced here.
struct job_progress {
  static constexpr std::string_view type_name = "job.progress";
  static constexpr std::uint16_t version = 1;
  std::uint32_t attempt = 0;
  std::string detail;
  std::int32_t percent = -1;  // -1 = unknown
  std::vector<log_line> lines;
  friend bool operator==(const job_progress&, const job_progress&) = default;
};

/// The attempt finished without error. Moves to pending_review when the job
/// requires review, else to succeeded.
struct job_succeeded {
  static constexpr std::string_view type_name = "job.succeeded";
  static constexpr std::uint16_t version = 1;
  std::uint32_t attempt = 0;
  std::string result = "null";  // JSON text
  friend bool operator==(const job_succeeded&, const job_succeeded&) = default;
};

/// The attempt failed. With next_run_at > 0 the job waits (scheduled) for its
/// next attempt; with next_run_at == 0 it is discarded (permanent error or out
/// of attempts): the failure itself is the discarding event.
struct job_failed {
  static constexpr std::string_view type_name = "job.failed";
  static constexpr std::uint16_t version = 1;
  std::uint32_t attempt = 0;
  std::string error;
  bool retryable = true;
  millis next_run_at = 0;
  std::string handover;  // state handed to the next attempt (JSON text or empty)
  friend bool operator==(const job_failed&, const job_failed&) = default;
};

/// The engine took a running job back: lease not renewed, time to run
/// exceeded, or the in-process worker died with the engine. Retried or
/// discarded exactly like a failure (next_run_at).
struct job_reclaimed {
  static constexpr std::string_view type_name = "job.reclaimed";
  static constexpr std::uint16_t version = 1;
  std::uint32_t attempt = 0;
  std::string reason;
  millis next_run_at = 0;
  friend bool operator==(const job_reclaimed&, const job_reclaimed&) = default;
};

/// Discarded by hand (not through a failure; see job_failed).
struct job_discarded {
  static constexpr std::string_view type_name = "job.discarded";
  static constexpr std::uint16_t version = 1;
  std::string reason;
  friend bool operator==(const job_discarded&, const job_discarded&) = default;
};

/// A cancel of a running attempt was asked: the worker is told (heartbeat
/// answer, or the in-process handler's cancelled()) and has the job's
/// timeouts.to_stop to stop. The job stays running until the attempt's
/// report, its lease's end or to_stop's end records job.cancelled.
struct job_cancel_requested {
  static constexpr std::string_view type_name = "job.cancel_requested";
  static constexpr std::uint16_t version = 1;
  std::uint32_t attempt = 0;
  std::string reason;
  friend bool operator==(const job_cancel_requested&, const job_cancel_requested&) = default;
};

struct job_cancelled {
  static constexpr std::string_view type_name = "job.cancelled";
  static constexpr std::uint16_t version = 1;
  std::string reason;
  friend bool operator==(const job_cancelled&, const job_cancelled&) = default;
};

/// A reviewer accepted or declined a job in pending_review; the principal
/// of the event is the reviewer.
struct job_reviewed {
  static constexpr std::string_view type_name = "job.reviewed";
  static constexpr std::uint16_t version = 2;
  bool accepted = false;
  std::string comment;
  /// Version 2. The job this acceptance submitted (its kind's on-accept
  /// follow-up, same commit); 0 = none.
  job_id follow_up = 0;
  friend bool operator==(const job_reviewed&, const job_reviewed&) = default;
};

enum class request_kind : std::uint8_t {
  run_now = 0,  // a scheduled job becomes due now
  retry = 1,    // a discarded, expired or declined job gets a fresh attempt budget
};

struct job_requested {
  static constexpr std::string_view type_name = "job.requested";
  static constexpr std::uint16_t version = 1;
  request_kind what = request_kind::run_now;
  friend bool operator==(const job_requested&, const job_requested&) = default;
};

/// Not started within its time to start.
struct job_expired {
  static constexpr std::string_view type_name = "job.expired";
  static constexpr std::uint16_t version = 1;
  std::string reason;
  friend bool operator==(const job_expired&, const job_expired&) = default;
};

// -- queue, schedule and engine events (job id 0) -----------------------------

struct queue_paused {
  static constexpr std::string_view type_name = "queue.paused";
  static constexpr std::uint16_t version = 1;
  std::string queue;
  friend bool operator==(const queue_paused&, const queue_paused&) = default;
};

struct queue_resumed {
  static constexpr std::string_view type_name = "queue.resumed";
  static constexpr std::uint16_t version = 1;
  std::string queue;
  friend bool operator==(const queue_resumed&, const queue_resumed&) = default;
};

/// Sets a queue's concurrency limit (0 = unlimited).
struct queue_configured {
  static constexpr std::string_view type_name = "queue.configured";
  static constexpr std::uint16_t version = 1;
  std::string queue;
  std::uint32_t concurrency = 0;
  friend bool operator==(const queue_configured&, const queue_configured&) = default;
};

/// A recurring schedule was created; its runs are jobs whose
/// job_submitted.schedule names it. `first_job` is its first run.
struct schedule_created {
  static constexpr std::string_view type_name = "schedule.created";
  static constexpr std::uint16_t version = 1;
  schedule_id id = 0;
  job_id first_job = 0;
  friend bool operator==(const schedule_created&, const schedule_created&) = default;
};

struct schedule_deleted {
  static constexpr std::string_view type_name = "schedule.deleted";
  static constexpr std::uint16_t version = 1;
  schedule_id id = 0;
  std::string reason;
  friend bool operator==(const schedule_deleted&, const schedule_deleted&) = default;
};

/// A job kind's settings, replacing the previous ones whole: the kind whose
/// job an accepted review submits (empty = none) and the JSON Schema
/// (draft 7) every submitted payload must match (empty = any JSON).
struct kind_configured {
  static constexpr std::string_view type_name = "kind.configured";
  static constexpr std::uint16_t version = 1;
  std::string kind;
  std::string on_accept;
  std::string schema;  // JSON text
  friend bool operator==(const kind_configured&, const kind_configured&) = default;
};

/// How long the finished jobs of `queue` stay in the live views (lists,
/// counts, GET of the job) before they are retired: `succeeded` after a job
/// succeeded or was accepted, `failed` after it was discarded, declined,
/// cancelled or expired; 0 = kept. `queue` empty sets the default of every
/// queue without a setting of its own. A job's retirement time is fixed
/// when it ends, by the setting then in force; a later setting retires
/// sooner (from its own time on) or later (if not retired yet), never
/// brings a retired job back (projections/queue_view.hpp).
struct queue_retention {
  static constexpr std::string_view type_name = "queue.retention";
  static constexpr std::uint16_t version = 1;
  std::string queue;
  millis succeeded = 0;
  millis failed = 0;
  friend bool operator==(const queue_retention&, const queue_retention&) = default;
};

/// The engine finished recovery and began serving.
struct engine_started {
  static constexpr std::string_view type_name = "engine.started";
  static constexpr std::uint16_t version = 1;
  std::string engine_version;
  std::uint64_t recovered_events = 0;
  std::uint64_t reclaimed_jobs = 0;
  friend bool operator==(const engine_started&, const engine_started&) = default;
};

/// The order of alternatives is the storage type tag: append only, never
/// reorder (events/codec.cpp writes the index).
using event_body =
    std::variant<job_submitted, job_started, job_progress, job_succeeded, job_failed,
                 job_reclaimed, job_discarded, job_cancelled, job_reviewed, job_requested,
                 job_expired, queue_paused, queue_resumed, queue_configured, schedule_created,
                 schedule_deleted, engine_started, kind_configured, job_cancel_requested,
                 queue_retention>;

/// One committed (or to-be-committed) fact.
struct event {
  sequence_t seq = 0;  // assigned by the journal at commit
  job_id job = 0;
  millis time = 0;        // wall clock when the event was decided
  std::string principal;  // "engine", "user:alice", "worker:w1", ...
  event_body body;
  friend bool operator==(const event&, const event&) = default;
};

/// Number of event types (alternatives of event_body).
inline constexpr std::size_t event_type_count = std::variant_size_v<event_body>;

/// "job.submitted", ... for the body's alternative.
std::string_view type_name(const event_body& body);
std::uint16_t schema_version(const event_body& body);

/// Parses a type name back to the variant index; -1 when unknown.
int type_index(std::string_view name);

std::string_view to_string(lock_mode m);
std::string_view to_string(log_level l);
std::string_view to_string(request_kind r);

/// Inverses of to_string above; nullopt when the name is unknown.
std::optional<lock_mode> parse_lock_mode(std::string_view name);
std::optional<log_level> parse_log_level(std::string_view name);
std::optional<request_kind> parse_request_kind(std::string_view name);

}  // namespace jobsmith
