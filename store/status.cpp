#include "store/status.hpp"

#include <ostream>

namespace jobsmith::store {

std::string_view to_string(status_code c) {
  switch (c) {
    case status_code::ok:
      return "ok";
    case status_code::io_error:
      return "io_error";
    case status_code::corruption:
      return "corruption";
    case status_code::invalid_argument:
      return "invalid_argument";
    case status_code::refused:
      return "refused";
    case status_code::not_found:
      return "not_found";
    case status_code::no_space:
      return "no_space";
  }
  return "unknown";
}

std::string status::to_string() const {
  if (is_ok()) return "ok";
  std::string out(store::to_string(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, status_code c) { return os << to_string(c); }

std::ostream& operator<<(std::ostream& os, const status& s) { return os << s.to_string(); }

status refused_after_failed_write(std::uint64_t seq, const status& cause) {
  status out = status::refused("log refuses appends after failed write at seq " +
                               std::to_string(seq) + ": " + cause.message() +
                               "; writes resume once the disk accepts them again");
  out.cause_ = cause.cause();
  return out;
}

}  // namespace jobsmith::store
