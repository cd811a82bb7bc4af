// The in-process worker pool: runner threads (detached actors) that run
// registered handlers, never on the cooperative scheduler, so handler code
// may block. There is no pool actor in between: a job actor hands its
// started job straight to a runner (by job id), and the runner sends the
// outcome straight back. The scheduler counts the pool as one worker named
// "local:<instance>" holding at most `slots` jobs.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
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

/// The runners of one engine; shared (immutable) by the job actors.
struct runner_set {
  std::string worker_name;
  std::vector<caf::actor> runners;

  const caf::actor& runner_for(job_id id) const { return runners[id % runners.size()]; }
};

/// Spawns the runners. REQUIRES: `handlers` outlives them.
std::shared_ptr<const runner_set> spawn_runners(caf::actor_system& sys,
                                                const worker_pool_config& config,
                                                const handler_registry* handlers);

/// Stops the runners (each finishes the handler it is running first).
void stop_runners(const runner_set& set);

}  // namespace jobsmith
