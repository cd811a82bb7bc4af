// The jobsmith binary: one verb per use.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/bench.hpp"
#include "apps/client/bench_url.hpp"
#include "apps/demo.hpp"
#include "apps/verbs.hpp"
#include "events/time_text.hpp"

int main(int argc, char** argv) {
  CLI::App app{"jobsmith: an event-sourced, actor-model job engine"};
  app.require_subcommand(1);

  jobsmith::apps::demo_options demo;
  auto* demo_cmd = app.add_subcommand("demo", "run the embedded demo on a data directory");
  demo_cmd->add_option("--data", demo.data_dir, "data directory")->capture_default_str();
  demo_cmd->add_option("--jobs", demo.jobs, "jobs to submit")->capture_default_str();

  jobsmith::apps::embedded_bench_options bench;
  bool embedded = false;
  auto* bench_cmd = app.add_subcommand("bench", "measure throughput and latency");
  bool log_only = false;
  jobsmith::apps::log_bench_options log_bench;
  bench_cmd->add_flag("--embedded", embedded, "in-process engine with a handler pool");
  bench_cmd->add_flag("--log", log_only, "the event log alone: fsynced appends");
  bench_cmd->add_option("--events", log_bench.events, "with --log: events to append")
      ->capture_default_str();
  bench_cmd->add_option("--jobs", bench.jobs, "no-op jobs to run")->capture_default_str();
  bench_cmd->add_option("--rate", bench.rate, "submit at this many jobs/s (0 = flat out)")
      ->capture_default_str();
  bench_cmd->add_option("--batch", bench.batch, "jobs per submit call when flat out")
      ->capture_default_str();
  bench_cmd->add_option("--producers", bench.producers, "submitting threads")
      ->capture_default_str();
  bench_cmd->add_option("--threads", bench.worker_threads, "handler threads")
      ->capture_default_str();
  bench_cmd->add_option("--scheduler-threads", bench.scheduler_threads,
                        "CAF scheduler threads of the embedded engine")
      ->capture_default_str();
  bench_cmd->add_option("--scheduler-policy", bench.scheduler_policy,
                        "CAF scheduler: lean (the engine's), or CAF's sharing or stealing")
      ->check(CLI::IsMember({"lean", "sharing", "stealing"}))
      ->capture_default_str();
  bench_cmd->add_option("--slots", bench.worker_slots, "jobs the pool holds at once")
      ->capture_default_str();
  bench_cmd->add_option("--commit-delay-us", bench.commit_delay_us,
                        "group commit's gather window under light load (0 = none)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{100'000}))
      ->capture_default_str();
  bench_cmd->add_option("--data", bench.data_dir, "data directory (default: a fresh temp dir)");
  bench_cmd->add_flag("--in-memory", bench.in_memory, "no disk at all (for comparison only)");
  bench_cmd->add_flag("--stock-clock", bench.stock_clock,
                     "CAF's own timer clock, woken by every actor's end (for comparison only)");
  bench_cmd->add_option("--ack-file", bench.ack_file,
                        "append every acknowledged job id to this file (crash tests)");
  std::string soak, soak_retention = "60s", soak_report_every = "1m";
  auto duration = [](const std::string& text) -> std::string {
    return jobsmith::parse_duration(text) ? "" : "expected a duration such as 20m, 60s or 1h";
  };
  bench_cmd->add_option("--soak", soak,
                        "with --embedded: run this long (20m, 1h) at --rate (default 1000) "
                        "and print a reading every --report-every")
      ->check(duration);
  bench_cmd->add_option("--retention", soak_retention,
                        "with --soak: how long finished jobs stay in the live views")
      ->check(duration)
      ->capture_default_str();
  bench_cmd->add_option("--report-every", soak_report_every, "with --soak: a reading this often")
      ->check(duration)
      ->capture_default_str();
  // bench --url: the same workload through a running `jobsmith serve`.
  jobsmith::apps::url_bench_options url_bench;
  bench_cmd->add_option("--url", url_bench.url, "a running server: bench it over HTTP");
  bench_cmd
      ->add_option("--token", url_bench.token, "with --url: a token with producer and worker roles")
      ->envname("JOBSMITH_TOKEN");
  bench_cmd->add_option("--server-pid", url_bench.server_pid,
                        "with --url: the server's pid, to read its peak RSS");
  bench_cmd->add_option("--worker-threads", url_bench.worker_threads,
                        "with --url: threads of the worker process")
      ->capture_default_str();
  bench_cmd->add_option("--lease-batch", url_bench.lease_batch,
                        "with --url: jobs per lease call")
      ->capture_default_str();
  bench_cmd->add_option("--shape", url_bench.shape,
                        "with --url: batch (batched submits, leases and completes) or single "
                        "(one job per call)")
      ->check(CLI::IsMember({"batch", "single"}))
      ->capture_default_str();
  bench_cmd->add_option("--inflight", url_bench.inflight,
                        "with --url --shape single: submit requests in flight")
      ->capture_default_str();
  bench_cmd->add_option("--consumers", url_bench.consumers,
                        "with --url --shape single: worker threads, one job each at a time")
      ->capture_default_str();
  bench_cmd->add_flag("--lease-next", url_bench.lease_next,
                      "with --url --shape single: each complete also leases the next job");

  std::string check_data = "./data";
  std::string check_acked;
  int check_drain = 60;
  auto* check_cmd = app.add_subcommand(
      "check-recovery", "after a crash: every acknowledged job is in the log, none stays running");
  check_cmd->add_option("--data", check_data, "data directory")->capture_default_str();
  check_cmd->add_option("--acked", check_acked, "file of acknowledged ids (bench --ack-file)")
      ->required();
  check_cmd->add_option("--drain", check_drain, "seconds to wait for all jobs to finish")
      ->capture_default_str();

  int exit_code = 0;
  jobsmith::apps::add_serve_command(app, exit_code);
  jobsmith::apps::add_client_commands(app, exit_code);
  jobsmith::apps::add_audit_commands(app, exit_code);
  jobsmith::apps::add_replay_command(app, exit_code);

  CLI11_PARSE(app, argc, argv);
  if (demo_cmd->parsed()) return jobsmith::apps::run_demo(demo);
  if (check_cmd->parsed())
    return jobsmith::apps::run_check_recovery(check_data, check_acked, check_drain);
  if (bench_cmd->parsed()) {
    if (log_only) {
      log_bench.batch = bench.batch;
      log_bench.data_dir = bench.data_dir;
      return jobsmith::apps::run_log_bench(log_bench);
    }
    if (embedded && !soak.empty()) {
      bench.soak = *jobsmith::parse_duration(soak);
      bench.soak_retention = *jobsmith::parse_duration(soak_retention);
      bench.soak_report_every = std::max<std::int64_t>(1'000, *jobsmith::parse_duration(soak_report_every));
      return jobsmith::apps::run_embedded_soak(bench);
    }
    if (embedded) return jobsmith::apps::run_embedded_bench(bench);
    if (!url_bench.url.empty()) {
      url_bench.jobs = bench.jobs;
      url_bench.rate = bench.rate;
      url_bench.batch = bench.batch;
      url_bench.producers = bench.producers;
      return jobsmith::apps::run_url_bench(url_bench);
    }
    std::fprintf(stderr, "bench: say --embedded, --log or --url URL\n");
    return 2;
  }
  return exit_code;
}
