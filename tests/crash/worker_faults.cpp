// Worker faults (docs/reliability.md): starts one `jobsmith serve` and real
// `jobsmith work` processes against it over loopback HTTP, and checks what a
// user sees when workers misbehave:
//   1. sigstop_past_lease: a worker frozen (SIGSTOP, with its command) past
//      its lease loses the job; another worker completes it; the frozen one,
//      resumed, is refused (409 stale_token) and changes nothing;
//   2. worker_killed: a worker SIGKILLed while its command runs; the job is
//      reclaimed after the lease and succeeds on another worker, attempt 2;
//   3. poison_job: a job whose command kills its worker every time is
//      discarded after exactly max_attempts (3) attempts, while the workers
//      that replace the dead ones run the other jobs to success.
// One PASS or FAIL line per scenario; the exit status is 1 on any FAIL, 2
// when the setup itself failed.
//
// Processes: the server and the workers are this program's children (they
// die with it, PR_SET_PDEATHSIG). The commands the workers run are its
// grandchildren; it is their subreaper, so a command whose worker died
// becomes its child and is killed and reaped here, by pid, before it exits.
// Every wait has a deadline (--deadline-s).
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "apps/client/http_client.hpp"
#include "tests/crash/server_process.hpp"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace http = jobsmith::http;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct options {
  std::string binary;
  int lease_ms = 1500;         // every job's timeouts.heartbeat: the lease length
  int deadline_s = 20;         // bound of every single wait
  int http_timeout_ms = 10000;
  int ready_timeout_s = 60;
  std::string work_dir;        // default: a fresh /tmp/jobsmith-wf-XXXXXX, removed at the end
  bool keep = false;
};

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string fmt_s(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

// -- processes (spawning and /proc: tests/crash/server_process.hpp) ---------------

using jobsmith::crash::free_port;
using jobsmith::crash::proc_stat;
using jobsmith::crash::read_file;
using jobsmith::crash::server_process;
using jobsmith::crash::spawn;
using jobsmith::crash::tail;
using jobsmith::crash::wait_for;

pid_t parent_of(pid_t pid) {
  char state = 0;
  pid_t parent = -1;
  return proc_stat(pid, state, parent) ? parent : -1;
}

char state_letter(pid_t pid) {
  char state = '?';
  pid_t parent = -1;
  return proc_stat(pid, state, parent) ? state : '?';
}

/// This process's children, from /proc.
std::vector<pid_t> own_children() {
  std::vector<pid_t> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator("/proc", ec)) {
    auto name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto pid = static_cast<pid_t>(std::stol(name));
    if (parent_of(pid) == ::getpid()) out.push_back(pid);
  }
  return out;
}

/// Kills and reaps every child left, by pid, until none is left: as the
/// subreaper, the commands of dead workers (and what they started) end up
/// here. Returns how many it had to kill.
int kill_leftovers() {
  int killed = 0;
  for (int round = 0; round < 50; ++round) {
    auto left = own_children();
    if (left.empty()) return killed;
    for (auto pid : left) {
      // A zombie is reaped without a signal; a live one (perhaps stopped) is
      // killed. Its pid stays ours until reaped, so the signal cannot stray.
      int st = 0;
      if (::waitpid(pid, &st, WNOHANG) == pid) continue;
      ::kill(pid, SIGKILL);
      ++killed;
      wait_for(pid, 5s);
    }
  }
  return killed;
}


// -- the workers ------------------------------------------------------------------

