// Bounds the log lines that unauthenticated traffic can cause. Each
// malformed connection makes RESTinio report one error; written as is, a
// flood of garbage connections becomes a flood of log lines (a disk filled
// by anyone who can connect). A log_limiter lets a burst through, then one
// line per refill, and counts the rest, so the log keeps the first cause
// and says how many were not written.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace jobsmith::server {

/// A token bucket over log lines. Thread-safe.
class log_limiter {
 public:
  using clock = std::chrono::steady_clock;

  /// At most `burst` lines at once, then one more per `refill`.
  log_limiter(std::uint32_t burst, clock::duration refill) : burst_(burst), refill_(refill) {}

  struct verdict {
    bool write = false;           // write this line
    std::uint64_t suppressed = 0;  // lines not written since the last one that was (when write)
  };
  /// Counts one line at `now` and says whether to write it.
  verdict admit(clock::time_point now);

  std::uint64_t seen() const;        // lines offered, written or not
  std::uint64_t suppressed() const;  // lines not written, in all

 private:
  const std::uint32_t burst_;
  const clock::duration refill_;
  mutable std::mutex mu_;
  double tokens_ = -1;  // < 0: not started (the first admit fills the bucket)
  clock::time_point last_{};
  std::uint64_t seen_ = 0;
  std::uint64_t suppressed_total_ = 0;
  std::uint64_t suppressed_since_write_ = 0;
};

/// The limiter of RESTinio's connection errors in `jobsmith serve`: 20 lines
/// at once, then one per second. Its counts are in /metrics.
log_limiter& http_error_log();

}  // namespace jobsmith::server
