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
//   17 kind.configured  := kind: string  on_accept: string  schema: string
//   18 job.cancel_requested := attempt: varint  reason: string
//   19 queue.retention  := queue: string  succeeded: svarint  failed: svarint
//
// Later versions append fields:
//    0 job.submitted v2 := ... follows: varint
//    0 job.submitted v3 := ... follows: varint  to_stop: svarint (timeouts.to_stop;
//                          10000 when reading v1 and v2)
//    8 job.reviewed v2  := ... follow_up: varint
//
// Evolving a type: bump T::version, append the new fields at the end of its
// list in fields() guarded by `if (io.version >= N)` (the reader sets
// io.version to the stored version, the writer to the current one), and add
// the layout above. Never reorder or drop fields of a readable version.
#include "events/codec.hpp"
#include "events/binary_io.hpp"

#include <array>
#include <bit>
#include <concepts>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

namespace jobsmith {

using binary::reader;
using binary::writer;

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
    if (io.version >= 2) io("follows", b.follows);
    if (io.version >= 3) io("to_stop", b.timeouts.to_stop);
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
    if (io.version >= 2) io("follow_up", b.follow_up);
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
  } else if constexpr (std::is_same_v<T, kind_configured>) {
    io("kind", b.kind);
    io("on_accept", b.on_accept);
    io("schema", b.schema);
  } else if constexpr (std::is_same_v<T, job_cancel_requested>) {
    io("attempt", b.attempt);
    io("reason", b.reason);
  } else if constexpr (std::is_same_v<T, queue_retention>) {
    io("queue", b.queue);
    io("succeeded", b.succeeded);
    io("failed", b.failed);
  } else {
    static_assert(always_false<T>, "add the type's fields (and its grammar line)");
  }
}

namespace {

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
