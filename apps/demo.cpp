#include "apps/demo.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "actors/engine.hpp"

namespace jobsmith::apps {

namespace {

/// Counts how many handlers hold a resource at once: the demo's proof that
/// overlapping resource sets never run together.
struct occupancy {
  std::atomic<int> now{0};
  std::atomic<int> peak{0};
  void enter() {
    auto n = ++now;
    auto p = peak.load();
    while (n > p && !peak.compare_exchange_weak(p, n)) {
    }
  }
  void leave() { --now; }
};

}  // namespace

int run_demo(const demo_options& o) {
  occupancy charts_writers;  // exclusive holders of db:charts
  std::atomic<int> finalized{0};
  std::mutex rng_mu;
  std::mt19937 rng{42};
  auto chance = [&](double p) {
    std::lock_guard<std::mutex> g{rng_mu};
    return std::uniform_real_distribution<double>(0, 1)(rng) < p;
  };

  engine_options opts;
  opts.data_dir = o.data_dir;
  opts.worker_threads = 4;
  opts.worker_slots = 16;
  opts.progress_flush = std::chrono::milliseconds(50);
  // Sends "mail"; a flaky server fails a third of the attempts.
  opts.handlers.add("email", [&](job_context& ctx) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (chance(0.33)) return outcome::retry("smtp: 421 try again later");
    ctx.info("sent");
    return outcome::success(R"({"delivered":true})");
  });
  // Imports charts: holds db:charts exclusively, stages data for review.
  opts.handlers.add(
      "import",
      [&](job_context& ctx) {
        charts_writers.enter();
        for (int p = 25; p <= 100; p += 25) {
          std::this_thread::sleep_for(std::chrono::milliseconds(3));
          ctx.progress(p, "importing");
        }
        charts_writers.leave();
        ctx.info("staged " + ctx.payload());
        return outcome::success(R"({"rows":1200})");
      },
      [&](job_id, const std::string&, const std::string&) { ++finalized; });
  // Reads db:charts (shared): reports run together, never beside an import.
  opts.handlers.add("report", [&](job_context&) {
    if (charts_writers.now.load() != 0) return outcome::permanent("ran beside an import");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return outcome::success();
  });
  // Always fails for good.
  opts.handlers.add("poison", [](job_context& ctx) {
    ctx.error("cannot parse input");
    return outcome::permanent("input is malformed");
  });
  opts.handlers.add("cleanup", [](job_context&) { return outcome::success(); });

  auto opened = engine::open(std::move(opts));
  if (!opened) {
    std::fprintf(stderr, "demo: cannot open %s: %s\n", o.data_dir.c_str(),
                 opened.error().to_string().c_str());
    return 1;
  }
  auto& eng = *opened.value();
  auto& rec = eng.recovered();
  std::printf("jobsmith demo: data in %s; recovered %llu events, %llu live jobs in %.3f s\n",
              o.data_dir.c_str(), static_cast<unsigned long long>(rec.events_replayed),
              static_cast<unsigned long long>(rec.live_jobs), rec.seconds);

  std::vector<job_submitted> specs;
  for (int i = 0; i < o.jobs; ++i) {
    job_submitted s;
    switch (i % 10) {
      case 0:
      case 1:
        s.kind = "import";
        s.queue = "imports";
        s.resources = {{"db:charts", lock_mode::exclusive}};
        s.review_required = true;
        break;
      case 2:
      case 3:
      case 4:
        s.kind = "report";
        s.queue = "reports";
        s.resources = {{"db:charts", lock_mode::shared}};
        break;
      default:
        s.kind = "email";
        s.queue = "mail";
        s.priority = i % 3;
        s.retry.initial_interval = 5;
        s.retry.max_attempts = 5;
        break;
    }
    s.payload = "{\"n\":" + std::to_string(i) + "}";
    specs.push_back(std::move(s));
  }
  job_submitted poison;
  poison.kind = "poison";
  specs.push_back(poison);
  job_submitted cleanup;
  cleanup.kind = "cleanup";
  cleanup.unique_key = "nightly-cleanup";
  cleanup.recur.interval = 1000;
  specs.push_back(cleanup);

  auto ids = eng.submit_many(specs);
  if (!ids) {
    std::fprintf(stderr, "demo: submit: %s\n", ids.error().to_string().c_str());
    return 1;
  }
  std::printf("submitted %zu jobs (fsynced before this line)\n", ids->size());
  auto again = eng.submit(cleanup);
  std::printf("submitting the recurring cleanup again returns the live job: %llu == %llu\n",
              static_cast<unsigned long long>(again ? *again : 0),
              static_cast<unsigned long long>(ids->back()));

  // Review imports as they arrive: accept most, decline every third.
  std::map<job_state, std::size_t> last;
  for (int round = 0; round < 600; ++round) {
    job_filter pending;
    pending.states_in = {job_state::pending_review};
    pending.limit = 1000;
    if (auto list = eng.list(pending)) {
      for (auto& job : *list) {
        bool accept = job.id % 3 != 0;
        auto r = eng.review(job.id, accept, accept ? "looks right" : "numbers off", "user:demo");
        if (!r) std::printf("review %llu: %s\n", static_cast<unsigned long long>(job.id),
                            r.error().to_string().c_str());
      }
    }
    job_filter live;
    live.states_in = {job_state::scheduled, job_state::queued, job_state::running,
                      job_state::pending_review};
    live.limit = 10;
    auto waiting = eng.list(live);
    if (waiting && waiting->size() <= 1) break;  // only the recurring cleanup's next run
    if (round == 3 && waiting) {
      for (auto& job : *waiting)
        if (auto why = eng.explain(job.id); why && why->phase == "locking") {
          std::printf("why is job %llu not running? %s\n",
                      static_cast<unsigned long long>(job.id), why->text.c_str());
          break;
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  auto counts = eng.counts();
  std::printf("\njobs by state:\n");
  if (counts)
    for (int s = 0; s < job_state_count; ++s)
      if ((*counts)[static_cast<std::size_t>(s)] > 0)
        std::printf("  %-15s %zu\n", std::string{to_string(static_cast<job_state>(s))}.c_str(),
                    (*counts)[static_cast<std::size_t>(s)]);
  std::size_t retried = 0;
  job_filter emails;
  emails.kind = "email";
  emails.limit = 100000;
  if (auto list = eng.list(emails))
    for (auto& job : *list)
      if (job.attempts > 1) ++retried;
  std::printf("emails that needed more than one attempt: %zu\n", retried);
  std::printf("imports holding db:charts at once, at most: %d (exclusive lock)\n",
              charts_writers.peak.load());
  std::printf("imports finalized by the on-accept hook: %d\n", finalized.load());
  if (auto p = eng.get(ids->at(ids->size() - 2))) {
    std::printf("the poison job: %s after %u attempt(s): %s\n",
                std::string{to_string(p->job.state)}.c_str(), p->job.attempts,
                p->job.last_error.c_str());
  }
  auto m = eng.metrics();
  std::printf("log: %llu events in %llu group commits, %.1f KB\n",
              static_cast<unsigned long long>(m.head),
              static_cast<unsigned long long>(m.journal_batches), m.log_bytes / 1024.0);
  eng.close();
  return 0;
}

}  // namespace jobsmith::apps
