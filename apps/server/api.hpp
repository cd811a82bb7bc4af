// The API of docs/api.md as plain C++: routing, auth, validation, the engine
// calls and the JSON answers. No RESTinio here (apps/server/server.cpp is the
// HTTP glue), so this compiles fast and reads on its own. api.cpp holds the
// route table and the dispatch; the handlers are in routes_*.cpp and
// api_metrics.cpp (api_internal.hpp lists them).
//
// Every request is judged completely (route, token, role, body shape and
// values, limits) before the engine is called: a 4xx writes nothing.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "actors/engine.hpp"
#include "apps/server/auth.hpp"
#include "apps/server/call_pool.hpp"
#include "apps/server/event_hub.hpp"
#include "apps/server/request_guard.hpp"
#include "apps/server/server.hpp"

namespace jobsmith::server {

struct http_request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query, not yet percent-decoded
  std::vector<std::pair<std::string, std::string>> query;  // decoded
  bool query_malformed = false;
  std::string authorization;  // the Authorization header, or ""
  std::string last_event_id;  // the Last-Event-ID header, or ""
  request_source source;      // Host, Origin, Sec-Fetch-Site, Content-Type
  std::string prefer;         // the Prefer header (return=minimal: slim answers), or ""
  std::string body;
};

/// Fills `r.query` from a raw query string ("state=queued,running&limit=5"):
/// pairs split at '&' and the first '=', '+' read as a space, %XX escapes
/// decoded; sets r.query_malformed on a broken escape.
void parse_query(std::string_view raw, http_request& r);

struct http_reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Called exactly once per request, on any thread.
using reply_fn = std::function<void(http_reply)>;

/// A request that opens an event stream: authorised and parsed; the HTTP
/// side opens the response and hands it to event_hub::add_stream.
struct stream_request {
  stream_filter filter;
  sequence_t from = 0;  // first sequence to send; the API sets it (head + 1 for new only)
};

/// Server counters shown by /metrics.
struct api_counters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> refused_busy{0};  // 429 from the server's own bounds
  std::atomic<std::uint64_t> refused_overloaded{0};  // 429 from the engine
  std::atomic<std::uint64_t> refused_memory{0};  // 503 memory_budget
  std::atomic<std::uint64_t> long_polls{0};    // leases waiting now
  std::atomic<std::uint64_t> streams_opening{0};
  std::atomic<std::uint64_t> leased_jobs{0};
  std::atomic<std::uint64_t> client_errors{0};  // 4xx
  std::atomic<std::uint64_t> server_errors{0};  // 5xx
};

struct request_context;  // one request's state in the route handlers (api_internal.hpp)

class api {
 public:
  api(engine& eng, event_hub& hub, call_pool& pool, const server_config& config);

  /// Answers `req` through `reply`, now or later from another thread, or
  /// returns a stream_request (then `reply` is not called).
  std::optional<stream_request> handle(http_request&& req, reply_fn reply);

  /// The JSON error body of docs/api.md.
  static http_reply error_reply(int status, std::string_view code, std::string_view message);

  api_counters& counters() { return counters_; }
  /// Whether another stream may open (server limit); counts it when so.
  bool admit_stream();
  void stream_closed();
  /// The server's resident memory, as last sampled (server.cpp).
  void set_resident_bytes(std::uint64_t bytes) { resident_bytes_.store(bytes); }
  /// The port the server listens on: a Host header may name only it when
  /// there are no tokens (server.cpp, once bound).
  void set_port(std::uint16_t port) { port_.store(port); }
  /// The server's count of open connections, for /metrics (server.cpp).
  void set_connection_counter(const std::atomic<std::size_t>* open) { open_connections_ = open; }
  /// True while the memory budget is set and resident memory is over it.
  bool over_memory_budget() const;

  /// Prometheus text of everything.
  std::string metrics_text();

 private:
  // The route handlers reach the engine, hub, pool, limits and counters
  // through their request_context.
  friend struct request_context;
  engine& eng_;
  event_hub& hub_;
  call_pool& pool_;
  const server_config& config_;
  api_counters counters_;
  std::atomic<std::uint64_t> open_streams_{0};
  std::atomic<std::uint64_t> inflight_calls_{0};  // admitted requests not yet answered
  std::atomic<std::uint64_t> inflight_bytes_{0};  // admitted request bodies not yet answered
  std::atomic<std::uint64_t> resident_bytes_{0};
  std::atomic<std::uint16_t> port_{0};
  const std::atomic<std::size_t>* open_connections_ = nullptr;
  histogram lease_seconds_;
};

}  // namespace jobsmith::server