/// The command every worker runs (`sh -c`), by the job's kind and attempt:
///   hold, attempt 1: writes "PID TOKEN" (its own pid, the process group the
///     worker gave it, and the lease token it runs under) to DIR/ID.held,
///     then blocks (60 s at most) until someone intervenes;
///   poison: SIGKILLs its parent, the `jobsmith work` process, every time;
///   otherwise: prints {"worker": NAME, "attempt": N} as its result.
std::string worker_script(const std::string& name, const std::string& dir) {
  return "case \"$JOBSMITH_KIND:$JOBSMITH_ATTEMPT\" in\n"
         "  hold:1) f='" + dir + "/'$JOBSMITH_JOB_ID\n"
         "    echo \"$$ $JOBSMITH_LEASE_TOKEN\" > $f.tmp && mv $f.tmp $f.held\n"
         "    sleep 60; exit 1;;\n"
         "  poison:*) kill -KILL $PPID; exit 1;;\n"
         "esac\n"
         "echo '{\"worker\":\"" + name + "\",\"attempt\":'$JOBSMITH_ATTEMPT'}'\n";
}

struct worker_process {
  std::string name;
  pid_t pid = -1;
  std::string log;
  std::optional<int> exit_status;  // once reaped
};

/// What the tests need to reach the server and start workers.
struct context {
  const options* o = nullptr;
  http::url url;
  std::string url_text;
  std::string dir;  // work dir: logs, the commands' .held files
  std::vector<worker_process> workers;  // every worker started, for the cleanup

  std::unique_ptr<http::client> client() const {
    return std::make_unique<http::client>(url, std::string{}, milliseconds(o->http_timeout_ms));
  }
  milliseconds deadline() const { return std::chrono::seconds(o->deadline_s); }

  /// Starts `jobsmith work --name NAME --queues QUEUE --concurrency 1`; the
  /// index into `workers`, or -1.
  int start_worker(const std::string& name, const std::string& queue) {
    worker_process w;
    w.name = name;
    w.log = dir + "/worker-" + name + ".log";
    // --wait 500: a SIGTERM ends the lease call in flight within half a second.
    w.pid = spawn({o->binary, "work", "--url", url_text, "--name", name, "--queues", queue,
                   "--concurrency", "1", "--wait", "500", "--", "/bin/sh", "-c",
                   worker_script(name, dir)},
                  w.log);
    if (w.pid < 0) return -1;
    workers.push_back(w);
    return static_cast<int>(workers.size()) - 1;
  }

  /// Reaps worker `i` if it exited; true if it did (its status in exit_status).
  bool exited(int i) {
    auto& w = workers[static_cast<std::size_t>(i)];
    if (w.exit_status) return true;
    if (auto st = wait_for(w.pid, 0ms)) w.exit_status = *st;
    return w.exit_status.has_value();
  }

  /// SIGTERM (SIGCONT first, in case it is stopped) and wait: the exit
  /// status, or nullopt when it had to be killed.
  std::optional<int> stop_worker(int i) {
    auto& w = workers[static_cast<std::size_t>(i)];
    if (w.exit_status) return w.exit_status;
    ::kill(w.pid, SIGCONT);
    ::kill(w.pid, SIGTERM);
    if (auto st = wait_for(w.pid, deadline())) return w.exit_status = *st;
    ::kill(w.pid, SIGKILL);
    w.exit_status = wait_for(w.pid, 10s).value_or(-1);
    return std::nullopt;
  }

  void kill_all_workers() {
    for (auto& w : workers) {
      if (w.exit_status) continue;
      ::kill(w.pid, SIGKILL);
      w.exit_status = wait_for(w.pid, 10s).value_or(-1);
    }
  }
};

// -- one scenario -------------------------------------------------------------------

/// Collects the failed checks of one scenario and prints its PASS/FAIL line.
class scenario {
 public:
  scenario(std::string name) : name_(std::move(name)), t0_(clock_type::now()) {}

  /// Records `what` as a failure unless `ok`; returns `ok`.
  bool check(bool ok, const std::string& what) {
    if (!ok) problems_.push_back(what);
    return ok;
  }
  void note(const std::string& fact) { facts_.push_back(fact); }
  /// Worker or server logs worth reading when it fails.
  void attach(const std::string& label, const std::string& file) { logs_[label] = file; }

