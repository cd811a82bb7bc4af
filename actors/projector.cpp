#include "actors/projector.hpp"

namespace jobsmith {

projector_actor::behavior_type projector(projector_actor::stateful_pointer<projector_state> self,
                                         job_index jobs, wall_clock clock) {
  self->state.jobs = std::move(jobs);
  self->state.clock = std::move(clock);
  return {
      [self](atom::committed, const committed_batch& batch) {
        for (auto& ev : *batch) self->state.jobs.apply(ev);
      },
      [self](atom::list, const job_filter& filter) {
        return self->state.jobs.query(filter, self->state.clock());
      },
      [self](atom::stats) { return self->state.jobs.counts(self->state.clock()); },
  };
}

}  // namespace jobsmith
