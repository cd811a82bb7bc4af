#include "apps/server/log_limiter.hpp"

#include <algorithm>

namespace jobsmith::server {

log_limiter::verdict log_limiter::admit(clock::time_point now) {
  std::lock_guard<std::mutex> guard{mu_};
  ++seen_;
  if (tokens_ < 0) {
    tokens_ = burst_;
    last_ = now;
  } else if (now > last_) {
    tokens_ = std::min<double>(burst_, tokens_ + std::chrono::duration<double>(now - last_) /
                                                     std::chrono::duration<double>(refill_));
    last_ = now;
  }
  if (tokens_ < 1) {
    ++suppressed_total_;
    ++suppressed_since_write_;
    return {};
  }
  tokens_ -= 1;
  verdict v{true, suppressed_since_write_};
  suppressed_since_write_ = 0;
  return v;
}

std::uint64_t log_limiter::seen() const {
  std::lock_guard<std::mutex> guard{mu_};
  return seen_;
}

std::uint64_t log_limiter::suppressed() const {
  std::lock_guard<std::mutex> guard{mu_};
  return suppressed_total_;
}

log_limiter& http_error_log() {
  static log_limiter limiter{20, std::chrono::seconds(1)};
  return limiter;
}

}  // namespace jobsmith::server
