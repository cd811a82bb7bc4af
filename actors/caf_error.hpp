// The one boundary where engine_error becomes caf::error and back.
#pragma once

#include <string>

#include <caf/error.hpp>
#include <caf/make_message.hpp>

#include "actors/engine_error.hpp"

namespace jobsmith {

inline constexpr caf::atom_value engine_error_category = caf::atom("jobsmith");

inline caf::error to_caf(engine_errc code, std::string message) {
  return caf::error(static_cast<std::uint8_t>(code), engine_error_category,
                    caf::make_message(std::move(message)));
}

inline caf::error to_caf(const job_error& e) {
  return to_caf(from_job_errc(e.code), e.message);
}

/// Errors from CAF itself (a dead actor, a timeout) become `closed`.
engine_error from_caf(const caf::error& err);

}  // namespace jobsmith