  bool report() {
    bool ok = problems_.empty();
    std::string facts;
    for (auto& f : facts_) facts += (facts.empty() ? "" : "; ") + f;
    std::printf("%s %s (%s)%s%s\n", ok ? "PASS" : "FAIL", name_.c_str(),
                fmt_s(seconds_since(t0_)).c_str(), facts.empty() ? "" : ": ", facts.c_str());
    for (auto& p : problems_) std::printf("  expected: %s\n", p.c_str());
    if (!ok)
      for (auto& [label, file] : logs_)
        std::printf("  %s (%s) ends:\n%s", label.c_str(), file.c_str(), tail(file, 12).c_str());
    std::fflush(stdout);
    return ok;
  }

 private:
  std::string name_;
  clock_type::time_point t0_;
  std::vector<std::string> problems_, facts_;
  std::map<std::string, std::string> logs_;
};

/// Polls `done` every 50 ms until it is true or `limit` passed.
bool wait_until(const std::function<bool()>& done, milliseconds limit) {
  auto end = clock_type::now() + limit;
  for (;;) {
    if (done()) return true;
    if (clock_type::now() > end) return false;
    std::this_thread::sleep_for(50ms);
  }
}

std::string describe(const http::response& r) {
  if (r.status == 0) return "no answer (" + r.transport_error + ")";
  return "HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 300);
}

/// The error code of a JSON error answer, "" if none.
std::string error_code(const http::response& r) {
  auto j = r.json();
  if (j.is_object() && j.contains("error") && j["error"].is_object())
    return j["error"].value("code", "");
  return "";
}

/// Submits one job on `queue`: lease --lease-ms, retries 100 ms apart.
std::optional<std::uint64_t> submit(context& c, http::client& h, const std::string& kind,
                                    const std::string& queue, int max_attempts,
                                    std::string* error) {
  json body = {{"kind", kind},
               {"queue", queue},
               {"payload", json::object()},
               {"retry",
                {{"max_attempts", max_attempts},
                 {"initial_interval", 100},
                 {"max_interval", 100},
                 {"jitter", 0.0}}},
               {"timeouts", {{"heartbeat", c.o->lease_ms}}}};
  auto r = h.post("/v1/jobs", body);
  auto j = r.json();
  if (r.status != 201 || !j.is_object() || !j.contains("id") || !j["id"].is_number_unsigned()) {
    *error = "submit " + kind + ": expected 201 {\"id\": N}, seen " + describe(r);
    return std::nullopt;
  }
  return j["id"].get<std::uint64_t>();
}

/// GET /v1/jobs/{id}: {"job": ..., "history": [...]}. When there is no
/// such answer, {"job": {}, "history": [], "error": "..."}, so callers can
/// read any view without checking first.
json get_job(http::client& h, std::uint64_t id) {
  auto r = h.get("/v1/jobs/" + std::to_string(id));
  auto j = r.json();
  if (r.status == 200 && j.is_object() && j.contains("job") && j["job"].is_object() &&
      j.contains("history") && j["history"].is_array())
    return j;
  return {{"job", json::object()}, {"history", json::array()}, {"error", describe(r)}};
}

std::string state_of(const json& view) {
  if (view.contains("error")) return "(no answer: " + view["error"].get<std::string>() + ")";
  return view["job"].value("state", "");
}

/// The history events of one type, in order.
std::vector<json> events_of(const json& view, const std::string& type) {
  std::vector<json> out;
  for (auto& ev : view["history"])
    if (ev.value("type", "") == type) out.push_back(ev["body"]);
  return out;
}

/// "job.submitted job.started job.reclaimed ..." (progress left out).
std::string history_line(const json& view) {
  std::string out;
  for (auto& ev : view["history"]) {
    auto type = ev.value("type", "");
    if (type == "job.progress") continue;
    out += (out.empty() ? "" : " ") + type.substr(4);
    if (ev["body"].contains("attempt")) out += "#" + std::to_string(ev["body"].value("attempt", 0));
    if (type == "job.started") out += "@" + ev["body"].value("worker", "");
  }
  return out;
}

