#include "actors/lock_actor.hpp"

namespace jobsmith {

lock_actor::behavior_type lock_behavior(lock_actor::stateful_pointer<lock_actor_state> self,
                                        scheduler_actor scheduler) {
  self->state.scheduler = std::move(scheduler);
  return {
      [self](atom::acquire, job_id job, const std::vector<resource_claim>& claims) {
        return self->state.table.acquire(job, claims);
      },
      [self](atom::release, job_id job) {
        for (auto granted : self->state.table.release(job))
          self->send(self->state.scheduler, atom::granted::value, granted);
      },
      [self](atom::waits, job_id job) { return self->state.table.waits_for(job); },
  };
}

}  // namespace jobsmith
