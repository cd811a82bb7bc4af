// The job state machine: a pure fold (`apply`) and a pure decision
// (`decide`). Both are used live by the job actor and offline by replay, so
// neither reads clocks, draws random numbers, sends messages or starts
// timers: whatever varies (now, a jitter draw) arrives in the command.
//
//                 +------------- run_now -------------+
//                 v                                   |
//   submit --> scheduled --(due)--> queued --start--> running --succeed--> succeeded
//                 ^                   |                 |   \--succeed+review--> pending_review
//                 +-- fail/reclaim ---+-----------------+         accept/decline --> accepted | declined
//                     (attempts left)                   +--fail/reclaim (none left)--> discarded
//   scheduled|queued --(time to start)--> expired
//   any non-terminal --cancel--> cancelled
//   running --cancel--> running (cancel requested) --report, lease end, to_stop--> cancelled
//   discarded|expired|declined|cancelled --retry--> queued
//
// "scheduled" and "queued" differ only by time: a waiting job is stored as
// `scheduled` with a due time; effective_state() says which it is at a moment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "event.hpp"

namespace jobsmith {

enum class job_state : std::uint8_t {
  scheduled = 0,
  queued = 1,
  running = 2,
  pending_review = 3,
  succeeded = 4,
  accepted = 5,
  declined = 6,
  discarded = 7,
  cancelled = 8,
  expired = 9,
};

inline constexpr int job_state_count = 10;

std::string_view to_string(job_state s);
/// Parses "queued" etc.; nullopt when unknown.
std::optional<job_state> parse_job_state(std::string_view name);

/// No further transition except `retry` (for discarded, expired, declined,
/// cancelled).
bool is_terminal(job_state s);

/// How the attempt that holds `lease_token` ended. Lets a repeated
/// complete/fail under the same token be answered idempotently while a late
/// result of a reclaimed or cancelled attempt is refused as stale.
enum class attempt_end : std::uint8_t { none = 0, succeeded, failed, reclaimed, cancelled, discarded };

/// "none", "succeeded", "failed", "reclaimed", "cancelled", "discarded".
std::string_view to_string(attempt_end e);

/// Everything the fold of one job's events knows. Value type.
struct job_record {
  job_id id = 0;
  // Stored state: `scheduled` stands for "waiting until due_at" (which is
  // `queued` once due); see effective_state().
  job_state state = job_state::scheduled;
  job_submitted spec;
  millis submitted_at = 0;
  millis due_at = 0;          // when the current wait ends (may precede submitted_at)
  // Time of the run-now request the current wait answers, else 0. Such a
  // job goes ahead of every other due job; cleared when the wait ends (the
  // attempt starts, or the job ends).
  millis requested_at = 0;
  millis started_at = 0;      // start of the current or last attempt
  millis finished_at = 0;     // time of the terminal event, else 0
  std::uint32_t attempts = 0;      // attempts started so far
  std::uint32_t max_attempts = 0;  // budget; `retry` raises it
  // Worker of the current or last attempt: it stays once the attempt ends,
  // so it says who ran a finished job. Whether the job is leased now is
  // `state == running`, never a non-empty worker.
  std::string worker;
  std::uint64_t lease_token = 0;   // token of the current or last attempt
  // When a cancel of the current attempt was asked (job.cancel_requested),
  // else 0. Cleared when an attempt starts.
  millis cancel_requested_at = 0;
  attempt_end last_end = attempt_end::none;  // how that attempt ended
  std::string last_error;
  std::string result = "null";  // JSON text of the last success
  std::string handover;  // the last handover a failed attempt gave (JSON text or empty)
  std::string detail;           // last progress detail
  std::int32_t percent = -1;
  std::string review_comment;
  std::string reviewer;
  sequence_t last_seq = 0;  // sequence of the last applied event
  std::uint64_t event_count = 0;
  friend bool operator==(const job_record&, const job_record&) = default;
};

/// The state a user sees at wall time `now`: a waiting job is `scheduled`
/// before due_at and `queued` from then on.
job_state effective_state(const job_record& job, millis now);

/// When the job's current wait ends or ended as far as time limits go: its
/// due time, but not before it was submitted (a job submitted overdue keeps
/// its past due time for its order). timeouts.to_start counts from here.
millis became_due_at(const job_record& job);

// -- commands -----------------------------------------------------------------

struct cmd_submit {
  job_submitted spec;
};
struct cmd_start {
  std::string worker;
  std::uint64_t lease_token = 0;
};
struct cmd_progress {
  std::uint64_t lease_token = 0;
  std::string detail;
  std::int32_t percent = -1;
  std::vector<log_line> lines;
};
struct cmd_succeed {
  std::uint64_t lease_token = 0;
  std::string result = "null";
};
struct cmd_fail {
  std::uint64_t lease_token = 0;
  std::string error;
  bool retryable = true;
  std::string handover;
  double jitter_draw = 0.5;  // uniform in [0, 1): where in the jitter band to land
};
struct cmd_reclaim {
  std::string reason;
  double jitter_draw = 0.5;
};
/// Cancels the job. A running attempt is first asked to stop
/// (job.cancel_requested) when its timeouts.to_stop is above 0; `at_once`
/// cancels it now, without waiting for its worker.
struct cmd_cancel {
  std::string reason;
  bool at_once = false;
};
struct cmd_review {
  bool accept = false;
  std::string comment;
  /// Set by the scheduler on an accept whose kind names an on-accept
  /// follow-up: the id the follow-up job gets. With follow_up_kind empty
  /// the follow-up exists already (a live job holds its unique key) and the
  /// acceptance only links to it.
  job_id follow_up = 0;
  std::string follow_up_kind = {};
};
struct cmd_request {
  request_kind what = request_kind::run_now;
};
struct cmd_expire {
  std::string reason;
};
struct cmd_discard {
  std::string reason;
};

using job_command = std::variant<cmd_submit, cmd_start, cmd_progress, cmd_succeed, cmd_fail,
                                 cmd_reclaim, cmd_cancel, cmd_review, cmd_request, cmd_expire,
                                 cmd_discard>;

/// Why a command was refused. Values are stable (they cross the API).
enum class job_errc : std::uint8_t {
  /// A field of the command is malformed (empty kind, bad JSON, negative delay).
  invalid_argument = 1,
  /// The command does not apply in the job's current state.
  illegal_transition = 2,
  /// The lease token is not the current attempt's (the job was reclaimed,
  /// cancelled or leased again): the caller's result is refused.
  stale_token = 3,
  /// The job does not exist.
  unknown_job = 4,
};

std::string_view to_string(job_errc e);

struct job_error {
  job_errc code = job_errc::invalid_argument;
  std::string message;
};

/// The events a command produces (possibly none: an idempotent repeat), or
/// the reason it is refused. Refusal produces no events.
struct decision {
  std::vector<event_body> events;
  std::optional<job_error> error;
  bool ok() const { return !error.has_value(); }
};

// -- bounds on a submission ----------------------------------------------------
// validate() refuses values past these, for the HTTP API and the embedded
// engine alike. Every time a job derives from a valid submission (due
// times, retry and recurrence times, deadlines) stays below 2^53 ms, so the
// dashboard's JavaScript numbers hold it exactly. docs/api.md, "Limits on a
// submission".

/// Latest absolute time a submission may name (run_at):
/// 9999-12-31T23:59:59.999Z, the last instant with a four-digit year.
inline constexpr millis max_timestamp = 253'402'300'799'999;
/// Longest duration (retry intervals, timeouts, recurrence intervals):
/// 10 years of 365 days.
inline constexpr millis max_duration = 315'360'000'000;
/// Shortest recurrence interval other than 0 (not recurring): one second.
/// Each run writes several fsynced events, so a shorter one lets a single
/// submit grow the log without end at a high rate.
inline constexpr millis min_recurrence_interval = 1'000;
/// Most attempts a submission may ask for (retry.max_attempts). Keeps the
/// budget a manual retry adds to the attempts made far from 2^32.
inline constexpr std::uint32_t max_attempts_limit = 10'000;
/// Most resources one job may claim.
inline constexpr std::size_t max_resources_per_job = 64;

/// A kind or queue name as validate() accepts it (1 to 200 bytes, no
/// control characters), for names that arrive outside a submission (a
/// queue to pause). `field` names it in the message.
std::optional<job_error> validate_name(std::string_view field, const std::string& value);

/// Checks a submission on its own (no engine knowledge such as registered
/// kinds): returns the first problem found, naming the field and the bound.
/// `min_recurrence` replaces min_recurrence_interval for an embedder that
/// needs faster schedules (tests; 0 or 1 = no minimum); the HTTP API keeps
/// the default.
std::optional<job_error> validate(const job_submitted& spec,
                                  millis min_recurrence = min_recurrence_interval);

/// The unique key of the follow-up job that accepting job `reviewed`
/// submits ("on-accept:<id>").
std::string follow_up_key(job_id reviewed);

/// The follow-up job an accepted review of `reviewed` submits, of kind
/// `kind`: in the reviewed job's queue, at its priority, due at once, with
/// the payload {"job": id, "payload": ..., "result": ...} (the reviewed
/// job's id, payload and result), unique key follow_up_key(id) and
/// `follows` = id. Everything else has the submission defaults.
job_submitted follow_up_spec(const job_record& reviewed, const std::string& kind);

/// `job` is the current fold (ignored for cmd_submit); `now` is the wall
/// time the resulting events will carry.
decision decide(const job_record& job, const job_command& cmd, millis now);

/// Applies one committed event of this job. Total: an event that does not
/// fit the state (which `decide` would never produce) leaves the state
/// unchanged apart from last_seq/event_count, so replay never crashes on an
/// odd log.
void apply(job_record& job, const event& ev);

/// Retry delay after attempt `attempt` (1-based) failed, with the jitter
/// draw in [0, 1) placing it within +-jitter.
millis retry_delay(const retry_policy& policy, std::uint32_t attempt, double jitter_draw);

/// A schedule's failure streak once its run ended in `terminal`: 0 after a
/// success (succeeded, accepted, declined), one more after a failure
/// (discarded, expired), unchanged after a cancel. The one rule the
/// scheduler, recovery and the queue view fold.
std::uint32_t streak_after(std::uint32_t consecutive_failures, job_state terminal);

/// Due time of the next run of a recurring job that just ended at `now`
/// after `consecutive_failures` failed runs in a row (0 after a success).
millis next_recurrence(const recurrence& rec, millis now, std::uint32_t consecutive_failures);

}  // namespace jobsmith
