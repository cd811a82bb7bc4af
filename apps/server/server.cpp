// The HTTP side of `jobsmith serve`: every line that touches RESTinio lives
// in this one file (it costs 35-50 s to compile). The API itself is
// apps/server/api.cpp; this file turns RESTinio requests into http_request,
// writes http_reply back from whichever thread finished, and holds event
// streams open as chunked responses.
#include "apps/server/server.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <restinio/all.hpp>
#include <spdlog/spdlog.h>

#include "apps/server/api.hpp"
#include "apps/server/beanstalk/listener.hpp"
#include "apps/server/call_pool.hpp"
#include "apps/server/event_hub.hpp"
#include "apps/server/log_limiter.hpp"
#include "apps/server/reply_count.hpp"

namespace jobsmith::server {

namespace {

/// Bounds open connections. RESTinio's own connection_count_limiter keeps a
/// raw pointer to the acceptor in every connection, which Asio then
/// destroys after the acceptor when the server shuts down with connections
/// open (AddressSanitizer: heap-use-after-free). This gate is shared by
/// the connections instead: it tracks which connections are open and
/// refuses (closes) a new one while `max` are.
///
/// By connection id, not by counting notices: RESTinio 0.6 reports a
/// connection closed once per close() call, and a connection cut off by
/// its read timeout is closed twice (the timer, then the aborted read).
/// Counting notices wrapped the count below zero, and the gate then turned
/// every new connection away (found by tests/crash/load_test.cpp, seen by
/// the kill loop as a list request closed unanswered ten times running).
struct connection_gate {
  std::atomic<std::size_t> open{0};
  std::size_t max = 1024;

  restinio::ip_blocker::inspection_result_t inspect(
      const restinio::ip_blocker::incoming_info_t&) noexcept {
    return open.load() >= max ? restinio::ip_blocker::deny() : restinio::ip_blocker::allow();
  }
  void state_changed(const restinio::connection_state::notice_t& notice) noexcept {
    auto index = notice.cause().index();  // accepted_t, closed_t, upgraded_to_websocket_t
    if (index != 0 && index != 1) return;
    std::lock_guard<std::mutex> guard{mu_};
    try {
      if (index == 0) ids_.insert(notice.connection_id());
      else ids_.erase(notice.connection_id());
    } catch (const std::exception&) {
      // Out of memory for one id: the count is off by one until it closes.
    }
    open.store(ids_.size());
  }

 private:
  std::mutex mu_;
  std::unordered_set<restinio::connection_id_t> ids_;
};

/// RESTinio's own errors and warnings go to the server log: a connection it
/// closes on a read, parse, handler or write error says so, with its cause
/// (the default null logger dropped them, so a request closed unanswered
/// left no trace). Trace and info lines (several per request, and every
/// timeout) are not built at all. Anyone who can connect can cause these
/// lines, so they pass through http_error_log(): a burst, then one a second,
/// and a count of the lines left out.
class restinio_log {
 public:
  template <typename Message_Builder>
  constexpr void trace(Message_Builder&&) const noexcept {}
  template <typename Message_Builder>
  constexpr void info(Message_Builder&&) const noexcept {}
  template <typename Message_Builder>
  void warn(Message_Builder&& build) const noexcept {
    write(spdlog::level::warn, build);
  }
  template <typename Message_Builder>
  void error(Message_Builder&& build) const noexcept {
    write(spdlog::level::warn, build);
  }

 private:
  template <typename Message_Builder>
  static void write(spdlog::level::level_enum level, Message_Builder& build) noexcept {
    try {
      auto v = http_error_log().admit(log_limiter::clock::now());
      if (!v.write) return;
      if (v.suppressed == 0) spdlog::log(level, "http: {}", build());
      else spdlog::log(level, "http: {} ({} similar lines not written)", build(), v.suppressed);
    } catch (...) {
      // Out of memory for one log line: the line is lost, nothing else.
    }
  }
};

struct server_traits
    : public restinio::traits_t<restinio::asio_timer_manager_t, restinio_log> {
  using ip_blocker_t = connection_gate;
  using connection_state_listener_t = connection_gate;
};

using http_server = restinio::http_server_t<server_traits>;

/// Each connection's socket read buffer (RESTinio's default is 4 KiB).
/// RESTinio's read timeout counts from the previous answer until the next
/// request is read whole, so the time a request waits for an Asio thread
/// counts against its client. With 4 KiB, a 55 KB batch took 14 reads, and
/// 200 clients flooding such batches at an ASan build got 1 in 1,000
/// requests cut off unanswered by a 3 s read timeout (load_test, CI of
/// ff46392); 16 KiB doubled the rate of answered requests on that path.
/// Cost: 16 KiB per open connection, 16 MiB at 1,024 connections.
constexpr std::size_t read_buffer_bytes = 16 * 1024;

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
  }
  return "Unknown";
}