/// Reads DIR/ID.held: the pid of a `hold` command and its lease token.
bool read_held(const context& c, std::uint64_t id, pid_t& pid, std::uint64_t& token) {
  std::ifstream in(c.dir + "/" + std::to_string(id) + ".held");
  long p = 0;
  unsigned long long t = 0;
  if (!(in >> p >> t) || p <= 0) return false;
  pid = static_cast<pid_t>(p);
  token = t;
  return true;
}

/// Checks a job that succeeded on its second attempt after the first was
/// reclaimed from `first` by an expired lease, and ran on `second`. (The
/// job's own `worker` is the holder of a current lease: empty once it ended.)
void check_second_attempt_success(scenario& s, const json& view, const std::string& first,
                                  const std::string& second) {
  auto& job = view["job"];
  s.check(state_of(view) == "succeeded", "state succeeded, seen " + state_of(view));
  s.check(job.value("attempts", 0) == 2,
          "attempts 2, seen " + std::to_string(job.value("attempts", 0)));
  json want = {{"worker", second}, {"attempt", 2}};
  s.check(job.contains("result") && job["result"] == want,
          "result " + want.dump() + ", seen " + (job.contains("result") ? job["result"].dump() : ""));
  auto started = events_of(view, "job.started");
  auto reclaimed = events_of(view, "job.reclaimed");
  auto succeeded = events_of(view, "job.succeeded");
  s.check(started.size() == 2 && started[0].value("worker", "") == first &&
              started[1].value("worker", "") == second,
          "history: started by " + first + " then " + second + ", seen " + history_line(view));
  s.check(reclaimed.size() == 1 && reclaimed[0].value("attempt", 0) == 1 &&
              reclaimed[0].value("reason", "").find("lease expired") != std::string::npos,
          "history: attempt 1 reclaimed once for an expired lease, seen " + history_line(view) +
              (reclaimed.empty() ? "" : " (" + reclaimed[0].value("reason", "") + ")"));
  s.check(succeeded.size() == 1 && succeeded[0].value("attempt", 0) == 2,
          "history: exactly one job.succeeded, for attempt 2, seen " + history_line(view));
  s.check(events_of(view, "job.failed").empty(), "no job.failed, seen " + history_line(view));
}

// -- 1. a worker stopped past its lease ---------------------------------------------

