// `jobsmith work`. One leasing thread long-polls for jobs while fewer than
// --concurrency children run; each leased job gets a thread of its own that
// spawns the command (posix_spawn, its own process group, ended by a
// guardian process if the worker dies: group_guardian), feeds the payload
// on stdin, collects stdout/stderr lines, heartbeats with them every
// heartbeat-timeout/3, and reports the exit status as complete or fail. A
// heartbeat answer that asks for a cancel gets the command SIGTERM, then
// SIGKILL once the job's time to stop has passed.
// The child process itself (spawn, pipes, output lines, the guardian) is in
// apps/client/job_process.cpp; leasing, heartbeats and outcomes are here.
#include "apps/client/worker.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "apps/client/job_process.hpp"

namespace jobsmith::apps {

namespace {

using json = nlohmann::json;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::atomic<bool> stop_requested{false};

extern "C" void on_stop_signal(int) {
  if (!stop_requested.exchange(true)) {
    static const char note[] =
        "jobsmith work: stopping: no new leases; running jobs finish first\n";
    [[maybe_unused]] auto n = ::write(2, note, sizeof note - 1);  // async-signal-safe
  }
}

[[gnu::format(printf, 1, 2)]] void log_event(const char* fmt, ...) {
  char message[2048];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  auto now =
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  std::fprintf(stderr, "%s jobsmith work: %s\n", format_time(now).c_str(), message);
}

/// Asks the server for slim answers: a leased job as a worker needs it, the
/// new state after a complete or fail (docs/api.md, "Slim answers").
const http::headers minimal_answers = {{"Prefer", "return=minimal"}};

}  // namespace

bool leased_job::from(const json& j, leased_job& out) {
  // A malformed job is skipped (and reclaimed by the server in time)
  // rather than taking the worker down with an exception.
  if (!j.is_object() || !j.contains("id") || !j["id"].is_number_unsigned() ||
      !j.contains("lease_token") || !j["lease_token"].is_number_unsigned())
    return false;
  out.id = j["id"].get<std::uint64_t>();
  out.token = j["lease_token"].get<std::uint64_t>();
  for (const char* key : {"attempt", "attempts"})
    if (j.contains(key) && j[key].is_number_unsigned()) out.attempt = j[key].get<std::uint32_t>();
  const json& s = j.contains("spec") && j["spec"].is_object() ? j["spec"] : j;
  if (s.contains("kind") && s["kind"].is_string()) out.kind = s["kind"];
  if (s.contains("queue") && s["queue"].is_string()) out.queue = s["queue"];
  out.payload = s.contains("payload") ? compact(s["payload"]) : "{}";
  // At the top in both shapes; present only when the job has one.
  if (j.contains("handover")) out.handover = compact(j["handover"]);
  if (s.contains("timeouts") && s["timeouts"].is_object() && s["timeouts"].contains("heartbeat") &&
      s["timeouts"]["heartbeat"].is_number_integer())
    out.heartbeat_ms = s["timeouts"]["heartbeat"].get<std::int64_t>();
  if (s.contains("timeouts") && s["timeouts"].is_object() && s["timeouts"].contains("to_stop") &&
      s["timeouts"]["to_stop"].is_number_integer())
    out.to_stop_ms = s["timeouts"]["to_stop"].get<std::int64_t>();
  return true;
}

namespace {

/// Runs one job to its end and reports it; never throws.
class job_runner {
 public:
  job_runner(const work_options& o, const http::url& u, leased_job job)
      : o_(o), client_(u, o.conn.token, std::chrono::seconds(30)), job_(std::move(job)) {
    // heartbeat 0 means "no lease limit": still say something now and then.
    auto lease = job_.heartbeat_ms > 0 ? job_.heartbeat_ms : 30'000;
    interval_ = milliseconds(std::max<std::int64_t>(lease / 3, 50));
  }

  void run() {
    log_event("job %llu (%s) attempt %u: starting", ull(job_.id), job_.kind.c_str(), job_.attempt);
    if (!spawn()) return;
    supervise();
  }

 private:
  static unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

  bool spawn() {
    std::string error;
    if (process_.spawn(error)) return true;
    report_fail(error, true);
    return false;
  }

