#include "events/job_state.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "events/json.hpp"

namespace jobsmith {

namespace {

constexpr std::array<std::string_view, job_state_count> state_names = {
    "scheduled", "queued",   "running",   "pending_review", "succeeded",
    "accepted",  "declined", "discarded", "cancelled",      "expired",
};

constexpr std::size_t max_name_bytes = 200;

millis add_saturating(millis a, millis b) {
  millis r = 0;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? std::numeric_limits<millis>::max() : std::numeric_limits<millis>::min();
  return r;
}

// Rounds a non-negative duration to millis, saturating instead of
// overflowing the conversion (2^63 is the first double out of range).
millis round_millis(double d) {
  if (!(d > 0)) return 0;  // also NaN
  if (d >= 9223372036854775808.0) return std::numeric_limits<millis>::max();
  return static_cast<millis>(std::llround(d));
}

double clamp_unit(double x) {
  if (!(x >= 0)) return 0;  // also NaN
  return x > 1 ? 1 : x;
}

std::string job_name(const job_record& job) { return "job " + std::to_string(job.id); }

// "job 12 is running", with the state a user sees at `now`.
std::string job_is(const job_record& job, millis now) {
  return job_name(job) + " is " + std::string(to_string(effective_state(job, now)));
}

decision refuse(job_errc code, std::string message) {
  return decision{{}, job_error{code, std::move(message)}};
}

decision emit(event_body body) {
  decision d;
  d.events.push_back(std::move(body));
  return d;
}

std::optional<job_error> invalid(std::string message) {
  return job_error{job_errc::invalid_argument, std::move(message)};
}

// Kind and queue: printable names of bounded size.
std::optional<job_error> check_name(std::string_view field, const std::string& value) {
  if (value.empty()) return invalid(std::string(field) + " must not be empty");
  if (value.size() > max_name_bytes)
    return invalid(std::string(field) + " is longer than " + std::to_string(max_name_bytes) +
                   " bytes");
  for (unsigned char c : value)
    if (c < 0x20 || c == 0x7f)
      return invalid(std::string(field) + " must not contain control characters");
  return std::nullopt;
}

// A duration field: 0 to max_duration.
std::optional<job_error> check_duration(std::string_view field, millis value) {
  if (value < 0) return invalid(std::string(field) + " must not be negative");
  if (value > max_duration)
    return invalid(std::string(field) + " must be at most " + std::to_string(max_duration) +
                   " ms (10 years)");
  return std::nullopt;
}

std::optional<job_error> check_json(std::string_view field, const std::string& text) {
  // Text in the compact form the API stores needs no parser; accept() is
  // cheap and throws nothing; parse only to explain a failure.
  if (is_canonical_json(text) || nlohmann::json::accept(text)) return std::nullopt;
  std::string why = "parse error";
  try {
    // Throws, since accept() refused the same text.
    [[maybe_unused]] const auto parsed = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    why = e.what();
  }
  return invalid(std::string(field) + " is not valid JSON: " + why);
}

// Due time of the next attempt after the current one ended now; 0 when no
// attempt is left or the error is permanent (the job is then discarded).
millis next_run_at(const job_record& job, bool retryable, double jitter_draw, millis now) {
  if (!retryable || job.attempts >= job.max_attempts) return 0;
  // 0 means "discard", so a retry is never due at 0 even for a zero delay at
  // time 0.
  return std::max<millis>(
      1, add_saturating(now, retry_delay(job.spec.retry, job.attempts, jitter_draw)));
}

// Why a result or progress under `token` is refused: says how the attempt
// that held it ended, or that a newer attempt holds the job.
decision stale(const job_record& job, std::uint64_t token, std::string_view action, millis now) {
  const std::string attempt = job_name(job) + " attempt " + std::to_string(job.attempts);
  const std::string cannot = "; cannot " + std::string(action);
  if (job.attempts == 0)
    return refuse(job_errc::stale_token, job_is(job, now) + " and has not started" + cannot);
  if (token != job.lease_token) {
    std::string m = job_name(job) + ": lease token " + std::to_string(token) +
                    " is stale; a newer attempt (" + std::to_string(job.attempts) + ") ";
    m += job.state == job_state::running
             ? "holds the job"
             : "took the job, which is now " + std::string(to_string(effective_state(job, now)));
    return refuse(job_errc::stale_token, m);
  }
  switch (job.last_end) {
    case attempt_end::reclaimed:
      return refuse(job_errc::stale_token, attempt + " was reclaimed" + cannot);
    case attempt_end::cancelled:
      if (job.state == job_state::cancelled)
        return refuse(job_errc::stale_token, job_is(job, now) + cannot);
      return refuse(job_errc::stale_token, attempt + " was cancelled" + cannot);
    case attempt_end::failed:
      return refuse(job_errc::stale_token, attempt + " already failed" + cannot);
    case attempt_end::succeeded:
      return refuse(job_errc::stale_token, attempt + " already succeeded" + cannot);
    case attempt_end::discarded:
      return refuse(job_errc::stale_token, attempt + " was discarded" + cannot);
    case attempt_end::none:
      break;
  }
  return refuse(job_errc::stale_token, job_is(job, now) + cannot);
}

bool holds_lease(const job_record& job, std::uint64_t token) {
  return job.state == job_state::running && token == job.lease_token;
}

// -- decide, one overload per command ------------------------------------------

decision decide_one(const job_record&, const cmd_submit& c, millis) {
  if (auto err = validate(c.spec)) return decision{{}, std::move(err)};
  return emit(c.spec);
}

decision decide_one(const job_record& job, const cmd_start& c, millis now) {
  if (job.state != job_state::scheduled)
    return refuse(job_errc::illegal_transition, job_is(job, now) + "; cannot start it");
  if (job.due_at > now)
    return refuse(job_errc::illegal_transition, job_is(job, now) + " until " +
                                                    std::to_string(job.due_at) +
                                                    "; cannot start it before then");
  if (job.attempts >= job.max_attempts)
    return refuse(job_errc::illegal_transition, job_name(job) + " has used all " +
                                                    std::to_string(job.max_attempts) +
                                                    " of its attempts; cannot start it");
  return emit(job_started{job.attempts + 1, c.worker, c.lease_token});
}

decision decide_one(const job_record& job, const cmd_progress& c, millis now) {
  if (!holds_lease(job, c.lease_token)) return stale(job, c.lease_token, "report progress", now);
  if (c.detail.empty() && c.percent < 0 && c.lines.empty()) return {};
  return emit(job_progress{job.attempts, c.detail, c.percent, c.lines});
}

// The report that ends an attempt whose cancel was requested: the job is
// cancelled whatever the attempt reports (it was told to stop).
decision stopped(const job_record& job, const std::string& what) {
  return emit(job_cancelled{"cancelled on request; attempt " + std::to_string(job.attempts) +
                            " ended: " + what});
}

decision decide_one(const job_record& job, const cmd_succeed& c, millis now) {
  if (auto err = check_json("result", c.result)) return decision{{}, std::move(err)};
  if (holds_lease(job, c.lease_token) && job.cancel_requested_at != 0)
    return stopped(job, "the worker reported success");
  if (holds_lease(job, c.lease_token)) return emit(job_succeeded{job.attempts, c.result});
  if (c.lease_token == job.lease_token && job.last_end == attempt_end::succeeded)
    return {};  // a repeated complete, e.g. after a lost reply
  return stale(job, c.lease_token, "complete it", now);
}

decision decide_one(const job_record& job, const cmd_fail& c, millis now) {
  // The handover is exported as a JSON value (events/json.hpp), so it must be
  // JSON too when present.
  if (!c.handover.empty())
    if (auto err = check_json("handover", c.handover)) return decision{{}, std::move(err)};
  if (holds_lease(job, c.lease_token) && job.cancel_requested_at != 0)
    return stopped(job, "the worker reported failure: " + c.error);
  if (holds_lease(job, c.lease_token))
    return emit(job_failed{job.attempts, c.error, c.retryable,
                           next_run_at(job, c.retryable, c.jitter_draw, now), c.handover});
  if (c.lease_token == job.lease_token && job.last_end == attempt_end::failed)
    return {};  // a repeated fail
  return stale(job, c.lease_token, "fail it", now);
}

decision decide_one(const job_record& job, const cmd_reclaim& c, millis now) {
  if (job.state != job_state::running)
    return refuse(job_errc::illegal_transition,
                  job_is(job, now) + "; only a running job can be reclaimed");
  if (job.cancel_requested_at != 0) return stopped(job, c.reason);
  return emit(job_reclaimed{job.attempts, c.reason, next_run_at(job, true, c.jitter_draw, now)});
}

decision decide_one(const job_record& job, const cmd_cancel& c, millis now) {
  if (job.state == job_state::cancelled) return {};  // cancel is idempotent
  if (is_terminal(job.state))
    return refuse(job_errc::illegal_transition, job_is(job, now) + "; cannot cancel it");
  // A running attempt is asked to stop first, unless the job allows it no
  // time (to_stop 0) or the cancel is at once.
  if (job.state == job_state::running && !c.at_once && job.spec.timeouts.to_stop > 0) {
    if (job.cancel_requested_at != 0) return {};  // asked already
    return emit(job_cancel_requested{job.attempts, c.reason});
  }
  return emit(job_cancelled{c.reason});
}

decision decide_one(const job_record& job, const cmd_review& c, millis now) {
  if (job.state != job_state::pending_review)
    return refuse(job_errc::illegal_transition,
                  job_name(job) + " is not pending review (" +
                      std::string(to_string(effective_state(job, now))) + ")");
  return emit(job_reviewed{c.accept, c.comment, c.accept ? c.follow_up : 0});
}

decision decide_one(const job_record& job, const cmd_request& c, millis now) {
  switch (c.what) {
    case request_kind::run_now:
      if (job.state != job_state::scheduled)
        return refuse(job_errc::illegal_transition,
                      job_is(job, now) + "; run now applies only to a scheduled job");
      // Also for a job already due: it goes ahead of the others.
      if (job.requested_at != 0) return {};  // already requested
      return emit(job_requested{request_kind::run_now});
    case request_kind::retry:
      switch (job.state) {
        case job_state::discarded:
        case job_state::expired:
        case job_state::declined:
        case job_state::cancelled:
          return emit(job_requested{request_kind::retry});
        default:
          return refuse(job_errc::illegal_transition,
                        job_is(job, now) +
                            "; only a discarded, expired, declined or cancelled job can be "
                            "retried");
      }
  }
  return refuse(job_errc::invalid_argument, "unknown request kind");
}

decision decide_one(const job_record& job, const cmd_expire& c, millis now) {
  if (job.state != job_state::scheduled)
    return refuse(job_errc::illegal_transition,
                  job_is(job, now) + "; only a job that has not started can expire");
  return emit(job_expired{c.reason});
}

decision decide_one(const job_record& job, const cmd_discard& c, millis now) {
  if (is_terminal(job.state))
    return refuse(job_errc::illegal_transition, job_is(job, now) + "; cannot discard it");
  return emit(job_discarded{c.reason});
}

// -- apply, one overload per event --------------------------------------------

// The attempt ended and the job waits for its next one, or is discarded when
// next_run_at is 0.
void end_attempt(job_record& job, attempt_end how, millis next_run_at, millis time) {
  job.last_end = how;
  if (next_run_at > 0) {
    job.state = job_state::scheduled;
    job.due_at = next_run_at;
  } else {
    job.state = job_state::discarded;
    job.finished_at = time;
  }
}

void apply_one(job_record& job, const event& ev, const job_submitted& b) {
  // Only the first event of a job's stream creates it.
  if (job.id != 0 && job.event_count != 1) return;
  job.id = ev.job;
  job.spec = b;
  job.submitted_at = ev.time;
  // A run_at in the past stays the due time (it is due at once), so jobs
  // submitted overdue keep the order of their due times; 0 means now.
  job.due_at = b.run_at > 0 ? b.run_at : ev.time;
  job.state = job_state::scheduled;
  job.attempts = 0;
  job.max_attempts = b.retry.max_attempts;
}

void apply_one(job_record& job, const event& ev, const job_started& b) {
  if (job.state != job_state::scheduled) return;
  job.state = job_state::running;
  job.requested_at = 0;
  job.attempts = b.attempt;
  job.worker = b.worker;
  job.lease_token = b.lease_token;
  job.started_at = ev.time;
  job.last_end = attempt_end::none;
  job.cancel_requested_at = 0;
  job.detail.clear();
  job.percent = -1;
}

void apply_one(job_record& job, const event&, const job_progress& b) {
  if (job.state != job_state::running) return;
  if (!b.detail.empty()) job.detail = b.detail;
  if (b.percent >= 0) job.percent = b.percent;
}

void apply_one(job_record& job, const event& ev, const job_succeeded& b) {
  if (job.state != job_state::running) return;
  job.result = b.result;
  job.last_end = attempt_end::succeeded;
  if (job.spec.review_required) {
    job.state = job_state::pending_review;
  } else {
    job.state = job_state::succeeded;
    job.finished_at = ev.time;
  }
}

void apply_one(job_record& job, const event& ev, const job_failed& b) {
  if (job.state != job_state::running) return;
  job.last_error = b.error;
  // A failure without a handover keeps the last one given: attempts that
  // fail before they get as far pass on what an earlier one left.
  if (!b.handover.empty()) job.handover = b.handover;
  end_attempt(job, attempt_end::failed, b.next_run_at, ev.time);
}

void apply_one(job_record& job, const event& ev, const job_reclaimed& b) {
  if (job.state != job_state::running) return;
  job.last_error = "reclaimed: " + b.reason;
  end_attempt(job, attempt_end::reclaimed, b.next_run_at, ev.time);
}

void apply_one(job_record& job, const event& ev, const job_discarded& b) {
  if (is_terminal(job.state)) return;
  if (job.state == job_state::running) job.last_end = attempt_end::discarded;
  job.requested_at = 0;
  job.state = job_state::discarded;
  job.finished_at = ev.time;
  if (!b.reason.empty()) job.last_error = b.reason;
}

void apply_one(job_record& job, const event& ev, const job_cancelled&) {
  if (is_terminal(job.state)) return;
  if (job.state == job_state::running) job.last_end = attempt_end::cancelled;
  job.requested_at = 0;
  job.state = job_state::cancelled;
  job.finished_at = ev.time;
}

void apply_one(job_record& job, const event& ev, const job_cancel_requested& b) {
  if (job.state != job_state::running || b.attempt != job.attempts) return;
  if (job.cancel_requested_at == 0) job.cancel_requested_at = std::max<millis>(1, ev.time);
}

void apply_one(job_record& job, const event& ev, const job_reviewed& b) {
  if (job.state != job_state::pending_review) return;
  job.state = b.accepted ? job_state::accepted : job_state::declined;
  job.review_comment = b.comment;
  job.reviewer = ev.principal;
  job.finished_at = ev.time;
}

void apply_one(job_record& job, const event& ev, const job_requested& b) {
  switch (b.what) {
    case request_kind::run_now:
      // Run now never delays a job that is already due; the first request
      // of a wait places it.
      if (job.state != job_state::scheduled) return;
      job.due_at = std::min(job.due_at, ev.time);
      if (job.requested_at == 0) job.requested_at = std::max<millis>(1, ev.time);  // 0 = none
      return;
    case request_kind::retry:
      switch (job.state) {
        case job_state::discarded:
        case job_state::expired:
        case job_state::declined:
        case job_state::cancelled:
          job.state = job_state::scheduled;
          job.due_at = ev.time;
          job.max_attempts = job.attempts + job.spec.retry.max_attempts;
          job.finished_at = 0;
          return;
        default:
          return;
      }
  }
}

void apply_one(job_record& job, const event& ev, const job_expired&) {
  if (job.state != job_state::scheduled) return;
  job.requested_at = 0;
  job.state = job_state::expired;
  job.finished_at = ev.time;
}

// Queue, schedule and engine events do not belong to a job's stream.
template <class Body>
void apply_one(job_record&, const event&, const Body&) {}

}  // namespace

std::string_view to_string(job_state s) {
  const auto i = static_cast<std::size_t>(s);
  return i < state_names.size() ? state_names[i] : "invalid";
}

std::optional<job_state> parse_job_state(std::string_view name) {
  for (std::size_t i = 0; i < state_names.size(); ++i)
    if (state_names[i] == name) return static_cast<job_state>(i);
  return std::nullopt;
}

bool is_terminal(job_state s) {
  switch (s) {
    case job_state::succeeded:
    case job_state::accepted:
    case job_state::declined:
    case job_state::discarded:
    case job_state::cancelled:
    case job_state::expired:
      return true;
    case job_state::scheduled:
    case job_state::queued:
    case job_state::running:
    case job_state::pending_review:
      return false;
  }
  return false;
}

std::string_view to_string(attempt_end e) {
  switch (e) {
    case attempt_end::none:
      return "none";
    case attempt_end::succeeded:
      return "succeeded";
    case attempt_end::failed:
      return "failed";
    case attempt_end::reclaimed:
      return "reclaimed";
    case attempt_end::cancelled:
      return "cancelled";
    case attempt_end::discarded:
      return "discarded";
  }
  return "invalid";
}

std::string_view to_string(job_errc e) {
  switch (e) {
    case job_errc::invalid_argument:
      return "invalid_argument";
    case job_errc::illegal_transition:
      return "illegal_transition";
    case job_errc::stale_token:
      return "stale_token";
    case job_errc::unknown_job:
      return "unknown_job";
  }
  return "invalid";
}

millis became_due_at(const job_record& job) { return std::max(job.due_at, job.submitted_at); }

job_state effective_state(const job_record& job, millis now) {
  if (job.state == job_state::scheduled && job.due_at <= now) return job_state::queued;
  return job.state;
}

std::optional<job_error> validate_name(std::string_view field, const std::string& value) {
  return check_name(field, value);
}

std::optional<job_error> validate(const job_submitted& spec, millis min_recurrence) {
  if (auto err = check_name("kind", spec.kind)) return err;
  if (auto err = check_name("queue", spec.queue)) return err;
  if (auto err = check_json("payload", spec.payload)) return err;
  if (spec.follows != 0)
    return invalid("follows is set by the engine only (on a kind's on-accept follow-up)");
  if (spec.run_at < 0) return invalid("run_at must not be negative");
  if (spec.run_at > max_timestamp)
    return invalid("run_at must be at most " + std::to_string(max_timestamp) +
                   " (9999-12-31T23:59:59.999Z)");

  const retry_policy& r = spec.retry;
  if (r.max_attempts < 1) return invalid("retry.max_attempts must be at least 1");
  if (r.max_attempts > max_attempts_limit)
    return invalid("retry.max_attempts must be at most " + std::to_string(max_attempts_limit));
  if (auto err = check_duration("retry.initial_interval", r.initial_interval)) return err;
  // Written as !(x >= 1) so NaN is refused too.
  if (!(r.backoff_coefficient >= 1) || !std::isfinite(r.backoff_coefficient))
    return invalid("retry.backoff_coefficient must be a finite number of at least 1");
  if (r.max_interval < r.initial_interval)
    return invalid("retry.max_interval must be at least retry.initial_interval");
  if (auto err = check_duration("retry.max_interval", r.max_interval)) return err;
  if (!(r.jitter >= 0 && r.jitter <= 1)) return invalid("retry.jitter must be between 0 and 1");

  if (auto err = check_duration("timeouts.to_start", spec.timeouts.to_start)) return err;
  if (auto err = check_duration("timeouts.to_run", spec.timeouts.to_run)) return err;
  if (auto err = check_duration("timeouts.heartbeat", spec.timeouts.heartbeat)) return err;
  if (auto err = check_duration("timeouts.to_stop", spec.timeouts.to_stop)) return err;

  if (spec.resources.size() > max_resources_per_job)
    return invalid("resources must list at most " + std::to_string(max_resources_per_job) +
                   " resources (got " + std::to_string(spec.resources.size()) + ")");
  std::unordered_set<std::string_view> names;
  for (std::size_t i = 0; i < spec.resources.size(); ++i) {
    const resource_claim& res = spec.resources[i];
    const std::string field = "resources[" + std::to_string(i) + "]";
    if (res.name.empty()) return invalid(field + ".name must not be empty");
    if (res.name.size() > max_name_bytes)
      return invalid(field + ".name is longer than " + std::to_string(max_name_bytes) + " bytes");
    if (res.mode != lock_mode::shared && res.mode != lock_mode::exclusive)
      return invalid(field + ".mode must be shared or exclusive");
    if (!names.insert(res.name).second)
      return invalid("resource '" + res.name + "' is listed more than once");
  }

  if (spec.unique_key.size() > max_name_bytes)
    return invalid("unique_key is longer than " + std::to_string(max_name_bytes) + " bytes");

  // Named as a client sends them (events/json.hpp: "recurrence").
  const recurrence& rec = spec.recur;
  if (rec.interval < 0) return invalid("recurrence.interval must not be negative");
  if (!(rec.failure_backoff >= 1) || !std::isfinite(rec.failure_backoff))
    return invalid("recurrence.failure_backoff must be a finite number of at least 1");
  if (rec.max_interval < rec.interval)
    return invalid("recurrence.max_interval must be at least recurrence.interval");
  if (rec.interval > 0 && rec.interval < min_recurrence)
    return invalid("recurrence.interval must be 0 (not recurring) or at least " +
                   std::to_string(min_recurrence) + " ms");
  if (auto err = check_duration("recurrence.interval", rec.interval)) return err;
  if (auto err = check_duration("recurrence.max_interval", rec.max_interval)) return err;
  return std::nullopt;
}

decision decide(const job_record& job, const job_command& cmd, millis now) {
  if (job.id == 0 && !std::holds_alternative<cmd_submit>(cmd))
    return refuse(job_errc::unknown_job, "no such job");
  return std::visit([&](const auto& c) { return decide_one(job, c, now); }, cmd);
}

void apply(job_record& job, const event& ev) {
  job.last_seq = ev.seq;
  ++job.event_count;
  std::visit([&](const auto& b) { apply_one(job, ev, b); }, ev.body);
}

millis retry_delay(const retry_policy& policy, std::uint32_t attempt, double jitter_draw) {
  const double exponent = attempt > 0 ? attempt - 1.0 : 0.0;
  const double cap = std::max<double>(0, static_cast<double>(policy.max_interval));
  double base = std::max<double>(0, static_cast<double>(policy.initial_interval)) *
                std::pow(policy.backoff_coefficient, exponent);
  // Cap in double: the product overflows int64 long before it overflows double.
  if (!(base <= cap)) base = cap;  // also inf and NaN
  const double spread = clamp_unit(policy.jitter) * (2 * clamp_unit(jitter_draw) - 1);
  return round_millis(base * (1 + spread));
}

std::uint32_t streak_after(std::uint32_t consecutive_failures, job_state terminal) {
  switch (terminal) {
    case job_state::succeeded:
    case job_state::accepted:
    case job_state::declined:
      return 0;
    case job_state::discarded:
    case job_state::expired:
      return consecutive_failures + 1;
    default:
      return consecutive_failures;
  }
}

millis next_recurrence(const recurrence& rec, millis now, std::uint32_t consecutive_failures) {
  if (rec.interval <= 0) return now;
  const double cap = static_cast<double>(std::max(rec.max_interval, rec.interval));
  double gap = static_cast<double>(rec.interval) *
               std::pow(rec.failure_backoff, static_cast<double>(consecutive_failures));
  if (!(gap <= cap)) gap = cap;
  return add_saturating(now, round_millis(gap));
}

}  // namespace jobsmith
