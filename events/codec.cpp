// The storage encoding of events. All binary encoding and decoding of events
// lives in this file.
//
// event := type: varint  version: varint  time: svarint  principal: string  body
//
//   `type` is the index of the body's alternative in event_body (the list
//   below); `version` is the body's schema version; `body` is laid out as the
//   fields of that type and version. seq and job are not encoded: the store
//   keeps them in the record.
//
// Primitives:
//   varint   := unsigned LEB128: 7 bits a byte, lowest group first, high bit
//               set on every byte but the last; at most 10 bytes; minimal
//               (a multi-byte varint never ends in a 0x00 byte)
//   svarint  := varint of the zigzag mapping 0,-1,1,-2,... -> 0,1,2,3,...
//   string   := length: varint  bytes[length]
//   double   := fixed64: the IEEE-754 bits, little-endian
//   bool     := byte 0x00 | 0x01
//   enum     := varint of the enumerator's value
//   T[]      := count: varint  T[count]
//   Unsigned fields narrower than 64 bits (u32) and the signed i32 field are
//   range-checked on decode.
//
// Shared parts:
//   retry_policy   := max_attempts: varint  initial_interval: svarint
//                     backoff_coefficient: double  max_interval: svarint  jitter: double
//   phase_timeouts := to_start: svarint  to_run: svarint  heartbeat: svarint
//   recurrence     := interval: svarint  failure_backoff: double
//                     max_interval: svarint  failure_limit: varint
//   resource_claim := name: string  mode: enum {shared 0, exclusive 1}
//   log_line       := level: enum {info 0, warn 1, error 2}  time: svarint  text: string
//
// Bodies, version 1 of each (type tag, name := fields):
//    0 job.submitted    := kind: string  queue: string  payload: string
//                          priority: svarint  run_at: svarint  retry: retry_policy
//                          timeouts: phase_timeouts  resources: resource_claim[]
//                          unique_key: string  review_required: bool
//                          recur: recurrence  schedule: varint
//    1 job.started      := attempt: varint  worker: string  lease_token: varint
//    2 job.progress     := attempt: varint  detail: string  percent: svarint
//                          lines: log_line[]
//    3 job.succeeded    := attempt: varint  result: string
//    4 job.failed       := attempt: varint  error: string  retryable: bool
//                          next_run_at: svarint  handover: string
//    5 job.reclaimed    := attempt: varint  reason: string  next_run_at: svarint
//    6 job.discarded    := reason: string
//    7 job.cancelled    := reason: string
//    8 job.reviewed     := accepted: bool  comment: string
//    9 job.requested    := what: enum {run_now 0, retry 1}
//   10 job.expired      := reason: string
//   11 queue.paused     := queue: string
//   12 queue.resumed    := queue: string
//   13 queue.configured := queue: string  concurrency: varint
//   14 schedule.created := id: varint  first_job: varint
//   15 schedule.deleted := id: varint  reason: string
//   16 engine.started   := engine_version: string  recovered_events: varint
//                          reclaimed_jobs: varint
//
// Evolving a type: bump T::version, append the new fields at the end of its
// list in fields() guarded by `if (io.version >= N)` (the reader sets
// io.version to the stored version, the writer to the current one), and add
// the layout above. Never reorder or drop fields of a readable version.
#include "events/codec.hpp"

#include <array>
#include <bit>
#include <concepts>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

