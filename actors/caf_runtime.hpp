// The CAF scheduler the engine runs on: CAF's own coordinator with the
// engine's work-sharing policy ("lean") or CAF's (work sharing or work
// stealing), and one change to its timer clock.
//
// The lean policy: CAF's work sharing without the per-resume logger
// bookkeeping of CAF's worker loop (a dynamic_cast and two thread-local
// lookups per actor resumed, for a log the Debian build never writes) and
// with a deque for a queue; about 5% less CPU per job (docs/decisions.md).
//
// The clock: CAF 0.17 ends every actor with clock().cancel_timeouts(self), and its
// thread-safe clock turns that into a push onto the timer thread's queue
// plus a condition-variable broadcast, even when the actor never armed a
// timer. The engine ends one job actor per job, so the timer thread woke
// once per job: 12% of all CPU samples of `jobsmith bench --embedded
// --in-memory` (docs/benchmarks.md). This clock remembers which actors
// armed a timeout and passes only their cancellations on; everything else
// is CAF's clock unchanged.
#pragma once

#include <string>

#include <caf/actor_system_config.hpp>

namespace jobsmith {

/// Makes `config` run its actors on CAF's coordinator for `policy`
/// ("lean", or CAF's "sharing" or "stealing") with the quiet clock above.
/// Any other policy (CAF's "testing") is left to CAF.
void use_quiet_clock_scheduler(caf::actor_system_config& config, const std::string& policy);

/// Cancellations the quiet clocks of this process passed on to CAF and
/// skipped (tests and benchmarks read them).
struct quiet_clock_counts {
  unsigned long long passed = 0;
  unsigned long long skipped = 0;
};
quiet_clock_counts quiet_clock_totals();

}  // namespace jobsmith
