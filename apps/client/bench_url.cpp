#include "apps/client/bench_url.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "apps/client/bench_support.hpp"
#include "apps/client/verb_support.hpp"

namespace jobsmith::apps {

namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

/// The journal's counters from /metrics: batches (one fsync each) and
/// events written since the server started; zeros when unreadable.
struct journal_counts {
  double batches = 0;
  double events = 0;
};

journal_counts read_journal_counts(http::client& c) {
  journal_counts out;
  auto r = c.get("/metrics");
  if (r.status != 200) return out;
  auto value_of = [&](std::string_view name) {
    std::string key = "\n" + std::string{name} + " ";
    auto at = r.body.find(key);
    return at == std::string::npos ? 0.0 : std::strtod(r.body.c_str() + at + key.size(), nullptr);
  };
  out.batches = value_of("jobsmith_journal_batches_total");
  out.events = value_of("jobsmith_journal_events_total");
  return out;
}

/// A payload of `bytes` bytes of JSON: {"i":N,"t":T,"pad":"xx..."}.
std::string padded_payload(std::uint64_t i, std::int64_t t, std::size_t bytes) {
  std::string p = "{\"i\":" + std::to_string(i) + ",\"t\":" + std::to_string(t) + ",\"pad\":\"";
  std::size_t fill = bytes > p.size() + 2 ? bytes - p.size() - 2 : 0;
  p.append(fill, 'x');
  p += "\"}";
  return p;
}

}  // namespace

