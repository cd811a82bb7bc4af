// The store's one status type. No exceptions cross the store boundary.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <utility>

namespace jobsmith::store {

enum class status_code : std::uint8_t {
  ok = 0,
  /// A read or write of the underlying files failed (disk full, EIO, ...).
  io_error = 1,
  /// Stored bytes do not decode or do not match their hash chain.
  corruption = 2,
  /// The caller passed something the log cannot accept.
  invalid_argument = 3,
  /// An earlier write failed; the log refuses appends until reopened so that
  /// no gap and no silent loss can follow. Also returned by every write to a
  /// log opened read-only.
  refused = 4,
  not_found = 5,
};

class [[nodiscard]] status {
 public:
  status() = default;
  static status ok() { return {}; }
  static status io_error(std::string msg) { return {status_code::io_error, std::move(msg)}; }
  static status corruption(std::string msg) { return {status_code::corruption, std::move(msg)}; }
  static status invalid_argument(std::string msg) {
    return {status_code::invalid_argument, std::move(msg)};
  }
  static status refused(std::string msg) { return {status_code::refused, std::move(msg)}; }
  static status not_found(std::string msg) { return {status_code::not_found, std::move(msg)}; }

  bool is_ok() const { return code_ == status_code::ok; }
  explicit operator bool() const { return is_ok(); }
  status_code code() const { return code_; }
  const std::string& message() const { return message_; }
  /// "corruption: record 42: chain hash mismatch", or "ok".
  std::string to_string() const;

 private:
  status(status_code c, std::string m) : code_(c), message_(std::move(m)) {}
  status_code code_ = status_code::ok;
  std::string message_;
};

std::string_view to_string(status_code c);
std::ostream& operator<<(std::ostream& os, status_code c);
std::ostream& operator<<(std::ostream& os, const status& s);

/// What every write returns after a write failed at sequence `seq` (the first
/// sequence of the failed batch): refused("log refuses appends after failed
/// write at seq N: <cause's message>; reopen to recover"). Shared so that
/// every event_log implementation words it alike.
status refused_after_failed_write(std::uint64_t seq, const status& cause);

}  // namespace jobsmith::store
