// The projector: hosts the projections (projections/) and answers queries
// from them; the journal publishes every committed batch to it. Every
// `snapshot_every` events it stores the queue view in the log's snapshots
// (one put, atomic), so recovery folds only what came after
// (actors/recovery.hpp). It keeps `snapshots_kept` of them spread over the
// history, so `jobsmith replay --at` folds from the nearest one.
#pragma once

#include "actors/clock.hpp"
#include "actors/protocol.hpp"
#include "projections/queue_view.hpp"
#include "store/event_log.hpp"

namespace jobsmith {

struct projector_state {
  // Not an aggregate: CAF would construct the state from the self pointer.
  projector_state() = default;
  static inline const char* name = "projector";
  wall_clock clock;
  queue_view view;
  store::event_log* log = nullptr;
  std::uint64_t snapshot_every = 0;  // 0 = never
  sequence_t snapshot_seq = 0;       // what the stored snapshot covers
  std::size_t snapshots_kept = 8;
  std::uint64_t snapshot_failures = 0;
  millis next_release = 0;  // wall time of the next look for rows to let go
};

/// Rows of jobs retired this long ago are let go: events are stamped when
/// they commit, so none for such a job can still be on its way (the view
/// would ignore it anyway, but replay must too; see release_rows).
inline constexpr millis release_grace_ms = 60'000;
/// How often the projector looks for rows to let go, at most.
inline constexpr millis release_every_ms = 10'000;

/// Lets go of the view's rows of jobs retired release_grace_ms before
/// now, at most every release_every_ms (a pass reads every row). Called
/// on start, on each committed batch and on each query, so an idle server
/// that is asked nothing keeps its rows until it is.
void release_rows(projector_state& st);

/// Which of `stored` (oldest first) to delete so at most `keep` (>= 1)
/// remain. Never the newest; otherwise, one at a time, the one whose
/// removal leaves the smallest gap between its neighbours (sequence 0 is
/// the oldest one's neighbour), so the kept ones stay spread over the log.
std::vector<std::string> snapshots_to_drop(std::vector<store::snapshot_info> stored,
                                           std::size_t keep);

/// `view` is the queue view as recovery rebuilt it, `snapshot_seq` what
/// the stored snapshot covers. The spawner subscribes the projector to the
/// journal before anything else can append.
/// REQUIRES: `log` outlives the actor.
projector_actor::behavior_type projector(projector_actor::stateful_pointer<projector_state> self,
                                         queue_view view, wall_clock clock,
                                         store::event_log* log, std::uint64_t snapshot_every,
                                         std::size_t snapshots_kept, sequence_t snapshot_seq);

}  // namespace jobsmith
