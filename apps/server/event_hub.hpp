// The server's one subscription to the engine's committed events, and what
// it feeds:
// - live event streams (GET /v1/events/stream), each with a filter,
// - the run-time histogram of attempts started since the server started
//   (/metrics).
// Per-queue counts and the whole log's event counters come from the
// engine's queue view (engine::queue_counts, engine::totals), which recovery
// loads from its snapshot: the hub does not fold the log at start, so a
// server on a long log is up as soon as the engine is.
//
// It follows the subscription from the head at start. A gap between what it
// has seen and an arriving event (events committed while the subscription
// was being set up) is read from the log, so it never misses one.
//
// Thread safety: every public member may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/engine.hpp"

namespace jobsmith::server {

/// A Prometheus histogram with fixed bucket bounds in seconds.
class histogram {
 public:
  static constexpr std::array<double, 12> bounds{0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                 0.25,  0.5,   1,    5,     30,   300};
  void observe(double seconds);
  /// Appends the _bucket, _sum and _count lines of `name`.
  void write(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::array<std::atomic<std::uint64_t>, bounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_micros_{0};
};

/// Who may read the lease tokens of job.started events. A lease token is
/// the capability to complete or fail that attempt: only admins and the
/// principal that leased it see it; anyone else reads 0.
struct token_visibility {
  bool all = true;        // admins (every caller of a server without tokens)
  std::string principal;  // otherwise the caller: it sees its own leases' tokens
  bool hides(const event& ev) const {
    return !all && std::holds_alternative<job_started>(ev.body) && ev.principal != principal;
  }
};

/// `ev` with its lease token zeroed when `who` may not see it.
event visible_to(const event& ev, const token_visibility& who);

/// What an event stream wants (the filters: all of them, AND; empty = any)
/// and what its reader may see.
struct stream_filter {
  job_id job = 0;
  std::string queue;
  std::vector<int> types;  // type_index() values
  token_visibility tokens;
};

/// Where a stream's text goes (the HTTP side implements it). send() returns
/// false when the stream is gone or over its buffer budget: the hub then
/// drops it and calls end().
class stream_sink {
 public:
  virtual ~stream_sink() = default;
  virtual bool send(std::string text) = 0;
  /// Blocks (bounded) until the reader has taken most of what was sent;
  /// false when it did not in time or is gone. Catch-up calls it between
  /// pages so a long backlog streams at the reader's pace.
  virtual bool wait_writable() { return true; }
  /// Ends the stream (closes the HTTP response). Called at most once.
  virtual void end() = 0;
};

class event_hub {
 public:
  /// REQUIRES: `eng` outlives the hub (stop() before closing the engine).
  explicit event_hub(engine& eng);
  ~event_hub();

  /// Subscribes from the log's head. "" or what went wrong.
  std::string start();
  /// Ends the subscription and every stream.
  void stop();

  /// The SSE text of one event: "id: N\nevent: T\ndata: JSON\n\n".
  static std::string sse_text(const event& ev);

  /// Whether `ev` passes `f` (the queue of a job event is looked up).
  bool matches(const stream_filter& f, const event& ev) const;

  /// Adds a stream that starts at sequence `from` (0 = after the head as
  /// this call runs; the API passes the head as the request was read, so
  /// that nothing committed in between is missed).
  /// Catches up from the log on the calling thread (it blocks: call it on a
  /// pool thread), then the stream is live. Returns false when the stream
  /// ended during catch-up.
  bool add_stream(std::shared_ptr<stream_sink> sink, stream_filter filter, sequence_t from);
  /// Sends ": keepalive" to every live stream (called by a timer).
  void keepalive();
  std::size_t stream_count() const;

  /// From the engine's queue view; empty if the engine cannot answer.
  std::vector<queue_row> counts_by_queue() const;
  /// From the engine's queue view; zeros if the engine cannot answer.
  event_counts totals() const;
  /// The last sequence the hub has folded.
  sequence_t seen() const;
  const histogram& run_seconds() const { return run_seconds_; }

 private:
  struct live_stream {
    std::shared_ptr<stream_sink> sink;
    stream_filter filter;
    sequence_t from = 0;  // the first sequence this stream wants
  };

  // All below guarded by mu_.
  void fold(const event& ev);  // REQUIRES: mu_ held
  /// The queue of job `id`: remembered from its job.submitted, else read
  /// from its stream (and remembered). REQUIRES: mu_ held.
  const std::string& queue_of(job_id id) const;
  void remember_queue(job_id id, const std::string& queue) const;
  bool matches_locked(const stream_filter& f, const event& ev) const;
  void on_committed(const event& ev);
  void deliver(const event& ev);  // REQUIRES: mu_ held

  engine& eng_;
  mutable std::mutex mu_;
  sequence_t seen_ = 0;
  // A cache for queue filters: jobs' queues as interned names. Cleared when
  // it holds max_remembered jobs, so it stays bounded.
  static constexpr std::size_t max_remembered = 1u << 20;
  mutable std::unordered_map<job_id, std::uint32_t> job_queue_;
  mutable std::vector<std::string> queue_names_;
  mutable std::unordered_map<std::string, std::uint32_t> queue_index_;
  std::unordered_map<job_id, millis> started_;  // attempts running, since start
  std::vector<live_stream> streams_;
  bool stopped_ = false;
  histogram run_seconds_;
  subscription sub_;
};

}  // namespace jobsmith::server
