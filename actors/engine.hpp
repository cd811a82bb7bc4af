// The embedding API: open a data directory, register handlers per kind,
// submit jobs, act on them, read them, subscribe to what happens. CAF stays
// hidden here; actors/engine_actors.hpp exposes the actor handles for
// services that speak CAF themselves.
//
//   jobsmith::engine_options opts;
//   opts.data_dir = "./data";
//   opts.handlers.add("resize", [](jobsmith::job_context& ctx) {
//     ctx.info("resizing " + ctx.payload());
//     return jobsmith::outcome::success(R"({"ok":true})");
//   });
//   auto eng = jobsmith::engine::open(std::move(opts));
//   if (!eng) { /* eng.error().message */ }
//   jobsmith::job_submitted job;
//   job.kind = "resize";
//   job.payload = R"({"image":"a.png"})";
//   auto id = (*eng)->submit(job);  // returns once the submission is fsynced
//
// Every call is thread-safe and blocks until the engine answered; a call
// that changes something answers only after its events are durable.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clock.hpp"
#include "engine_error.hpp"
#include "engine_types.hpp"
#include "handler.hpp"
#include "../events/event.hpp"
#include "../events/job_state.hpp"
#include "../projections/job_filter.hpp"
#include "../projections/queue_view.hpp"

namespace rocksdb {
class Env;
}

namespace jobsmith {

struct engine_options {
  std::string data_dir = "./data";
  /// Keep the log in memory (tests, demos that must not touch disk).
  bool in_memory = false;
  handler_registry handlers;
  /// Accept kinds without a handler here (remote workers run them).
  bool allow_unknown_kinds = false;
  std::size_t worker_threads = 2;   // threads running handlers
  std::uint32_t worker_slots = 256;  // jobs the in-process pool holds at once
  // CAF's cooperative scheduler. Measured on 2 cores (docs/benchmarks.md):
  // work sharing with 2 threads beats work stealing, whose idle workers spin
  // on the cores the journal and the handlers need.
  std::size_t scheduler_threads = 2;  // 0 = CAF's default, max(cores, 4)
  /// "lean" (actors/caf_runtime.hpp), or CAF's "sharing" or "stealing".
  std::string scheduler_policy = "lean";
  /// Run CAF's timer clock with the quiet cancellation of actors/caf_runtime.hpp.
  /// false only to measure what that saves (`bench --stock-clock`).
  bool quiet_timer_clock = true;
  std::size_t max_pending_events = 200'000;  // journal buffer bound
  /// Group commit's gather window under light load (actors/journal.hpp):
  /// commits of small batches start at least this far apart. Zero = each
  /// batch commits as soon as the previous one is durable.
  std::chrono::microseconds commit_delay{0};
  /// The projector stores its queue view every this many events (and at
  /// close), so a restart folds only the events after it. 0 = never.
  std::uint64_t snapshot_every = 1'000'000;
  /// How many snapshots it keeps, spread over the log (the newest always):
  /// `jobsmith replay --at` folds from the nearest one before the moment.
  std::size_t snapshots_kept = 8;
  std::size_t max_live_jobs = 1'000'000;
  /// Shortest recurrence interval a submission may ask for (validate()'s
  /// bound; `jobsmith serve` keeps the default). Schedules already in the
  /// log go on at their interval whatever this says.
  millis min_recurrence_interval = jobsmith::min_recurrence_interval;
  std::size_t max_inflight_submits = 100'000;  // jobs in submit calls at once
  std::string default_principal = "embedded";
  std::chrono::milliseconds progress_flush{1000};
  /// After a failed write (disk full, I/O error) the journal refuses writes
  /// and tries to resume the log at most this often: on a timer and when
  /// writes arrive (docs/reliability.md, "Disk faults").
  std::chrono::milliseconds resume_interval{1000};
  wall_clock clock;  // empty = the system clock
  /// The default retention of finished jobs (engine::set_retention with an
  /// empty queue), recorded at open when the log says otherwise; nullopt =
  /// whatever the log says (a new log keeps them). `jobsmith serve` sets
  /// it from --retention and --retention-failed.
  std::optional<retention_policy> retention;
  /// For tests only: the RocksDB environment the log writes through (fault
  /// injection, tests/store/fault_env.hpp); nullptr = the default. Must
  /// outlive the engine.
  rocksdb::Env* rocksdb_env = nullptr;
};

struct submit_options {
  std::string principal;  // empty = options.default_principal
  millis delay = 0;       // added to now when spec.run_at is 0; must be >= 0
};

/// A job with its whole committed history.
struct job_view {
  job_record job;
  std::vector<event> history;
};

struct engine_metrics {
  std::uint64_t journal_batches = 0;
  std::uint64_t journal_events = 0;
  std::uint64_t journal_max_batch = 0;
  double journal_mean_write_ms = 0;
  double journal_max_write_ms = 0;
  std::uint64_t refused_overloaded = 0;
  std::uint64_t journal_write_failures = 0;  // batches whose write failed
  std::uint64_t journal_resumes = 0;         // times writes resumed after one
  std::uint64_t log_bytes = 0;
  sequence_t head = 0;
};

/// Ends its subscription when destroyed. Once cancel() (or the destructor)
/// returns, the function is not running on another thread and is not
/// called again; called from inside the function itself, it returns at once.
class subscription {
 public:
  subscription() = default;
  subscription(subscription&&) noexcept = default;
  subscription& operator=(subscription&&) noexcept = default;
  ~subscription();
  void cancel();
  struct impl;
  explicit subscription(std::shared_ptr<impl> p) : impl_(std::move(p)) {}

