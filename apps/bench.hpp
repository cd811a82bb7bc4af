// `jobsmith bench --embedded`: the engine's end-to-end throughput and
// submit-to-start latency, through the durable log, with a handler pool.
#pragma once

#include <cstdint>
#include <string>

#include "actors/engine.hpp"

namespace jobsmith::apps {

struct embedded_bench_options {
  std::uint64_t jobs = 100'000;
  std::uint64_t rate = 0;        // jobs/s to submit at; 0 = as fast as the engine takes them
  std::uint64_t batch = 1000;    // jobs per submit call (throughput mode)
  std::uint32_t producers = 2;   // submitting threads
  std::size_t worker_threads = 2;
  std::size_t scheduler_threads = 2;  // CAF scheduler threads (engine_options)
  std::string scheduler_policy = "lean";  // engine_options::scheduler_policy
  std::uint32_t worker_slots = 4096;
  std::uint64_t commit_delay_us = 0;  // engine_options::commit_delay
  std::string data_dir;          // empty = a fresh directory removed afterwards
  bool in_memory = false;        // for comparison only: no disk
  bool stock_clock = false;      // for comparison only: CAF's own timer clock
  std::string ack_file;          // append each acknowledged job id here (crash tests)
  // --soak: run for this long (ms) at `rate` instead of `jobs` jobs.
  std::int64_t soak = 0;
  std::int64_t soak_retention = 60'000;     // the engine's retention, both kinds of end
  std::int64_t soak_report_every = 60'000;  // a reading this often
};

/// The engine options both embedded benches open with (no handlers yet).
engine_options bench_engine_options(const embedded_bench_options& options,
                                    const std::string& data_dir);

/// Prints the figures to stdout; returns the process exit code.
int run_embedded_bench(const embedded_bench_options& options);

/// `--soak`: submits one job per call at `rate` (default 1,000/s) for
/// `soak` ms under `soak_retention`, and prints every `soak_report_every`
/// the resident memory, the data directory's and its archive folder's
/// size, the live jobs and the queue view's row slots and rows let go; at
/// the end, the last reading against the one at minute 3.
int run_embedded_soak(const embedded_bench_options& options);

struct log_bench_options {
  std::uint64_t events = 300'000;
  std::uint64_t batch = 1000;  // events per append (one fsynced WriteBatch)
  std::string data_dir;        // empty = a fresh directory removed afterwards
};

/// `jobsmith bench --log`: the store alone. Appends the events of no-op jobs
/// (submitted, started, succeeded, interleaved across jobs as the engine
/// writes them) in fsynced batches, encoded by the real codec.
int run_log_bench(const log_bench_options& options);

/// `jobsmith check-recovery`: after a crash, reopens DATA, checks that every
/// job id in ACKED (written by `bench --ack-file`) is in the log, lets the
/// engine drain, and checks that no job is left running or waiting.
int run_check_recovery(const std::string& data_dir, const std::string& acked_file,
                       int drain_seconds);

}  // namespace jobsmith::apps
