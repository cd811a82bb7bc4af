// `jobsmith serve`: the HTTP/JSON API of docs/api.md over one engine.
//
// Either the server owns the engine (opened from server_config::engine
// with allow_unknown_kinds and no local handlers: every kind runs on remote
// workers; `jobsmith serve`), or it serves an engine the caller opened and
// owns, with the caller's handlers and hooks (docs/embedding.md). It holds
// an event hub (one engine subscription fanned out to event streams,
// metrics and per-queue counts), a bounded pool of threads for the blocking
// facade calls, and RESTinio on its own Asio threads. Asio threads never
// wait for the engine: a request is accepted, handed to the pool (or to an
// asynchronous facade call) and answered from there.
//
//   jobsmith::server::server_config cfg;
//   cfg.engine.data_dir = "./data";
//   cfg.port = 0;                          // any free port
//   jobsmith::server::server srv{std::move(cfg)};
//   if (auto err = srv.start(); !err.empty()) { /* report err */ }
//   ... srv.port() ...
//   srv.stop();
//
// Over the caller's engine (opened as in actors/engine.hpp):
//
//   jobsmith::server::server srv{cfg, *eng};  // cfg.engine is not used
//   srv.start();  ...  srv.stop();            // the engine stays open
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../../actors/engine.hpp"
#include "auth.hpp"
#include "beanstalk/options.hpp"

namespace jobsmith::server {

/// Limits on what one request may ask for. Every one is enforced before the
/// engine is called, so a refused request changes nothing.
struct server_limits {
  std::size_t max_body_bytes = 8 * 1024 * 1024;  // 413 above
  std::size_t max_json_depth = 32;               // 400 above
  std::size_t max_batch = 5000;                  // jobs per submit, results per batch complete: 413
  std::size_t max_lease_jobs = 5000;             // max_jobs per lease (clamped, not refused)
  std::size_t max_name_length = 256;             // kind, queue, worker, unique key, resource: 400
  std::size_t max_connections = 1024;            // RESTinio connection_count_limit
  std::chrono::milliseconds read_timeout{30'000};      // reading one request
  std::chrono::milliseconds write_timeout{30'000};     // writing one response
  std::chrono::milliseconds handler_timeout{120'000};  // a handler's answer (above long poll)
  std::chrono::milliseconds max_long_poll{30'000};     // wait_ms cap
  std::size_t max_long_polls = 1024;   // leases waiting at once; 429 above
  std::size_t pool_threads = 8;        // threads for blocking engine calls
  std::size_t pool_queue = 4096;       // calls waiting for a thread; 429 above
  /// Requests admitted and not yet answered, whatever thread they wait on
  /// (an engine callback or the call pool); 429 above. Event streams count
  /// against max_streams instead.
  std::size_t max_inflight_calls = 4096;
  std::size_t max_streams = 256;       // event streams at once; 429 above
  std::size_t stream_buffer_bytes = 4 * 1024 * 1024;  // unsent bytes per stream before it is ended
  std::chrono::milliseconds keepalive{15'000};        // ": keepalive" comment on idle streams
  std::size_t max_events_page = 1000;  // limit of GET /v1/events
  /// The time one GET /v1/events page may scan the log for matches: a page
  /// is short before the head only when this ran out (its "next" says where).
  std::chrono::milliseconds events_scan_time{250};
  /// Bytes of request bodies admitted and not yet answered; a request that
  /// would go over is answered 429 at once (one alone is always admitted).
  /// Parsed, a body takes a few times its size: this bounds what a flood of
  /// large submits can hold in memory at once.
  std::size_t max_inflight_bytes = 64 * 1024 * 1024;
  /// Resident memory (RSS, sampled every memory_sample) above which
  /// submits are refused with 503 memory_budget and /readyz says not ready;
  /// reads, leases and results go on. 0 = no budget.
  std::uint64_t memory_budget_bytes = 0;
  std::chrono::milliseconds memory_sample{100};
};

struct server_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 7878;  // 0 = any free port (read it back with port())
  std::size_t io_threads = 2;
  token_table tokens;  // empty = no auth, loopback only
  server_limits limits;
  /// For a server that opens its own engine: handlers must be empty,
  /// allow_unknown_kinds is forced on. Not used over the caller's engine.
  engine_options engine;
  /// Folder POST /v1/admin/backup may create new directories in (never
  /// inside the data directory); empty = HTTP backups are refused (403).
  /// apps/server/backup_target.hpp.
  std::string backup_dir;
  /// The beanstalkd protocol on its own port (docs/beanstalk.md); off while
  /// beanstalk.host is empty. Non-loopback only with tokens, as for HTTP.
  beanstalk::options beanstalk;
};

/// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback(const std::string& host);

class server {
 public:
  /// A server that opens (at start()) and closes (at stop()) its own engine.
  explicit server(server_config config);
  /// A server over `eng`, which the caller opened and owns: its handlers run
  /// the kinds they cover, and its allow_unknown_kinds says whether HTTP
  /// may submit other kinds (for remote workers). The beanstalkd protocol
  /// is not served over it (start() refuses). REQUIRES: `eng` is open and
  /// outlives the server.
  server(server_config config, engine& eng);
  ~server();  // stop()
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Opens the engine (unless it is the caller's) and starts listening.
  /// Returns "" on success, else why not (nothing keeps running then).
  /// Refuses a non-loopback address when no tokens are configured.
  std::string start();
  /// Stops listening, ends event streams, lets engine calls in progress
  /// finish, closes open connections (a waiting long poll sees its
  /// connection close), closes the engine and joins every thread.
  /// Idempotent. The caller's engine is left open: stop() then waits until
  /// the engine has answered every call the server made, which for a
  /// worker's long poll is up to its wait (limits.max_long_poll at most).
  void stop();

  /// The bound port (after start()).
  std::uint16_t port() const;
  /// The beanstalkd protocol's bound port (after start(); 0 when off).
  std::uint16_t beanstalk_port() const;
  /// The engine (after start(), before stop()).
  engine& engine_ref();

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace jobsmith::server