bool sigstop_past_lease(context& c) {
  scenario s("sigstop_past_lease");
  auto h = c.client();
  const std::string queue = "s1";
  s.attach("server log", c.dir + "/server.log");
  int w1 = c.start_worker("w1", queue);
  if (!s.check(w1 >= 0, "worker w1 started")) return s.report();
  s.attach("w1 log", c.workers[static_cast<std::size_t>(w1)].log);
  std::string err;
  auto a = submit(c, *h, "hold", queue, 3, &err);
  if (!s.check(a.has_value(), err)) return s.report();
  const std::string A = "job " + std::to_string(*a);

  // W1 runs A: its command wrote its pid and lease token.
  pid_t command = -1;
  std::uint64_t w1_token = 0;
  if (!s.check(wait_until([&] { return read_held(c, *a, command, w1_token); }, c.deadline()),
               A + " running on w1 (its command's .held file) within the deadline; state " +
                   state_of(get_job(*h, *a))))
    return s.report();
  auto view = get_job(*h, *a);
  s.check(state_of(view) == "running" && view["job"].value("worker", "") == "w1" &&
              view["job"].value("lease_token", std::uint64_t{0}) == w1_token,
          A + " running on w1 under the token its command got, seen " + state_of(view) + " on " +
              view["job"].value("worker", ""));

  // Freeze W1 and its command (the command's process group is its pid).
  pid_t w1_pid = c.workers[static_cast<std::size_t>(w1)].pid;
  ::kill(w1_pid, SIGSTOP);
  ::kill(-command, SIGSTOP);
  auto stopped_at = clock_type::now();
  s.check(wait_until([&] { return state_letter(w1_pid) == 'T' && state_letter(command) == 'T'; },
                     c.deadline()),
          "w1 and its command stopped (state T)");

  // The server reclaims A once the lease runs out.
  bool reclaimed = wait_until(
      [&] { return !events_of(get_job(*h, *a), "job.reclaimed").empty(); }, c.deadline());
  double stopped_for = seconds_since(stopped_at);
  if (!s.check(reclaimed, A + " reclaimed within the deadline while w1 is stopped; history " +
                              history_line(get_job(*h, *a)))) {
    ::kill(-command, SIGCONT);
    ::kill(w1_pid, SIGCONT);
    return s.report();
  }
  s.note(A + " reclaimed " + fmt_s(stopped_for) + " after w1 stopped (lease " +
         std::to_string(c.o->lease_ms) + " ms)");

  // W2 takes A over and completes it while W1 is still stopped.
  int w2 = c.start_worker("w2", queue);
  if (!s.check(w2 >= 0, "worker w2 started")) return s.report();
  s.attach("w2 log", c.workers[static_cast<std::size_t>(w2)].log);
  bool done = wait_until([&] { return state_of(get_job(*h, *a)) == "succeeded"; }, c.deadline());
  s.check(done, A + " succeeded on w2 within the deadline, seen " + state_of(get_job(*h, *a)));
  s.check(state_letter(w1_pid) == 'T', "w1 still stopped when w2 completed " + A);
  auto before = get_job(*h, *a);

  // The driver speaks for W1 with its own token: refused, nothing changes.
  auto late_complete = h->post("/v1/jobs/" + std::to_string(*a) + "/complete",
                               {{"lease_token", w1_token}, {"result", {{"worker", "w1"}}}});
  s.check(late_complete.status == 409 && error_code(late_complete) == "stale_token",
          "w1's late complete: 409 stale_token, seen " + describe(late_complete));
  auto late_beat = h->post("/v1/jobs/" + std::to_string(*a) + "/heartbeat",
                           {{"lease_token", w1_token}});
  s.check(late_beat.status == 409 && error_code(late_beat) == "stale_token",
          "w1's late heartbeat: 409 stale_token, seen " + describe(late_beat));
  s.note("w1's token: complete " + std::to_string(late_complete.status) + " " +
         error_code(late_complete) + ", heartbeat " + std::to_string(late_beat.status) + " " +
         error_code(late_beat));

  // W1 itself resumes: its next heartbeat is refused and it kills its command.
  ::kill(-command, SIGCONT);
  ::kill(w1_pid, SIGCONT);
  std::string refusal;
  auto refused = [&] {
    std::istringstream in(read_file(c.workers[static_cast<std::size_t>(w1)].log));
    for (std::string line; std::getline(in, line);)
      if (line.find(A + ":") != std::string::npos && line.find("409") != std::string::npos) {
        refusal = line.substr(line.find("jobsmith work: ") + 15);
        return true;
      }
    return false;
  };
  if (s.check(wait_until(refused, c.deadline()),
              "w1, resumed, logs a 409 for " + A + " within the deadline"))
    s.note("w1 resumed: \"" + refusal + "\"");
  s.check(wait_until([&] { return ::kill(command, 0) != 0 || parent_of(command) != w1_pid; },
                     c.deadline()),
          "w1 ends its command (pid " + std::to_string(command) + ") after the 409");
  s.check(!c.exited(w1), "w1 still running after the refusal");

  auto after = get_job(*h, *a);
  check_second_attempt_success(s, after, "w1", "w2");
  s.check(!before.contains("error") && !after.contains("error") &&
              before["job"]["last_seq"] == after["job"]["last_seq"] &&
              before["history"].size() == after["history"].size(),
          "no event written after A succeeded (last_seq, history length unchanged)");
  s.note("history " + history_line(after));
  for (int w : {w1, w2}) {
    auto st = c.stop_worker(w);
    s.check(st && *st == 0, c.workers[static_cast<std::size_t>(w)].name +
                                " exits 0 on SIGTERM, seen " +
                                (st ? std::to_string(*st) : std::string("no exit, killed")));
  }
  return s.report();
}

