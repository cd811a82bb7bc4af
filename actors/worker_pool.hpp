// The in-process worker pool: runner threads (detached actors) that run
// registered handlers, never on the cooperative scheduler, so handler code
// may block. There is no pool actor in between: a job actor puts its
// started job in the runners' shared queue and wakes an idle runner; the
// runner sends the outcome straight back. One queue for all runners, so no
// run waits behind a busy (or hung) handler while another runner is idle.
// The scheduler counts the pool as one worker named "local:<instance>"
// holding at most `slots` jobs.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/handler.hpp"
#include "actors/protocol.hpp"

namespace jobsmith {

struct worker_pool_config {
  std::string worker_name;  // "local:<instance>"
  std::size_t threads = 2;
  bool detached = true;  // false only under CAF's deterministic test coordinator
  std::chrono::milliseconds flush_interval{1000};
};

/// Runs waiting for a runner, and the runners waiting for a run. Shared by
/// the job actors (which add runs) and the runners (which take them).
/// Invariant: each runner is either in `idle` or has exactly one wake-up
/// (atom::run) in flight or is running a handler, so no wake-up is lost.
struct run_queue {
  struct entry {
    job_run run;
    job_actor job;
  };
  std::mutex mu;
  std::deque<entry> runs;           // guarded by mu
  std::vector<std::size_t> idle;    // guarded by mu; indexes into runner_set::runners
};

/// What an accepting review hands to its kind's on-accept hook.
struct accept_run {
  job_id id = 0;
  std::string kind;
  std::string payload;
  std::string result;
};

/// The runners of one engine; shared (immutable apart from the queue) by
/// the job actors.
struct runner_set {
  std::string worker_name;
  std::vector<caf::actor> runners;
  std::shared_ptr<run_queue> queue;
  const handler_registry* handlers = nullptr;  // outlives the runners

  /// Queues a started attempt for the next free runner; wakes an idle one.
  void hand_over(job_run run, job_actor job) const;

  /// Whether jobs of `kind` have an on-accept hook.
  bool has_accept_hook(const std::string& kind) const;

  /// Runs the on-accept hook of `run.kind` on a thread of its own (a
  /// blocking actor), never on the cooperative scheduler and never behind
  /// the runners' queue: a review must not wait for handlers to finish.
  /// Then sends (atom::hook_done, failure) to `job`. Reviews block their
  /// callers until answered, so these threads are at most as many as the
  /// callers reviewing at once. REQUIRES: has_accept_hook(run.kind).
  void run_accept_hook(caf::actor_system& sys, accept_run run, job_actor job) const;
};

/// Spawns the runners. REQUIRES: `handlers` outlives them.
std::shared_ptr<const runner_set> spawn_runners(caf::actor_system& sys,
                                                const worker_pool_config& config,
                                                const handler_registry* handlers);

/// Stops the runners (each finishes the handler it is running first).
void stop_runners(const runner_set& set);

}  // namespace jobsmith
