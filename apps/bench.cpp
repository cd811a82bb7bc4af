#include "apps/bench.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "actors/engine.hpp"
#include "events/codec.hpp"
#include "store/rocksdb_log.hpp"

namespace jobsmith::apps {

namespace {

using steady = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}

/// Reads "i" and "t" from the bench's own payload {"i":N,"t":NS} without a
/// JSON parser: the handler must cost next to nothing.
bool parse_payload(const std::string& p, std::uint64_t& index, std::int64_t& t) {
  auto i = p.find("\"i\":");
  auto tt = p.find("\"t\":");
  if (i == std::string::npos || tt == std::string::npos) return false;
  index = std::strtoull(p.c_str() + i + 4, nullptr, 10);
  t = std::strtoll(p.c_str() + tt + 4, nullptr, 10);
  return true;
}

double percentile(std::vector<std::int64_t>& v, double q) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]) / 1e6;
}

/// CPU seconds this process has used so far, user and system.
std::pair<double, double> process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return {secs(ru.ru_utime), secs(ru.ru_stime)};
}

long peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;  // kB on Linux
}

}  // namespace

engine_options bench_engine_options(const embedded_bench_options& o, const std::string& dir) {
  engine_options opts;
  opts.data_dir = dir;
  opts.in_memory = o.in_memory;
  opts.worker_threads = o.worker_threads;
  opts.scheduler_threads = o.scheduler_threads;
  opts.scheduler_policy = o.scheduler_policy;
  opts.commit_delay = std::chrono::microseconds(o.commit_delay_us);
  opts.quiet_timer_clock = !o.stock_clock;
  opts.worker_slots = o.worker_slots;
  opts.max_inflight_submits = std::max<std::size_t>(100'000, o.batch * o.producers * 2);
  return opts;
}

int run_embedded_bench(const embedded_bench_options& o) {
  auto dir = o.data_dir;
  bool remove_dir = false;
  if (dir.empty() && !o.in_memory) {
    dir = (std::filesystem::temp_directory_path() /
           ("jobsmith-bench-" + std::to_string(::getpid())))
              .string();
    remove_dir = true;
  }

  std::vector<std::int64_t> start_latency(o.jobs, -1);
  std::atomic<std::uint64_t> handled{0};

  engine_options opts = bench_engine_options(o, dir);
  opts.handlers.add("noop", [&](job_context& ctx) {
    std::uint64_t index = 0;
    std::int64_t t = 0;
    if (parse_payload(ctx.payload(), index, t) && index < start_latency.size())
      start_latency[index] = now_ns() - t;
    handled.fetch_add(1, std::memory_order_relaxed);
    return outcome::success();
  });

  auto opened = engine::open(std::move(opts));
  if (!opened) {
    std::fprintf(stderr, "bench: %s\n", opened.error().to_string().c_str());
    return 1;
  }
  auto& eng = *opened.value();

  // Completion is the committed job.succeeded event, not the handler's return.
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t succeeded = 0;
  auto sub = eng.subscribe([&](const event& ev) {
    if (std::holds_alternative<job_succeeded>(ev.body)) {
      std::lock_guard<std::mutex> g{mu};
      if (++succeeded == o.jobs) cv.notify_all();
    }
  });

  auto before = eng.metrics();
  std::FILE* ack = o.ack_file.empty() ? nullptr : std::fopen(o.ack_file.c_str(), "a");
  std::mutex ack_mu;
  std::atomic<std::uint64_t> next{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<bool> failed{false};
  auto started = steady::now();
  auto cpu_at_start = process_cpu_seconds();

  // At a given rate, jobs arrive one per submit call, as from many clients:
  // enough producers that each waits ~4 ms between its submits, so a submit
  // call's own fsync wait (about 1 ms) never holds the rate back.
  std::uint32_t producer_count = o.producers;
  if (o.rate > 0)
    producer_count = std::max<std::uint32_t>(o.producers, static_cast<std::uint32_t>(o.rate / 250));
  auto producer = [&](std::uint32_t k) {
    std::uint64_t batch = o.batch;
    std::chrono::nanoseconds interval{0};
    if (o.rate > 0) {
      batch = 1;
      interval = std::chrono::nanoseconds(static_cast<std::int64_t>(
          1e9 * static_cast<double>(producer_count) / static_cast<double>(o.rate)));
    }
    auto due = steady::now() + interval * k / producer_count;
    while (!failed) {
      auto first = next.fetch_add(batch);
      if (first >= o.jobs) break;
      auto count = std::min<std::uint64_t>(batch, o.jobs - first);
      if (o.rate > 0) {
        std::this_thread::sleep_until(due);
        due += interval;
      }
      std::vector<job_submitted> specs(count);
      auto t = now_ns();
      for (std::uint64_t i = 0; i < count; ++i) {
        specs[i].kind = "noop";
        specs[i].payload =
            "{\"i\":" + std::to_string(first + i) + ",\"t\":" + std::to_string(t) + "}";
      }
      for (;;) {
        auto ids = eng.submit_many(specs);
        if (ids) {
          if (ack) {
            std::lock_guard<std::mutex> g{ack_mu};
            for (auto id : *ids) std::fprintf(ack, "%llu\n", static_cast<unsigned long long>(id));
            std::fflush(ack);  // in the page cache: survives SIGKILL of this process
          }
          break;
        }
        if (ids.error().code != engine_errc::overloaded) {
          std::fprintf(stderr, "bench: submit failed: %s\n", ids.error().to_string().c_str());
          failed = true;
          return;
        }
        refused.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  };
  std::vector<std::thread> producers;
  for (std::uint32_t k = 0; k < producer_count; ++k) producers.emplace_back(producer, k);
  for (auto& t : producers) t.join();
  auto submitted_at = steady::now();
  {
    std::unique_lock<std::mutex> lock{mu};
    cv.wait_for(lock, std::chrono::minutes(10), [&] { return succeeded >= o.jobs || failed; });
  }
  auto finished = steady::now();
  auto cpu_at_end = process_cpu_seconds();
  auto after = eng.metrics();
  sub.cancel();

  std::vector<std::int64_t> lat;
  lat.reserve(o.jobs);
  for (auto v : start_latency)
    if (v >= 0) lat.push_back(v);
  double secs = std::chrono::duration<double>(finished - started).count();
  double submit_secs = std::chrono::duration<double>(submitted_at - started).count();
  auto events = after.journal_events - before.journal_events;
  auto batches = after.journal_batches - before.journal_batches;

  std::printf("jobsmith bench --embedded: %llu no-op jobs, %s, %zu handler threads, %u slots%s%s\n",
              static_cast<unsigned long long>(o.jobs),
              o.rate ? ("one per submit at " + std::to_string(o.rate) + " jobs/s from " +
                        std::to_string(producer_count) + " threads")
                           .c_str()
                     : ("batches of " + std::to_string(o.batch) + " from " +
                        std::to_string(producer_count) + " threads")
                           .c_str(),
              o.worker_threads, o.worker_slots, o.in_memory ? ", IN-MEMORY LOG (no fsync)" : "",
              o.stock_clock ? ", CAF's stock timer clock" : "");
  if (o.scheduler_policy != "lean")
    std::printf("  (CAF's %s scheduler policy)\n", o.scheduler_policy.c_str());
  std::printf("  completed       %llu of %llu (succeeded events committed)\n",
              static_cast<unsigned long long>(succeeded), static_cast<unsigned long long>(o.jobs));
  std::printf("  end to end      %.2f s  ->  %.0f jobs/s\n", secs, succeeded / secs);
  std::printf("  submitting      %.2f s  ->  %.0f jobs/s offered\n", submit_secs,
              o.jobs / submit_secs);
  std::printf("  events fsynced  %llu in %llu group commits (mean %.0f events/commit, max %llu), "
              "%.0f events/s\n",
              static_cast<unsigned long long>(events), static_cast<unsigned long long>(batches),
              batches ? static_cast<double>(events) / static_cast<double>(batches) : 0.0,
              static_cast<unsigned long long>(after.journal_max_batch), events / secs);
  std::printf("  commit latency  mean %.2f ms, max %.2f ms\n", after.journal_mean_write_ms,
              after.journal_max_write_ms);
  std::printf("  submit->start   p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%zu samples)\n",
              percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 1.0), lat.size());
  std::printf("  overload waits  %llu\n", static_cast<unsigned long long>(refused.load()));
  // The whole process from first submit to last commit, the bench's own
  // threads included: what the end-to-end figure cost on this host.
  double user = cpu_at_end.first - cpu_at_start.first;
  double sys = cpu_at_end.second - cpu_at_start.second;
  std::printf("  CPU             %.2f s (user %.2f, system %.2f): %.1f us/job, %.2f cores busy\n",
              user + sys, user, sys, succeeded ? 1e6 * (user + sys) / succeeded : 0.0,
              secs > 0 ? (user + sys) / secs : 0.0);
  std::printf("  peak RSS        %ld MB\n", peak_rss_mb());

  eng.close();
  if (ack) std::fclose(ack);
  if (remove_dir) std::filesystem::remove_all(dir);
  return succeeded == o.jobs ? 0 : 1;
}

int run_log_bench(const log_bench_options& o) {
  auto dir = o.data_dir;
  bool remove_dir = dir.empty();
  if (remove_dir)
    dir = (std::filesystem::temp_directory_path() /
           ("jobsmith-logbench-" + std::to_string(::getpid())))
              .string();
  std::unique_ptr<store::event_log> log;
  auto st = store::open_rocksdb_log(dir, {}, &log);
  if (!st.is_ok()) {
    std::fprintf(stderr, "bench: %s\n", st.to_string().c_str());
    return 1;
  }
  // Events as the engine writes them: each batch holds the submissions of
  // new jobs, the starts of the previous batch's jobs and the successes of
  // the batch before that.
  auto make = [](job_id job, int phase) {
    event ev;
    ev.job = job;
    ev.time = 1'795'000'000'000 + static_cast<millis>(job);
    ev.principal = phase == 0 ? "embedded" : phase == 1 ? "engine" : "worker:local:1a2b3c4d";
    if (phase == 0) {
      job_submitted s;
      s.kind = "noop";
      s.payload = "{\"i\":" + std::to_string(job) + ",\"t\":1795000000000000000}";
      ev.body = s;
    } else if (phase == 1) {
      ev.body = job_started{1, "local:1a2b3c4d", job * 2654435761u};
    } else {
      ev.body = job_succeeded{1, "null"};
    }
    return ev;
  };
  std::vector<double> batch_ms;
  std::vector<store::record_input> records;
  std::uint64_t written = 0;
  std::uint64_t bytes = 0;
  auto per_phase = std::max<std::uint64_t>(1, o.batch / 3);
  job_id next_job = 1;
  auto started = steady::now();
  while (written < o.events) {
    records.clear();
    for (int phase = 2; phase >= 0; --phase) {
      // phase p covers jobs submitted p batches ago
      auto first = next_job > per_phase * static_cast<std::uint64_t>(phase)
                       ? next_job - per_phase * static_cast<std::uint64_t>(phase)
                       : 0;
      for (std::uint64_t k = 0; k < per_phase && first > 0; ++k) {
        if (phase > 0 && first + k >= next_job) break;
        store::record_input r;
        r.job = first + k;
        encode_to(make(first + k, phase), r.body);
        bytes += r.body.size();
        records.push_back(std::move(r));
      }
    }
    next_job += per_phase;
    auto t0 = steady::now();
    sequence_t seq = 0;
    auto s = log->append(records, &seq);
    if (!s.is_ok()) {
      std::fprintf(stderr, "bench: append: %s\n", s.to_string().c_str());
      return 1;
    }
    batch_ms.push_back(std::chrono::duration<double, std::milli>(steady::now() - t0).count());
    written += records.size();
  }
  double secs = std::chrono::duration<double>(steady::now() - started).count();
  std::sort(batch_ms.begin(), batch_ms.end());
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  std::printf("jobsmith bench --log: %llu events in fsynced batches of ~%llu, %.0f bytes/event\n",
              static_cast<unsigned long long>(written), static_cast<unsigned long long>(o.batch),
              static_cast<double>(bytes) / static_cast<double>(written));
  std::printf("  %.2f s -> %.0f events/s; append p50 %.2f ms, p99 %.2f ms; CPU %.1f us/event\n",
              secs, static_cast<double>(written) / secs, batch_ms[batch_ms.size() / 2],
              batch_ms[batch_ms.size() * 99 / 100], cpu * 1e6 / static_cast<double>(written));
  log.reset();
  if (remove_dir) std::filesystem::remove_all(dir);
  return 0;
}

int run_check_recovery(const std::string& data_dir, const std::string& acked_file,
                       int drain_seconds) {
  std::vector<job_id> acked;
  if (std::FILE* f = std::fopen(acked_file.c_str(), "r")) {
    unsigned long long id = 0;
    while (std::fscanf(f, "%llu", &id) == 1) acked.push_back(id);
    std::fclose(f);
  }
  engine_options opts;
  opts.data_dir = data_dir;
  opts.handlers.add("noop", [](job_context&) { return outcome::success(); });
  auto opened = engine::open(std::move(opts));
  if (!opened) {
    std::fprintf(stderr, "check-recovery: %s\n", opened.error().to_string().c_str());
    return 1;
  }
  auto& eng = *opened.value();
  auto& rec = eng.recovered();
  std::size_t missing = 0;
  for (auto id : acked) {
    auto view = eng.get(id);
    if (!view) {
      if (++missing <= 5)
        std::printf("MISSING acknowledged job %llu: %s\n", static_cast<unsigned long long>(id),
                    view.error().to_string().c_str());
    }
  }
  // Drain: every job must reach a terminal state; none may stay running.
  auto deadline = steady::now() + std::chrono::seconds(drain_seconds);
  std::vector<std::size_t> counts;
  for (;;) {
    auto c = eng.counts();
    if (c) counts = *c;
    auto live = counts.empty() ? 1
                               : counts[static_cast<std::size_t>(job_state::scheduled)] +
                                     counts[static_cast<std::size_t>(job_state::queued)] +
                                     counts[static_cast<std::size_t>(job_state::running)];
    if (live == 0 || steady::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto at = [&](job_state s) { return counts.empty() ? 0 : counts[static_cast<std::size_t>(s)]; };
  std::printf("check-recovery: replayed %llu events in %.3f s; %zu acknowledged, %zu missing; "
              "after drain: %zu succeeded, %zu running, %zu waiting\n",
              static_cast<unsigned long long>(rec.events_replayed), rec.seconds, acked.size(),
              missing, at(job_state::succeeded), at(job_state::running),
              at(job_state::scheduled) + at(job_state::queued));
  bool ok = missing == 0 && at(job_state::running) == 0 &&
            at(job_state::scheduled) + at(job_state::queued) == 0;
  eng.close();
  return ok ? 0 : 1;
}

}  // namespace jobsmith::apps