// -- 2. a worker killed mid-job -----------------------------------------------------

bool worker_killed(context& c) {
  scenario s("worker_killed");
  auto h = c.client();
  const std::string queue = "s2";
  s.attach("server log", c.dir + "/server.log");
  int w3 = c.start_worker("w3", queue);
  if (!s.check(w3 >= 0, "worker w3 started")) return s.report();
  s.attach("w3 log", c.workers[static_cast<std::size_t>(w3)].log);
  std::string err;
  auto b = submit(c, *h, "hold", queue, 3, &err);
  if (!s.check(b.has_value(), err)) return s.report();
  const std::string B = "job " + std::to_string(*b);

  pid_t command = -1;
  std::uint64_t token = 0;
  if (!s.check(wait_until([&] { return read_held(c, *b, command, token); }, c.deadline()),
               B + " running on w3 within the deadline; state " + state_of(get_job(*h, *b))))
    return s.report();

  pid_t w3_pid = c.workers[static_cast<std::size_t>(w3)].pid;
  ::kill(w3_pid, SIGKILL);
  auto st = wait_for(w3_pid, c.deadline());
  if (st) c.workers[static_cast<std::size_t>(w3)].exit_status = *st;
  s.check(st && *st == 128 + SIGKILL, "w3 dies of SIGKILL");
  auto killed_at = clock_type::now();
  // The command must not outlive its worker: it runs in a process group of
  // its own, which the worker's guardian process kills once the worker is
  // gone (apps/client/job_process.cpp, group_guardian). As the subreaper this
  // process inherits it, so "gone" is a zombie here or no process at all.
  auto command_gone = [&] {
    char st = state_letter(command);
    return st == '?' || st == 'Z';
  };
  bool ended = wait_until(command_gone, 5s);
  s.check(ended, "w3's command (pid " + std::to_string(command) +
                     ") ends within 5 s of w3's death, seen state " +
                     std::string(1, state_letter(command)));
  if (ended) {
    s.note("w3's command (pid " + std::to_string(command) + ") ended with it");
  } else if (parent_of(command) == ::getpid()) {
    ::kill(-command, SIGKILL);  // still unreaped, so its group id is still its own
  }
  if (parent_of(command) == ::getpid()) wait_for(command, 10s);

  int w4 = c.start_worker("w4", queue);
  if (!s.check(w4 >= 0, "worker w4 started")) return s.report();
  s.attach("w4 log", c.workers[static_cast<std::size_t>(w4)].log);
  bool done = wait_until([&] { return state_of(get_job(*h, *b)) == "succeeded"; }, c.deadline());
  s.check(done, B + " succeeded on w4 within the deadline, seen " + state_of(get_job(*h, *b)) +
                    "; history " + history_line(get_job(*h, *b)));
  if (done) s.note(B + " succeeded " + fmt_s(seconds_since(killed_at)) + " after w3 was killed");
  auto view = get_job(*h, *b);
  check_second_attempt_success(s, view, "w3", "w4");
  s.note("attempts " + std::to_string(view["job"].value("attempts", 0)) +
         "; history " + history_line(view));
  auto w4_st = c.stop_worker(w4);
  s.check(w4_st && *w4_st == 0, "w4 exits 0 on SIGTERM");
  return s.report();
}

// -- 3. a poison job ----------------------------------------------------------------