 private:
  std::shared_ptr<impl> impl_;
};

class engine {
 public:
  /// Opens (or creates) the data directory, recovers (actors/recovery.hpp)
  /// and starts serving.
  static result<std::unique_ptr<engine>> open(engine_options options);

  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  /// Stops every actor and closes the log. Idempotent.
  void close();

  // -- producing --------------------------------------------------------------
  result<job_id> submit(job_submitted spec, const submit_options& opts = {});
  /// All or nothing: one invalid submission refuses the whole batch.
  result<std::vector<job_id>> submit_many(std::vector<job_submitted> specs,
                                          const submit_options& opts = {});

  // -- acting on jobs (principal empty = options.default_principal) ------------
  /// A job that is not running is cancelled now. A running one is asked to
  /// stop (job.cancel_requested; its worker is told and has the job's
  /// timeouts.to_stop) and is cancelled when its worker reports, its lease
  /// ends or to_stop runs out; the answer shows it running with
  /// cancel_requested_at set. `at_once` (or a to_stop of 0) cancels a running
  /// job now without waiting for its worker.
  result<job_record> cancel(job_id id, std::string reason = {}, std::string principal = {},
                            bool at_once = false);
  result<job_record> run_now(job_id id, std::string principal = {});
  /// engine_errc::retired for a job its queue's retention retired.
  result<job_record> retry(job_id id, std::string principal = {});
  result<job_record> discard(job_id id, std::string reason = {}, std::string principal = {});
  /// Accepting runs the kind's on-accept hook first; if it throws, nothing
  /// is recorded and the error is engine_errc::rejected.
  result<job_record> review(job_id id, bool accept, std::string comment = {},
                            std::string principal = {});
  /// Ends a recurring schedule: no further run is submitted (a live run goes
  /// on). not_found for an unknown or already deleted schedule.
  result<bool> delete_schedule(schedule_id id, std::string principal = {});

