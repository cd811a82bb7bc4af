// What the route handlers of the API share: the route table's row, the
// per-request context with its answer helpers, body and query reading, and
// the handlers themselves, one file per resource:
//
//   api.cpp              the route table, dispatch (route, method, browser
//                        checks, token, role, then the handler), api's members
//   routes_service.cpp   served without a token: /healthz, /readyz, dashboard
//   api_metrics.cpp      GET /metrics (also without a token)
//   routes_jobs.cpp      /v1/jobs: submit, list, get, cancel, run-now, retry, review
//   routes_workers.cpp   lease, heartbeat, complete (one, a batch), fail
//   routes_queues.cpp    /v1/queues: list, pause, resume, concurrency
//   routes_kinds.cpp     /v1/kinds: list, get, configure
//   routes_schedules.cpp /v1/schedules: list, delete
//   routes_events.cpp    /v1/events: a page, a stream
//   routes_admin.cpp     /v1/admin/backup
//
// Internal to apps/server: only the API's own files include it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/server/api.hpp"
#include "apps/server/api_error.hpp"

namespace jobsmith::server {

using json = nlohmann::json;

// -- values and text ----------------------------------------------------------------------

inline const char* const max_safe_id_text = "9007199254740991";
inline constexpr std::uint64_t max_safe_id = 9007199254740991ULL;  // 2^53 - 1

millis wall_now();
/// Compact JSON text; invalid UTF-8 is replaced, never thrown.
std::string dump(const json& j);
/// docs/api.md's table: engine errors to HTTP.
api_error from_engine(const engine_error& err);
/// "N MiB", rounded up.
std::string mib(std::uint64_t bytes);

/// An id: decimal digits, at most 2^53 - 1.
std::optional<std::uint64_t> parse_id(std::string_view s);
std::optional<std::int64_t> parse_int(std::string_view s);
/// `s` cut at every `sep`: n separators give n + 1 pieces, empty ones included.
std::vector<std::string_view> split(std::string_view s, char sep);
/// Decodes %XX escapes of a path segment; nothing when one is malformed.
std::optional<std::string> percent_decode(std::string_view s);

/// Reads the fields of one JSON object by name, strictly: wrong types and
/// unknown names are errors naming the field. `where` prefixes every
/// message ("results[3].", "" for the body itself).
class object_reader {
 public:
  object_reader(const json& j, std::string where);
  /// The field, or nullptr when it is absent or null; marks it as read.
  const json* find(const char* key);
  std::optional<std::string> str(const char* key, std::size_t max_len);
  /// An integer, at most 2^53 - 1.
  std::optional<std::int64_t> integer(const char* key);
  /// An integer from 0 to 2^53 - 1.
  std::optional<std::uint64_t> id(const char* key);
  std::optional<bool> boolean(const char* key);
  /// Any JSON value as compact text (a null too).
  std::optional<std::string> any(const char* key);
  /// 400 naming the first field not read.
  void no_other_fields();

 private:
  const json& j_;
  std::string where_;
  std::vector<std::string> seen_;
};

// -- one request --------------------------------------------------------------------------

/// Everything a handler needs for one request. It is answered exactly once:
/// through reply, answer, fail or a helper that calls them. A handler that
/// answers later moves the context into a shared_ptr first (on_pool does),
/// after its last throw: the dispatcher answers an api_error thrown by the
/// handler through the context it passed in.
struct request_context {
  api& self;
  http_request req;
  reply_fn reply;  // counts the answer (4xx, 5xx) and releases its body bytes
  std::string principal;
  role who = role::admin;
  /// The path's {job_id} or {schedule_id}, checked before the handler runs.
  std::uint64_t id = 0;
  /// The path's {placeholder} segments as sent (not percent-decoded).
  std::vector<std::pair<std::string_view, std::string>> path_args{};

  // The API's parts (request_context is api's friend).
  engine& eng() const { return self.eng_; }
  event_hub& hub() const { return self.hub_; }
  call_pool& pool() const { return self.pool_; }
  const server_config& config() const { return self.config_; }
  const server_limits& limits() const { return self.config_.limits; }
  api_counters& counters() const { return self.counters_; }
  histogram& lease_seconds() const { return self.lease_seconds_; }
  std::uint64_t resident_bytes() const { return self.resident_bytes_.load(); }

  /// The text of the path's {name} segment, or "".
  std::string_view path_arg(std::string_view name) const;

  /// Whose lease tokens this caller may read (event_hub.hpp).
  token_visibility tokens() const { return {who == role::admin, principal}; }

  void fail(const api_error& e);
  void answer(int status, const json& body);

  /// Whether the client asked for slim answers (Prefer: return=minimal).
  bool minimal() const;
  /// A 200 with a slim body, saying so (RFC 7240's Preference-Applied).
  void reply_minimal(http_reply r);
  /// The answer to a complete or fail: the whole job, or its new state.
  void answer_job(const job_record& job);
  /// The answer to a complete with lease_next: {"job": job or its state,
  /// "jobs": [the leased jobs]}, plus "lease_error" when the lease part
  /// failed (the completion stands: it is durable).
  void answer_job_and_next(const job_record& done, const result<std::vector<job_record>>& leased);
  /// Answers `{"<key>": [jobs...]<rest>}` with each job written by
  /// append_json_text (the same bytes as to_json, without building the tree).
  /// `rest` is further members as text, starting with a comma, or empty.
  void answer_jobs(int status, const char* key, const std::vector<job_record>& jobs,
                   const std::string& rest = {});

