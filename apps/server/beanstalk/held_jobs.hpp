// Jobs released with a delay ("release <id> <pri> <delay>", delay > 0).
//
// Why this exists: the engine's only way back from running to waiting is a
// retryable failure, and the wait after a failure comes from the job's
// retry policy (retry_delay), not from the caller. So a delayed release
// keeps the job leased: this class takes over the lease from the
// connection, renews it every TTR/3 with a heartbeat (the first one
// carries "released with a delay of N s" as the job's progress detail, so
// the log shows it), and when the delay is over fails the job retryably;
// beanstalk jobs have a zero retry delay, so it is ready at once.
//
// In memory only. stop() releases every held job at once (they are ready
// after a restart); after a crash the engine reclaims them when their lease
// runs out, one TTR after the restart. What the engine would need to do
// without this is in docs/beanstalk.md ("What the engine lacks").
//
// Thread-safe: called from connection strands and pool threads; timers run
// on the io_context's threads. The mutex is never held across an engine
// call.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <restinio/asio_include.hpp>
#include <string>
#include <vector>

#include "actors/engine.hpp"

namespace jobsmith::server::beanstalk {

namespace asio = restinio::asio_ns;

class held_jobs {
 public:
  using steady = std::chrono::steady_clock;

  /// What stats-job, stats-tube, peek-delayed and kick see of a held job.
  struct view {
    job_id id = 0;
    std::string tube;
    std::uint32_t delay_s = 0;
    millis due_wall = 0;  // wall clock, ms
    steady::time_point due;
  };

  /// `write_started` / `write_done` bracket every engine write made here
  /// (the listener's stop waits for them).
  held_jobs(asio::io_context& io, engine& eng, std::function<void()> write_started,
            std::function<void()> write_done);
  ~held_jobs();

  /// Takes over `id`, leased under `token` with a lease of `ttr_ms`, for
  /// `delay_s` seconds. `done` gets true once a heartbeat confirmed the
  /// lease, or the engine's refusal (the job is not held then). Called on
  /// an engine thread or at once.
  void hold(job_id id, std::uint64_t token, std::string tube, millis ttr_ms, std::uint32_t delay_s,
            std::string principal, engine::callback<bool> done);

  /// Ends a hold without releasing the job: the caller now owns the lease
  /// (to cancel the job, or fail it at once). nullopt when not held.
  std::optional<std::uint64_t> take(job_id id);

  std::optional<view> find(job_id id) const;
  /// The held jobs of `tube`, earliest due first, at most `limit`.
  std::vector<view> in_tube(const std::string& tube, std::size_t limit) const;
  std::size_t count_in(const std::string& tube) const;
  std::size_t size() const;

  /// Releases every held job now (retryable failure, no delay) and refuses
  /// later holds. Idempotent.
  void stop();

 private:
  struct entry {
    std::uint64_t token = 0;
    std::uint64_t generation = 0;
    std::string tube;
    std::string principal;
    millis ttr_ms = 1000;
    std::uint32_t delay_s = 0;
    millis due_wall = 0;
    steady::time_point due;
    std::unique_ptr<asio::steady_timer> timer;
  };

  void arm(job_id id, entry& e);  // REQUIRES: mu_ held
  void on_timer(job_id id, std::uint64_t generation);
  void release(job_id id, std::uint64_t token, std::string principal, std::uint32_t delay_s);

  asio::io_context& io_;
  engine& eng_;
  const std::function<void()> write_started_;
  const std::function<void()> write_done_;

  mutable std::mutex mu_;
  std::map<job_id, entry> held_;
  std::uint64_t next_generation_ = 1;
  bool stopped_ = false;
};

}  // namespace jobsmith::server::beanstalk
