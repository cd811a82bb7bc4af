// The answers a client gets when it asks with `Prefer: return=minimal`
// (RFC 7240): of a leased job, what a worker needs to run it; of a complete
// or fail, the job's new state. Without the header every answer is the
// whole job, as docs/api.md shows. The fields keep the names and values of
// the whole job's (`attempts` as `attempt`, the spec's fields at the top).
#pragma once

#include <string>
#include <string_view>

#include "events/job_state.hpp"

namespace jobsmith::server {

/// True when a Prefer header value holds the preference return=minimal
/// (preferences separated by commas, parameters by semicolons, any case).
bool prefers_minimal(std::string_view prefer_header);

/// Appends `job` as a worker needs it: {"attempt", "handover" (when there
/// is one), "id", "kind", "lease_token", "payload", "queue", "timeouts":
/// {"heartbeat", "to_run", "to_start", "to_stop"}}.
void append_leased_job_minimal(std::string& out, const job_record& job);

/// `{"id":N,"state":"..."}`: a job's new state.
std::string job_state_object(const job_record& job, millis now);

/// `{"job":{"id":N,"state":"..."}}`: the answer to a complete or fail.
std::string job_state_minimal(const job_record& job, millis now);

}  // namespace jobsmith::server