  // -- reading ------------------------------------------------------------------
  result<job_view> get(job_id id) const;
  result<std::vector<job_record>> list(const job_filter& filter) const;
  /// Jobs per state now, indexed by job_state.
  result<std::vector<std::size_t>> counts() const;
  /// Every queue with jobs or settings and its jobs per effective state, from
  /// the queue view (the scheduler's queues() knows live jobs only).
  result<std::vector<queue_row>> queue_counts() const;
  /// Events of the whole log by what they did, from the queue view.
  result<event_counts> totals() const;
  /// What the queue view's rows take in memory: row slots held, and rows
  /// of retired jobs let go so far (queue_view::row_slots, released).
  struct view_rows {
    std::uint64_t slots = 0;
    std::uint64_t released = 0;
  };
  result<view_rows> rows() const;
  result<dispatch_explanation> explain(job_id id) const;
  result<std::vector<queue_info>> queues() const;
  /// The recurring schedules not deleted, by id.
  result<std::vector<schedule_view>> schedules() const;
  result<scheduler_stats> stats() const;
  engine_metrics metrics() const;

  // -- queues --------------------------------------------------------------------
  result<queue_info> pause(std::string queue, std::string principal = {});
  result<queue_info> resume(std::string queue, std::string principal = {});
  result<queue_info> configure(std::string queue, std::uint32_t concurrency,
                               std::string principal = {});

  // -- retention (actors/engine_kinds.cpp) ------------------------------------------------
  /// Sets how long the finished jobs of `queue` stay in the live views
  /// (lists, counts, get(), which answers engine_errc::retired after it):
  /// policy.succeeded after a success, policy.failed after any other end;
  /// 0 = kept. An empty queue sets the default of queues without their own.
  /// Recorded as queue.retention; applies to jobs not retired yet
  /// (docs/api.md, "Retention"). invalid_argument for a bad name or a
  /// duration past 10 years.
  result<sequence_t> set_retention(std::string queue, retention_policy policy,
                                   std::string principal = {});
  /// The default retention the log records ({0, 0}: kept).
  result<retention_policy> default_retention() const;

  // -- kinds (actors/engine_kinds.cpp) --------------------------------------------------
  /// Registers a kind's settings, replacing its previous ones whole, and
  /// answers once they are durable (a kind.configured event):
  ///   on_accept  the kind of the job that accepting a review of this kind
  ///              submits, in the same commit as the acceptance (docs/api.md,
  ///              "Kinds"); empty = none;
  ///   schema     a JSON Schema (draft 7, self-contained) that the payload of
  ///              every later submission of this kind must match; empty = any.
  /// Both empty unregisters the kind. invalid_argument for a bad name or a
  /// schema that does not compile; unknown_kind when on_accept names a kind
  /// with no handler here and allow_unknown_kinds is off.
  result<kind_configured> configure_kind(kind_configured settings, std::string principal = {});
  /// The registered kinds, by name.
  kind_table kinds() const;

  // -- remote workers ---------------------------------------------------------------
  result<std::vector<job_record>> lease(lease_request request);
  result<heartbeat_reply> heartbeat(heartbeat_request request);
  result<job_record> complete(job_id id, std::uint64_t lease_token, std::string result_json,
                              std::string principal);
  result<job_record> fail(job_id id, std::uint64_t lease_token, std::string error,
                          bool retryable, std::string principal, std::string handover = {});

  // -- events ------------------------------------------------------------------------
  /// Where a subscriber's function runs.
  enum class subscriber_thread {
    own,     // a thread of its own: it may block (events wait for it)
    engine,  // the engine's scheduler threads: it must not block, and it
             // costs no thread wake-up per commit
  };
  /// `fn` sees every event committed from now on, in sequence order, on the
  /// thread `where` says.
  subscription subscribe(std::function<void(const event&)> fn,
                         subscriber_thread where = subscriber_thread::own);

  /// How recovery went when the engine opened.
  struct recovery_report {
    std::uint64_t events_replayed = 0;  // folded: all, or those after the snapshot
    std::uint64_t live_jobs = 0;
    sequence_t head = 0;
    sequence_t snapshot_seq = 0;        // the snapshot it started from; 0 = none
    std::string snapshot_warning;       // why a stored snapshot was not used
    std::string log_warning;            // what the store dropped at open (a damaged last WAL write)
    double store_seconds = 0;           // opening the store (RocksDB's own WAL replay)
    double recover_seconds = 0;         // snapshot, tail and live jobs
    double seconds = 0;                 // all of open()
  };
  const recovery_report& recovered() const;