namespace jobsmith {

namespace {

template <class>
inline constexpr bool always_false = false;

// -- field lists ----------------------------------------------------------------

// The fields of every struct in encoding order, shared by the writer and the
// reader so the two cannot drift apart. `B` is const-qualified for the writer.
// Each `io(name, field)` call is one line of the grammar above.
template <class Io, class B>
void fields(Io& io, B& b) {
  using T = std::remove_const_t<B>;
  if constexpr (std::is_same_v<T, retry_policy>) {
    io("max_attempts", b.max_attempts);
    io("initial_interval", b.initial_interval);
    io("backoff_coefficient", b.backoff_coefficient);
    io("max_interval", b.max_interval);
    io("jitter", b.jitter);
  } else if constexpr (std::is_same_v<T, phase_timeouts>) {
    io("to_start", b.to_start);
    io("to_run", b.to_run);
    io("heartbeat", b.heartbeat);
  } else if constexpr (std::is_same_v<T, recurrence>) {
    io("interval", b.interval);
    io("failure_backoff", b.failure_backoff);
    io("max_interval", b.max_interval);
    io("failure_limit", b.failure_limit);
  } else if constexpr (std::is_same_v<T, resource_claim>) {
    io("name", b.name);
    io("mode", b.mode);
  } else if constexpr (std::is_same_v<T, log_line>) {
    io("level", b.level);
    io("time", b.time);
    io("text", b.text);
  } else if constexpr (std::is_same_v<T, job_submitted>) {
    io("kind", b.kind);
    io("queue", b.queue);
    io("payload", b.payload);
    io("priority", b.priority);
    io("run_at", b.run_at);
    io("retry", b.retry);
    io("timeouts", b.timeouts);
    io("resources", b.resources);
    io("unique_key", b.unique_key);
    io("review_required", b.review_required);
    io("recur", b.recur);
    io("schedule", b.schedule);
  } else if constexpr (std::is_same_v<T, job_started>) {
    io("attempt", b.attempt);
    io("worker", b.worker);
    io("lease_token", b.lease_token);
  } else if constexpr (std::is_same_v<T, job_progress>) {
    io("attempt", b.attempt);
    io("detail", b.detail);
    io("percent", b.percent);
    io("lines", b.lines);
  } else if constexpr (std::is_same_v<T, job_succeeded>) {
    io("attempt", b.attempt);
    io("result", b.result);
  } else if constexpr (std::is_same_v<T, job_failed>) {
    io("attempt", b.attempt);
    io("error", b.error);
    io("retryable", b.retryable);
    io("next_run_at", b.next_run_at);
    io("handover", b.handover);
  } else if constexpr (std::is_same_v<T, job_reclaimed>) {
    io("attempt", b.attempt);
    io("reason", b.reason);
    io("next_run_at", b.next_run_at);
  } else if constexpr (std::is_same_v<T, job_discarded> || std::is_same_v<T, job_cancelled> ||
                       std::is_same_v<T, job_expired>) {
    io("reason", b.reason);
  } else if constexpr (std::is_same_v<T, job_reviewed>) {
    io("accepted", b.accepted);
    io("comment", b.comment);
  } else if constexpr (std::is_same_v<T, job_requested>) {
    io("what", b.what);
  } else if constexpr (std::is_same_v<T, queue_paused> || std::is_same_v<T, queue_resumed>) {
    io("queue", b.queue);
  } else if constexpr (std::is_same_v<T, queue_configured>) {
    io("queue", b.queue);
    io("concurrency", b.concurrency);
  } else if constexpr (std::is_same_v<T, schedule_created>) {
    io("id", b.id);
    io("first_job", b.first_job);
  } else if constexpr (std::is_same_v<T, schedule_deleted>) {
    io("id", b.id);
    io("reason", b.reason);
  } else if constexpr (std::is_same_v<T, engine_started>) {
    io("engine_version", b.engine_version);
    io("recovered_events", b.recovered_events);
    io("reclaimed_jobs", b.reclaimed_jobs);
  } else {
    static_assert(always_false<T>, "add the type's fields (and its grammar line)");
  }
}

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

// -- per-type table -------------------------------------------------------------

struct body_type {
  std::string_view name;
  std::uint16_t current;
  std::uint16_t oldest;
  void (*read)(reader&, event_body&);
};

template <std::size_t I>
void read_body(reader& r, event_body& body) {
  fields(r, body.emplace<I>());
}

template <std::size_t... I>
constexpr std::array<body_type, sizeof...(I)> make_body_types(std::index_sequence<I...>) {
  return {body_type{std::variant_alternative_t<I, event_body>::type_name,
                    std::variant_alternative_t<I, event_body>::version,
                    oldest_readable_version<std::variant_alternative_t<I, event_body>>,
                    &read_body<I>}...};
}

constexpr auto body_types = make_body_types(std::make_index_sequence<event_type_count>{});

static_assert(
    [] {
      for (const auto& t : body_types)
        if (t.oldest < 1 || t.oldest > t.current) return false;
      return true;
    }(),
    "oldest_readable_version must lie in [1, current version]");

bool set_error(std::string* error, std::string message) {
  if (error) *error = std::move(message);
  return false;
}

std::string field_error(std::string_view where, const reader& r) {
  std::string m(where);
  m += ": field '";
  m += r.path();
  m += "': ";
  m += r.what();
  return m;
}

}  // namespace

void encode_to(const event& ev, std::string& out) {
  writer w(out);
  w.put_varint(ev.body.index());
  std::visit(
      [&](const auto& body) {
        using T = std::decay_t<decltype(body)>;
        w.version = T::version;
        w.put_varint(T::version);
        w.put(ev.time);
        w.put(ev.principal);
        fields(w, body);
      },
      ev.body);
}

std::string encode(const event& ev) {
  std::string out;
  encode_to(ev, out);
  return out;
}

bool decode(std::string_view bytes, event& out, std::string* error) {
  reader r(bytes);
  std::uint64_t tag = 0;
  r("type", tag);
  if (r.failed()) return set_error(error, field_error("event header", r));
  if (tag >= body_types.size())
    return set_error(error, "unknown event type tag " + std::to_string(tag) +
                                " (this reader knows 0.." + std::to_string(body_types.size() - 1) +
                                ")");
  const body_type& type = body_types[static_cast<std::size_t>(tag)];

  std::uint64_t version = 0;
  r("version", version);
  if (r.failed()) return set_error(error, field_error(type.name, r));
  if (version > type.current)
    return set_error(error, std::string(type.name) + " version " + std::to_string(version) +
                                " is newer than this reader (" + std::to_string(type.current) +
                                ")");
  if (version < type.oldest)
    return set_error(error, std::string(type.name) + " version " + std::to_string(version) +
                                " is older than the oldest this reader can read (" +
                                std::to_string(type.oldest) + ")");
  r.version = static_cast<std::uint16_t>(version);

  millis time = 0;
  std::string principal;
  event_body body;
  r("time", time);
  r("principal", principal);
  if (!r.failed()) type.read(r, body);
  if (r.failed()) return set_error(error, field_error(type.name, r));
  if (r.left() != 0)
    return set_error(error, std::string(type.name) + ": " + std::to_string(r.left()) +
                                " trailing bytes after the event");

  out.time = time;
  out.principal = std::move(principal);
  out.body = std::move(body);
  return true;
}

}  // namespace jobsmith
