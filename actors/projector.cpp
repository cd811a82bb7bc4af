#include "actors/projector.hpp"

namespace jobsmith {

projector_actor::behavior_type projector(projector_actor::stateful_pointer<projector_state> self,
                                         queue_view view, wall_clock clock) {
  self->state.view = std::move(view);
  self->state.clock = std::move(clock);
  return {
      [self](atom::committed, const committed_batch& batch) {
        for (auto& ev : *batch) self->state.view.apply(ev);
      },
      [self](atom::list, const job_filter& filter) {
        return self->state.view.match(filter, self->state.clock());
      },
      [self](atom::stats) {
        auto counts = self->state.view.counts(self->state.clock());
        return std::vector<std::size_t>(counts.begin(), counts.end());
      },
  };
}

}  // namespace jobsmith
