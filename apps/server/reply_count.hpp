// Counts the reply functions of HTTP requests that are alive
// (apps/server/server.cpp). Internal to apps/server.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace jobsmith::server {

/// Counts the reply functions of requests that are alive. Over the caller's
/// engine, which outlives the server, the engine may still hold (and call)
/// one after the server stopped listening: stop() waits until none is left
/// before it frees what they reach. (An engine the server owns answers
/// them all as it closes.)
struct reply_count {
  std::mutex mu;
  std::condition_variable none_left;
  std::size_t alive = 0;

  struct token {
    explicit token(reply_count& c) : count(c) {
      std::lock_guard<std::mutex> guard{count.mu};
      ++count.alive;
    }
    ~token() {
      std::lock_guard<std::mutex> guard{count.mu};
      if (--count.alive == 0) count.none_left.notify_all();
    }
    token(const token&) = delete;
    token& operator=(const token&) = delete;
    reply_count& count;
  };

  void wait_for_none() {
    std::unique_lock<std::mutex> lock{mu};
    none_left.wait(lock, [&] { return alive == 0; });
  }
};

}  // namespace jobsmith::server
