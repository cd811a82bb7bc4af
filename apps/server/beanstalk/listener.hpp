// The beanstalkd protocol's listening socket and the connections it
// accepted, on the server's own io_context (no threads of its own).
//
// Life cycle, driven by apps/server/server.cpp:
//   bind()   before the engine opens: a port that is taken fails start-up
//            before anything is written to the data directory;
//   start()  once the engine is open: accepts connections;
//   stop()   before the engine closes, with the io_context still running:
//            closes the listening socket and every connection (each gives
//            back the jobs it holds), releases delayed releases, and waits
//            (options.stop_grace at most) until the engine answered every
//            write the protocol started. Nothing here calls the engine
//            after stop() returned, except callbacks of calls already made,
//            which the engine answers `closed` once it closes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <restinio/asio_include.hpp>
#include <string>

#include "apps/server/beanstalk/options.hpp"
#include "apps/server/beanstalk/service.hpp"

namespace jobsmith::server::beanstalk {

class connection;

class listener {
 public:
  using tcp = asio::ip::tcp;

  listener(asio::io_context& io, options opts);
  ~listener();
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;

  /// Opens, binds and listens on opts.host:opts.port. "" or why not.
  std::string bind();
  /// The bound port (after bind()).
  std::uint16_t port() const { return port_; }
  /// Starts accepting. `s.opts` is replaced by this listener's options.
  /// REQUIRES: bind() succeeded; s.eng and s.pool outlive stop().
  void start(service::setup s);
  /// See above. Idempotent.
  void stop();

 private:
  void accept();
  void on_accept(const asio::error_code& ec, tcp::socket socket);

  asio::io_context& io_;
  const options opts_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::unique_ptr<service> svc_;
  std::unique_ptr<asio::steady_timer> retry_timer_;  // after a failed accept (too many files)

  std::mutex mu_;
  std::map<std::uint64_t, std::weak_ptr<connection>> open_;  // by accept serial
  std::uint64_t next_serial_ = 0;
  bool stopped_ = false;
};

}  // namespace jobsmith::server::beanstalk
