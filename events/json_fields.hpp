// Internal to events/: the JSON key lists of every event body and the
// nlohmann writer, shared by json.cpp (events, submissions) and
// json_record.cpp (job records). Not installed.
#pragma once

#include <concepts>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "events/event.hpp"
#include "events/job_state.hpp"

namespace jobsmith::json_detail {

using nlohmann::json;

template <class>
inline constexpr bool always_false = false;

// -- field lists ----------------------------------------------------------------

// The submission fields of job_submitted, in the order of the header comment.
template <class Io, class B>
inline void spec_fields(Io& io, B& b) {
  io("kind", b.kind);
  io("queue", b.queue);
  io.json_text("payload", b.payload);
  io("priority", b.priority);
  io("run_at", b.run_at);
  io("retry", b.retry);
  io("timeouts", b.timeouts);
  io("resources", b.resources);
  io("unique_key", b.unique_key);
  io("review_required", b.review_required);
  io("recurrence", b.recur);
}

// The JSON keys of every struct, shared by the writer and the reader.
// `B` is const-qualified for the writer.
template <class Io, class B>
inline void json_fields(Io& io, B& b) {
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
    io("to_stop", b.to_stop);
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
    spec_fields(io, b);
    io("schedule", b.schedule);
    io.id_if_set("follows", b.follows);
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
    io.json_text("result", b.result);
  } else if constexpr (std::is_same_v<T, job_failed>) {
    io("attempt", b.attempt);
    io("error", b.error);
    io("retryable", b.retryable);
    io("next_run_at", b.next_run_at);
    io.json_text_or_empty("handover", b.handover);
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
    io.id_if_set("follow_up", b.follow_up);
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
    io.json_text_or_empty("schema", b.schema);
  } else if constexpr (std::is_same_v<T, job_cancel_requested>) {
    io("attempt", b.attempt);
    io("reason", b.reason);
  } else if constexpr (std::is_same_v<T, queue_retention>) {
    io("queue", b.queue);
    io("succeeded", b.succeeded);
    io("failed", b.failed);
  } else {
    static_assert(always_false<T>, "add the type's JSON fields");
  }
}

// JSON text as a JSON value; text that does not parse is kept as a string
// rather than lost (see the header).
inline json embed(const std::string& text) {
  json v = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return json(text);
  return v;
}

// -- writer ---------------------------------------------------------------------

class json_writer {
 public:
  explicit json_writer(json& obj) : obj_(obj) {}

  template <class T>
  void operator()(const char* name, const T& v) {
    obj_[name] = value(v);
  }
  void json_text(const char* name, const std::string& text) { obj_[name] = embed(text); }
  void json_text_or_empty(const char* name, const std::string& text) {
    if (!text.empty()) obj_[name] = embed(text);
  }
  /// A job id that is mostly 0 ("none"): written only when set.
  void id_if_set(const char* name, job_id id) {
    if (id != 0) obj_[name] = id;
  }

  static json value(const std::string& s) { return s; }
  static json value(bool b) { return b; }
  static json value(double d) { return d; }
  template <std::integral T>
  static json value(T v) {
    return v;
  }
  template <class E>
  requires std::is_enum_v<E>
  static json value(E e) { return std::string(to_string(e)); }
  template <class T>
  static json value(const std::vector<T>& v) {
    json a = json::array();
    for (const auto& e : v) a.push_back(value(e));
    return a;
  }
  template <class T>
  requires std::is_class_v<T>
  static json value(const T& s) {
    json o = json::object();
    json_writer w(o);
    json_fields(w, s);
    return o;
  }

 private:
  json& obj_;
};

}  // namespace jobsmith::json_detail
