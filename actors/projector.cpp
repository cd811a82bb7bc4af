#include "actors/projector.hpp"

#include "actors/recovery.hpp"

#include <algorithm>

namespace jobsmith {

namespace {

/// Stores the view, then drops what is beyond snapshots_kept; 0 when it
/// was current already or the write failed (a missing snapshot costs only
/// recovery time, so the engine goes on).
sequence_t write_snapshot(projector_state& st) {
  if (st.log == nullptr || st.view.head() == st.snapshot_seq) return 0;
  store::snapshot snap{st.view.head(), st.view.encode()};
  if (!st.log->put_snapshot(queue_view_snapshot_name(snap.covered), snap).is_ok()) {
    ++st.snapshot_failures;
    return 0;
  }
  st.snapshot_seq = snap.covered;
  std::vector<store::snapshot_info> stored;
  if (st.log->list_snapshots(queue_view_snapshot_prefix, &stored).is_ok())
    for (const auto& name : snapshots_to_drop(std::move(stored), st.snapshots_kept))
      (void)st.log->delete_snapshot(name);
  return snap.covered;
}

}  // namespace

void release_rows(projector_state& st) {
  const millis now = st.clock();
  if (now < st.next_release) return;
  st.next_release = now + release_every_ms;
  st.view.release_retired(now - release_grace_ms);
}

std::vector<std::string> snapshots_to_drop(std::vector<store::snapshot_info> stored,
                                           std::size_t keep) {
  keep = std::max<std::size_t>(keep, 1);
  std::vector<std::string> drop;
  while (stored.size() > keep) {
    // Removing i leaves the gap covered[i+1] - covered[i-1]; the newest
    // (last) is never a candidate.
    std::size_t victim = 0;
    sequence_t smallest = ~sequence_t{0};
    for (std::size_t i = 0; i + 1 < stored.size(); ++i) {
      const sequence_t left = i == 0 ? 0 : stored[i - 1].covered;
      const sequence_t gap = stored[i + 1].covered - left;
      if (gap < smallest) {
        smallest = gap;
        victim = i;
      }
    }
    drop.push_back(std::move(stored[victim].name));
    stored.erase(stored.begin() + static_cast<std::ptrdiff_t>(victim));
  }
  return drop;
}

projector_actor::behavior_type projector(projector_actor::stateful_pointer<projector_state> self,
                                         queue_view view, wall_clock clock,
                                         store::event_log* log, std::uint64_t snapshot_every,
                                         std::size_t snapshots_kept, sequence_t snapshot_seq) {
  auto& st = self->state;
  st.view = std::move(view);
  st.clock = std::move(clock);
  st.log = log;
  st.snapshot_every = snapshot_every;
  st.snapshots_kept = snapshots_kept;
  st.snapshot_seq = snapshot_seq;
  release_rows(st);
  return {
      [self](atom::committed, const committed_batch& batch) {
        auto& st = self->state;
        for (auto& ev : *batch) st.view.apply(ev);
        release_rows(st);
        if (st.snapshot_every != 0 && st.view.head() - st.snapshot_seq >= st.snapshot_every)
          write_snapshot(st);
      },
      [self](atom::snapshot) { return write_snapshot(self->state); },
      [self](atom::queues) {
        release_rows(self->state);
        return self->state.view.queues(self->state.clock());
      },
      [self](atom::totals) { return self->state.view.totals(); },
      [self](atom::retired, job_id id) {
        return self->state.view.retired_at(id, self->state.clock());
      },
      [self](atom::retention) { return self->state.view.default_retention(); },
      [self](atom::rows) {
        release_rows(self->state);
        auto& v = self->state.view;
        return std::vector<std::uint64_t>{v.row_slots(), v.released()};
      },
      [self](atom::list, const job_filter& filter) {
        release_rows(self->state);
        return self->state.view.match(filter, self->state.clock());
      },
      [self](atom::stats) {
        release_rows(self->state);
        auto counts = self->state.view.counts(self->state.clock());
        return std::vector<std::size_t>(counts.begin(), counts.end());
      },
  };
}

}  // namespace jobsmith
