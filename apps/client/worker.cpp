// `jobsmith work`. One leasing thread long-polls for jobs while fewer than
// --concurrency children run; each leased job gets a thread of its own that
// spawns the command (posix_spawn, its own process group, ended by a
// guardian process if the worker dies: group_guardian), feeds the payload
// on stdin, collects stdout/stderr lines, heartbeats with them every
// heartbeat-timeout/3, and reports the exit status as complete or fail.
#include "apps/client/worker.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
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
#include <thread>

extern char** environ;

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

/// Ends the commands' process groups when the worker dies in any way,
/// SIGKILL included (a command runs in a group of its own, so nothing else
/// would: it ran on, unreported, while its job ran again elsewhere). A
/// child process forked before any thread holds the read end of a pipe
/// whose write end only the worker holds (close-on-exec, so commands do not
/// inherit it); the worker writes each command's group id when it starts
/// (positive) and once it is reaped (negative). At end of file, the worker
/// being gone, the guardian SIGKILLs every group still listed. A command
/// that dies with the worker between its spawn and that write, or that
/// leaves its group, is not covered.
class group_guardian {
 public:
  /// Forks the guardian; false (and no guardian) when it cannot.
  /// `max_groups`: the most commands at once.
  bool start(std::size_t max_groups) {
    std::vector<pid_t> groups;
    groups.reserve(max_groups);  // the child must not allocate (see below)
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      return false;
    }
    if (pid == 0) {
      // The guardian: async-signal-safe calls only (the worker may have
      // threads), and no allocation: `groups` never grows past its capacity.
      ::close(fds[1]);
      ::signal(SIGINT, SIG_IGN);  // a terminal's Ctrl-C is for the worker
      ::signal(SIGTERM, SIG_IGN);
      ::signal(SIGHUP, SIG_IGN);
      for (;;) {
        pid_t v = 0;
        const ssize_t r = ::read(fds[0], &v, sizeof v);
        if (r < 0 && errno == EINTR) continue;
        if (r != static_cast<ssize_t>(sizeof v)) break;  // EOF: the worker is gone
        if (v > 0 && groups.size() < groups.capacity()) {
          groups.push_back(v);
        } else if (v < 0) {
          auto it = std::find(groups.begin(), groups.end(), -v);
          if (it != groups.end()) groups.erase(it);
        }
      }
      for (pid_t g : groups) ::kill(-g, SIGKILL);
      ::_exit(0);
    }
    ::close(fds[0]);
    fd_ = fds[1];
    return true;
  }
  void started(pid_t group) { send(group); }
  void ended(pid_t group) { send(-group); }

 private:
  void send(pid_t v) {
    if (fd_ < 0) return;
    // 4 bytes: atomic on a pipe, so job threads need no lock.
    while (::write(fd_, &v, sizeof v) < 0 && errno == EINTR) {
    }
  }
  int fd_ = -1;
};

group_guardian guardian;

/// Lines as they arrive on a child's stdout or stderr.
struct line_splitter {
  std::string partial;
  /// Appends the complete lines in `bytes` to `out`.
  template <class Out>
  void feed(std::string_view bytes, Out&& out) {
    partial.append(bytes);
    std::size_t pos = 0;
    for (auto nl = partial.find('\n'); nl != std::string::npos; nl = partial.find('\n', pos)) {
      out(std::string_view(partial).substr(pos, nl - pos));
      pos = nl + 1;
    }
    partial.erase(0, pos);
  }
  template <class Out>
  void finish(Out&& out) {
    if (!partial.empty()) out(std::string_view(partial));
    partial.clear();
  }
};

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

/// The job fields a run needs, read from a leased job.
struct leased_job {
  std::uint64_t id = 0;
  std::uint64_t token = 0;
  std::string kind, queue, payload;
  std::uint32_t attempt = 0;
  std::int64_t heartbeat_ms = 30'000;

