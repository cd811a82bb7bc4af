// Settings of the beanstalkd protocol listener of `jobsmith serve`
// (--beanstalk-listen, docs/beanstalk.md). Plain values; no Asio here, so
// apps/server/server.hpp can hold them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace jobsmith::server::beanstalk {

struct options {
  /// Where to listen; an empty host turns the protocol off.
  std::string host;
  std::uint16_t port = 11300;  // 0 = any free port (the listener's port() says which)
  /// Largest body a put may carry (beanstalkd's -z, 65535 by default);
  /// JOB_TOO_BIG above.
  std::size_t max_job_bytes = 65535;
  /// Commands of one connection read but not yet answered and written; at
  /// the bound the connection is not read until answers drain.
  std::size_t max_unanswered = 64;
  /// Connections open at once; more are closed as they are accepted.
  std::size_t max_connections = 1024;
  /// How long stop() waits for writes the protocol started (releases of
  /// reserved jobs, puts, deletes) to be answered by the engine.
  std::chrono::milliseconds stop_grace{3000};

  bool enabled() const { return !host.empty(); }
};

}  // namespace jobsmith::server::beanstalk
