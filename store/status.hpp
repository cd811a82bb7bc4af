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
  /// A read or write of the underlying files failed (EIO, ...). A write that
  /// failed for lack of space is no_space instead.
  io_error = 1,
  /// Stored bytes do not decode or do not match their hash chain.
  corruption = 2,
  /// The caller passed something the log cannot accept.
  invalid_argument = 3,
  /// An earlier write failed; the log refuses writes until resume() succeeds
  /// (or it is reopened) so that no gap and no silent loss can follow. cause()
  /// tells what the failed write returned. Also returned by every write to a
  /// log opened read-only.
  refused = 4,
  not_found = 5,
  /// A write failed because the file system is full (ENOSPC; RocksDB's
  /// Status::IsNoSpace()). Nothing of it was acknowledged.
  no_space = 6,
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
  static status no_space(std::string msg) { return {status_code::no_space, std::move(msg)}; }

  bool is_ok() const { return code_ == status_code::ok; }
  explicit operator bool() const { return is_ok(); }
  status_code code() const { return code_; }
  /// For refused after a failed write: that write's code (io_error,
  /// no_space); otherwise code().
  status_code cause() const { return cause_ == status_code::ok ? code_ : cause_; }
  /// The write failed, or is refused after a write failed, for lack of space.
  bool is_no_space() const { return cause() == status_code::no_space; }
  const std::string& message() const { return message_; }
  /// "corruption: record 42: chain hash mismatch", or "ok".
  std::string to_string() const;

 private:
  status(status_code c, std::string m) : code_(c), message_(std::move(m)) {}
  friend status refused_after_failed_write(std::uint64_t seq, const status& cause);
  status_code code_ = status_code::ok;
  status_code cause_ = status_code::ok;  // see cause()
  std::string message_;
};

std::string_view to_string(status_code c);
std::ostream& operator<<(std::ostream& os, status_code c);
std::ostream& operator<<(std::ostream& os, const status& s);

/// What every write returns after a write failed at sequence `seq` (the first
/// sequence of the failed batch): refused("log refuses appends after failed
/// write at seq N: <cause's message>; writes resume once the disk accepts
/// them again"), with cause() = cause.code(). Shared so that every event_log
/// implementation words it alike.
status refused_after_failed_write(std::uint64_t seq, const status& cause);

}  // namespace jobsmith::store