  /// From a slim leased job (Prefer: return=minimal: the spec's fields at
  /// the top, "attempt") or, from a server that sends whole jobs, from the
  /// job ("spec", "attempts").
  static bool from(const json& j, leased_job& out) {
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
    if (s.contains("timeouts") && s["timeouts"].is_object() &&
        s["timeouts"].contains("heartbeat") && s["timeouts"]["heartbeat"].is_number_integer())
      out.heartbeat_ms = s["timeouts"]["heartbeat"].get<std::int64_t>();
    return true;
  }
};

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
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 ||
        ::pipe2(err, O_CLOEXEC) != 0) {
      report_fail("worker: pipe: " + std::string(std::strerror(errno)), true);
      return false;
    }
    // The worker's own JOBSMITH_* variables stay out, its token above all:
    // the token may lease and complete any job, the command runs one.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e)
      if (std::strncmp(*e, "JOBSMITH_", 9) != 0) env_strings.emplace_back(*e);
    env_strings.push_back("JOBSMITH_JOB_ID=" + std::to_string(job_.id));
    env_strings.push_back("JOBSMITH_KIND=" + job_.kind);
    env_strings.push_back("JOBSMITH_QUEUE=" + job_.queue);
    env_strings.push_back("JOBSMITH_ATTEMPT=" + std::to_string(job_.attempt));
    env_strings.push_back("JOBSMITH_LEASE_TOKEN=" + std::to_string(job_.token));
    env_strings.push_back("JOBSMITH_URL=" + o_.conn.url);
    std::vector<char*> envp, argv;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = o_.command;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own process group: a terminal's Ctrl-C reaches the worker, which
    // lets the child finish; a kill reaches everything the command started.
    sigset_t defaults, none;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    int rc = ::posix_spawnp(&pid_, argv[0], &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) {
      ::close(in[1]);
      ::close(out[0]);
      ::close(err[0]);
      report_fail("cannot run " + o_.command[0] + ": " + std::strerror(rc), true);
      return false;
    }
    guardian.started(pid_);  // its group id is its pid (setpgroup 0)
    stdin_fd_ = in[1];
    stdout_fd_ = out[0];
    stderr_fd_ = err[0];
    for (int fd : {stdin_fd_, stdout_fd_, stderr_fd_})
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    return true;
  }

  void supervise() {
    std::size_t written = 0;
    if (job_.payload.empty()) close_fd(stdin_fd_);
    auto next_heartbeat = steady::now() + interval_;
    int status = 0;
    bool exited = false;
    while (!exited) {
      std::vector<pollfd> fds;
      if (stdin_fd_ >= 0) fds.push_back({stdin_fd_, POLLOUT, 0});
      if (stdout_fd_ >= 0) fds.push_back({stdout_fd_, POLLIN, 0});
      if (stderr_fd_ >= 0) fds.push_back({stderr_fd_, POLLIN, 0});
      bool outputs_open = stdout_fd_ >= 0 || stderr_fd_ >= 0;
      // With both outputs closed the child is exiting: wait for it. While
      // they are open, look for an exit now and then anyway (a background
      // grandchild may hold them open).
      if (!outputs_open) {
        exited = wait_child(status, /*block=*/false);
        if (exited) break;
      }
      auto until_heartbeat =
          std::chrono::duration_cast<milliseconds>(next_heartbeat - steady::now()).count();
      int timeout = static_cast<int>(std::clamp<std::int64_t>(until_heartbeat, 0, 100));
      if (!outputs_open) timeout = std::min(timeout, 10);
      ::poll(fds.data(), fds.size(), timeout);
      for (auto& p : fds) {
        if (p.revents == 0) continue;
        if (p.fd == stdin_fd_) {
          auto n = ::write(stdin_fd_, job_.payload.data() + written, job_.payload.size() - written);
          if (n > 0) written += static_cast<std::size_t>(n);
          if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == job_.payload.size())
            close_fd(stdin_fd_);  // EPIPE: the command does not read its stdin
        } else {
          drain(p.fd);
        }
      }
      if (outputs_open && wait_child(status, false)) {
        exited = true;
        drain_all();
      }
      if (steady::now() >= next_heartbeat || pending_.size() >= 200) {
        next_heartbeat = steady::now() + interval_;
        if (!heartbeat()) {
          kill_child();
          return;
        }
      }
    }
    close_fd(stdin_fd_);
    close_fd(stdout_fd_);
    close_fd(stderr_fd_);
    // Lines not yet sent go out before the outcome, so the log is whole.
    if (!pending_.empty() && !heartbeat()) return;
    report_exit(status);
  }

  bool wait_child(int& status, bool block) {
    for (;;) {
      auto r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
      if (r == pid_) {
        guardian.ended(pid_);
        return true;
      }
      if (r < 0 && errno == EINTR) continue;
      return false;
    }
  }

  void kill_child() {
    ::kill(-pid_, SIGKILL);
    int status = 0;
    wait_child(status, true);
    close_fd(stdin_fd_);
    close_fd(stdout_fd_);
    close_fd(stderr_fd_);
  }

  static void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  void drain_all() {
    if (stdout_fd_ >= 0) drain(stdout_fd_);
    if (stderr_fd_ >= 0) drain(stderr_fd_);
  }

  /// Reads what `fd` has now; closes it at EOF.
  void drain(int fd) {
    bool is_err = fd == stderr_fd_;
    auto& splitter = is_err ? err_lines_ : out_lines_;
    auto take = [&](std::string_view line) {
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      std::string text(line.substr(0, 4000));
      if (!is_err && !text.empty()) last_stdout_ = text;
      if (is_err && !text.empty()) last_stderr_ = text;
      if (pending_.size() < max_pending_lines)
        pending_.push_back({{"level", is_err ? "warn" : "info"}, {"text", std::move(text)}});
      else
        ++dropped_;
    };
    char buf[8192];
    for (;;) {
      auto n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        splitter.feed(std::string_view(buf, static_cast<std::size_t>(n)), take);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      splitter.finish(take);
      if (is_err)
        close_fd(stderr_fd_);
      else
        close_fd(stdout_fd_);
      return;
    }
  }

  /// Renews the lease and ships pending lines. False when the job is no
  /// longer ours (409: reclaimed, cancelled, finished) or a cancel was asked.
  bool heartbeat() {
    json body = {{"lease_token", job_.token}};
    if (dropped_ > 0) {
      pending_.push_back({{"level", "warn"},
                          {"text", "jobsmith work: " + std::to_string(dropped_) +
                                       " output lines dropped (more than " +
                                       std::to_string(max_pending_lines) + " per heartbeat)"}});
      dropped_ = 0;
    }
    if (!pending_.empty()) body["lines"] = pending_;
    auto r = client_.post("/v1/jobs/" + std::to_string(job_.id) + "/heartbeat", body);
    if (r.status == 200) {
      pending_ = json::array();
      auto j = r.json();
      if (j.is_object() && j.value("cancel_requested", false)) {
        log_event("job %llu: cancel requested; killing the command", ull(job_.id));
        return false;
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

  void report_exit(int status) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      auto result = json::parse(last_stdout_, nullptr, false);
      if (last_stdout_.empty() || result.is_discarded()) result = {{"exit_code", 0}};
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
    if (!last_stderr_.empty()) why += ": " + last_stderr_;
    report_fail(why, retryable);
  }

  void report_fail(const std::string& error, bool retryable) {
    send_outcome("fail", {{"lease_token", job_.token}, {"error", error}, {"retryable", retryable}},
                 retryable ? "failed" : "failed permanently");
  }

  /// Posts the outcome, retrying transient failures for about a lease.
  void send_outcome(const char* action, const json& body, const char* what) {
    auto deadline = steady::now() + milliseconds(std::max<std::int64_t>(job_.heartbeat_ms, 10'000));
    auto path = "/v1/jobs/" + std::to_string(job_.id) + "/" + action;
    for (auto backoff = milliseconds(100);; backoff = std::min(backoff * 2, milliseconds(2000))) {
      auto r = client_.request("POST", path, body.dump(), minimal_answers);
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

  static constexpr std::size_t max_pending_lines = 1000;

  const work_options& o_;
  http::client client_;
  leased_job job_;
  milliseconds interval_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1, stdout_fd_ = -1, stderr_fd_ = -1;
  line_splitter out_lines_, err_lines_;
  json pending_ = json::array();
  std::size_t dropped_ = 0;
  std::string last_stdout_, last_stderr_;
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
  if (!guardian.start(o.concurrency))
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
