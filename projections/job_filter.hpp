// What a job list asks for: states, queue, kind, time ranges, error text,
// attempts made, paging. queue_view::match() answers it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../events/event.hpp"
#include "../events/job_state.hpp"

namespace jobsmith {

struct job_filter {
  std::vector<job_state> states_in;      // effective states; empty = any
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
  // Attempts started so far (job_record::attempts), inclusive; unset =
  // unbounded on that side.
  std::optional<std::uint32_t> attempts_min;
  std::optional<std::uint32_t> attempts_max;
  job_id after = 0;                      // paging: ids greater than this
  std::size_t limit = 100;
};

}  // namespace jobsmith
