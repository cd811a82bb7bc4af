#include "actors/projector.hpp"

#include "actors/recovery.hpp"

namespace jobsmith {

namespace {

/// Stores the view; 0 when it was current already or the write failed (a
/// missing snapshot costs only recovery time, so the engine goes on).
sequence_t write_snapshot(projector_state& st) {
  if (st.log == nullptr || st.view.head() == st.snapshot_seq) return 0;
  store::snapshot snap{st.view.head(), st.view.encode()};
  if (!st.log->put_snapshot(queue_view_snapshot, snap).is_ok()) {
    ++st.snapshot_failures;
    return 0;
  }
  st.snapshot_seq = snap.covered;
  return snap.covered;
}

}  // namespace

projector_actor::behavior_type projector(projector_actor::stateful_pointer<projector_state> self,
                                         queue_view view, wall_clock clock,
                                         store::event_log* log, std::uint64_t snapshot_every,
                                         sequence_t snapshot_seq) {
  auto& st = self->state;
  st.view = std::move(view);
  st.clock = std::move(clock);
  st.log = log;
  st.snapshot_every = snapshot_every;
  st.snapshot_seq = snapshot_seq;
  return {
      [self](atom::committed, const committed_batch& batch) {
        auto& st = self->state;
        for (auto& ev : *batch) st.view.apply(ev);
        if (st.snapshot_every != 0 && st.view.head() - st.snapshot_seq >= st.snapshot_every)
          write_snapshot(st);
      },
      [self](atom::snapshot) { return write_snapshot(self->state); },
      [self](atom::queues) { return self->state.view.queues(self->state.clock()); },
      [self](atom::totals) { return self->state.view.totals(); },
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
