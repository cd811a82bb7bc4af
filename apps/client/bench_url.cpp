#include "apps/client/bench_url.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "apps/client/verb_support.hpp"

extern char** environ;

namespace jobsmith::apps {

namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

/// Wall clock in microseconds: the producer and the worker process compare
/// their readings, so it must be one clock for both (same host).
std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double percentile_ms(std::vector<std::int64_t> v, double q, double unit_per_ms) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]) / unit_per_ms;
}

/// CPU seconds (user + system) a process used so far, from /proc; -1 if unknown.
double process_cpu_seconds(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; fields >> f; ++i) {
    if (i == 14 || i == 15) ticks += std::strtod(f.c_str(), nullptr);  // utime, stime
    if (i == 15) return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  return -1;
}

double rusage_seconds(int who) {
  rusage ru{};
  ::getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/// VmHWM of a process in MB, or -1.
long peak_rss_mb(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10) / 1024;
  return -1;
}

// -- the worker process ----------------------------------------------------------

/// Parser callback for lease answers: keeps what the worker reads (each
/// job's id, lease_token, started_at and spec.payload). The ~40 other
/// fields of a job are still lexed, which checks the answer is JSON, but
/// never built into a tree: building them cost the worker process about as
/// much CPU as the server spends writing them, on the same two cores.
bool keep_lease_fields(int depth, json::parse_event_t event, json& parsed) {
  if (event != json::parse_event_t::key) return true;
  const auto& key = parsed.get_ref<const std::string&>();
  switch (depth) {  // the depth of the object the key is in
    case 1: return key == "jobs";
    case 3: return key == "id" || key == "lease_token" || key == "started_at" || key == "spec";
    case 4: return key == "payload";
    default: return true;
  }
}

struct bench_worker_options {
  std::string url;
  std::string token;
  std::string queue;
  std::uint64_t jobs = 0;  // stop after completing this many
  std::uint32_t threads = 4;
  std::uint32_t lease_batch = 500;
  std::uint32_t max_seconds = 600;
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
  std::vector<std::int64_t> started_ms;   // the server's started_at - submit time (ms)
  std::uint64_t lease_calls = 0, leased = 0;