bool poison_job(context& c) {
  scenario s("poison_job");
  auto h = c.client();
  const std::string queue = "s3";
  const int max_attempts = 3, others = 6, slots = 2;
  s.attach("server log", c.dir + "/server.log");
  std::string err;
  auto poison = submit(c, *h, "poison", queue, max_attempts, &err);
  if (!s.check(poison.has_value(), err)) return s.report();
  const std::string C = "job " + std::to_string(*poison);
  std::vector<std::uint64_t> plain;
  for (int i = 0; i < others; ++i) {
    auto id = submit(c, *h, "plain", queue, max_attempts, &err);
    if (!s.check(id.has_value(), err)) return s.report();
    plain.push_back(*id);
  }

  // Two worker slots, each refilled with a new worker when its worker dies.
  int started = 0, deaths = 0;
  std::vector<int> live;
  std::vector<int> death_statuses;
  auto start_one = [&] {
    int i = c.start_worker("p" + std::to_string(++started), queue);
    if (i >= 0) live.push_back(i);
    s.attach("p" + std::to_string(started) + " log", c.dir + "/worker-p" +
                                                         std::to_string(started) + ".log");
  };
  auto supervise = [&] {
    for (auto it = live.begin(); it != live.end();) {
      if (c.exited(*it)) {
        ++deaths;
        death_statuses.push_back(*c.workers[static_cast<std::size_t>(*it)].exit_status);
        it = live.erase(it);
      } else {
        ++it;
      }
    }
    while (static_cast<int>(live.size()) < slots && started < 20) start_one();
  };
  auto all_done = [&] {
    supervise();
    if (state_of(get_job(*h, *poison)) != "discarded") return false;
    for (auto id : plain)
      if (state_of(get_job(*h, id)) != "succeeded") return false;
    return true;
  };
  bool done = wait_until(all_done, c.deadline());
  s.check(done, C + " discarded and the other jobs succeeded within the deadline; " + C + " is " +
                    state_of(get_job(*h, *poison)) + ", history " +
                    history_line(get_job(*h, *poison)));
  // No fourth attempt comes later: watch for two more lease lengths.
  if (done)
    wait_until(
        [&] {
          supervise();
          return false;
        },
        milliseconds(2 * c.o->lease_ms));

  auto view = get_job(*h, *poison);
  auto starts = events_of(view, "job.started");
  auto reclaims = events_of(view, "job.reclaimed");
  s.check(state_of(view) == "discarded", C + " discarded, seen " + state_of(view));
  s.check(view["job"].value("attempts", 0) == max_attempts,
          C + " attempts " + std::to_string(max_attempts) + ", seen " +
              std::to_string(view["job"].value("attempts", 0)));
  s.check(starts.size() == static_cast<std::size_t>(max_attempts),
          C + " started exactly " + std::to_string(max_attempts) + " times, seen " +
              history_line(view));
  bool each_reclaimed = reclaims.size() == static_cast<std::size_t>(max_attempts);
  for (std::size_t i = 0; each_reclaimed && i < reclaims.size(); ++i) {
    bool last = i + 1 == reclaims.size();
    each_reclaimed = reclaims[i].value("attempt", 0) == static_cast<int>(i + 1) &&
                     (reclaims[i].value("next_run_at", std::int64_t{0}) == 0) == last;
  }
  s.check(each_reclaimed, C + " each attempt reclaimed, the last with no next run, seen " +
                              history_line(view));
  s.check(events_of(view, "job.succeeded").empty() && events_of(view, "job.failed").empty(),
          C + " neither succeeded nor failed by a worker, seen " + history_line(view));
  s.check(deaths == max_attempts, "exactly " + std::to_string(max_attempts) +
                                      " workers died, seen " + std::to_string(deaths));
  s.check(std::all_of(death_statuses.begin(), death_statuses.end(),
                      [](int st) { return st == 128 + SIGKILL; }),
          "each dead worker died of SIGKILL");
  int plain_ok = 0;
  for (auto id : plain) {
    auto v = get_job(*h, id);
    bool ok = state_of(v) == "succeeded" && v["job"].value("attempts", 0) == 1;
    plain_ok += ok;
    s.check(ok, "job " + std::to_string(id) + " succeeded on its first attempt, seen " +
                    state_of(v) + ", history " + history_line(v));
  }
  s.note(C + " " + state_of(view) + " after " + std::to_string(starts.size()) + " attempts, " +
         std::to_string(deaths) + " workers killed by it and replaced; " + std::to_string(plain_ok) +
         "/" + std::to_string(others) + " other jobs succeeded");
  s.note("history " + history_line(view));
  for (int i : live) {
    auto st = c.stop_worker(i);
    s.check(st && *st == 0, c.workers[static_cast<std::size_t>(i)].name + " exits 0 on SIGTERM");
  }
  return s.report();
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--keep") {
      o.keep = true;
      continue;
    }
    if (i + 1 >= argc || a == "--help") {
      std::fprintf(stderr,
                   "usage: jobsmith-worker-faults --binary PATH [--lease-ms MS] [--deadline-s S]\n"
                   "  [--http-timeout-ms MS] [--ready-timeout-s S] [--work-dir DIR] [--keep]\n");
      return false;
    }
    std::string v = argv[++i];
    if (a == "--binary")
      o.binary = v;
    else if (a == "--lease-ms")
      o.lease_ms = std::stoi(v);
    else if (a == "--deadline-s")
      o.deadline_s = std::stoi(v);
    else if (a == "--http-timeout-ms")
      o.http_timeout_ms = std::stoi(v);
    else if (a == "--ready-timeout-s")
      o.ready_timeout_s = std::stoi(v);
    else if (a == "--work-dir")
      o.work_dir = v;
    else {
      std::fprintf(stderr, "worker-faults: unknown option %s\n", a.c_str());
      return false;
    }
  }
  if (o.binary.empty() || o.lease_ms < 100 || o.deadline_s < 1) {
    std::fprintf(stderr, "worker-faults: --binary is required; --lease-ms >= 100\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  try {
    if (!parse(argc, argv, o)) return 2;
  } catch (const std::exception&) {
    std::fprintf(stderr, "worker-faults: a numeric option has a bad value\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  // The commands of dead workers become this process's children, so they
  // can be killed and reaped by pid (kill_leftovers).
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    std::perror("worker-faults: PR_SET_CHILD_SUBREAPER");
    return 2;
  }
  auto t0 = clock_type::now();
  const bool own_dir = jobsmith::crash::prepare_work_dir(o.work_dir, "wf");

  context c;
  c.o = &o;
  c.dir = o.work_dir;
  c.url.port = free_port();
  c.url_text = "http://127.0.0.1:" + std::to_string(c.url.port);
  server_process server(o.binary, o.work_dir + "/data", c.url.port, o.work_dir + "/server.log",
                        {"--handler-timeout-ms", "60000"}, o.ready_timeout_s);
  std::printf("worker-faults: lease %d ms, server %s, dir %s\n", o.lease_ms, c.url_text.c_str(),
              o.work_dir.c_str());
  std::fflush(stdout);
  std::string err;
  if (!server.start(&err)) {
    std::printf("worker-faults: %s\n", err.c_str());
    return 2;
  }

  int failed = 0;
  failed += !sigstop_past_lease(c);
  failed += !worker_killed(c);
  failed += !poison_job(c);

  c.kill_all_workers();  // those a failed scenario left behind
  int stopped = server.stop();
  if (stopped != 0) {
    std::printf("FAIL server: SIGTERM: expected exit 0, seen %d\n", stopped);
    ++failed;
  }
  int leftovers = kill_leftovers();
  std::printf("worker-faults: %d of 3 scenarios failed; %zu workers started; %d leftover "
              "processes killed at the end; %.1f s\n",
              failed - (stopped != 0), c.workers.size(), leftovers, seconds_since(t0));
  std::fflush(stdout);
  if (own_dir && !o.keep && failed == 0) {
    std::error_code ec;
    fs::remove_all(o.work_dir, ec);
  } else {
    std::printf("worker-faults: logs and data kept in %s\n", o.work_dir.c_str());
  }
  return failed == 0 ? 0 : 1;
}
