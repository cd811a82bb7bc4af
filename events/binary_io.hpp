// The byte-level writer and reader behind the storage encodings: the event
// codec (events/codec.cpp, whose grammar says how fields become bytes) and
// the projections' snapshots. Unsigned integers and enums are LEB128
// varints, signed integers zigzag varints, doubles 8 bytes little-endian,
// bools one byte (0 or 1), strings and vectors a varint count then the
// items. A struct is written field by field through a `fields(io, s)`
// overload found by argument-dependent lookup (events/codec.cpp has the
// event bodies').
//
// The reader is safe on arbitrary input: it never reads past the end, never
// allocates more than the input could describe, and refuses non-minimal
// varints and out-of-range values. Its first failure sticks; later reads
// are no-ops and the unwinding calls build the field path for the message.
#pragma once

#include <bit>
#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "events/event.hpp"
#include "events/job_state.hpp"

namespace jobsmith::binary {

// Valid values of each stored enum: 0..max, contiguous.
template <class E>
struct enum_info;
template <>
struct enum_info<lock_mode> {
  static constexpr std::string_view name = "lock_mode";
  static constexpr std::uint64_t max = static_cast<std::uint64_t>(lock_mode::exclusive);
};
template <>
struct enum_info<log_level> {
  static constexpr std::string_view name = "log_level";
  static constexpr std::uint64_t max = static_cast<std::uint64_t>(log_level::error);
};
template <>
struct enum_info<request_kind> {
  static constexpr std::string_view name = "request_kind";
  static constexpr std::uint64_t max = static_cast<std::uint64_t>(request_kind::retry);
};
template <>
struct enum_info<job_state> {
  static constexpr std::string_view name = "job_state";
  static constexpr std::uint64_t max = job_state_count - 1;
};
template <>
struct enum_info<attempt_end> {
  static constexpr std::string_view name = "attempt_end";
  static constexpr std::uint64_t max = static_cast<std::uint64_t>(attempt_end::discarded);
};

constexpr std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}

constexpr std::int64_t unzigzag(std::uint64_t u) {
  return static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
}

// -- writer ---------------------------------------------------------------------

class writer {
 public:
  explicit writer(std::string& out) : out_(out) {}

  std::uint16_t version = 0;  // version of the body being written (always current)

  template <class T>
  void operator()(const char*, const T& value) {
    put(value);
  }

  void put_varint(std::uint64_t v) {
    char buf[10];
    std::size_t n = 0;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_.append(buf, n);
  }

  void put(const std::string& s) {
    put_varint(s.size());
    out_.append(s);
  }

  void put(bool b) { out_.push_back(b ? '\x01' : '\x00'); }

  void put(double d) {
    const auto bits = std::bit_cast<std::uint64_t>(d);
    char buf[8];
    for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((bits >> (8 * i)) & 0xff);
    out_.append(buf, 8);
  }

  template <std::unsigned_integral T>
  void put(T v) {
    put_varint(v);
  }

  template <std::signed_integral T>
  void put(T v) {
    put_varint(zigzag(v));
  }

  template <class E>
  requires std::is_enum_v<E>
  void put(E e) { put_varint(static_cast<std::uint64_t>(e)); }

  template <class T>
  void put(const std::vector<T>& v) {
    put_varint(v.size());
    for (const auto& element : v) put(element);
  }

  template <class T>
  requires std::is_class_v<T>
  void put(const T& s) { fields(*this, s); }

 private:
  std::string& out_;
};

// -- reader ---------------------------------------------------------------------

// Reads fields in order; the first failure sticks and turns later reads into
// no-ops, while the calls unwinding from it build the field path
// ("resources[1].mode") for the message.
class reader {
 public:
  explicit reader(std::string_view in) : in_(in) {}

  std::uint16_t version = 0;  // stored version of the body being read

  template <class T>
  void operator()(const char* name, T& value) {
    if (failed_) return;
    get(value);
    if (failed_) prefix_path(name);
  }

  bool failed() const { return failed_; }
  std::size_t left() const { return in_.size() - pos_; }
  const std::string& path() const { return path_; }
  const std::string& what() const { return what_; }