  auto worker = [&](std::uint32_t k) {
    http::client c(*u, o.token, std::chrono::seconds(30));
    std::vector<std::int64_t> my_received, my_started;
    std::uint64_t my_calls = 0, my_leased = 0;
    bool first = true;
    auto finished = [&] {
      return completed.load() >= o.jobs || worker_stop.load() || failed.load() ||
             ::getppid() != parent || std::chrono::steady_clock::now() > deadline;
    };
    while (first || !finished()) {
      json req = {{"worker", "bench-" + std::to_string(::getpid()) + "-" + std::to_string(k)},
                  {"queues", {o.queue}},
                  {"max_jobs", o.lease_batch},
                  {"wait_ms", first ? 0 : 1000}};
      auto r = c.post("/v1/workers/lease", req);
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
      auto a = json::parse(r.body, keep_lease_fields, /*allow_exceptions=*/false);
      if (!a.is_object() || !a.contains("jobs") || a["jobs"].empty()) continue;
      json results = json::array();
      for (auto& job : a["jobs"]) {
        ++my_leased;
        auto& p = job["spec"]["payload"];
        if (p.is_object() && p.contains("t")) {
          auto t = p["t"].get<std::int64_t>();
          my_received.push_back(now - t);
          if (job.contains("started_at") && job["started_at"].is_number())
            my_started.push_back(job["started_at"].get<std::int64_t>() * 1000 - t);
        }
        results.push_back(
            {{"id", job["id"]}, {"lease_token", job["lease_token"]}, {"result", nullptr}});
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
    started_ms.insert(started_ms.end(), my_started.begin(), my_started.end());
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
              {"started_p50_ms", percentile_ms(started_ms, 0.5, 1000)},
              {"started_p99_ms", percentile_ms(started_ms, 0.99, 1000)},
              {"samples", received_us.size()}};
  std::printf("%s\n", out.dump().c_str());
  std::fflush(stdout);
  return failed.load() ? exit_failure : exit_ok;
}

/// The worker process: spawned from this same binary, stdout on a pipe.
struct worker_process {
  pid_t pid = -1;
  std::FILE* out = nullptr;

  bool start(const url_bench_options& o, const std::string& queue) {
    char self[4096];
    auto n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return false;
    self[n] = '\0';
    std::vector<std::string> args = {self,
                                     "bench-worker",
                                     "--url",
                                     o.url,
                                     "--queue",
                                     queue,
                                     "--jobs",
                                     std::to_string(o.jobs),
                                     "--threads",
                                     std::to_string(o.worker_threads),
                                     "--lease-batch",
                                     std::to_string(o.lease_batch),
                                     "--max-seconds",
                                     std::to_string(o.max_seconds)};
    // The token goes in the environment, not on a command line `ps` shows.
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e)
      if (std::string_view(*e).rfind("JOBSMITH_TOKEN=", 0) != 0) env.emplace_back(*e);
    if (!o.token.empty()) env.push_back("JOBSMITH_TOKEN=" + o.token);
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    int rc = ::posix_spawn(&pid, self, &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    if (rc != 0) {
      ::close(p[0]);
      return false;
    }
    out = ::fdopen(p[0], "r");
    return out != nullptr;
  }

  /// The next line of its stdout ("" at EOF).
  std::string line() {
    char buf[4096];
    if (!out || !std::fgets(buf, sizeof buf, out)) return {};
    return buf;
  }

  int wait() {
    if (out) std::fclose(out);
    out = nullptr;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

}  // namespace

int run_url_bench(const url_bench_options& o) {
  std::string error;
  auto u = http::url::parse(o.url, &error);
  if (!u) {
    std::fprintf(stderr, "bench: %s\n", error.c_str());
    return exit_usage;
  }
  if (o.jobs == 0 || o.batch == 0 || o.producers == 0 || o.worker_threads == 0) {
    std::fprintf(stderr, "bench: --jobs, --batch, --producers and --worker-threads must be > 0\n");
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
  worker_process worker;
  if (!worker.start(o, queue)) {
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
  // At a rate, jobs arrive one per submit call, as from many clients: enough
  // producers that each waits ~4 ms between submits (as the embedded bench).
  std::uint32_t producer_count = o.producers;
  if (o.rate > 0)
    producer_count = std::max<std::uint32_t>(o.producers, static_cast<std::uint32_t>(o.rate / 250));
  auto first_submit_us = wall_us();
  auto producer = [&](std::uint32_t k) {
    http::client c(*u, o.token, std::chrono::seconds(30));
    std::uint64_t batch = o.batch;
    std::chrono::nanoseconds interval{0};
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
      if (o.rate > 0) {
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
  std::printf(
      "jobsmith bench --url %s: %llu no-op jobs, %s; worker process: %u threads, leases of "
      "up to %u, batch completes\n",
      o.url.c_str(), static_cast<unsigned long long>(o.jobs),
      o.rate ? ("one per submit at " + std::to_string(o.rate) + " jobs/s from " +
                std::to_string(producer_count) + " threads")
                   .c_str()
             : ("batches of " + std::to_string(o.batch) + " from " +
                std::to_string(producer_count) + " threads")
                   .c_str(),
      o.worker_threads, o.lease_batch);
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
  std::printf(
      "  submit->started_at p50 %.2f ms  p99 %.2f ms  (the server's started_at, ms "
      "resolution)\n",
      w.value("started_p50_ms", 0.0), w.value("started_p99_ms", 0.0));
  std::printf("  lease calls     %llu for %llu jobs; overload answers: %llu submit, %llu worker\n",
              static_cast<unsigned long long>(w.value("lease_calls", std::uint64_t{0})),
              static_cast<unsigned long long>(w.value("leased", std::uint64_t{0})),
              static_cast<unsigned long long>(refused.load()),
              static_cast<unsigned long long>(w.value("refused", std::uint64_t{0})));
  char server_cpu_text[32] = "unknown";
  if (server_cpu >= 0) std::snprintf(server_cpu_text, sizeof server_cpu_text, "%.1f s", server_cpu);
  std::printf("  CPU             server %s, producers %.1f s, worker process %.1f s\n",
              server_cpu_text, rusage_seconds(RUSAGE_SELF), rusage_seconds(RUSAGE_CHILDREN));
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
  int* code = &exit_code;
  cmd->callback([o, code] { *code = run_bench_worker(*o); });
}

}  // namespace jobsmith::apps
