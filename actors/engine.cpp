#include "actors/engine.hpp"

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <random>
#include <shared_mutex>

#include "actors/caf_error.hpp"
#include "actors/caf_runtime.hpp"
#include "actors/engine_actors.hpp"
#include "actors/engine_impl.hpp"
#include "actors/projector.hpp"
#include "actors/scheduler.hpp"
#include "actors/worker_pool.hpp"
#include "events/codec.hpp"
#include "events/json.hpp"
#include "events/time_text.hpp"
#include "store/memory_log.hpp"
#include "store/rocksdb_log.hpp"

#ifndef JOBSMITH_VERSION
#define JOBSMITH_VERSION "0.0.0"
#endif

namespace jobsmith {

// The error helpers (to_string, from_job_errc, from_caf): engine_error.cpp.
// Reading (get, list, counts, ...): engine_reads.cpp.


// -- spawning -------------------------------------------------------------------------

engine_core spawn_core(caf::actor_system& sys, store::event_log& log, recovered_state seed,
                       queue_view view, const engine_options& options, wall_clock clock,
                       bool detached) {
  engine_core core;
  core.metrics = std::make_shared<journal_metrics>();
  journal_config jcfg;
  jcfg.max_pending_events = options.max_pending_events;
  jcfg.resume_interval = options.resume_interval;
  jcfg.commit_delay = options.commit_delay;
  if (detached)
    core.journal = sys.spawn<caf::detached>(journal, &log, jcfg, core.metrics);
  else
    core.journal = sys.spawn(journal, &log, jcfg, core.metrics);
  auto snapshot_seq = seed.snapshot_seq;
  // Detached like the journal: encoding a snapshot of millions of rows
  // takes seconds, which must not hold one of the few scheduler threads.
  if (detached)
    core.projector = sys.spawn<caf::detached>(projector, std::move(view), clock, &log,
                                              options.snapshot_every, options.snapshots_kept,
                                              snapshot_seq);
  else
    core.projector = sys.spawn(projector, std::move(view), clock, &log, options.snapshot_every,
                               options.snapshots_kept, snapshot_seq);
  // Subscribed before anything can append, so it misses nothing.
  caf::anon_send(core.journal, atom::subscribe::value, caf::actor_cast<caf::actor>(core.projector));

  std::random_device rd;
  char name[32];
  std::snprintf(name, sizeof(name), "local:%08x", static_cast<unsigned>(rd()));
  core.worker_name = name;
  if (!options.handlers.empty()) {
    worker_pool_config pcfg;
    pcfg.worker_name = core.worker_name;
    pcfg.threads = options.worker_threads;
    pcfg.detached = detached;
    pcfg.flush_interval = options.progress_flush;
    core.runners = spawn_runners(sys, pcfg, &options.handlers);
  }
  scheduler_config scfg;
  scfg.local_worker = core.runners ? core.worker_name : std::string{};
  scfg.local_slots = options.worker_slots;
  scfg.max_live_jobs = options.max_live_jobs;
  scfg.min_recurrence_interval = options.min_recurrence_interval;
  scfg.max_pending_submits = options.max_pending_events / 2;
  scfg.seed = rd() * 0x9e3779b97f4a7c15ULL + rd();
  core.scheduler = sys.spawn(scheduler, scfg, std::move(seed), core.journal, core.runners, clock);
  return core;
}

void stop_core(const engine_core& core) {
  auto reason = caf::exit_reason::user_shutdown;
  caf::anon_send_exit(core.scheduler, reason);
  if (core.runners) stop_runners(*core.runners);
  caf::anon_send_exit(core.projector, reason);
  caf::anon_send_exit(core.journal, reason);
}

// -- the facade -------------------------------------------------------------------------

void subscription::impl::stop() {
  {
    std::lock_guard<std::recursive_mutex> no_call{calls->mu};
    calls->live = false;
  }
  if (!subscriber) return;
  caf::anon_send(journal, atom::unsubscrib::value, subscriber);
  caf::anon_send_exit(subscriber, caf::exit_reason::user_shutdown);
  subscriber = nullptr;
  journal = journal_actor{};
}

subscription::~subscription() { cancel(); }

void subscription::cancel() {
  if (impl_) impl_->stop();
  impl_.reset();
}

// struct engine::impl: actors/engine_impl.hpp

engine::engine(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

engine::~engine() { close(); }

result<std::unique_ptr<engine>> engine::open(engine_options options) {
  auto started = std::chrono::steady_clock::now();
  auto im = std::make_unique<impl>();
  im->clock = options.clock ? options.clock : wall_clock{system_wall_now};
  im->options = std::move(options);
  auto& opts = im->options;

  // Recovery step 1: open the store (it verifies the tail of the chain).
  if (opts.in_memory) {
    im->log = store::make_memory_log();
  } else {
    std::error_code ec;
    std::filesystem::create_directories(opts.data_dir, ec);
    if (ec)
      return engine_error{engine_errc::storage,
                          "cannot create data directory " + opts.data_dir + ": " + ec.message()};
    store::rocksdb_log_options lopts;
    lopts.defer_compactions = true;  // until recovery is done (below)
    lopts.env = opts.rocksdb_env;
    auto status = store::open_rocksdb_log(opts.data_dir, lopts, &im->log, &im->report.log_warning);
    if (!status.is_ok()) {
      auto code = status.code() == store::status_code::corruption ? engine_errc::corruption
                  : status.is_no_space()                          ? engine_errc::no_space
                                                                   : engine_errc::storage;
      // A damaged store: say where to look. (Without the prefix: the
      // engine error's code says "corruption" already.)
      if (code == engine_errc::corruption)
        return engine_error{code, status.message() + "; check the log with `jobsmith audit verify " +
                                      "--data " + opts.data_dir + "` (docs/audit.md)"};
      return engine_error{code, status.to_string()};
    }
  }

  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  im->report.store_seconds = since(started);

  // Step 2: replay the log into the live state and the projections.
  auto recovering = std::chrono::steady_clock::now();
  queue_view view;
  auto seed = recover_from_snapshot(*im->log, view);
  if (!seed) return seed.error();
  if (opts.retention)
    if (auto problem = check_retention(*opts.retention)) return *problem;
  const bool set_retention = opts.retention && *opts.retention != view.default_retention();
  im->report.recover_seconds = since(recovering);
  // The lease clock the previous run saved (actors/lease_clock.hpp); a
  // missing or unreadable record leaves every remote lease its whole timeout.
  if (std::string bytes; im->log->get_meta(leases_meta_key, &bytes).is_ok())
    if (auto leases = decode_leases(bytes))
      for (const auto& l : *leases) seed->saved_leases[l.id] = l;
  im->log->start_background_work();
  im->report.events_replayed = seed->events_replayed;
  im->report.live_jobs = seed->live_jobs.size();
  im->report.head = seed->head;
  im->report.snapshot_seq = seed->snapshot_seq;
  im->report.snapshot_warning = seed->snapshot_warning;
  im->kinds.reset(seed->kinds);
  // A long fold now is a long fold at the next start too: store the view.
  const bool snapshot_now = opts.snapshot_every != 0 && seed->events_replayed >= opts.snapshot_every;
  // What the scheduler reclaims at once: attempts of the previous process's
  // in-process pool (actors/recovery.hpp, step 3).
  auto reclaimed = static_cast<std::uint64_t>(
      std::count_if(seed->live_jobs.begin(), seed->live_jobs.end(), [](const job_record& j) {
        return j.state == job_state::running && j.worker.rfind("local:", 0) == 0;
      }));

  // Step 3: the actors, seeded with what recovery rebuilt.
  im->config = std::make_unique<caf::actor_system_config>();
  if (opts.scheduler_threads > 0)
    im->config->set("scheduler.max-threads", static_cast<int>(opts.scheduler_threads));
  // "lean" is ours (actors/caf_runtime.hpp); CAF's setting then names the
  // policy it is a variant of, and the stock clock means CAF's own.
  auto policy = opts.scheduler_policy;
  if (policy == "lean" && !opts.quiet_timer_clock) policy = "sharing";
  im->config->set("scheduler.policy",
                  caf::atom_from_string(policy == "lean" ? "sharing" : policy));
  if (opts.quiet_timer_clock) use_quiet_clock_scheduler(*im->config, policy);
  im->system = std::make_unique<caf::actor_system>(*im->config);
  im->core = spawn_core(*im->system, *im->log, std::move(*seed), std::move(view), opts,
                        im->clock, true);

  // Step 4: record that the engine started, then serve.
  auto now = im->clock();
  std::vector<event> started_event{
      event{0, 0, now, "engine",
            engine_started{JOBSMITH_VERSION, im->report.events_replayed, reclaimed}}};
  // The configured default retention, as a fact of the log (replay --at
  // then retires as this process does).
  if (set_retention)
    started_event.push_back(event{0, 0, now, "engine",
                                  queue_retention{"", opts.retention->succeeded,
                                                  opts.retention->failed}});
  auto appended = im->ask<sequence_t>(im->core.journal, atom::append::value, std::move(started_event));
  if (!appended) {
    stop_core(im->core);
    im->system->await_all_actors_done();
    return appended.error();
  }
  im->report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // Behind engine.started in the projector's mailbox; written while the
  // engine already serves.
  if (snapshot_now) caf::anon_send(im->core.projector, atom::snapshot::value);
  return std::unique_ptr<engine>(new engine(std::move(im)));
}

void engine::close() {
  if (!impl_) return;
  std::lock_guard<std::mutex> guard{impl_->close_mutex};
  if (impl_->closed) return;
  // The next start folds only what follows this snapshot. Asked before
  // `closed` is set (ask refuses then); a failure only costs that start time.
  if (impl_->options.snapshot_every != 0 && impl_->core.projector)
    (void) impl_->ask<sequence_t>(impl_->core.projector, atom::snapshot::value);
  {
    std::unique_lock<std::shared_mutex> no_async_call{impl_->async_gate};
    impl_->closed = true;
  }
  for (auto& weak : impl_->subscriptions)
    if (auto sub = weak.lock()) sub->stop();
  stop_core(impl_->core);
  impl_->system->await_all_actors_done();
  impl_->core = engine_core{};
  impl_->system.reset();
  std::unique_lock<std::shared_mutex> no_copier{impl_->log_copiers};  // checkpoint() done
  impl_->log.reset();
}

const engine::recovery_report& engine::recovered() const { return impl_->report; }

std::optional<engine_error> engine::write_refusal() const {
  if (impl_->closed || !impl_->core.metrics) return std::nullopt;
  return impl_->core.metrics->refusal();
}

// -- producing -------------------------------------------------------------------------

std::optional<engine_error> engine::impl::prepare_submit(std::vector<job_submitted>& specs,
                                                        const submit_options& opts) const {
  if (opts.delay < 0)
    return engine_error{engine_errc::invalid_argument, "delay must not be negative"};
  auto now = clock();
  for (std::size_t i = 0; i < specs.size(); ++i) {
    auto& spec = specs[i];
    auto where = specs.size() > 1 ? "jobs[" + std::to_string(i) + "]: " : std::string{};
    if (!options.allow_unknown_kinds && !spec.kind.empty() &&
        options.handlers.find(spec.kind) == nullptr)
      return engine_error{engine_errc::unknown_kind,
                          where + "no handler is registered for kind '" + spec.kind + "'"};
    // The log keeps payloads in compact form, so exports round-trip exactly.
    auto payload = compact_json(std::move(spec.payload));
    if (!payload)
      return engine_error{engine_errc::invalid_argument, where + "payload is not valid JSON"};
    spec.payload = std::move(*payload);
    if (auto mismatch = kinds.check_payload(spec.kind, spec.payload))
      return engine_error{engine_errc::invalid_argument, where + *mismatch};
    if (spec.run_at == 0 && opts.delay > 0) spec.run_at = now + opts.delay;
  }
  return std::nullopt;
}

std::optional<engine_error> engine::impl::admit_submits(std::size_t n) {
  auto inflight = inflight_submits.fetch_add(n) + n;
  if (inflight <= options.max_inflight_submits) return std::nullopt;
  inflight_submits.fetch_sub(n);
  return engine_error{engine_errc::overloaded, std::to_string(inflight - n) +
                                                   " jobs are being submitted already; try "
                                                   "again later"};
}

result<std::vector<job_id>> engine::submit_many(std::vector<job_submitted> specs,
                                                const submit_options& opts) {
  auto& im = *impl_;
  if (auto refused = im.prepare_submit(specs, opts)) return *refused;
  if (specs.empty()) return std::vector<job_id>{};
  if (auto refused = im.admit_submits(specs.size())) return *refused;
  struct release {
    std::atomic<std::size_t>& n;
    std::size_t k;
    ~release() { n.fetch_sub(k); }
  } guard{im.inflight_submits, specs.size()};
  return im.ask<std::vector<job_id>>(im.core.scheduler, atom::submit::value, std::move(specs),
                                     im.principal_or_default(opts.principal));
}

result<job_id> engine::submit(job_submitted spec, const submit_options& opts) {
  std::vector<job_submitted> one;
  one.push_back(std::move(spec));
  auto ids = submit_many(std::move(one), opts);
  if (!ids) return ids.error();
  return ids->front();
}

// -- acting on jobs -------------------------------------------------------------------------

result<job_record> engine::cancel(job_id id, std::string reason, std::string principal,
                                  bool at_once) {
  if (reason.empty()) reason = "cancelled by request";
  return impl_->command(id, cmd_cancel{std::move(reason), at_once}, std::move(principal));
}

result<job_record> engine::run_now(job_id id, std::string principal) {
  return impl_->command(id, cmd_request{request_kind::run_now}, std::move(principal));
}

result<job_record> engine::discard(job_id id, std::string reason, std::string principal) {
  if (reason.empty()) reason = "discarded by request";
  return impl_->command(id, cmd_discard{std::move(reason)}, std::move(principal));
}

result<job_record> engine::review(job_id id, bool accept, std::string comment,
                                  std::string principal) {
  // The job's actor runs the kind's on-accept hook off the actor scheduler
  // and records the acceptance only once it returned; a review arriving
  // meanwhile is refused (actors/job_actor.hpp).
  return impl_->forward(id, cmd_review{accept, std::move(comment)}, std::move(principal));
}

result<bool> engine::delete_schedule(schedule_id id, std::string principal) {
  auto& im = *impl_;
  return im.ask<bool>(im.core.scheduler, atom::schedule::value, id,
                      im.principal_or_default(std::move(principal)));
}

// -- queues ------------------------------------------------------------------------------

result<queue_info> engine::pause(std::string queue, std::string principal) {
  auto& im = *impl_;
  return im.ask<queue_info>(im.core.scheduler, atom::queue_op::value,
                            queue_command{queue_op::pause, std::move(queue), 0},
                            im.principal_or_default(std::move(principal)));
}

result<queue_info> engine::resume(std::string queue, std::string principal) {
  auto& im = *impl_;
  return im.ask<queue_info>(im.core.scheduler, atom::queue_op::value,
                            queue_command{queue_op::resume, std::move(queue), 0},
                            im.principal_or_default(std::move(principal)));
}

result<queue_info> engine::configure(std::string queue, std::uint32_t concurrency,
                                     std::string principal) {
  auto& im = *impl_;
  return im.ask<queue_info>(im.core.scheduler, atom::queue_op::value,
                            queue_command{queue_op::configure, std::move(queue), concurrency},
                            im.principal_or_default(std::move(principal)));
}

// -- remote workers ---------------------------------------------------------------------------

result<std::vector<job_record>> engine::lease(lease_request request) {
  return impl_->ask<std::vector<job_record>>(impl_->core.scheduler, atom::lease::value,
                                             std::move(request));
}

result<heartbeat_reply> engine::heartbeat(heartbeat_request request) {
  return impl_->ask<heartbeat_reply>(impl_->core.scheduler, atom::heartbeat::value,
                                     std::move(request));
}

result<job_record> engine::complete(job_id id, std::uint64_t lease_token, std::string result_json,
                                    std::string principal) {
  auto result = compact_json(std::move(result_json));
  if (!result) return engine_error{engine_errc::invalid_argument, "result is not valid JSON"};
  return impl_->command(id, cmd_succeed{lease_token, std::move(*result)}, std::move(principal));
}

result<job_record> engine::fail(job_id id, std::uint64_t lease_token, std::string error,
                                bool retryable, std::string principal, std::string handover) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  auto draw = std::uniform_real_distribution<double>(0, 1)(rng);
  return impl_->command(
      id, cmd_fail{lease_token, std::move(error), retryable, std::move(handover), draw},
      std::move(principal));
}

// -- events ------------------------------------------------------------------------------------

namespace {

caf::behavior subscriber(caf::event_based_actor*, std::shared_ptr<subscription::impl::gate> calls,
                         std::function<void(const event&)> fn) {
  return {
      [calls, fn](atom::committed, const committed_batch& batch) {
        std::lock_guard<std::recursive_mutex> calling{calls->mu};
        if (!calls->live) return;  // cancelled: batches still queued are dropped
        for (auto& ev : *batch) fn(ev);
      },
  };
}

}  // namespace

subscription engine::subscribe(std::function<void(const event&)> fn, subscriber_thread where) {
  auto& im = *impl_;
  if (im.closed) return {};
  auto sub = std::make_shared<subscription::impl>();
  sub->journal = im.core.journal;
  sub->subscriber = where == subscriber_thread::own
                        ? im.system->spawn<caf::detached>(subscriber, sub->calls, std::move(fn))
                        : im.system->spawn(subscriber, sub->calls, std::move(fn));
  caf::anon_send(im.core.journal, atom::subscribe::value, sub->subscriber);
  std::lock_guard<std::mutex> guard{im.close_mutex};
  im.subscriptions.push_back(sub);
  return subscription{sub};
}

// -- for the HTTP server (apps/server) ----------------------------------------------------

const engine_options& engine::options() const { return impl_->options; }

sequence_t engine::head() const {
  auto& im = *impl_;
  return im.closed || !im.log ? 0 : im.log->head();
}

result<done> engine::read_events(sequence_t from, sequence_t to,
                                 const std::function<bool(const event&)>& visit) const {
  auto& im = *impl_;
  if (im.closed || !im.log) return engine_error{engine_errc::closed, "engine is closed"};
  if (from == 0) from = 1;
  if (to < from) return done{};
  std::string error;
  event ev;
  auto status = im.log->read(from, to, [&](const store::record& rec) {
    if (!decode_record(rec, ev, &error)) return false;
    return visit(ev);
  });
  if (!error.empty()) return engine_error{engine_errc::corruption, error};
  if (!status.is_ok()) {
    auto code = status.code() == store::status_code::corruption ? engine_errc::corruption
                                                                 : engine_errc::storage;
    return engine_error{code, status.to_string()};
  }
  return done{};
}

// The asynchronous calls: actors/engine_async.cpp.

// -- backup (`jobsmith backup`, apps/audit) ----------------------------------------------

result<std::string> engine::checkpoint(std::string target_dir) {
  auto& im = *impl_;
  if (im.options.in_memory)
    return engine_error{engine_errc::invalid_argument, "an in-memory engine has no log to copy"};
  if (target_dir.empty())
    return engine_error{engine_errc::invalid_argument, "checkpoint: target directory is empty"};
  std::error_code ec;
  if (std::filesystem::exists(target_dir, ec))
    return engine_error{engine_errc::invalid_argument,
                        "checkpoint: " + target_dir + " already exists"};
  // The log must outlive the copy: hold log_copiers (close() waits for it),
  // taken under close_mutex so that it cannot be had after close() began.
  // close_mutex itself is not held during the copy: close() would wait.
  // The journal keeps appending meanwhile; RocksDB checkpoints run beside
  // writes.
  std::shared_lock<std::shared_mutex> copying;
  {
    std::lock_guard<std::mutex> guard{im.close_mutex};
    if (im.closed || !im.log) return engine_error{engine_errc::closed, "engine is closed"};
    copying = std::shared_lock<std::shared_mutex>{im.log_copiers};
  }
  auto status = im.log->checkpoint(target_dir);
  if (!status.is_ok()) {
    auto code = status.code() == store::status_code::invalid_argument
                    ? engine_errc::invalid_argument
                    : engine_errc::storage;
    return engine_error{code, status.to_string()};
  }
  return target_dir;
}

caf::actor_system& actor_system_of(engine& e) { return *e.internals().system; }

const engine_core& core_of(engine& e) { return e.internals().core; }

}  // namespace jobsmith