void write_reply(const restinio::request_handle_t& req, http_reply reply) {
  try {
    auto resp = req->create_response(restinio::http_status_line_t{
        restinio::http_status_code_t{static_cast<std::uint16_t>(reply.status)},
        reason_phrase(reply.status)});
    resp.append_header(restinio::http_field::content_type, std::move(reply.content_type));
    for (auto& [name, value] : reply.headers) resp.append_header(name, std::move(value));
    resp.set_body(std::move(reply.body));
    resp.done();
  } catch (const std::exception&) {
    // The connection is gone; nobody is left to answer.
  }
}

/// An event stream as a chunked response. Bytes handed to RESTinio but not
/// yet written count against a budget; over it the stream ends (the client
/// resumes with Last-Event-ID), so a slow reader cannot grow memory.
class sse_sink final : public stream_sink {
 public:
  sse_sink(restinio::response_builder_t<restinio::chunked_output_t> resp, std::size_t budget,
           std::chrono::milliseconds drain_limit, api& owner)
      : resp_(std::move(resp)), budget_(budget), drain_limit_(drain_limit), owner_(owner) {
    state_ = std::make_shared<write_state>();
  }
  ~sse_sink() override { end(); }

  /// Sends the response head at once, so the client sees 200 before any event.
  void open() {
    std::lock_guard<std::mutex> guard{mu_};
    resp_.append_header(restinio::http_field::content_type, "text/event-stream");
    resp_.append_header(restinio::http_field::cache_control, "no-cache");
    resp_.append_chunk(std::string{": stream open\n\n"});
    flush_locked(15);
  }

  bool send(std::string text) override {
    std::lock_guard<std::mutex> guard{mu_};
    if (ended_ || state_->dead) return false;
    if (state_->unsent.load() + text.size() > budget_) return false;
    auto n = text.size();
    resp_.append_chunk(std::move(text));
    flush_locked(n);
    return true;
  }

  bool wait_writable() override {
    {
      std::lock_guard<std::mutex> guard{mu_};
      if (ended_) return false;
    }
    auto deadline = std::chrono::steady_clock::now() + drain_limit_;
    while (state_->unsent.load() > budget_ / 2) {
      if (state_->dead || std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return !state_->dead;
  }

  void end() override {
    std::lock_guard<std::mutex> guard{mu_};
    if (ended_) return;
    ended_ = true;
    try {
      resp_.done();
    } catch (const std::exception&) {
    }
    owner_.stream_closed();
  }

 private:
  struct write_state {
    std::atomic<std::size_t> unsent{0};
    std::atomic<bool> dead{false};
  };

  void flush_locked(std::size_t n) {
    state_->unsent.fetch_add(n);
    auto st = state_;
    try {
      resp_.flush([st, n](const restinio::asio_ns::error_code& ec) {
        st->unsent.fetch_sub(n);
        if (ec) st->dead = true;
      });
    } catch (const std::exception&) {
      state_->dead = true;
    }
  }

  std::mutex mu_;
  restinio::response_builder_t<restinio::chunked_output_t> resp_;
  std::shared_ptr<write_state> state_;
  bool ended_ = false;
  const std::size_t budget_;
  const std::chrono::milliseconds drain_limit_;
  api& owner_;
};

}  // namespace

/// Whether this thread is inside server::impl::on_request (see answer()).
static thread_local bool inside_request_handler = false;

/// This process's resident memory from /proc/self/statm (0 if unreadable).
static std::uint64_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

bool is_loopback(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  return host.rfind("127.", 0) == 0;
}

struct server::impl {
  explicit impl(bool callers) : callers_engine(callers) {}

