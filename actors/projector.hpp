// The projector: hosts the projections (projections/) and answers queries
// from them; the journal publishes every committed batch to it.
#pragma once

#include "actors/clock.hpp"
#include "actors/protocol.hpp"
#include "projections/queue_view.hpp"

namespace jobsmith {

struct projector_state {
  // Not an aggregate: CAF would construct the state from the self pointer.
  projector_state() = default;
  static inline const char* name = "projector";
  wall_clock clock;
  queue_view view;
};

/// `view` is the queue view as recovery rebuilt it. The spawner subscribes
/// the projector to the journal before anything else can append.
projector_actor::behavior_type projector(projector_actor::stateful_pointer<projector_state> self,
                                         queue_view view, wall_clock clock);

}  // namespace jobsmith
