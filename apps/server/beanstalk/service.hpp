// What the beanstalkd connections of one server share: the engine and the
// call pool, the settings, and the protocol's own small state that is not
// per connection (which tubes are used, watched and waited on; deletes in
// progress; delayed releases; tube pauses; command counters). It outlives
// every connection's use of it: the listener stops connections first.
//
// Thread-safe. Nothing here waits for the engine except pause_tube(), which
// runs on a call-pool thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actors/clock.hpp"
#include "actors/engine.hpp"
#include "apps/server/auth.hpp"
#include "apps/server/beanstalk/command_reader.hpp"
#include "apps/server/beanstalk/held_jobs.hpp"
#include "apps/server/beanstalk/options.hpp"
#include "apps/server/call_pool.hpp"

namespace jobsmith::server::beanstalk {

/// A one-line answer: `word` and CRLF.
inline std::string line(std::string_view word) {
  std::string out{word};
  out += "\r\n";
  return out;
}

/// The answer for an engine refusal: DRAINING when the engine is closed or
/// closing, OUT_OF_MEMORY when it is overloaded or its disk is full,
/// NOT_FOUND for a job that is gone, not in that state, or leased under
/// another token, INTERNAL_ERROR otherwise.
std::string_view refusal_of(const engine_error& e);

/// Who is on a tube now (stats-tube's current-using/-watching/-waiting).
struct tube_presence {
  std::uint64_t using_it = 0;
  std::uint64_t watching = 0;
  std::uint64_t waiting = 0;
};

/// A pause-tube in effect.
struct tube_pause {
  std::uint32_t seconds = 0;
  std::chrono::steady_clock::time_point until;
};

class service {
 public:
  struct setup {
    engine* eng = nullptr;
    call_pool* pool = nullptr;
    options opts;
    const token_table* tokens = nullptr;
    millis max_long_poll = 30'000;             // a reserve's lease waits at most this long per call
    std::size_t max_json_depth = 32;           // deeper JSON bodies are stored in an envelope
    std::function<bool()> over_memory_budget;  // puts are refused while true
  };

  service(asio::io_context& io, setup s);
  ~service();

  engine& eng() { return *setup_.eng; }
  call_pool& pool() { return *setup_.pool; }
  asio::io_context& io() { return io_; }
  const options& opts() const { return setup_.opts; }
  const token_table& tokens() const { return *setup_.tokens; }
  millis max_long_poll() const { return setup_.max_long_poll; }
  std::size_t max_json_depth() const { return setup_.max_json_depth; }
  bool over_memory_budget() const;
  held_jobs& holds() { return holds_; }

  // -- connections ---------------------------------------------------------------
  /// The smallest free connection number (its worker is "beanstalk:<n>"),
  /// or nullopt at max_connections. Numbers are reused once free, so the
  /// engine's per-worker bookkeeping stays bounded by the open connections.
  std::optional<std::uint32_t> admit();
  void leave(std::uint32_t number);
  std::uint64_t open_connections() const;
  std::uint64_t total_connections() const { return total_connections_.load(); }

  // -- tubes -------------------------------------------------------------------------
  /// Adds `delta` (+1/-1) to one of a tube's presence counters.
  void using_tube(const std::string& tube, int delta);
  void watching_tube(const std::string& tube, int delta);
  void waiting_on(const std::vector<std::string>& tubes, int delta);
  tube_presence presence(const std::string& tube) const;
  /// Connections waiting in a reserve now.
  std::uint64_t waiting_connections() const { return waiting_connections_.load(); }
  /// Tubes some connection uses or watches now.
  std::vector<std::string> present_tubes() const;

  // -- counters (stats, stats-tube) ---------------------------------------------------
  void count(verb v) { commands_[static_cast<std::size_t>(v)].fetch_add(1); }
  std::uint64_t count_of(verb v) const { return commands_[static_cast<std::size_t>(v)].load(); }
  void count_tube_delete(const std::string& tube);
  std::uint64_t tube_deletes(const std::string& tube) const;
  std::uint64_t tube_pauses(const std::string& tube) const;
  /// Connections that have put (producers) or reserved (workers): +1 on
  /// the first such command, -1 when the connection closes.
  void add_producer(int delta) { producers_.fetch_add(static_cast<std::uint64_t>(delta)); }
  void add_worker(int delta) { workers_.fetch_add(static_cast<std::uint64_t>(delta)); }
  std::uint64_t producers() const { return producers_.load(); }
  std::uint64_t workers() const { return workers_.load(); }
  std::chrono::steady_clock::time_point started() const { return started_; }