  /// Runs `fn(context)` on the call pool; 429 when the pool is saturated.
  /// Leaves this context moved-from: answer only through `fn`'s argument.
  template <class Fn>
  void on_pool(Fn fn) {
    auto shared = std::make_shared<request_context>(std::move(*this));
    bool posted = shared->pool().try_post([shared, fn = std::move(fn)]() mutable {
      try {
        fn(*shared);
      } catch (const api_error& e) {
        shared->fail(e);
      } catch (const std::exception& e) {
        shared->fail({500, "internal", e.what()});
      }
    });
    if (!posted) {
      shared->counters().refused_busy.fetch_add(1);
      shared->reply(api::error_reply(429, "overloaded", "the server is busy; try again later"));
    }
  }

  /// The body as a JSON object, checked for depth and duplicate keys; an
  /// empty body is {} when `optional`, else 400.
  json body_json(bool optional) const;

  /// The decoded query value of `key`, or nullptr.
  const std::string* query(std::string_view key) const;
  /// 400 for a query parameter not in `allowed` (access_token always is).
  void only_query(std::initializer_list<std::string_view> allowed) const;
  /// The query value of `key` as an integer >= `min`, `fallback` when absent.
  std::int64_t query_int(std::string_view key, std::int64_t fallback, std::int64_t min) const;
};

// -- leases (routes_workers.cpp) -----------------------------------------------------------

/// Appends `[job, ...]`: each job whole, or slim (slim_answers.hpp).
void append_leased_jobs(std::string& out, const std::vector<job_record>& jobs, bool minimal,
                        millis now);
/// Appends `,"lease_error":{"code":...,"message":...}`: a lease chained
/// after completions failed, while the completions stand.
void append_lease_error(std::string& out, const engine_error& err);

// -- the route table ----------------------------------------------------------------------

/// Handles one request whose route, browser checks, token and role passed:
/// answers through the context (now or later, once), or returns the stream
/// to open (then answers nothing). Throws api_error only before it hands
/// the context on.
using route_handler = std::optional<stream_request> (*)(request_context&);

/// One row of the route table (api.cpp).
struct route {
  std::string_view method;  // "GET", "POST", "DELETE"
  /// Segments between '/': a literal, or a {placeholder} that takes any one
  /// segment, empty included ({job_id} and {schedule_id} must be ids below
  /// 2^53: 400 after the token checks; {queue} is passed on as sent). A
  /// last segment "*" takes the rest of the path, whatever it is.
  std::string_view pattern;
  /// What the caller's role must allow; nothing: served without a token,
  /// and with no query, id or body size checks either.
  std::optional<permission> need;
  route_handler handle;
  /// The token may also come as ?access_token= (browsers cannot set
  /// headers on an EventSource).
  bool token_in_query = false;
};

// routes_service.cpp
std::optional<stream_request> get_health(request_context& rt);
std::optional<stream_request> get_readiness(request_context& rt);
std::optional<stream_request> get_dashboard_file(request_context& rt);
// api_metrics.cpp
std::optional<stream_request> get_metrics(request_context& rt);
// routes_jobs.cpp
std::optional<stream_request> submit_jobs(request_context& rt);
std::optional<stream_request> list_jobs(request_context& rt);
std::optional<stream_request> get_job(request_context& rt);
std::optional<stream_request> cancel_job(request_context& rt);
std::optional<stream_request> run_job_now(request_context& rt);
std::optional<stream_request> retry_job(request_context& rt);
std::optional<stream_request> review_job(request_context& rt);
// routes_workers.cpp
std::optional<stream_request> lease_jobs(request_context& rt);
std::optional<stream_request> heartbeat_job(request_context& rt);
std::optional<stream_request> complete_job(request_context& rt);
std::optional<stream_request> fail_job(request_context& rt);
std::optional<stream_request> complete_jobs(request_context& rt);
// routes_queues.cpp
std::optional<stream_request> list_queues(request_context& rt);
std::optional<stream_request> pause_queue(request_context& rt);
std::optional<stream_request> resume_queue(request_context& rt);
std::optional<stream_request> configure_queue(request_context& rt);
std::optional<stream_request> configure_queue_retention(request_context& rt);
// routes_kinds.cpp
std::optional<stream_request> list_kinds(request_context& rt);
std::optional<stream_request> get_kind(request_context& rt);
std::optional<stream_request> configure_kind(request_context& rt);
// routes_schedules.cpp
std::optional<stream_request> list_schedules(request_context& rt);
std::optional<stream_request> delete_schedule(request_context& rt);
// routes_events.cpp
std::optional<stream_request> get_events_page(request_context& rt);
std::optional<stream_request> open_event_stream(request_context& rt);
// routes_admin.cpp
std::optional<stream_request> write_backup(request_context& rt);

}  // namespace jobsmith::server