  /// Why the engine refuses writes now (no_space or storage, with the
  /// cause), or nullopt while it accepts them. Reads keep working either
  /// way. Cheap: no actor is asked (/readyz calls it).
  std::optional<engine_error> write_refusal() const;

  // -- for the HTTP server (apps/server) ------------------------------------------------
  // Added for `jobsmith serve`; the calls above are unchanged.

  /// Highest committed sequence (0 when the log is empty or the engine closed).
  sequence_t head() const;

  /// The options the engine was opened with.
  const engine_options& options() const;

  /// Visits the committed events with from <= seq <= to in sequence order,
  /// read and decoded from the log directly (no actor; safe on any thread).
  /// `visit` returns false to stop early. Corrupt records are an error,
  /// never skipped.
  result<done> read_events(sequence_t from, sequence_t to,
                           const std::function<bool(const event&)>& visit) const;

  /// Called exactly once with the answer, on a thread of the engine: keep it
  /// short (hand the result on). A refusal decided before any actor is
  /// asked, and engine_errc::closed after close(), are answered at once, on
  /// the caller's thread.
  template <class T>
  using callback = std::function<void(result<T>)>;

  /// submit_many() without blocking the caller: `done` gets the ids once the
  /// submissions are durable, or the refusal (the same checks and errors as
  /// submit_many; a refusal found before any actor is asked is answered on
  /// the caller's thread, before this returns).
  void submit_many_async(std::vector<job_submitted> specs, submit_options opts,
                         callback<std::vector<job_id>> done);
  /// heartbeat() without blocking the caller.
  void heartbeat_async(heartbeat_request request, callback<heartbeat_reply> done);
  /// fail() without blocking the caller.
  void fail_async(job_id id, std::uint64_t lease_token, std::string error, bool retryable,
                  std::string principal, std::string handover, callback<job_record> done);
  /// lease() without blocking the caller: a long poll holds no thread.
  void lease_async(lease_request request, callback<std::vector<job_record>> done);
  /// complete() without blocking; many in flight share one fsync.
  void complete_async(job_id id, std::uint64_t lease_token, std::string result_json,
                      std::string principal, callback<job_record> done);

  /// One completion of complete_many_async.
  struct completion {
    job_id id = 0;
    std::uint64_t lease_token = 0;
    std::string result_json = "null";
  };
  /// complete_async for many jobs, with one answer: `done` gets one result
  /// per completion, in their order, once all are decided (a refusal of one
  /// is that one's result; after close() each is engine_errc::closed), so
  /// the outer result is never an error. Cheaper per job than
  /// complete_async: one callback, messenger actors for up to 32
  /// completions each, and the jobs' actors answer them directly.
  void complete_many_async(std::vector<completion> items, std::string principal,
                           callback<std::vector<result<job_record>>> done);

  // -- backup (`jobsmith backup`, apps/audit) ------------------------------------------
  // Added for online backups; nothing above changes.

  /// Writes a RocksDB checkpoint of the running engine's log into
  /// `target_dir` (must not exist; its parent must), hard-linking table files
  /// where the target is on the same file system. The copy holds every event
  /// acknowledged before the call and whole batches only: it opens, and
  /// `jobsmith audit verify` passes on it. Returns the directory written.
  /// Blocks the caller until done (a memtable flush plus links and a WAL
  /// copy); other calls go on meanwhile, close() waits for it. Errors: invalid_argument for an in-memory engine or an
  /// unusable target, storage when RocksDB fails, closed after close().
  result<std::string> checkpoint(std::string target_dir);

  struct impl;
  impl& internals() { return *impl_; }

 private:
  explicit engine(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace jobsmith
