// What an embedded service writes: one handler per job kind. No CAF here.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../events/event.hpp"

namespace jobsmith {

/// How a handler's attempt ended.
struct outcome {
  enum class kind : std::uint8_t { success, retryable_failure, permanent_failure };
  kind what = kind::success;
  std::string text = "null";  // result JSON text on success, error message otherwise

  static outcome success(std::string result_json = "null") {
    return {kind::success, std::move(result_json)};
  }
  /// Tried again after the retry policy's backoff, while attempts remain.
  static outcome retry(std::string error) { return {kind::retryable_failure, std::move(error)}; }
  /// Discarded at once, whatever attempts remain.
  static outcome permanent(std::string error) {
    return {kind::permanent_failure, std::move(error)};
  }
};

/// Handed to a handler for one attempt. Not thread-safe: use it from the
/// handler's thread. Log lines and progress are buffered and recorded as
/// job.progress events at most once per `flush_interval` and when the
/// handler returns.
class job_context {
 public:
  using flush_fn = std::function<void(std::string detail, std::int32_t percent,
                                      std::vector<log_line> lines)>;

  job_context(job_id id, std::uint32_t attempt, std::string kind, std::string payload,
              std::string handover, std::shared_ptr<const std::atomic<bool>> cancelled,
              flush_fn flush, std::chrono::milliseconds flush_interval);
  ~job_context() = default;
  job_context(const job_context&) = delete;
  job_context& operator=(const job_context&) = delete;

  job_id id() const { return id_; }
  std::uint32_t attempt() const { return attempt_; }
  const std::string& kind() const { return kind_; }
  /// The job's payload, JSON text.
  const std::string& payload() const { return payload_; }
  /// What the previous attempt handed over (JSON text), empty on the first.
  const std::string& handover() const { return handover_; }
  /// State for the next attempt if this one fails (JSON text).
  void set_handover(std::string json) { next_handover_ = std::move(json); }
  const std::string& next_handover() const { return next_handover_; }

  void info(std::string text) { log(log_level::info, std::move(text)); }
  void warn(std::string text) { log(log_level::warn, std::move(text)); }
  void error(std::string text) { log(log_level::error, std::move(text)); }
  /// percent in [0, 100], or -1 to leave it unchanged.
  void progress(std::int32_t percent, std::string detail = {});

  /// True once a cancel was asked or the attempt ended under the handler
  /// (cancelled, reclaimed): the handler should stop. After a cancel
  /// request, what it returns (within timeouts.to_stop) ends the job as
  /// cancelled; after the attempt's end, it is refused as stale.
  bool cancelled() const { return cancelled_->load(std::memory_order_relaxed); }

  /// Records what is buffered now. Called by the pool when the handler returns.
  void flush();

 private:
  void log(log_level level, std::string text);
  void maybe_flush();

  // Constant after construction.
  const job_id id_;
  const std::uint32_t attempt_;
  const std::string kind_;
  const std::string payload_;
  const std::string handover_;
  const std::shared_ptr<const std::atomic<bool>> cancelled_;
  const flush_fn flush_;
  const std::chrono::milliseconds flush_interval_;
  // Owned by the handler's thread.
  std::string next_handover_;
  std::string detail_;
  std::int32_t percent_ = -1;
  std::vector<log_line> lines_;
  std::chrono::steady_clock::time_point last_flush_;
};

using job_handler = std::function<outcome(job_context&)>;

/// Called when a reviewer accepts a job of this kind, before the acceptance
/// is recorded (finalize staged data, say); never for a decline. It runs on
/// a thread of its own (it may block) and at most once at a time per job:
/// while it runs, another review of the job is refused (illegal_transition)
/// and the job's other commands wait. An exception refuses the review
/// (engine_errc::rejected) and records nothing; a later accept runs it
/// again. It may also run again if recording the acceptance fails afterwards
/// (or the engine dies first), so it must be idempotent.
using accept_hook = std::function<void(job_id id, const std::string& payload,
                                       const std::string& result)>;

struct kind_entry {
  job_handler handler;
  accept_hook on_accept;
};

/// Handlers by kind, filled before the engine opens and constant after.
class handler_registry {
 public:
  void add(std::string kind, job_handler handler, accept_hook on_accept = {}) {
    kinds_[std::move(kind)] = kind_entry{std::move(handler), std::move(on_accept)};
  }
  const kind_entry* find(std::string_view kind) const {
    auto i = kinds_.find(std::string{kind});
    return i == kinds_.end() ? nullptr : &i->second;
  }
  bool empty() const { return kinds_.empty(); }

 private:
  std::unordered_map<std::string, kind_entry> kinds_;
};

}  // namespace jobsmith
