// The rows of a queue view snapshot: how one row is written against the
// row before it, and read back (queue_view_snapshot.cpp frames them in
// checksummed chunks). Internal to projections/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "events/binary_io.hpp"
#include "projections/queue_view.hpp"

namespace jobsmith::snapshot_rows {

// Rows in a chunk are stored against the row before them (the first
// against zeros), so the numbers that grow with the log take a byte or two:
//   varint id - previous id (> 0: ids rise)
//   varint flags: state | last_end << 4 | review_required << 7 | requested << 8
//   zigzag priority | varint queue, kind, worker, attempts, max_attempts,
//     retry_budget, resources
//   zigzag submitted_at - previous submitted_at
//   zigzag due_at, started_at, finished_at - submitted_at (each)
//   varint lease_token
//   zigzag submitted_seq - previous submitted_seq | zigzag last_seq - submitted_seq
//   varint event_count, schedule | varint len, last_error
//   zigzag requested_at - submitted_at, only with the `requested` flag
//   zigzag retire_at - finished_at, only with the `retiring` flag (bit 9)
// Differences wrap (two's complement), so every value round-trips.
struct row_base {
  job_id id = 0;
  millis submitted_at = 0;
  sequence_t submitted_seq = 0;
};

inline std::uint64_t delta(std::uint64_t v, std::uint64_t base) { return binary::zigzag(static_cast<std::int64_t>(v - base)); }
inline std::uint64_t undelta(std::uint64_t z, std::uint64_t base) {
  return base + static_cast<std::uint64_t>(binary::unzigzag(z));
}

inline void put_row(binary::writer& w, const job_row& r, row_base& base) {
  const auto submitted_at = static_cast<std::uint64_t>(r.submitted_at);
  w.put_varint(r.id - base.id);
  w.put_varint(static_cast<std::uint64_t>(r.state) | static_cast<std::uint64_t>(r.last_end) << 4 |
               static_cast<std::uint64_t>(r.review_required) << 7 |
               static_cast<std::uint64_t>(r.requested_at != 0) << 8 |
               static_cast<std::uint64_t>(r.retire_at != 0) << 9);
  w.put_varint(binary::zigzag(r.priority));
  for (std::uint32_t v : {r.queue, r.kind, r.worker, r.attempts, r.max_attempts, r.retry_budget,
                          r.resources})
    w.put_varint(v);
  w.put_varint(delta(submitted_at, static_cast<std::uint64_t>(base.submitted_at)));
  for (millis t : {r.due_at, r.started_at, r.finished_at})
    w.put_varint(delta(static_cast<std::uint64_t>(t), submitted_at));
  w.put_varint(r.lease_token);
  w.put_varint(delta(r.submitted_seq, base.submitted_seq));
  w.put_varint(delta(r.last_seq, r.submitted_seq));
  w.put_varint(r.event_count);
  w.put_varint(r.schedule);
  w.put(r.last_error);
  if (r.requested_at != 0)
    w.put_varint(delta(static_cast<std::uint64_t>(r.requested_at), submitted_at));
  if (r.retire_at != 0)
    w.put_varint(delta(static_cast<std::uint64_t>(r.retire_at), static_cast<std::uint64_t>(r.finished_at)));
  base = {r.id, r.submitted_at, r.submitted_seq};
}

/// Reads rows as put_row wrote them; a plain cursor rather than
/// binary::reader, since this loop is most of a restart's decode time.
class row_reader {
 public:
  explicit row_reader(std::string_view bytes)
      : p_(reinterpret_cast<const unsigned char*>(bytes.data())), end_(p_ + bytes.size()) {}
  std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }

