// One actor per live job: the only place that decides this job's
// transitions while the engine runs.
//
// A command is decided against the current fold (events/job_state.hpp); the
// resulting events are appended through the journal; only after the commit
// are they applied and the requester answered. Commands that arrive while an
// append is in flight wait their turn, so every decision sees every earlier
// committed event. A job that reaches a terminal state stops its actor; a
// later command (retry, say) spawns a fresh one that rehydrates from the
// job's stream in the log.
//
// An accepting review whose kind has an on-accept hook claims the job: the
// hook runs on a thread of its own, and job.reviewed is appended only after
// it returned. While the claim lasts, another review (accept or decline) is
// refused with illegal_transition and every other command waits, so the hook
// runs at most once per job at a time and only for a review that ends
// accepted. A hook that throws rejects the review and ends the claim. The
// claim is in memory only: after a crash the job is still pending review.
#pragma once

#include <deque>
#include <optional>
#include <string>

#include "actors/clock.hpp"
#include "actors/protocol.hpp"
#include "actors/worker_pool.hpp"

namespace jobsmith {

struct job_actor_state {
  // Not an aggregate: CAF would construct the state from the self pointer.
  job_actor_state() = default;
  static inline const char* name = "job";

  struct waiting_command {
    job_command command;
    std::string principal;
    caf::typed_response_promise<job_record> promise;
  };

  // Constant after construction.
  journal_actor journal;
  scheduler_actor scheduler;  // told when a retry brings a stopped job back
  wall_clock clock;
  std::shared_ptr<const runner_set> runners;  // null without an in-process pool

  // Owned by the actor.
  job_record record;
  bool hydrated = false;  // record holds the job's whole committed stream
  bool appending = false;
  std::deque<waiting_command> waiting;
  // The accepting review whose on-accept hook runs now.
  struct review_claim {
    cmd_review command;
    std::string principal;
    caf::typed_response_promise<job_record> promise;
  };
  std::optional<review_claim> review;
  // The running attempt's stop flag, while an in-process runner has it.
  std::shared_ptr<std::atomic<bool>> stop_flag;

  /// Commands wait while true.
  bool busy() const { return appending || review.has_value(); }
};

/// With `hydrated`, `record` is the job's current fold; without, the actor
/// first reads the stream of `record.id` through the journal.
///
/// A committed cmd_start for the in-process worker (`runners->worker_name`)
/// hands the job to its runner; a refused cmd_start is reported to the
/// scheduler as (atom::refused, id, token) whether or not it asked.
job_actor::behavior_type job_behavior(job_actor::stateful_pointer<job_actor_state> self,
                                      job_record record, bool hydrated, journal_actor journal,
                                      scheduler_actor scheduler, wall_clock clock,
                                      std::shared_ptr<const runner_set> runners);

}  // namespace jobsmith
