// The job index: a read model of every job's current state, for listing
// with filters. A pure fold over committed events (no CAF, no I/O): the
// engine feeds it live and rebuilds it on recovery with the same apply.
//
// It keeps each job's record without its payload and result (the log has
// those; a single job is read from its stream), so memory grows by a few
// hundred bytes per job.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "events/event.hpp"
#include "events/job_state.hpp"

namespace jobsmith {

struct job_filter {
  std::vector<job_state> states_in;      // empty = any
  std::vector<job_state> states_not_in;
  std::string queue;                     // empty = any
  std::string kind;                      // empty = any
  // Time ranges are inclusive, in ms; 0 = unbounded on that side. A job
  // that has not finished never matches a finished_* bound.
  millis submitted_from = 0;
  millis submitted_to = 0;
  millis finished_from = 0;
  millis finished_to = 0;
  std::string error_contains;            // substring of last_error; empty = any
  job_id after = 0;                      // paging: ids greater than this
  std::size_t limit = 100;
};

class job_index {
 public:
  /// Folds one committed event; events without a job are ignored.
  void apply(const event& ev);

  /// Matching jobs in id order, at most filter.limit; states are judged at
  /// wall time `now` (a waiting job is queued once due).
  std::vector<job_record> query(const job_filter& filter, millis now) const;

  std::size_t size() const { return jobs_.size(); }
  /// Jobs per effective state at `now`, indexed by job_state.
  std::vector<std::size_t> counts(millis now) const;

 private:
  std::map<job_id, job_record> jobs_;
};

}  // namespace jobsmith
