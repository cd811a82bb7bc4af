// `jobsmith bench-worker` (hidden): the worker process of `bench --url`.
// Its threads lease no-op jobs from one queue and complete them, in batches
// (the batch shape) or one job per lease and one complete call per job (the
// single shape), until the producer's job count is done; then one JSON line
// of figures on stdout.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/client/bench_support.hpp"
#include "apps/client/bench_url.hpp"
#include "apps/client/http_client.hpp"
#include "apps/client/verb_support.hpp"

namespace jobsmith::apps {

namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

/// Slim answers (docs/api.md): a leased job as a worker needs it, the new
/// state after a complete, as `jobsmith work` asks for them.
const http::headers minimal_answers = {{"Prefer", "return=minimal"}};

struct bench_worker_options {
  std::string url;
  std::string token;
  std::string queue;
  std::uint64_t jobs = 0;  // stop after completing this many
  std::uint32_t threads = 4;
  std::uint32_t lease_batch = 500;
  std::uint32_t max_seconds = 600;
  /// One job per lease call, each completed by its own
  /// POST /v1/jobs/{id}/complete (the single shape); else batches.
  bool single = false;
  /// Single shape: each complete also leases the next job (lease_next).
  bool lease_next = false;
};

std::atomic<bool> worker_stop{false};
extern "C" void on_worker_signal(int) { worker_stop.store(true); }

/// Leases and completes no-op jobs until `jobs` completed; prints one JSON
/// line of results on stdout ({"ready":true} first, once every thread made
/// its first call).
int run_bench_worker(const bench_worker_options& o) {
  struct sigaction sa {};
  sa.sa_handler = on_worker_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  std::string error;
  auto u = http::url::parse(o.url, &error);
  if (!u) {
    std::fprintf(stderr, "bench-worker: %s\n", error.c_str());
    return exit_usage;
  }
  auto parent = ::getppid();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.max_seconds);
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::int64_t> last_complete_us{0};
  std::atomic<std::uint32_t> ready{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::vector<std::int64_t> received_us;  // worker holds the job - producer's submit time
  std::uint64_t lease_calls = 0, leased = 0;

  auto worker = [&](std::uint32_t k) {
    http::client c(*u, o.token, std::chrono::seconds(30));
    std::vector<std::int64_t> my_received;
    std::uint64_t my_calls = 0, my_leased = 0;
    bool first = true;
    auto finished = [&] {
      return completed.load() >= o.jobs || worker_stop.load() || failed.load() ||
             ::getppid() != parent || std::chrono::steady_clock::now() > deadline;
    };
    while (first || !finished()) {
      json req = {{"worker", "bench-" + std::to_string(::getpid()) + "-" + std::to_string(k)},
                  {"queues", {o.queue}},
                  {"max_jobs", o.single ? 1u : o.lease_batch},
                  {"wait_ms", first ? 0 : 1000}};
      auto r = c.request("POST", "/v1/workers/lease", req.dump(), minimal_answers);
      ++my_calls;
      if (first) {
        first = false;
        ready.fetch_add(1);
      }
      auto now = wall_us();
      if (r.status != 200) {
        if (r.status == 429 || r.status == 503) {
          refused.fetch_add(1);
          std::this_thread::sleep_for(milliseconds(5));
          continue;
        }
        std::fprintf(stderr, "bench-worker: lease: HTTP %d %s %s\n", r.status,
                     r.transport_error.c_str(), r.body.substr(0, 200).c_str());
        failed = true;
        break;
      }
      auto a = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
      if (!a.is_object() || !a.contains("jobs") || a["jobs"].empty()) continue;
      json results = json::array();
      for (auto& job : a["jobs"]) {
        ++my_leased;
        auto& p = job["payload"];
        if (p.is_object() && p.contains("t")) {
          auto t = p["t"].get<std::int64_t>();
          my_received.push_back(now - t);
        }
        results.push_back(
            {{"id", job["id"]}, {"lease_token", job["lease_token"]}, {"result", nullptr}});
      }
      if (o.single) {
        // One call per job, as a worker of any other queue would; with
        // --lease-next that call also takes the next job.
        std::deque<json> todo(results.begin(), results.end());
        while (!todo.empty()) {
          auto item = std::move(todo.front());
          todo.pop_front();
          std::string path = "/v1/jobs/" + std::to_string(item["id"].get<std::uint64_t>()) + "/complete";
          json body = {{"lease_token", item["lease_token"]}, {"result", nullptr}};
          if (o.lease_next)
            body["lease_next"] = {{"worker", req["worker"]}, {"queues", {o.queue}}, {"max_jobs", 1}};
          auto cr = c.request("POST", path, body.dump(), minimal_answers);
          while (cr.status == 429 || cr.status == 503) {
            refused.fetch_add(1);
            std::this_thread::sleep_for(milliseconds(5));
            cr = c.request("POST", path, body.dump(), minimal_answers);
          }
          if (cr.status != 200) {
            std::fprintf(stderr, "bench-worker: complete: HTTP %d %s %s\n", cr.status,
                         cr.transport_error.c_str(), cr.body.substr(0, 200).c_str());
            failed = true;
            break;
          }
          last_complete_us.store(wall_us());
          completed.fetch_add(1);
          if (!o.lease_next) continue;
          auto got = wall_us();
          auto answer = json::parse(cr.body, nullptr, /*allow_exceptions=*/false);
          if (!answer.is_object() || !answer.contains("jobs")) continue;
          for (auto& job : answer["jobs"]) {
            ++my_leased;
            auto& p = job["payload"];
            if (p.is_object() && p.contains("t")) my_received.push_back(got - p["t"].get<std::int64_t>());
            todo.push_back({{"id", job["id"]}, {"lease_token", job["lease_token"]}});
          }
        }
        continue;
      }
      for (;;) {
        auto cr = c.post("/v1/workers/complete", {{"results", results}});
        if (cr.status == 429 || cr.status == 503) {
          refused.fetch_add(1);
          std::this_thread::sleep_for(milliseconds(5));
          continue;
        }
        if (cr.status != 200) {
          std::fprintf(stderr, "bench-worker: complete: HTTP %d %s %s\n", cr.status,
                       cr.transport_error.c_str(), cr.body.substr(0, 200).c_str());
          failed = true;
          break;
        }
        // Each item echoes the whole job; parsing them all cost the worker
        // as much CPU as the leases. No job of the bench holds the text
        // "status":200 (payload {"i","t"}, result null), so count it instead.
        std::uint64_t ok = 0;
        for (auto p = cr.body.find("\"status\":200"); p != std::string::npos;
             p = cr.body.find("\"status\":200", p + 1))
          ++ok;
        if (ok != results.size())
          std::fprintf(stderr, "bench-worker: %zu of %zu completions refused\n",
                       results.size() - static_cast<std::size_t>(ok), results.size());
        last_complete_us.store(wall_us());
        completed.fetch_add(ok);
        break;
      }
    }
    std::lock_guard<std::mutex> g{mu};
    received_us.insert(received_us.end(), my_received.begin(), my_received.end());
    lease_calls += my_calls;
    leased += my_leased;
  };
  std::vector<std::thread> threads;
  for (std::uint32_t k = 0; k < o.threads; ++k) threads.emplace_back(worker, k);
  while (ready.load() < o.threads && !failed.load()) std::this_thread::sleep_for(milliseconds(1));
  std::printf("{\"ready\":true}\n");
  std::fflush(stdout);
  for (auto& t : threads) t.join();
  json out = {{"completed", completed.load()},
              {"last_complete_us", last_complete_us.load()},
              {"refused", refused.load()},
              {"lease_calls", lease_calls},
              {"leased", leased},
              {"received_p50_ms", percentile_ms(received_us, 0.5, 1000)},
              {"received_p99_ms", percentile_ms(received_us, 0.99, 1000)},
              {"received_max_ms", percentile_ms(received_us, 1.0, 1000)},
              {"samples", received_us.size()}};
  std::printf("%s\n", out.dump().c_str());
  std::fflush(stdout);
  return failed.load() ? exit_failure : exit_ok;
}

}  // namespace

void add_bench_worker_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<bench_worker_options>();
  // Hidden (empty group): started by `bench --url`, not by people.
  auto* cmd = app.add_subcommand("bench-worker", "the worker process of bench --url");
  cmd->group("");
  cmd->add_option("--url", o->url)->required();
  cmd->add_option("--token", o->token)->envname("JOBSMITH_TOKEN");
  cmd->add_option("--queue", o->queue)->required();
  cmd->add_option("--jobs", o->jobs)->required();
  cmd->add_option("--threads", o->threads);
  cmd->add_option("--lease-batch", o->lease_batch);
  cmd->add_option("--max-seconds", o->max_seconds);
  cmd->add_flag("--single", o->single);
  cmd->add_flag("--lease-next", o->lease_next);
  int* code = &exit_code;
  cmd->callback([o, code] { *code = run_bench_worker(*o); });
}

}  // namespace jobsmith::apps
