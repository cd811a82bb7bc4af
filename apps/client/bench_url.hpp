// `jobsmith bench --url`: no-op jobs through the HTTP API of a running
// `jobsmith serve`. Producer threads in this process submit; a separate
// worker process (`jobsmith bench-worker`, hidden, apps/client/bench_worker.cpp)
// leases and completes. Two shapes:
//   batch   the embedded bench's workload: batched submits, leases of up to
//           --lease-batch by long poll, batch completes (what batching gives);
//   single  one job per call everywhere: --inflight submit requests in
//           flight, --consumers worker threads each leasing one job and
//           completing it (the shape job queues are compared in).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace jobsmith::apps {

struct url_bench_options {
  std::string url;
  std::string token;
  std::uint64_t jobs = 100'000;
  std::uint64_t rate = 0;            // jobs/s, one job per submit; 0 = flat out in batches
  std::uint64_t batch = 1000;        // jobs per submit when flat out
  std::uint32_t producers = 2;       // submitting threads (more at a rate; see the .cpp)
  std::uint32_t worker_threads = 4;  // threads of the worker process
  std::uint32_t lease_batch = 500;   // max_jobs per lease call
  long server_pid = 0;               // read its VmHWM when given
  std::uint32_t max_seconds = 600;   // give up after this long
  /// "batch": `batch` jobs per submit, leases of `lease_batch`, batch
  /// completes. "single": one job per submit with `inflight` requests in
  /// flight; `consumers` worker threads, each leasing one job per call and
  /// completing it with its own call (the shape queues are raced in).
  std::string shape = "batch";
  std::uint32_t inflight = 32;
  std::uint32_t consumers = 8;
  std::size_t payload_bytes = 108;  // single shape: the JSON payload's size
  /// Single shape: each complete also takes the next job (lease_next), so a
  /// consumer makes one call per job instead of two.
  bool lease_next = false;
};

/// Prints the figures to stdout; returns 0 when every job completed.
int run_url_bench(const url_bench_options& o);

/// Adds the hidden `bench-worker` subcommand that run_url_bench starts.
void add_bench_worker_command(CLI::App& app, int& exit_code);

}  // namespace jobsmith::apps