int run_url_bench(const url_bench_options& o) {
  std::string error;
  auto u = http::url::parse(o.url, &error);
  if (!u) {
    std::fprintf(stderr, "bench: %s\n", error.c_str());
    return exit_usage;
  }
  const bool single = o.shape == "single";
  if (!single && o.shape != "batch") {
    std::fprintf(stderr, "bench: --shape is single or batch\n");
    return exit_usage;
  }
  if (o.jobs == 0 || o.batch == 0 || o.producers == 0 || o.worker_threads == 0 ||
      o.inflight == 0 || o.consumers == 0) {
    std::fprintf(stderr,
                 "bench: --jobs, --batch, --producers, --worker-threads, --inflight and "
                 "--consumers must be > 0\n");
    return exit_usage;
  }
  connection_options conn{o.url, o.token, false};
  {
    http::client c(*u, o.token, std::chrono::seconds(5));
    auto r = c.get("/readyz");
    if (r.status != 200) {
      if (report_failure(r, conn, "bench") == exit_ok)
        std::fprintf(stderr, "bench: the server is not ready (HTTP %d)\n", r.status);
      return exit_failure;
    }
  }
  // A queue of its own, so other jobs on the server neither run in the
  // bench's worker nor count in its figures.
  std::string queue = "bench-" + std::to_string(::getpid()) + "-" + std::to_string(wall_us());
  std::vector<std::string> worker_args = {
      "--url", o.url, "--queue", queue, "--jobs", std::to_string(o.jobs), "--threads",
      std::to_string(single ? o.consumers : o.worker_threads), "--lease-batch",
      std::to_string(o.lease_batch), "--max-seconds", std::to_string(o.max_seconds)};
  if (single) worker_args.push_back("--single");
  if (single && o.lease_next) worker_args.push_back("--lease-next");
  journal_counts journal_before;
  {
    http::client c(*u, o.token, std::chrono::seconds(5));
    journal_before = read_journal_counts(c);
  }
  worker_process worker;
  if (!worker.start(worker_args, o.token)) {
    std::fprintf(stderr, "bench: cannot start the worker process\n");
    return exit_failure;
  }
  if (worker.line().find("ready") == std::string::npos) {
    std::fprintf(stderr, "bench: the worker process did not start\n");
    worker.wait();
    return exit_failure;
  }

  double server_cpu_before = o.server_pid > 0 ? process_cpu_seconds(o.server_pid) : -1;
  std::atomic<std::uint64_t> next{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<bool> failed{false};
  // Batch shape at a rate: jobs arrive one per submit call, as from many
  // clients, from enough producers that each waits ~4 ms between submits
  // (as the embedded bench). Single shape: `inflight` producers, each with
  // one connection and one request in flight, flat out or paced together.
  std::uint32_t producer_count = o.producers;
  if (single)
    producer_count = o.inflight;
  else if (o.rate > 0)
    producer_count = std::max<std::uint32_t>(o.producers, static_cast<std::uint32_t>(o.rate / 250));
  auto first_submit_us = wall_us();
  auto producer = [&](std::uint32_t k) {
    http::client c(*u, o.token, std::chrono::seconds(30));
    std::uint64_t batch = o.batch;
    std::chrono::nanoseconds interval{0};
    if (single) batch = 1;
    if (o.rate > 0) {
      batch = 1;
      interval = std::chrono::nanoseconds(static_cast<std::int64_t>(
          1e9 * static_cast<double>(producer_count) / static_cast<double>(o.rate)));
    }
    auto due = std::chrono::steady_clock::now() + interval * k / producer_count;
    std::string body;
    while (!failed) {
      auto first = next.fetch_add(batch);
      if (first >= o.jobs) break;
      auto count = std::min<std::uint64_t>(batch, o.jobs - first);
      if (o.rate > 0) {
        std::this_thread::sleep_until(due);
        due += interval;
      }
      auto t = wall_us();
      auto job = [&](std::uint64_t i) {
        return "{\"kind\":\"noop\",\"queue\":\"" + queue +
               "\",\"payload\":{\"i\":" + std::to_string(first + i) +
               ",\"t\":" + std::to_string(t) + "}}";
      };
      if (single) {
        body = "{\"kind\":\"noop\",\"queue\":\"" + queue + "\",\"payload\":" +
               padded_payload(first, t, o.payload_bytes) + "}";
      } else if (o.rate > 0) {
        body = job(0);
      } else {
        body = "{\"jobs\":[";
        for (std::uint64_t i = 0; i < count; ++i) body += (i ? "," : "") + job(i);
        body += "]}";
      }
      for (;;) {
        auto r = c.request("POST", "/v1/jobs", body);
        if (r.status == 201 || r.status == 200) break;
        if (r.status == 429) {
          refused.fetch_add(1);
          std::this_thread::sleep_for(milliseconds(1));
          continue;
        }
        report_failure(r, conn, "bench: submit");
        failed = true;
        return;
      }
    }
  };
  std::vector<std::thread> producers;
  for (std::uint32_t k = 0; k < producer_count; ++k) producers.emplace_back(producer, k);
  for (auto& t : producers) t.join();
  auto submitted_us = wall_us();
  if (failed) ::kill(worker.pid, SIGTERM);
  std::string summary;
  for (std::string l = worker.line(); !l.empty(); l = worker.line()) summary = l;
  int worker_exit = worker.wait();
  double server_cpu = o.server_pid > 0 && server_cpu_before >= 0
                          ? process_cpu_seconds(o.server_pid) - server_cpu_before
                          : -1;
  journal_counts journal_after;
  {
    http::client c(*u, o.token, std::chrono::seconds(5));
    journal_after = read_journal_counts(c);
  }
  auto w = json::parse(summary, nullptr, false);
  if (w.is_discarded() || !w.is_object()) {
    std::fprintf(stderr, "bench: the worker process gave no figures (exit %d)\n", worker_exit);
    return exit_failure;
  }

  // The server's own count for the queue: the succeeded events it committed.
  std::string server_count = "unknown";
  {
    http::client c(*u, o.token, std::chrono::seconds(30));
    auto r = c.get("/v1/queues");
    auto a = r.json();
    if (r.status == 200 && a.contains("queues"))
      for (auto& q : a["queues"])
        if (q.value("name", "") == queue && q.contains("counts"))
          server_count = std::to_string(q["counts"].value("succeeded", 0));
  }

  auto completed = w.value("completed", std::uint64_t{0});
  double secs =
      static_cast<double>(w.value("last_complete_us", std::int64_t{0}) - first_submit_us) / 1e6;
  double submit_secs = static_cast<double>(submitted_us - first_submit_us) / 1e6;
  if (single) {
    std::printf(
        "jobsmith bench --url %s --shape single: %llu no-op jobs; producer: one job per submit "
        "call, %u in flight (%u threads, one connection each)%s, payload %zu bytes; worker "
        "process: %u consumers, %s\n",
        o.url.c_str(), static_cast<unsigned long long>(o.jobs), producer_count, producer_count,
        o.rate ? (", paced to " + std::to_string(o.rate) + " jobs/s").c_str() : ", flat out",
        padded_payload(o.jobs, wall_us(), o.payload_bytes).size(), o.consumers,
        o.lease_next ? "each completing a job with a call that also leases the next (lease_next; "
                       "a lease call only when that found none)"
                     : "each leasing 1 job per call and completing it with its own call");
  } else {
    std::printf(
        "jobsmith bench --url %s --shape batch: %llu no-op jobs, %s; worker process: %u threads, "
        "leases of up to %u, batch completes\n",
        o.url.c_str(), static_cast<unsigned long long>(o.jobs),
        o.rate ? ("one per submit at " + std::to_string(o.rate) + " jobs/s from " +
                  std::to_string(producer_count) + " threads")
                     .c_str()
               : ("batches of " + std::to_string(o.batch) + " from " +
                  std::to_string(producer_count) + " threads")
                     .c_str(),
        o.worker_threads, o.lease_batch);
  }
  std::printf(
      "  completed       %llu of %llu (completions answered 200; server counts %s "
      "succeeded)\n",
      static_cast<unsigned long long>(completed), static_cast<unsigned long long>(o.jobs),
      server_count.c_str());
  if (secs > 0)
    std::printf("  end to end      %.2f s  ->  %.0f jobs/s (first submit to last completion)\n",
                secs, static_cast<double>(completed) / secs);
  std::printf("  submitting      %.2f s  ->  %.0f jobs/s offered\n", submit_secs,
              static_cast<double>(o.jobs) / submit_secs);
  std::printf(
      "  submit->start   p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%llu samples: the "
      "worker holds the leased job)\n",
      w.value("received_p50_ms", 0.0), w.value("received_p99_ms", 0.0),
      w.value("received_max_ms", 0.0),
      static_cast<unsigned long long>(w.value("samples", std::uint64_t{0})));
  std::printf("  lease calls     %llu for %llu jobs; overload answers: %llu submit, %llu worker\n",
              static_cast<unsigned long long>(w.value("lease_calls", std::uint64_t{0})),
              static_cast<unsigned long long>(w.value("leased", std::uint64_t{0})),
              static_cast<unsigned long long>(refused.load()),
              static_cast<unsigned long long>(w.value("refused", std::uint64_t{0})));
  char server_cpu_text[32] = "unknown";
  if (server_cpu >= 0) std::snprintf(server_cpu_text, sizeof server_cpu_text, "%.1f s", server_cpu);
  std::printf("  CPU             server %s, producers %.1f s, worker process %.1f s\n",
              server_cpu_text, rusage_seconds(RUSAGE_SELF), rusage_seconds(RUSAGE_CHILDREN));
  if (server_cpu >= 0 && completed > 0)
    std::printf("  server CPU/job  %.0f us (its user + system time over the run / jobs completed)\n",
                server_cpu * 1e6 / static_cast<double>(completed));
  auto batches = journal_after.batches - journal_before.batches;
  auto events = journal_after.events - journal_before.events;
  if (batches > 0 && completed > 0)
    std::printf("  commits         %.0f fsyncs for %.0f events: %.3f fsyncs per job, %.2f events "
                "per commit\n",
                batches, events, batches / static_cast<double>(completed), events / batches);
  if (o.server_pid > 0) {
    auto mb = peak_rss_mb(o.server_pid);
    if (mb >= 0)
      std::printf("  server peak RSS %ld MB (VmHWM of pid %ld)\n", mb, o.server_pid);
    else
      std::printf("  server peak RSS unknown (cannot read /proc/%ld/status)\n", o.server_pid);
  } else {
    std::printf("  server peak RSS unknown (give --server-pid)\n");
  }
  return completed == o.jobs && !failed && worker_exit == 0 ? exit_ok : exit_failure;
}

}  // namespace jobsmith::apps
