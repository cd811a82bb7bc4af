// The lock actor: a thin shell around lock_table (actors/lock_table.hpp).
// It adds only messaging: grants that become possible on a release are
// announced to the scheduler as (atom::granted, job).
#pragma once

#include "actors/lock_table.hpp"
#include "actors/protocol.hpp"

namespace jobsmith {

struct lock_actor_state {
  // Not an aggregate: CAF would construct the state from the self pointer.
  lock_actor_state() = default;
  static inline const char* name = "lock";
  lock_table table;
  scheduler_actor scheduler;
};

lock_actor::behavior_type lock_behavior(lock_actor::stateful_pointer<lock_actor_state> self,
                                        scheduler_actor scheduler);

}  // namespace jobsmith