  bool fail(std::string what) {
    if (!failed_) {
      failed_ = true;
      what_ = std::move(what);
    }
    return false;
  }

  bool get_varint(std::uint64_t& v) {
    // Most values are small: one byte, top bit clear.
    if (pos_ < in_.size() && static_cast<std::uint8_t>(in_[pos_]) < 0x80) {
      v = static_cast<std::uint8_t>(in_[pos_++]);
      return true;
    }
    std::uint64_t result = 0;
    for (int i = 0;; ++i) {
      if (pos_ == in_.size()) return fail("input ends inside a varint");
      const auto byte = static_cast<std::uint8_t>(in_[pos_++]);
      // The tenth byte holds bit 63 only; anything more overflows 64 bits.
      if (i == 9 && byte > 1) return fail("varint longer than 64 bits");
      result |= static_cast<std::uint64_t>(byte & 0x7f) << (7 * i);
      if ((byte & 0x80) == 0) {
        if (byte == 0 && i > 0) return fail("varint is not minimally encoded");
        v = result;
        return true;
      }
    }
  }

 private:
  void prefix_path(std::string_view part) {
    if (!path_.empty() && path_.front() != '[') path_.insert(0, 1, '.');
    path_.insert(0, part);
  }

  void get(std::string& s) {
    std::uint64_t n = 0;
    if (!get_varint(n)) return;
    if (n > left()) {
      fail("string length " + std::to_string(n) + " exceeds the " + std::to_string(left()) +
           " bytes left");
      return;
    }
    s.assign(in_.data() + pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
  }

  void get(bool& b) {
    if (left() < 1) {
      fail("input ends before a bool");
      return;
    }
    const auto byte = static_cast<std::uint8_t>(in_[pos_++]);
    if (byte > 1) {
      fail("bool byte " + std::to_string(byte) + " is neither 0 nor 1");
      return;
    }
    b = byte == 1;
  }

  void get(double& d) {
    if (left() < 8) {
      fail("input ends inside a double");
      return;
    }
    std::uint64_t bits = 0;
    for (int i = 0; i < 8; ++i)
      bits |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += 8;
    d = std::bit_cast<double>(bits);
  }

  template <std::unsigned_integral T>
  void get(T& v) {
    std::uint64_t u = 0;
    if (!get_varint(u)) return;
    if (u > std::numeric_limits<T>::max()) {
      fail("value " + std::to_string(u) + " is out of range");
      return;
    }
    v = static_cast<T>(u);
  }

  template <std::signed_integral T>
  void get(T& v) {
    std::uint64_t u = 0;
    if (!get_varint(u)) return;
    const std::int64_t s = unzigzag(u);
    if (s < std::numeric_limits<T>::min() || s > std::numeric_limits<T>::max()) {
      fail("value " + std::to_string(s) + " is out of range");
      return;
    }
    v = static_cast<T>(s);
  }

  template <class E>
  requires std::is_enum_v<E>
  void get(E& e) {
    std::uint64_t u = 0;
    if (!get_varint(u)) return;
    if (u > enum_info<E>::max) {
      fail("invalid " + std::string(enum_info<E>::name) + " value " + std::to_string(u));
      return;
    }
    e = static_cast<E>(u);
  }

  template <class T>
  void get(std::vector<T>& v) {
    std::uint64_t n = 0;
    if (!get_varint(n)) return;
    // Every element takes at least one byte, so a count beyond the input is
    // corrupt; checking it first bounds what the loop can allocate.
    if (n > left()) {
      fail("count " + std::to_string(n) + " exceeds the " + std::to_string(left()) + " bytes left");
      return;
    }
    v.clear();
    for (std::uint64_t i = 0; i < n; ++i) {
      get(v.emplace_back());
      if (failed_) {
        prefix_path("[" + std::to_string(i) + "]");
        return;
      }
    }
  }

  template <class T>
  requires std::is_class_v<T>
  void get(T& s) { fields(*this, s); }

  std::string_view in_;
  std::size_t pos_ = 0;
  bool failed_ = false;
  std::string what_;  // what went wrong
  std::string path_;  // where: the field path, built while unwinding
};


}  // namespace jobsmith::binary