  server_config config;
  std::unique_ptr<engine> owned_eng;  // the engine the server opened, if it did
  engine* eng = nullptr;              // the engine served: owned_eng's or the caller's
  const bool callers_engine;
  reply_count replies;                // counted over the caller's engine only
  std::unique_ptr<event_hub> hub;
  std::unique_ptr<call_pool> pool;
  std::unique_ptr<api> handler;
  // The handler once the engine is open: the socket is bound before the
  // engine opens (a port in use must not leave engine.started in the log),
  // and a request that arrives in between is answered 503.
  std::atomic<api*> serving{nullptr};
  // Freed at the end of stop(): the connections that queued handlers still
  // hold close then, not when the server object goes.
  std::unique_ptr<restinio::asio_ns::io_context> io =
      std::make_unique<restinio::asio_ns::io_context>();
  std::unique_ptr<http_server> http;
  std::unique_ptr<beanstalk::listener> beanstalk;  // after io: its sockets and timers go first
  std::vector<std::thread> io_threads;
  std::atomic<std::uint16_t> bound_port{0};
  std::shared_ptr<connection_gate> gate = std::make_shared<connection_gate>();

  std::thread ticker;
  std::mutex ticker_mu;
  std::condition_variable ticker_cv;
  bool ticker_stop = false;
  bool running = false;

  restinio::request_handling_status_t on_request(restinio::request_handle_t req) {
    struct handler_scope {
      handler_scope() { inside_request_handler = true; }
      ~handler_scope() { inside_request_handler = false; }
    } scope;
    api* h_api = serving.load(std::memory_order_acquire);
    if (h_api == nullptr) {
      // Alive (liveness) but not ready: recovery is still folding the log.
      if (req->header().path() == "/healthz") {
        http_reply alive;
        alive.body = R"({"status":"starting"})";
        answer(req, std::move(alive));
      } else {
        answer(req, api::error_reply(503, "unavailable", "the server is starting; try again"));
      }
      return restinio::request_accepted();
    }
    http_request r;
    const auto& h = req->header();
    r.method = h.method().c_str();
    r.path = std::string{h.path()};
    // Parsed by the API itself: RESTinio's parser refuses the commas of
    // "state=queued,running".
    parse_query(h.query(), r);
    r.authorization = h.get_field_or(restinio::http_field::authorization, "");
    r.last_event_id = h.get_field_or("Last-Event-ID", "");
    r.source.host = h.get_field_or(restinio::http_field::host, "");
    r.source.origin = h.get_field_or("Origin", "");
    r.source.sec_fetch_site = h.get_field_or("Sec-Fetch-Site", "");
    r.source.content_type = h.get_field_or(restinio::http_field::content_type, "");
    r.prefer = h.get_field_or("Prefer", "");
    r.body = req->body();
    auto counted = callers_engine ? std::make_shared<reply_count::token>(replies) : nullptr;
    auto stream = h_api->handle(std::move(r), [this, req, counted](http_reply reply) {
      answer(req, std::move(reply));
    });
    if (stream) open_stream(req, std::move(*stream));
    return restinio::request_accepted();
  }

  /// Writes `reply` to `req`, never from inside RESTinio's request handler.
  ///
  /// A final response given while the handler still runs frees the
  /// connection's one response slot at once, so RESTinio 0.6 starts reading
  /// the next request right there, and again (resetting the parser) when
  /// the response's write completes. If the write completion runs late (an
  /// Asio thread descheduled between the send and posting it) after the
  /// first reads of the client's next request, that reset throws away the
  /// head already parsed and the rest of the body is read as a new request:
  /// "parser error HPE_INVALID_METHOD", and the connection is closed with
  /// the request unanswered (load_test's floods: 1 Release run in 8, among
  /// tens of thousands of 429s and 503s each). Posted, the answer comes
  /// after the handler returned with the slot taken, and the next read
  /// starts once, after the write.
  void answer(const restinio::request_handle_t& req, http_reply reply) {
    if (!inside_request_handler) {
      write_reply(req, std::move(reply));
      return;
    }
    restinio::asio_ns::post(*io, [req, reply = std::move(reply)]() mutable {
      write_reply(req, std::move(reply));
    });
  }