  /// Reads one row into *r; false with *error set when the bytes are short
  /// or a value is out of its range.
  bool get(job_row& r, row_base& base, std::string* error) {
    std::uint64_t v[21];
    for (int i = 0; i < 20; ++i)
      if (!varint(v[i])) return bad(error, "a row ends early or has an overlong varint");
    const std::uint64_t len = v[19];
    if (len > left()) return bad(error, "a row's error text runs past its chunk");
    if (v[0] == 0 || base.id + v[0] < base.id) return bad(error, "row ids do not rise");
    const std::uint64_t flags = v[1];
    const std::uint64_t state = flags & 0x0f, last_end = (flags >> 4) & 0x07;
    if (flags > 0x3ff || state >= job_state_count ||
        last_end > static_cast<std::uint64_t>(attempt_end::discarded))
      return bad(error, "a row's state flags are out of range");
    const std::int64_t priority = binary::unzigzag(v[2]);
    if (priority < INT32_MIN || priority > INT32_MAX)
      return bad(error, "a row's priority is out of range");
    for (int i = 3; i <= 9; ++i)
      if (v[i] > UINT32_MAX) return bad(error, "a row's count or name id is out of range");
    r.id = base.id + v[0];
    r.state = static_cast<job_state>(state);
    r.last_end = static_cast<attempt_end>(last_end);
    r.review_required = ((flags >> 7) & 1) != 0;
    r.priority = static_cast<std::int32_t>(priority);
    r.queue = static_cast<std::uint32_t>(v[3]);
    r.kind = static_cast<std::uint32_t>(v[4]);
    r.worker = static_cast<std::uint32_t>(v[5]);
    r.attempts = static_cast<std::uint32_t>(v[6]);
    r.max_attempts = static_cast<std::uint32_t>(v[7]);
    r.retry_budget = static_cast<std::uint32_t>(v[8]);
    r.resources = static_cast<std::uint32_t>(v[9]);
    const std::uint64_t submitted_at = undelta(v[10], static_cast<std::uint64_t>(base.submitted_at));
    r.submitted_at = static_cast<millis>(submitted_at);
    r.due_at = static_cast<millis>(undelta(v[11], submitted_at));
    r.started_at = static_cast<millis>(undelta(v[12], submitted_at));
    r.finished_at = static_cast<millis>(undelta(v[13], submitted_at));
    r.lease_token = v[14];
    r.submitted_seq = undelta(v[15], base.submitted_seq);
    r.last_seq = undelta(v[16], r.submitted_seq);
    r.event_count = v[17];
    r.schedule = v[18];
    r.last_error.assign(reinterpret_cast<const char*>(p_), static_cast<std::size_t>(len));
    p_ += len;
    r.requested_at = 0;
    if (((flags >> 8) & 1) != 0) {
      std::uint64_t requested = 0;
      if (!varint(requested)) return bad(error, "a row ends early or has an overlong varint");
      r.requested_at = static_cast<millis>(undelta(requested, submitted_at));
      if (r.requested_at == 0) return bad(error, "a row's request time is 0");
    }
    r.retire_at = 0;
    if (((flags >> 9) & 1) != 0) {
      std::uint64_t retire = 0;
      if (!varint(retire)) return bad(error, "a row ends early or has an overlong varint");
      r.retire_at = static_cast<millis>(undelta(retire, static_cast<std::uint64_t>(r.finished_at)));
      if (r.retire_at == 0 || !is_terminal(r.state))
        return bad(error, "a row's retirement time is 0 or the job is live");
    }
    base = {r.id, r.submitted_at, r.submitted_seq};
    return true;
  }

  /// The first row's id (its first varint), without consuming it.
  std::optional<job_id> peek_id() const {
    row_reader copy = *this;
    std::uint64_t id = 0;
    if (!copy.varint(id)) return std::nullopt;
    return id;
  }

 private:
  bool varint(std::uint64_t& out) {
    std::uint64_t v = 0;
    for (int shift = 0; p_ != end_; shift += 7) {
      const unsigned char b = *p_++;
      if (shift == 63 && b > 1) return false;
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        out = v;
        return true;
      }
      if (shift == 63) return false;
    }
    return false;
  }
  static bool bad(std::string* error, const char* why) {
    *error = why;
    return false;
  }

  const unsigned char* p_;
  const unsigned char* end_;
};

}  // namespace jobsmith::snapshot_rows
