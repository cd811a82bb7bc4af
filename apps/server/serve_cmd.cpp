// `jobsmith serve`: parses the command line (or a TOML/INI file through
// --config), starts the server and runs until SIGINT or SIGTERM.
#include <sys/types.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "apps/server/backup_target.hpp"
#include "apps/server/server.hpp"
#include "apps/verbs.hpp"
#include "events/time_text.hpp"

#ifndef JOBSMITH_VERSION
#define JOBSMITH_VERSION "0.0.0"
#endif

// jemalloc's control call: null unless the binary links jemalloc (it does
// not in sanitizer builds).
extern "C" int mallctl(const char* name, void* oldp, std::size_t* oldlenp, void* newp,
                       std::size_t newlen) __attribute__((weak));

namespace jobsmith::apps {

namespace {

/// A server hands freed pages back to the kernel after 1 s instead of
/// jemalloc's 10 s: its peak RSS in `bench --url --jobs 100000` fell from
/// 191-197 to 180-183 MB at the same throughput. Only the server: set for
/// the whole binary, it cost the embedded bench about 8% (docs/benchmarks.md,
/// 2026-12-03). A dirty_decay_ms in MALLOC_CONF wins.
void return_freed_pages_sooner() {
  if (mallctl == nullptr) return;
  if (const char* conf = std::getenv("MALLOC_CONF"); conf && std::strstr(conf, "dirty_decay_ms"))
    return;
  ssize_t ms = 1000;
  // The default for arenas made from now on, then each existing one (an
  // arena not made yet refuses, and takes the default when it is).
  if (mallctl("arenas.dirty_decay_ms", nullptr, nullptr, &ms, sizeof ms) != 0) {
    spdlog::warn("jemalloc: could not set arenas.dirty_decay_ms to {} ms", ms);
    return;
  }
  unsigned arenas = 0;
  std::size_t size = sizeof arenas;
  if (mallctl("arenas.narenas", &arenas, &size, nullptr, 0) != 0) return;
  for (unsigned i = 0; i < arenas; ++i) {
    const std::string name = "arena." + std::to_string(i) + ".dirty_decay_ms";
    (void)mallctl(name.c_str(), nullptr, nullptr, &ms, sizeof ms);
  }
}

std::size_t half_the_cores() {
  return std::max<std::size_t>(1, std::thread::hardware_concurrency() / 2);
}

struct serve_options {
  std::string data_dir = "./data";
  std::string listen = "127.0.0.1:7878";
  std::string tokens_file;
  std::string backup_dir;  // empty = POST /v1/admin/backup refused
  // Threads for CAF's scheduler and for HTTP: half the cores each, at
  // least one. Every hand-off between threads costs a wake-up, which on a
  // virtual machine costs more CPU than the work handed off: on 2 cores, one
  // of each took 15% less server CPU per job than two of each
  // (docs/benchmarks.md).
  std::size_t scheduler_threads = half_the_cores();
  std::size_t max_pending_events = 200'000;
  std::uint64_t commit_delay_us = 0;
  std::size_t max_inflight_submits = 100'000;
  std::uint64_t snapshot_every = 1'000'000;
  std::size_t snapshots_kept = 8;
  std::int64_t min_recurrence_ms = min_recurrence_interval;
  std::int64_t read_timeout_ms = 30'000;
  std::int64_t write_timeout_ms = 30'000;
  std::int64_t handler_timeout_ms = 120'000;
  std::int64_t max_long_poll_ms = 30'000;
  server::server_limits limits;
  std::size_t io_threads = half_the_cores();
  std::uint64_t memory_budget_mb = 0;
  std::string beanstalk_listen;  // empty = the beanstalkd protocol is off
  std::string retention = "1d";         // finished jobs after success, in the live views
  std::string retention_failed = "7d";  // after any other end
  std::size_t beanstalk_max_job_bytes = 65535;
};

/// "host:port", "[v6]:port" or ":port" (loopback).
bool split_listen(const std::string& text, std::string& host, std::uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "127.0.0.1";
  try {
    auto p = std::stoul(text.substr(colon + 1));
    if (p > 65535) return false;
    port = static_cast<std::uint16_t>(p);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

int run_serve(const serve_options& o) {
  return_freed_pages_sooner();
  server::server_config cfg;
  if (!split_listen(o.listen, cfg.host, cfg.port)) {
    spdlog::error("--listen: expected host:port, got '{}'", o.listen);
    return 2;
  }
  if (!o.tokens_file.empty()) {
    if (auto err = cfg.tokens.load_file(o.tokens_file); !err.empty()) {
      spdlog::error("{}", err);
      return 2;
    }
  }
  if (!o.backup_dir.empty()) {
    if (auto err = server::check_backup_dir(o.backup_dir, o.data_dir); !err.empty()) {
      spdlog::error("{}", err);
      return 2;
    }
    cfg.backup_dir = o.backup_dir;
  }
  if (!o.beanstalk_listen.empty()) {
    if (!split_listen(o.beanstalk_listen, cfg.beanstalk.host, cfg.beanstalk.port)) {
      spdlog::error("--beanstalk-listen: expected host:port, got '{}'", o.beanstalk_listen);
      return 2;
    }
    cfg.beanstalk.max_job_bytes = o.beanstalk_max_job_bytes;
  }
  cfg.io_threads = o.io_threads;
  cfg.limits = o.limits;
  cfg.limits.read_timeout = std::chrono::milliseconds(o.read_timeout_ms);
  cfg.limits.write_timeout = std::chrono::milliseconds(o.write_timeout_ms);
  cfg.limits.handler_timeout = std::chrono::milliseconds(o.handler_timeout_ms);
  cfg.limits.max_long_poll = std::chrono::milliseconds(o.max_long_poll_ms);
  cfg.limits.memory_budget_bytes = o.memory_budget_mb << 20;
  if (cfg.limits.handler_timeout <= cfg.limits.max_long_poll) {
    spdlog::error("--handler-timeout-ms must be above --max-long-poll-ms");
    return 2;
  }
  cfg.engine.data_dir = o.data_dir;
  cfg.engine.scheduler_threads = o.scheduler_threads;
  cfg.engine.max_pending_events = o.max_pending_events;
  cfg.engine.commit_delay = std::chrono::microseconds(o.commit_delay_us);
  cfg.engine.snapshot_every = o.snapshot_every;
  cfg.engine.snapshots_kept = o.snapshots_kept;
  cfg.engine.max_inflight_submits = o.max_inflight_submits;
  cfg.engine.min_recurrence_interval = o.min_recurrence_ms;
  {
    auto ok = parse_duration(o.retention);
    auto failed = parse_duration(o.retention_failed);
    if (!ok || !failed || *ok > max_duration || *failed > max_duration) {
      spdlog::error("--retention, --retention-failed: a duration such as 1d, 12h, 30m, 45s "
                    "(0 = kept), at most 10 years");
      return 2;
    }
    cfg.engine.retention = retention_policy{*ok, *failed};
  }

  // Every thread the server starts inherits this mask, so the signals wait
  // for sigwait below instead of killing a random thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  server::server srv{cfg};
  if (auto err = srv.start(); !err.empty()) {
    spdlog::error("{}", err);
    return 1;
  }
  auto& rec = srv.engine_ref().recovered();
  if (!rec.log_warning.empty()) spdlog::warn("{}", rec.log_warning);
  if (!rec.snapshot_warning.empty()) spdlog::warn("{}", rec.snapshot_warning);
  spdlog::info(
      "jobsmith {} serving data {} on http://{}:{} ({} events recovered{}, {} live jobs, head {}, "
      "{:.2f} s: store {:.2f} s, recovery {:.2f} s; {})",
      JOBSMITH_VERSION, o.data_dir, cfg.host, srv.port(), rec.events_replayed,
      rec.snapshot_seq != 0 ? " after the snapshot at " + std::to_string(rec.snapshot_seq)
                            : std::string{},
      rec.live_jobs, rec.head, rec.seconds, rec.store_seconds, rec.recover_seconds,
      cfg.tokens.empty() ? std::string{"no tokens: loopback only, every caller is admin"}
                         : std::to_string(cfg.tokens.size()) + " tokens");
  if (!cfg.backup_dir.empty())
    spdlog::info("POST /v1/admin/backup writes new directories inside {}", cfg.backup_dir);
  if (cfg.beanstalk.enabled())
    spdlog::info("beanstalkd protocol on {}:{} (docs/beanstalk.md; jobs up to {} bytes{})",
                 cfg.beanstalk.host, srv.beanstalk_port(), cfg.beanstalk.max_job_bytes,
                 cfg.tokens.empty() ? "" : "; clients send `auth TOKEN` first");
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("{} received: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  srv.stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<serve_options>();
  auto* cmd = app.add_subcommand("serve", "serve the HTTP/JSON API, dashboard and metrics");
  // CLI11 2.1 does not apply a subcommand's own config file, so the file is
  // read here (TOML or INI, keys = flag names without dashes, top level or
  // under [serve]); flags given on the command line win.
  auto config_file = std::make_shared<std::string>();
  cmd->add_option("--config", *config_file, "read options from a TOML/INI file");
  // The last --data / --listen wins, so scripts/run's defaults can be overridden.
  cmd->add_option("--data", o->data_dir, "data directory")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--listen", o->listen, "address:port to listen on")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--tokens", o->tokens_file, "tokens file (JSON, docs/operations.md)");
  cmd->add_option("--backup-dir", o->backup_dir,
                  "existing folder outside the data directory that POST /v1/admin/backup may "
                  "create new directories in (without it, HTTP backups are refused)");
  cmd->add_option("--retention", o->retention,
                  "how long succeeded and accepted jobs stay in the live views (lists, counts, "
                  "GET) once finished: 1d, 12h, 30m, 45s; 0 = kept")
      ->capture_default_str();
  cmd->add_option("--retention-failed", o->retention_failed,
                  "the same for discarded, declined, cancelled and expired jobs")
      ->capture_default_str();
  cmd->add_option("--beanstalk-listen", o->beanstalk_listen,
                  "also speak the beanstalkd protocol on address:port (docs/beanstalk.md)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--beanstalk-max-job-bytes", o->beanstalk_max_job_bytes,
                  "largest beanstalkd job body (JOB_TOO_BIG above)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{8} << 20))
      ->capture_default_str();
  cmd->add_option("--scheduler-threads", o->scheduler_threads, "CAF scheduler threads")
      ->capture_default_str();
  cmd->add_option("--io-threads", o->io_threads, "HTTP (Asio) threads")->capture_default_str();
  cmd->add_option("--call-threads", o->limits.pool_threads, "threads for blocking engine calls")
      ->capture_default_str();
  cmd->add_option("--max-inflight-calls", o->limits.max_inflight_calls,
                  "requests admitted and not yet answered (429 above)")
      ->capture_default_str();
  cmd->add_option("--call-queue", o->limits.pool_queue, "engine calls waiting for a thread (429 above)")
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", o->limits.max_body_bytes, "request body limit (413 above)")
      ->capture_default_str();
  cmd->add_option("--max-json-depth", o->limits.max_json_depth, "JSON nesting limit (400 above)")
      ->capture_default_str();
  cmd->add_option("--max-batch", o->limits.max_batch, "jobs per submit / results per batch (413 above)")
      ->capture_default_str();
  cmd->add_option("--max-lease-jobs", o->limits.max_lease_jobs, "max_jobs of a lease is capped here")
      ->capture_default_str();
  cmd->add_option("--max-name-length", o->limits.max_name_length,
                  "kind, queue, worker, unique key, resource names (400 above)")
      ->capture_default_str();
  cmd->add_option("--max-connections", o->limits.max_connections, "open connections at once")
      ->capture_default_str();
  cmd->add_option("--read-timeout-ms", o->read_timeout_ms, "time to read one request")
      ->capture_default_str();
  cmd->add_option("--write-timeout-ms", o->write_timeout_ms, "time to write one response")
      ->capture_default_str();
  cmd->add_option("--handler-timeout-ms", o->handler_timeout_ms, "time to produce an answer")
      ->capture_default_str();
  cmd->add_option("--max-long-poll-ms", o->max_long_poll_ms, "cap on a lease's wait_ms")
      ->capture_default_str();
  cmd->add_option("--max-long-polls", o->limits.max_long_polls, "leases waiting at once (429 above)")
      ->capture_default_str();
  cmd->add_option("--max-streams", o->limits.max_streams, "event streams at once (429 above)")
      ->capture_default_str();
  cmd->add_option("--stream-buffer-bytes", o->limits.stream_buffer_bytes,
                  "unsent bytes per event stream before it is ended")
      ->capture_default_str();
  cmd->add_option("--max-inflight-bytes", o->limits.max_inflight_bytes,
                  "request body bytes being handled at once (429 above)")
      ->capture_default_str();
  cmd->add_option("--memory-budget-mb", o->memory_budget_mb,
                  "resident memory over which submits are refused with 503 (0 = no budget)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 30))
      ->capture_default_str();
  cmd->add_option("--max-pending-events", o->max_pending_events, "journal buffer bound (429 above)")
      ->capture_default_str();
  cmd->add_option("--commit-delay-us", o->commit_delay_us,
                  "group commit's gather window under light load (0 = none)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{100'000}))
      ->capture_default_str();
  cmd->add_option("--max-inflight-submits", o->max_inflight_submits,
                  "jobs being submitted at once (429 above)")
      ->capture_default_str();
  cmd->add_option("--snapshot-every", o->snapshot_every,
                  "store the queue view every this many events and at stop (0 = never)")
      ->capture_default_str();
  cmd->add_option("--snapshots-kept", o->snapshots_kept,
                  "queue view snapshots kept, spread over the log (replay --at folds from the nearest)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000}))
      ->capture_default_str();
  cmd->add_option("--min-recurrence-ms", o->min_recurrence_ms,
                  "shortest recurrence interval a submit may ask for (400 below)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{max_duration}))
      ->capture_default_str();
  cmd->callback([o, cmd, config_file, &exit_code] {
    if (!config_file->empty()) {
      try {
        CLI::ConfigTOML reader;
        for (auto& item : reader.from_file(*config_file)) {
          if (item.name == "++" || item.name == "--") continue;  // CLI11's section markers
          if (!item.parents.empty() && !(item.parents.size() == 1 && item.parents[0] == "serve"))
            continue;
          auto* opt = cmd->get_option_no_throw("--" + item.name);
          if (opt == nullptr || item.name == "config")
            throw CLI::ValidationError(*config_file, "unknown option '" + item.name + "'");
          if (opt->count() > 0) continue;  // the command line wins
          opt->add_result(item.inputs);
          opt->run_callback();
        }
      } catch (const CLI::Error& e) {
        spdlog::error("--config {}: {}", *config_file, e.what());
        exit_code = 2;
        return;
      }
    }
    exit_code = run_serve(*o);
  });
}

}  // namespace jobsmith::apps
