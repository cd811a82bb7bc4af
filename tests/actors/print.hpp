// How Boost.Test prints the engine's enums in a failed check: by name.
#pragma once

#include <ostream>

#include "actors/engine_error.hpp"
#include "events/job_state.hpp"

namespace jobsmith {

inline std::ostream& boost_test_print_type(std::ostream& os, job_state s) {
  return os << to_string(s);
}
inline std::ostream& boost_test_print_type(std::ostream& os, engine_errc c) {
  return os << to_string(c);
}

}  // namespace jobsmith
