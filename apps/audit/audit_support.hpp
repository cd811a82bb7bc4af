// What the audit verbs share inside apps/audit (audit_tools.cpp defines it):
// timing and number formatting, exit codes from store statuses, reading a
// selection of events, and the chain check that verify and backup run.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "apps/audit/audit_tools.hpp"
#include "events/event.hpp"
#include "store/event_log.hpp"

namespace jobsmith::apps::audit {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start);
/// n / seconds, 0 when no time passed.
double rate(std::uint64_t n, double seconds);
/// 1234567 -> "1,234,567".
std::string grouped(std::uint64_t n);
/// The sequence a store message names ("record 57: ..."), 0 when none.
sequence_t sequence_named_in(const std::string& message);
/// exit_damaged for corruption, exit_usage for anything else.
int exit_for(const store::status& s);
/// "jobsmith VERB: MESSAGE" on stderr.
void print_error(const char* verb, const std::string& message);

/// Visits the decoded events of the selection (a job's stream or the whole
/// log) with from <= seq <= to, in order; `visit` returns false to stop. A
/// record that does not decode stops the scan with corruption naming it.
store::status visit_events(const store::event_log& log, sequence_t from, sequence_t to,
                           std::optional<job_id> job,
                           const std::function<bool(const store::record&, const event&)>& visit);

/// Resolves a --to bound to a sequence over the selection (see
/// audit_tools.cpp).
store::status resolve_upper(const store::event_log& log, sequence_t from, const upper_bound& to,
                            std::optional<job_id> job, sequence_t* out);

/// What the chain check over a range found.
struct verify_outcome {
  std::uint64_t checked = 0;  // records that check out
  sequence_t last_good = 0;   // highest of them (from-1 when none)
  store::chain_hash last_hash{};
  sequence_t first_bad = 0;  // 0 = none
  std::string problem;  // hash_mismatch | missing | undecodable | body_undecodable | read_error
  std::string message;
  bool damage = true;  // false: a read failed (I/O), which is not damage
  double seconds = 0;
};

/// The chain over [from, last]: each record's hash recomputed from its
/// predecessor's stored hash, each body decoded. REQUIRES: 1 <= from.
/// (verify_cmd.cpp)
verify_outcome verify_range(const store::event_log& log, sequence_t from, sequence_t last,
                            bool progress);

}  // namespace jobsmith::apps::audit