  void supervise() {
    auto next_heartbeat = steady::now() + interval_;
    bool exited = false;
    while (!exited) {
      bool outputs_open = process_.outputs_open();
      // With both outputs closed the child is exiting: wait for it. While
      // they are open, look for an exit now and then anyway (a background
      // grandchild may hold them open).
      if (!outputs_open) {
        exited = process_.try_reap();
        if (exited) break;
      }
      auto until_heartbeat =
          std::chrono::duration_cast<milliseconds>(next_heartbeat - steady::now()).count();
      int timeout = static_cast<int>(std::clamp<std::int64_t>(until_heartbeat, 0, 100));
      if (!outputs_open) timeout = std::min(timeout, 10);
      if (process_.pump(timeout)) exited = true;
      if (exited) break;
      if (stopping_ && !killed_ && steady::now() >= kill_at_) {
        log_event("job %llu: still running %lld ms after SIGTERM; sending SIGKILL", ull(job_.id),
                  static_cast<long long>(stop_ms_));
        process_.signal_group(SIGKILL);
        killed_ = true;
      }
      if (steady::now() >= next_heartbeat || process_.pending_lines() >= 200) {
        next_heartbeat = steady::now() + interval_;
        if (!heartbeat()) {
          process_.kill_child();
          return;
        }
      }
    }
    process_.close_pipes();
    // A failure's handover is read first: a warning about its file goes
    // with the last lines.
    std::optional<json> handover;
    if (!exited_zero(process_.status())) handover = process_.handover_out();
    // Lines not yet sent go out before the outcome, so the log is whole.
    if (process_.pending_lines() > 0 && !heartbeat()) return;
    report_exit(process_.status(), handover);
  }

