// engine_error's names and the conversions between the actors' errors
// (job_errc, caf::error) and the engine_error users see.
#include "actors/engine_error.hpp"

#include <string>

#include "actors/caf_error.hpp"

namespace jobsmith {

std::string_view to_string(engine_errc c) {
  switch (c) {
    case engine_errc::invalid_argument:
      return "invalid_argument";
    case engine_errc::illegal_transition:
      return "illegal_transition";
    case engine_errc::stale_token:
      return "stale_token";
    case engine_errc::not_found:
      return "not_found";
    case engine_errc::unknown_kind:
      return "unknown_kind";
    case engine_errc::overloaded:
      return "overloaded";
    case engine_errc::storage:
      return "storage";
    case engine_errc::closed:
      return "closed";
    case engine_errc::corruption:
      return "corruption";
    case engine_errc::rejected:
      return "rejected";
    case engine_errc::no_space:
      return "no_space";
    case engine_errc::retired:
      return "retired";
  }
  return "unknown";
}

std::string engine_error::to_string() const {
  return std::string{jobsmith::to_string(code)} + ": " + message;
}

engine_errc from_job_errc(job_errc c) {
  switch (c) {
    case job_errc::invalid_argument:
      return engine_errc::invalid_argument;
    case job_errc::illegal_transition:
      return engine_errc::illegal_transition;
    case job_errc::stale_token:
      return engine_errc::stale_token;
    case job_errc::unknown_job:
      return engine_errc::not_found;
  }
  return engine_errc::invalid_argument;
}

engine_error from_caf(const caf::error& err) {
  if (err.category() == engine_error_category) {
    std::string message;
    if (err.context().match_elements<std::string>()) message = err.context().get_as<std::string>(0);
    return engine_error{static_cast<engine_errc>(err.code()), std::move(message)};
  }
  return engine_error{engine_errc::closed, "engine actor unavailable: " + caf::to_string(err)};
}

}  // namespace jobsmith