  // -- deletes in progress --------------------------------------------------------------
  /// A delete of a job this connection does not hold reads the job, then
  /// cancels it. A reserve that leases a job meanwhile gives it back
  /// instead of answering with it (connection.cpp), so the client never
  /// sees a job that is about to be deleted.
  void begin_delete(job_id id);
  void end_delete(job_id id);
  bool being_deleted(job_id id) const;

  // -- pauses ------------------------------------------------------------------------------
  /// pause-tube: pauses the queue (seconds > 0) and resumes it when the
  /// time is up, or resumes it now (seconds == 0). Blocks: call it on a
  /// pool thread. The resume timer is in memory: a restart before it fires
  /// leaves the queue paused (docs/beanstalk.md).
  result<bool> pause_tube(const std::string& tube, std::uint32_t seconds,
                          const std::string& principal);
  std::optional<tube_pause> pause_of(const std::string& tube) const;

  // -- writes and leases in flight, stopping ------------------------------------------------------
  void write_started() { writes_.fetch_add(1); }
  void write_done();
  /// Waits until no write started here is unanswered, at most `limit`.
  bool drain_writes(std::chrono::milliseconds limit);
  /// Lease calls of reserves (each waits at most poll_slice).
  void poll_started() { polls_.fetch_add(1); }
  void poll_done();
  bool drain_polls(std::chrono::milliseconds limit);
  /// The longest a reserve's lease call waits before it is issued again.
  /// Short, so that at stop every connection's poll is answered soon
  /// (stop() releases jobs only then, see below); an idle reserve costs one
  /// lease call a second.
  static constexpr std::chrono::milliseconds poll_slice{1000};

  /// Stopping, first step (the listener's stop): connections that close
  /// from now on, and leases answered to closed connections, hand their
  /// jobs to release_later() instead of releasing them at once. Released
  /// while lease calls of closed connections still wait, a job would be
  /// leased by one of them, released again, and so on until the engine
  /// closed, possibly with the job leased: running until its TTR after the
  /// restart.
  void begin_stop() { stopping_.store(true); }
  bool stopping() const { return stopping_.load(); }
  void release_later(job_id id, std::uint64_t token, std::string principal);
  /// Stopping, last step, once lease calls are answered: releases what
  /// release_later() kept and the held delayed releases, refuses new holds
  /// and pauses, cancels pause timers.
  void stop();

 private:
  struct pause_entry {
    tube_pause state;
    std::uint64_t generation = 0;
    std::string principal;
    std::unique_ptr<asio::steady_timer> timer;
  };
  void on_pause_over(const std::string& tube, std::uint64_t generation);

  asio::io_context& io_;
  const setup setup_;
  held_jobs holds_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::array<std::atomic<std::uint64_t>, verb_count> commands_{};
  std::atomic<std::uint64_t> total_connections_{0};
  std::atomic<std::uint64_t> producers_{0};
  std::atomic<std::uint64_t> workers_{0};
  std::atomic<std::uint64_t> writes_{0};
  std::atomic<std::uint64_t> polls_{0};
  std::atomic<std::uint64_t> waiting_connections_{0};
  std::atomic<bool> stopping_{false};
  std::mutex drain_mu_;
  std::condition_variable drained_;

  mutable std::mutex mu_;
  std::set<std::uint32_t> free_numbers_;
  std::uint32_t next_number_ = 1;
  std::uint64_t open_ = 0;
  std::map<std::string, tube_presence> presence_;
  /// Counters per tube, for tubes seen since start; bounded (see .cpp).
  std::unordered_map<std::string, std::pair<std::uint64_t, std::uint64_t>> tube_counts_;
  std::unordered_set<job_id> deleting_;
  std::map<std::string, pause_entry> pauses_;
  std::uint64_t next_pause_generation_ = 1;
  struct later {
    job_id id;
    std::uint64_t token;
    std::string principal;
  };
  std::vector<later> release_later_;
  bool stopped_ = false;
};

}  // namespace jobsmith::server::beanstalk
