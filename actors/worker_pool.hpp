// The in-process worker pool: runs registered handlers on runner threads
// (detached actors), never on the cooperative scheduler, so handler code may
// block. The scheduler counts the pool as one worker named "local:<id>" with
// `slots` jobs at once; runs are spread over the runners by load.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/clock.hpp"
#include "actors/handler.hpp"
#include "actors/protocol.hpp"

namespace jobsmith {

struct worker_pool_config {
  std::string worker_name;  // "local:<instance>"
  std::size_t threads = 2;
  bool detached = true;  // false only under CAF's deterministic test coordinator
  std::chrono::milliseconds flush_interval{1000};
};

struct worker_pool_state {
  // Not an aggregate: CAF would construct the state from the self pointer.
  worker_pool_state() = default;
  static inline const char* name = "worker_pool";
  struct running_job {
    std::shared_ptr<std::atomic<bool>> cancelled;
    std::size_t runner = 0;
  };
  // Constant after construction.
  worker_pool_config config;
  const handler_registry* handlers = nullptr;  // owned by the engine, outlives the pool
  std::vector<caf::actor> runners;
  // Owned by the actor.
  std::vector<std::size_t> load;  // runs handed to each runner and not finished
  std::unordered_map<job_id, running_job> running;
};

/// REQUIRES: `handlers` outlives the pool.
worker_pool_actor::behavior_type worker_pool(
    worker_pool_actor::stateful_pointer<worker_pool_state> self, worker_pool_config config,
    const handler_registry* handlers);

}  // namespace jobsmith
