// What both processes of `jobsmith bench --url` share: one wall clock,
// percentiles, another process's CPU and memory from /proc, and the worker
// process itself (this same binary, `jobsmith bench-worker`).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace jobsmith::apps {

/// Wall clock in microseconds: the producer and the worker process compare
/// their readings, so it must be one clock for both (same host).
std::int64_t wall_us();

/// The q-quantile of `v`, divided by `unit_per_ms`; 0 when empty.
double percentile_ms(std::vector<std::int64_t> v, double q, double unit_per_ms);

/// CPU seconds (user + system) a process used so far, from /proc; -1 if unknown.
double process_cpu_seconds(long pid);

/// CPU seconds of this process (RUSAGE_SELF) or its waited-for children.
double rusage_seconds(int who);

/// VmHWM of a process in MB, or -1.
long peak_rss_mb(long pid);

/// The worker process: `jobsmith bench-worker ARGS...` from this same
/// binary, its stdout on a pipe; JOBSMITH_TOKEN set to `token` (the
/// environment, not a command line `ps` shows).
struct worker_process {
  pid_t pid = -1;
  std::FILE* out = nullptr;

  bool start(const std::vector<std::string>& worker_args, const std::string& token);
  /// The next line of its stdout ("" at EOF).
  std::string line();
  /// Waits for it; its exit status (128 + signal when killed).
  int wait();
};

}  // namespace jobsmith::apps
