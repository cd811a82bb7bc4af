// The one error enum of the engine facade and its actors. It crosses the
// actor boundary as caf::error (category "jobsmith") in exactly one place
// (to_caf / from_caf below) and reaches users as engine_error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "../events/job_state.hpp"

namespace jobsmith {

enum class engine_errc : std::uint8_t {
  /// A field is malformed: empty kind, payload not JSON, negative delay, ...
  invalid_argument = 1,
  /// The command does not apply in the job's state (review a running job).
  illegal_transition = 2,
  /// A result or heartbeat under a lease token that is no longer current.
  stale_token = 3,
  /// No job, queue or schedule with that id.
  not_found = 4,
  /// No handler is registered for the job's kind (embedded engines only run
  /// kinds they know).
  unknown_kind = 5,
  /// Too much is in flight; nothing was written. Try again later.
  overloaded = 6,
  /// The log could not be written (an I/O error other than a full disk);
  /// nothing was acknowledged. The engine refuses writes meanwhile and tries
  /// to resume once a second; an error RocksDB treats as fatal needs a
  /// restart (the message says so).
  storage = 7,
  /// The engine is shutting down or closed.
  closed = 8,
  /// The stored log is damaged; see `jobsmith audit verify`.
  corruption = 9,
  /// A hook of the job's kind refused the action (an on-accept hook threw).
  rejected = 10,
  /// The log could not be written because its disk is full (ENOSPC); nothing
  /// was acknowledged. The engine refuses writes meanwhile, keeps serving
  /// reads, and resumes by itself once space is freed.
  no_space = 11,
  /// The job finished and its queue's retention has passed: it left the
  /// live views (its events stay in the log; `jobsmith replay --job`).
  retired = 12,
};

std::string_view to_string(engine_errc c);

struct engine_error {
  engine_errc code = engine_errc::invalid_argument;
  std::string message;
  std::string to_string() const;
};

engine_errc from_job_errc(job_errc c);

/// A value or an engine_error: the facade's return type.
template <class T>
class result {
 public:
  result(T value) : v_(std::move(value)) {}
  result(engine_error err) : v_(std::move(err)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const engine_error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, engine_error> v_;
};

/// For calls that return nothing on success.
struct done {};

}  // namespace jobsmith
