// For services that speak CAF: the engine's actors, and the one function
// that spawns them (the facade uses it; deterministic tests use it with
// CAF's test coordinator and nothing detached).
#pragma once

#include <memory>
#include <string>

#include <caf/all.hpp>

#include "actors/engine.hpp"
#include "actors/journal.hpp"
#include "actors/protocol.hpp"
#include "actors/recovery.hpp"
#include "actors/worker_pool.hpp"
#include "projections/queue_view.hpp"
#include "store/event_log.hpp"

namespace jobsmith {

struct engine_core {
  journal_actor journal;
  projector_actor projector;
  std::shared_ptr<const runner_set> runners;  // null when no handler is registered
  scheduler_actor scheduler;
  std::shared_ptr<journal_metrics> metrics;
  std::string worker_name;  // the in-process pool's name, "local:<instance>"
};

/// Spawns journal, projector, runners and scheduler over `log` and the state
/// recovery rebuilt. `detached` = false puts everything on the cooperative
/// scheduler (only for CAF's deterministic test coordinator).
/// REQUIRES: `log` and `options.handlers` outlive the actors.
engine_core spawn_core(caf::actor_system& sys, store::event_log& log, recovered_state seed,
                       queue_view view, const engine_options& options, wall_clock clock,
                       bool detached);

/// Stops the actors of `core` (the scheduler takes its job and lock actors).
/// A runner finishes the handler it is running first.
void stop_core(const engine_core& core);

/// The running engine's actor system and actors.
caf::actor_system& actor_system_of(engine& e);
const engine_core& core_of(engine& e);

}  // namespace jobsmith
