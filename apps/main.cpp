// The jobsmith binary: one verb per use.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/bench.hpp"
#include "apps/demo.hpp"
#include "apps/verbs.hpp"

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
  bench_cmd->add_option("--slots", bench.worker_slots, "jobs the pool holds at once")
      ->capture_default_str();
  bench_cmd->add_option("--data", bench.data_dir, "data directory (default: a fresh temp dir)");
  bench_cmd->add_flag("--in-memory", bench.in_memory, "no disk at all (for comparison only)");
  bench_cmd->add_option("--ack-file", bench.ack_file,
                        "append every acknowledged job id to this file (crash tests)");

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
    if (embedded) return jobsmith::apps::run_embedded_bench(bench);
    std::fprintf(stderr, "bench: say --embedded or --log\n");
    return 2;
  }
  return exit_code;
}