  void open_stream(const restinio::request_handle_t& req, stream_request sr) {
    if (!handler->admit_stream()) {
      answer(req, api::error_reply(429, "overloaded", "too many event streams are open"));
      return;
    }
    auto sink = std::make_shared<sse_sink>(req->create_response<restinio::chunked_output_t>(),
                                           config.limits.stream_buffer_bytes,
                                           config.limits.write_timeout, *handler);
    sink->open();
    // Catching up reads the log: on a pool thread, never on Asio's.
    bool posted = pool->try_post([this, sink, sr = std::move(sr)]() mutable {
      hub->add_stream(sink, std::move(sr.filter), sr.from);
    });
    if (!posted) {
      sink->send(": the server is busy; reconnect later\n\n");
      sink->end();
    }
  }
};

server::server(server_config config) : impl_(std::make_unique<impl>(false)) {
  impl_->config = std::move(config);
}

server::server(server_config config, engine& eng) : impl_(std::make_unique<impl>(true)) {
  impl_->config = std::move(config);
  impl_->eng = &eng;
}

server::~server() { stop(); }

std::uint16_t server::port() const { return impl_->bound_port.load(); }

std::uint16_t server::beanstalk_port() const {
  return impl_->beanstalk ? impl_->beanstalk->port() : 0;
}

engine& server::engine_ref() { return *impl_->eng; }

std::string server::start() {
  auto& im = *impl_;
  auto& cfg = im.config;
  if (im.running) return "already started";
  if (!im.io) return "a stopped server does not start again";
  if (cfg.tokens.empty() && !is_loopback(cfg.host))
    return "refusing to listen on " + cfg.host +
           " without tokens: anyone could submit and cancel jobs. Give --tokens FILE, or listen "
           "on 127.0.0.1";
  if (!im.callers_engine && !cfg.engine.handlers.empty())
    return "the server runs no handlers: remote workers run every kind";
  if (im.callers_engine && cfg.beanstalk.enabled())
    return "the beanstalkd protocol is served only by a server that opens its own engine";
  if (cfg.beanstalk.enabled() && cfg.tokens.empty() && !is_loopback(cfg.beanstalk.host))
    return "refusing to serve the beanstalkd protocol on " + cfg.beanstalk.host +
           " without tokens: anyone could put and delete jobs. Give --tokens FILE (clients then "
           "send `auth TOKEN`), or listen on 127.0.0.1";

  // 1. Bind. Nothing is written to the data directory before the port is
  //    ours: a server that cannot listen leaves the log as it found it.
  auto& lim = cfg.limits;
  im.gate->max = lim.max_connections;
  auto settings =
      restinio::server_settings_t<server_traits>{}
          .address(cfg.host)
          .port(cfg.port)
          .request_handler([&im](restinio::request_handle_t req) { return im.on_request(req); })
          .buffer_size(read_buffer_bytes)
          .read_next_http_message_timelimit(lim.read_timeout)
          .write_http_response_timelimit(lim.write_timeout)
          .handle_request_timeout(lim.handler_timeout)
          .ip_blocker(im.gate)
          .connection_state_listener(im.gate)
          // RESTinio drops a connection whose body exceeds its own limit
          // without an answer; the API answers 413 up to twice the limit.
          .incoming_http_msg_limits(
              restinio::incoming_http_msg_limits_t{}.max_body_size(2 * lim.max_body_bytes + 4096))
          .acceptor_post_bind_hook([&im](restinio::asio_ns::ip::tcp::acceptor& acceptor) {
            im.bound_port = acceptor.local_endpoint().port();
          });
  std::promise<std::string> opened_promise;
  auto opened_future = opened_promise.get_future();
  try {
    im.http = std::make_unique<http_server>(restinio::external_io_context(*im.io),
                                            std::move(settings));
    im.http->open_async([&] { opened_promise.set_value({}); },
                        [&](std::exception_ptr ex) {
                          try {
                            std::rethrow_exception(ex);
                          } catch (const std::exception& e) {
                            opened_promise.set_value(std::string{"cannot listen on "} + cfg.host +
                                                     ":" + std::to_string(cfg.port) + ": " +
                                                     e.what());
                          }
                        });
  } catch (const std::exception& e) {
    opened_promise.set_value(std::string{"cannot start the HTTP server: "} + e.what());
  }
  auto threads = std::max<std::size_t>(1, cfg.io_threads);
  for (std::size_t i = 0; i < threads; ++i)
    im.io_threads.emplace_back([&im] {
      auto guard = restinio::asio_ns::make_work_guard(*im.io);
      im.io->run();
    });
  im.running = true;
  if (auto err = opened_future.get(); !err.empty()) {
    stop();
    return err;
  }
  if (cfg.beanstalk.enabled()) {
    im.beanstalk = std::make_unique<beanstalk::listener>(*im.io, cfg.beanstalk);
    if (auto err = im.beanstalk->bind(); !err.empty()) {
      stop();
      return err;
    }
  }

  // 2. Open the engine (recovery writes engine.started), then serve. The
  //    caller's engine is open already; the routes read its options (the
  //    data directory that backups stay out of, submission bounds).
  if (im.callers_engine) {
    auto opts = im.eng->options();
    opts.handlers = {};
    cfg.engine = std::move(opts);
  } else {
    auto opts = cfg.engine;
    opts.allow_unknown_kinds = true;
    if (opts.default_principal == "embedded") opts.default_principal = "local";
    auto opened = engine::open(std::move(opts));
    if (!opened) {
      stop();
      return "cannot open the engine: " + opened.error().to_string();
    }
    im.owned_eng = std::move(*opened);
    im.eng = im.owned_eng.get();
  }
  im.hub = std::make_unique<event_hub>(*im.eng);
  if (auto err = im.hub->start(); !err.empty()) {
    stop();
    return err;
  }
  im.pool = std::make_unique<call_pool>(cfg.limits.pool_threads, cfg.limits.pool_queue);
  im.handler = std::make_unique<api>(*im.eng, *im.hub, *im.pool, cfg);
  im.handler->set_connection_counter(&im.gate->open);
  im.handler->set_port(im.bound_port.load());
  im.handler->set_resident_bytes(resident_bytes());
  im.serving.store(im.handler.get(), std::memory_order_release);
  if (im.beanstalk) {
    beanstalk::service::setup bs;
    bs.eng = im.eng;
    bs.pool = im.pool.get();
    bs.tokens = &cfg.tokens;
    bs.max_long_poll = cfg.limits.max_long_poll.count();
    bs.max_json_depth = cfg.limits.max_json_depth;
    bs.over_memory_budget = [h = im.handler.get()] { return h->over_memory_budget(); };
    im.beanstalk->start(std::move(bs));
  }

  // The ticker samples resident memory (the memory budget, /metrics) and
  // sends keepalive comments on idle event streams.
  im.ticker = std::thread([&im] {
    auto& l = im.config.limits;
    auto tick = std::max(std::chrono::milliseconds(1), std::min(l.memory_sample, l.keepalive));
    auto next_keepalive = std::chrono::steady_clock::now() + l.keepalive;
    std::unique_lock<std::mutex> lock{im.ticker_mu};
    while (!im.ticker_cv.wait_for(lock, tick, [&] { return im.ticker_stop; })) {
      lock.unlock();
      im.handler->set_resident_bytes(resident_bytes());
      if (std::chrono::steady_clock::now() >= next_keepalive) {
        im.hub->keepalive();
        next_keepalive = std::chrono::steady_clock::now() + l.keepalive;
      }
      lock.lock();
    }
  });
  return {};
}

void server::stop() {
  auto& im = *impl_;
  if (!im.running) return;
  im.running = false;
  {
    std::lock_guard<std::mutex> guard{im.ticker_mu};
    im.ticker_stop = true;
  }
  im.ticker_cv.notify_all();
  if (im.ticker.joinable()) im.ticker.join();
  // 1. Stop listening and end event streams.
  if (im.http) {
    std::promise<void> closed;
    auto done = closed.get_future();
    im.http->close_async([&] { closed.set_value(); }, [&](std::exception_ptr) { closed.set_value(); });
    done.wait();
  }
  // The beanstalkd side: its connections close and give back the jobs they
  // hold while the engine, the pool and the io threads still run.
  if (im.beanstalk) im.beanstalk->stop();
  if (im.hub) im.hub->stop();
  // 2. Let the calls in progress finish (the engine still answers them).
  if (im.pool) im.pool->stop();
  // 3. Stop Asio. Open connections close (a waiting lease sees the close)
  //    when the io_context goes, at the end.
  //    Every thread that called into CAF (Asio threads spawn the actors of
  //    asynchronous calls, pool threads block on them) must be gone before
  //    the engine closes: CAF's ~actor_system waits until no thread holds
  //    its logger, and a thread holds it from its first call until it exits.
  im.io->stop();
  for (auto& t : im.io_threads) t.join();
  im.io_threads.clear();
  im.serving.store(nullptr);
  // 4. Close the engine: every actor stops, the log closes, and every call
  //    the server made is answered. The caller's engine stays open: wait
  //    for the answers to those calls instead.
  if (im.owned_eng) im.owned_eng->close();
  else im.replies.wait_for_none();
  im.beanstalk.reset();  // its held-job callbacks have all been answered now
  im.http.reset();
  im.handler.reset();
  im.pool.reset();
  im.hub.reset();
  im.io.reset();
  im.owned_eng.reset();
  if (!im.callers_engine) im.eng = nullptr;
}

}  // namespace jobsmith::server
