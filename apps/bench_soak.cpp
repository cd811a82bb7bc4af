// `jobsmith bench --embedded --soak DURATION`: a steady load for a long
// time, to see what grows with history (apps/bench.hpp).
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "actors/engine.hpp"
#include "apps/bench.hpp"
#include "events/time_text.hpp"

namespace jobsmith::apps {

namespace {

using steady = std::chrono::steady_clock;

long resident_mb() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6)) / 1024;
  return -1;
}

/// Bytes of the files under `dir` (0 when it does not exist).
std::uint64_t tree_bytes(const std::filesystem::path& dir) {
  std::error_code ec;
  std::uint64_t total = 0;
  if (!std::filesystem::exists(dir, ec)) return 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) total += it->file_size(size_ec);
  }
  return total;
}

struct reading {
  double minute = 0;
  std::uint64_t submitted = 0;
  std::uint64_t done = 0;
  long rss_mb = 0;
  std::uint64_t data_bytes = 0;
  std::uint64_t archive_bytes = 0;
  std::uint64_t live = 0;
  std::uint64_t row_slots = 0;
  std::uint64_t released = 0;
};

}  // namespace

int run_embedded_soak(const embedded_bench_options& o) {
  auto dir = o.data_dir;
  bool remove_dir = false;
  if (dir.empty()) {
    dir = (std::filesystem::temp_directory_path() /
           ("jobsmith-soak-" + std::to_string(::getpid())))
              .string();
    remove_dir = true;
  }
  const std::uint64_t rate = o.rate > 0 ? o.rate : 1000;

  engine_options opts = bench_engine_options(o, dir);
  opts.in_memory = false;  // the soak measures the data directory
  opts.retention = retention_policy{o.soak_retention, o.soak_retention};
  std::atomic<std::uint64_t> done{0};
  opts.handlers.add("noop", [&](job_context&) {
    done.fetch_add(1, std::memory_order_relaxed);
    return outcome::success();
  });
  auto opened = engine::open(std::move(opts));
  if (!opened) {
    std::fprintf(stderr, "bench: %s\n", opened.error().to_string().c_str());
    return 1;
  }
  auto& eng = *opened.value();

  std::printf("jobsmith bench --embedded --soak %s: %llu jobs/s, one per submit call, "
              "retention %s, data %s\n",
              format_duration(o.soak).c_str(), static_cast<unsigned long long>(rate),
              format_duration(o.soak_retention).c_str(), dir.c_str());
  std::printf("%7s %10s %10s %8s %10s %10s %8s %10s %10s\n", "minute", "submitted", "done",
              "RSS MB", "data MB", "archive MB", "live", "row slots", "let go");
  std::fflush(stdout);

  // Producers as in the rated bench: each submits one job every
  // `interval`, staggered, so the offered rate is steady.
  const auto started = steady::now();
  const auto until = started + std::chrono::milliseconds(o.soak);
  const std::uint32_t producer_count =
      std::max<std::uint32_t>(o.producers, static_cast<std::uint32_t>(rate / 250));
  const std::chrono::nanoseconds interval{static_cast<std::int64_t>(
      1e9 * static_cast<double>(producer_count) / static_cast<double>(rate))};
  std::atomic<std::uint64_t> submitted{0};
  std::atomic<bool> failed{false};
  auto producer = [&](std::uint32_t k) {
    auto due = started + interval * k / producer_count;
    std::vector<job_submitted> spec(1);
    spec[0].kind = "noop";
    spec[0].payload = R"({"soak":true})";
    while (!failed && due < until) {
      std::this_thread::sleep_until(due);
      due += interval;
      for (;;) {
        auto ids = eng.submit_many(spec);
        if (ids) break;
        if (ids.error().code != engine_errc::overloaded) {
          std::fprintf(stderr, "bench: submit failed: %s\n", ids.error().to_string().c_str());
          failed = true;
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      submitted.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::vector<std::thread> producers;
  for (std::uint32_t k = 0; k < producer_count; ++k) producers.emplace_back(producer, k);

  std::vector<reading> readings;
  auto take = [&] {
    reading r;
    r.minute = std::chrono::duration<double>(steady::now() - started).count() / 60.0;
    r.submitted = submitted.load();
    r.done = done.load();
    r.rss_mb = resident_mb();
    r.data_bytes = tree_bytes(dir);
    r.archive_bytes = tree_bytes(std::filesystem::path(dir) / "archive");
    if (auto counts = eng.counts())
      for (std::size_t s = 0; s < counts->size(); ++s)
        if (!is_terminal(static_cast<job_state>(s))) r.live += (*counts)[s];
    if (auto rows = eng.rows()) {
      r.row_slots = rows->slots;
      r.released = rows->released;
    }
    std::printf("%7.1f %10llu %10llu %8ld %10.1f %10.1f %8llu %10llu %10llu\n", r.minute,
                static_cast<unsigned long long>(r.submitted),
                static_cast<unsigned long long>(r.done), r.rss_mb, r.data_bytes / 1e6,
                r.archive_bytes / 1e6, static_cast<unsigned long long>(r.live),
                static_cast<unsigned long long>(r.row_slots),
                static_cast<unsigned long long>(r.released));
    std::fflush(stdout);
    readings.push_back(r);
  };
  auto next = started + std::chrono::milliseconds(o.soak_report_every);
  while (!failed && next <= until) {
    std::this_thread::sleep_until(next);
    take();
    next += std::chrono::milliseconds(o.soak_report_every);
  }
  for (auto& t : producers) t.join();
  if (readings.empty() || readings.back().minute * 60'000 < static_cast<double>(o.soak) - 1'000)
    take();

  // Flat: the last reading against the one at minute 3 (or the first after).
  const reading* base = nullptr;
  for (auto& r : readings)
    if (r.minute >= 3.0 - 1e-6) {
      base = &r;
      break;
    }
  if (base != nullptr && base != &readings.back()) {
    auto& last = readings.back();
    std::printf("last against minute %.1f: RSS x%.2f, data x%.2f\n", base->minute,
                static_cast<double>(last.rss_mb) / static_cast<double>(std::max(base->rss_mb, 1L)),
                static_cast<double>(last.data_bytes) /
                    static_cast<double>(std::max<std::uint64_t>(base->data_bytes, 1)));
  }
  eng.close();
  if (remove_dir) std::filesystem::remove_all(dir);
  return failed ? 1 : 0;
}

}  // namespace jobsmith::apps