  static bool exited_zero(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

  /// A cancel was asked: SIGTERM now, SIGKILL after `stop_ms` if the
  /// command is still running. The exit is reported as usual, and the server
  /// records the job cancelled.
  void begin_stop(std::int64_t stop_ms) {
    if (stopping_) return;
    stopping_ = true;
    stop_ms_ = std::max<std::int64_t>(0, stop_ms);
    log_event("job %llu: cancel requested; sending SIGTERM, SIGKILL in %lld ms", ull(job_.id),
              static_cast<long long>(stop_ms_));
    process_.signal_group(SIGTERM);
    kill_at_ = steady::now() + milliseconds(stop_ms_);
  }

  /// Renews the lease and ships pending lines. False when the job is no
  /// longer ours (409: reclaimed, cancelled, finished).
  bool heartbeat() {
    json body = {{"lease_token", job_.token}};
    json& pending = process_.lines_to_send();
    if (!pending.empty()) body["lines"] = pending;
    auto r = client_.post("/v1/jobs/" + std::to_string(job_.id) + "/heartbeat", body);
    if (r.status == 200) {
      process_.lines_sent();
      auto j = r.json();
      if (j.is_object() && j.value("cancel_requested", false)) {
        std::int64_t stop_ms = job_.to_stop_ms;
        if (j.contains("stop_ms") && j["stop_ms"].is_number_integer())
          stop_ms = j["stop_ms"].get<std::int64_t>();
        begin_stop(stop_ms);
      }
      if (j.is_object() && j.contains("lease_ms") && j["lease_ms"].is_number_integer()) {
        auto lease = j["lease_ms"].get<std::int64_t>();
        if (lease > 0) interval_ = milliseconds(std::max<std::int64_t>(lease / 3, 50));
      }
      return true;
    }
    if (r.status == 409) {
      log_event("job %llu: the lease is gone (%s); killing the command", ull(job_.id),
                error_text(r).c_str());
      return false;
    }
    // Transient (unreachable, 5xx, 429): keep the lines and try at the next beat.
    log_event("job %llu: heartbeat failed: %s", ull(job_.id), error_text(r).c_str());
    return true;
  }

  static std::string error_text(const http::response& r) {
    if (r.status == 0) return r.transport_error;
    auto j = r.json();
    if (j.is_object() && j.contains("error") && j["error"].is_object())
      return "HTTP " + std::to_string(r.status) + " " + j["error"].value("code", "") + ": " +
             j["error"].value("message", "");
    return "HTTP " + std::to_string(r.status);
  }

  /// `handover`: what a failed command left for the next attempt.
  void report_exit(int status, const std::optional<json>& handover) {
    if (exited_zero(status)) {
      auto result = json::parse(process_.last_stdout(), nullptr, false);
      if (process_.last_stdout().empty() || result.is_discarded()) result = {{"exit_code", 0}};
      send_outcome("complete", {{"lease_token", job_.token}, {"result", result}}, "succeeded");
      return;
    }
    std::string why;
    bool retryable = true;
    if (WIFEXITED(status)) {
      int code = WEXITSTATUS(status);
      why = "exit code " + std::to_string(code);
      retryable = code != o_.permanent_exit_code;
    } else if (WIFSIGNALED(status)) {
      why = "killed by signal " + std::to_string(WTERMSIG(status));
    }
    if (stopping_) why = (killed_ ? "stopped by SIGKILL after SIGTERM: " : "stopped by SIGTERM: ") + why;
    if (!process_.last_stderr().empty()) why += ": " + process_.last_stderr();
    report_fail(why, retryable, handover);
  }

  void report_fail(const std::string& error, bool retryable,
                   const std::optional<json>& handover = std::nullopt) {
    json body = {{"lease_token", job_.token}, {"error", error}, {"retryable", retryable}};
    if (handover) body["handover"] = *handover;
    send_outcome("fail", body, retryable ? "failed" : "failed permanently");
  }

  /// Posts the outcome, retrying transient failures for about a lease.
  void send_outcome(const char* action, const json& body, const char* what) {
    auto deadline = steady::now() + milliseconds(std::max<std::int64_t>(job_.heartbeat_ms, 10'000));
    auto path = "/v1/jobs/" + std::to_string(job_.id) + "/" + action;
    for (auto backoff = milliseconds(100);; backoff = std::min(backoff * 2, milliseconds(2000))) {
      // Invalid UTF-8 (a command's last stderr line) replaced, not thrown on.
      auto r = client_.request("POST", path, compact(body), minimal_answers);
      if (r.status == 200) {
        std::string extra =
            body.contains("error") ? " (" + body["error"].get<std::string>() + ")" : "";
        log_event("job %llu: %s%s", ull(job_.id), what, extra.c_str());
        return;
      }
      bool transient = r.status == 0 || r.status == 429 || r.status >= 500;
      if (!transient || steady::now() >= deadline) {
        log_event("job %llu: %s refused: %s", ull(job_.id), action, error_text(r).c_str());
        return;
      }
      std::this_thread::sleep_for(backoff);
    }
  }

  const work_options& o_;
  http::client client_;
  leased_job job_;
  milliseconds interval_;
  job_process process_{o_, job_};
  // A cancel was asked (begin_stop): SIGTERM sent, SIGKILL due at kill_at_.
  bool stopping_ = false;
  bool killed_ = false;
  std::int64_t stop_ms_ = 0;
  steady::time_point kill_at_{};
};

}  // namespace

int run_work(const work_options& o) {
  if (o.command.empty()) {
    std::fprintf(stderr, "jobsmith work: say the command after --\n");
    return exit_usage;
  }
  if (o.concurrency == 0) {
    std::fprintf(stderr, "jobsmith work: --concurrency must be at least 1\n");
    return exit_usage;
  }
  std::string error;
  auto u = http::url::parse(o.conn.url, &error);
  if (!u) {
    std::fprintf(stderr, "jobsmith work: %s\n", error.c_str());
    return exit_usage;
  }
  // Before any thread of this process starts.
  if (!start_group_guardian(o.concurrency))
    std::fprintf(stderr, "jobsmith work: cannot fork the guardian (%s): commands may outlive a "
                         "killed worker\n", std::strerror(errno));
  std::string name = o.name;
  if (name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    name = std::string(host) + ":" + std::to_string(::getpid());
  }

  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a child that closes its stdin early

  // Long polls must outlast their wait: the socket timeout covers it.
  http::client leaser(*u, o.conn.token, milliseconds(o.wait_ms + 30'000));
  std::mutex mu;
  std::condition_variable cv;
  std::uint32_t running = 0;
  struct job_thread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<job_thread> threads;
  auto reap = [&] {
    for (auto it = threads.begin(); it != threads.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = threads.erase(it);
      } else {
        ++it;
      }
    }
  };

  log_event("%s leasing from %s (queues %s, concurrency %u)", name.c_str(), o.conn.url.c_str(),
            o.queues.empty() ? "all" : compact(o.queues).c_str(), o.concurrency);
  int exit_code = exit_ok;
  bool said_unreachable = false;
  auto backoff = milliseconds(250);
  while (!stop_requested.load()) {
    std::uint32_t free_slots = 0;
    {
      std::unique_lock<std::mutex> lock{mu};
      // Wake now and then to notice a stop signal while all slots are busy.
      cv.wait_for(lock, milliseconds(200), [&] { return running < o.concurrency; });
      free_slots = o.concurrency - running;
    }
    reap();
    if (free_slots == 0) continue;
    json req = {{"worker", name},
                {"queues", o.queues},
                {"max_jobs", free_slots},
                {"worker_limit", o.concurrency},
                {"wait_ms", o.wait_ms}};
    auto r = leaser.request("POST", "/v1/workers/lease", req.dump(), minimal_answers);
    if (r.status != 200) {
      if (r.status == 400 || r.status == 401 || r.status == 403 || r.status == 404) {
        exit_code = report_failure(r, o.conn, "work");
        break;
      }
      if (r.status == 0 && !said_unreachable) {
        log_event("lease: no answer from %s: %s; retrying", o.conn.url.c_str(),
                  r.transport_error.c_str());
        said_unreachable = true;
      } else if (r.status != 0) {
        report_failure(r, o.conn, "work");
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, milliseconds(5000));
      continue;
    }
    if (said_unreachable) log_event("connected to %s", o.conn.url.c_str());
    said_unreachable = false;
    backoff = milliseconds(250);
    auto answer = r.json();
    if (!answer.is_object() || !answer.contains("jobs") || !answer["jobs"].is_array()) continue;
    for (auto& j : answer["jobs"]) {
      leased_job job;
      if (!leased_job::from(j, job)) {
        log_event("skipping a malformed job in the lease answer: %s",
                  compact(j).substr(0, 200).c_str());
        continue;
      }
      auto done = std::make_shared<std::atomic<bool>>(false);
      {
        std::lock_guard<std::mutex> g{mu};
        ++running;
      }
      threads.push_back({std::thread([&, job = std::move(job), done] {
                           job_runner(o, *u, job).run();
                           {
                             std::lock_guard<std::mutex> g{mu};
                             --running;
                           }
                           done->store(true);
                           cv.notify_all();
                         }),
                         done});
    }
  }
  if (stop_requested.load()) {
    std::lock_guard<std::mutex> g{mu};
    log_event("stopping: waiting for %u running job(s)", running);
  }
  for (auto& t : threads) t.thread.join();
  if (stop_requested.load()) log_event("stopped");
  return exit_code;
}

void add_work_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<work_options>();
  auto* cmd = app.add_subcommand(
      "work", "run a command per leased job: payload on stdin, exit code as outcome");
  add_connection_options(cmd, o->conn, /*with_json=*/false);
  // One argument per --queues (comma-separated for several): as a list
  // option it took the `--` before the command as its own end, and the
  // command's options (`sh -c ...`) were then parsed as work's.
  cmd->add_option("--queues", o->queues, "queues to lease from, comma-separated (default: all)")
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option("--concurrency", o->concurrency, "commands running at once")
      ->capture_default_str();
  cmd->add_option("--name", o->name, "worker name (default HOST:PID)");
  cmd->add_option("--permanent-exit-code", o->permanent_exit_code,
                  "this exit code fails the job without retry")
      ->capture_default_str();
  cmd->add_option("--wait", o->wait_ms, "ms a lease call waits for work (long poll)")
      ->capture_default_str();
  cmd->add_option("command", o->command, "the command and its arguments, after --")->required();
  int* code = &exit_code;
  cmd->callback([o, code] { *code = run_work(*o); });
}

}  // namespace jobsmith::apps
