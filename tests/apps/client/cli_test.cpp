// The client verbs and `jobsmith work` as a user runs them: the real
// `jobsmith` binary (JOBSMITH_BINARY) as subprocesses against a real
// `jobsmith serve` on a free loopback port with a fresh data directory.
#define BOOST_TEST_MODULE cli
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/client/http_client.hpp"
#include "tests/test_support.hpp"

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace http = jobsmith::http;
using jobsmith::test::temp_dir;
using jobsmith::test::wait_until;

extern char** environ;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// A `jobsmith` subprocess with stdout and stderr in files.
class process {
 public:
  process(const std::string& dir, std::vector<std::string> args, const std::string& stdin_text = {})
      : out_(dir + "/out-" + std::to_string(++counter)), err_(out_ + ".err"), in_(out_ + ".in") {
    std::ofstream(in_) << stdin_text;
    args.insert(args.begin(), JOBSMITH_BINARY);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in_.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    BOOST_TEST_REQUIRE(rc == 0, "spawn " << JOBSMITH_BINARY);
    what_ = args[1];
  }
  ~process() {
    if (!exited_) {
      ::kill(pid_, SIGKILL);
      wait(10s);
    }
  }
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  void signal(int sig) { ::kill(pid_, sig); }
  /// The exit code (128+signal when killed), or -1 when it did not end in time.
  int wait(std::chrono::milliseconds limit = 20s) {
    if (exited_) return code_;
    wait_until(
        [&] {
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
          exited_ = true;
          code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          return true;
        },
        limit);
    return exited_ ? code_ : -1;
  }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }
  pid_t pid() const { return pid_; }

 private:
  static inline int counter = 0;
  std::string out_, err_, in_, what_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int code_ = -1;
};

struct result {
  int code;
  std::string out, err;
};

/// `jobsmith serve` on a fresh directory; verbs run against it.
struct served {
  temp_dir dir;
  std::uint16_t port = free_port();
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  std::unique_ptr<process> server;

  served() { start_server(); }

  /// Stops the server (SIGTERM) and starts it again on the same port and data.
  void restart() {
    server->signal(SIGTERM);
    BOOST_TEST_REQUIRE(server->wait(15s) >= 0, "serve did not stop");
    start_server();
  }

  void start_server() {
    server = std::make_unique<process>(
        dir.path(), std::vector<std::string>{"serve", "--data", dir.sub("data"), "--listen",
                                             "127.0.0.1:" + std::to_string(port)});
    http::url u;
    u.port = port;
    bool ready = wait_until(
        [&] {
          http::client c(u, {}, 1s);
          return c.get("/readyz").status == 200;
        },
        20s);
    BOOST_TEST_REQUIRE(ready, "serve did not become ready: " << server->err());
  }
  ~served() {
    server->signal(SIGTERM);
    if (server->wait(15s) < 0) server->signal(SIGKILL);
  }

  /// Runs a verb to its end with --url added.
  result run(std::vector<std::string> args, const std::string& stdin_text = {}) {
    args.insert(args.begin() + 1, {"--url", url});
    process p(dir.path(), args, stdin_text);
    int code = p.wait(20s);
    return {code, p.out(), p.err()};
  }
  /// Starts a verb in the background with --url added.
  std::unique_ptr<process> start(std::vector<std::string> args) {
    args.insert(args.begin() + 1, {"--url", url});
    return std::make_unique<process>(dir.path(), args);
  }

  std::uint64_t submit(std::vector<std::string> args) {
    args.insert(args.begin(), "submit");
    auto r = run(args);
    // The server's stderr too: a submit once failed under ASan with "connection
    // closed by the server before it answered" and nothing else to go on.
    BOOST_TEST_REQUIRE(r.code == 0, r.err << "\n--- serve stderr:\n" << server->err());
    return std::stoull(r.out);
  }
  json job(std::uint64_t id) {
    http::url u;
    u.port = port;
    http::client c(u, {}, 5s);
    return c.get("/v1/jobs/" + std::to_string(id)).json();
  }
  std::string state(std::uint64_t id) {
    auto j = job(id);
    return j.contains("job") ? j["job"]["state"].get<std::string>() : "?";
  }
  bool wait_state(std::uint64_t id, const std::string& want,
                  std::chrono::milliseconds limit = 15s) {
    return wait_until([&] { return state(id) == want; }, limit);
  }
  /// The types of the job's events, in order.
  std::vector<std::string> history(std::uint64_t id) {
    std::vector<std::string> types;
    auto j = job(id);  // (a temporary's member in a range-for would dangle)
    for (auto& ev : j["history"]) types.push_back(ev["type"]);
    return types;
  }
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const std::vector<std::string> ok_command = {"--", "sh", "-c", "cat >/dev/null; echo '{\"ok\":1}'"};

std::vector<std::string> work_args(std::vector<std::string> options,
                                   const std::vector<std::string>& command) {
  options.insert(options.begin(), "work");
  options.insert(options.end(), {"--wait", "500"});
  options.insert(options.end(), command.begin(), command.end());
  return options;
}

}  // namespace

BOOST_AUTO_TEST_CASE(submit_then_status_and_errors) {
  served s;
  auto r = s.run({"submit", "--kind", "resize", "--queue", "images", "--payload", "-", "--priority",
                  "3", "--resource", "db:charts:shared", "--max-attempts", "5"},
                 R"({"image":"a.png"})");
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  auto id = std::stoull(r.out);
  auto job = s.job(id)["job"];
  BOOST_TEST(job["spec"]["payload"] == json::parse(R"({"image":"a.png"})"));
  BOOST_TEST(job["spec"]["priority"] == 3);
  BOOST_TEST(job["spec"]["queue"] == "images");
  BOOST_TEST(job["max_attempts"] == 5);
  BOOST_TEST(job["spec"]["resources"][0]["name"] == "db:charts");
  BOOST_TEST(job["spec"]["resources"][0]["mode"] == "shared");

  auto st = s.run({"status", std::to_string(id)});
  BOOST_TEST(st.code == 0, st.err);
  BOOST_TEST(contains(st.out, "state:      queued"), st.out);
  BOOST_TEST(contains(st.out, R"({"image":"a.png"})"), st.out);
  BOOST_TEST(contains(st.out, "job.submitted"), st.out);
  auto js = s.run({"status", std::to_string(id), "--json"});
  BOOST_TEST(json::parse(js.out)["job"]["id"] == id);

  auto missing = s.run({"status", "999"});
  BOOST_TEST(missing.code == 2);
  BOOST_TEST(contains(missing.err, "404"), missing.err);
  auto bad = s.run({"submit", "--kind", "x", "--payload", "{not json"});
  BOOST_TEST(bad.code == 2);
  BOOST_TEST(contains(bad.err, "not JSON"), bad.err);
  auto refused = s.run({"submit", "--kind", "x", "--delay", "-5"});
  BOOST_TEST(refused.code == 2, refused.err);
  BOOST_TEST(contains(refused.err, "HTTP 400"), refused.err);

  process unreachable(s.dir.path(),
                      {"queues", "--url", "http://127.0.0.1:" + std::to_string(free_port())});
  BOOST_TEST(unreachable.wait() == 1);
  BOOST_TEST(contains(unreachable.err(), "cannot reach the server"), unreachable.err());
}

BOOST_AUTO_TEST_CASE(job_and_queue_verbs) {
  served s;
  auto later = s.submit({"--kind", "k", "--delay", "600000"});
  BOOST_TEST(s.state(later) == "scheduled");
  auto rn = s.run({"run-now", std::to_string(later)});
  BOOST_TEST(rn.code == 0, rn.err);
  BOOST_TEST(rn.out == "job " + std::to_string(later) + ": queued\n");
  auto c = s.run({"cancel", std::to_string(later), "--reason", "not needed"});
  BOOST_TEST(c.out == "job " + std::to_string(later) + ": cancelled\n", c.err);
  auto again = s.run({"cancel", std::to_string(later)});  // idempotent
  BOOST_TEST(again.code == 0, again.err);
  auto not_pending = s.run({"review", std::to_string(later), "--accept"});
  BOOST_TEST(not_pending.code == 2);
  BOOST_TEST(contains(not_pending.err, "HTTP 409 conflict"), not_pending.err);

  auto p = s.run({"pause", "mail"});
  BOOST_TEST(p.out == "queue mail: paused\n", p.err);
  auto q = s.run({"queues"});
  BOOST_TEST(contains(q.out, "QUEUE"), q.out);
  bool listed = false;
  std::istringstream lines(q.out);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("mail ", 0) == 0) listed = contains(line, " yes ");
  BOOST_TEST(listed, q.out);
  auto rs = s.run({"resume", "mail"});
  BOOST_TEST(rs.out == "queue mail: running\n", rs.err);

  auto l = s.run({"list", "--state", "cancelled"});
  BOOST_TEST(l.code == 0, l.err);
  BOOST_TEST(contains(l.out, std::to_string(later) + "   cancelled"), l.out);
  auto none = s.run({"list", "--state", "running"});
  BOOST_TEST(!contains(none.out, "cancelled"), none.out);
}

BOOST_AUTO_TEST_CASE(schedules_lists_and_unschedule_ends_a_recurring_job) {
  served s;
  auto first = s.submit({"--kind", "cleanup", "--queue", "cron", "--every", "600000"});
  auto id = std::to_string(first);
  auto l = s.run({"schedules"});
  BOOST_TEST(l.code == 0, l.err);
  bool listed = false;
  std::istringstream lines(l.out);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(id + " ", 0) == 0) listed = contains(line, "cleanup") && contains(line, "600000");
  BOOST_TEST(listed, l.out);
  auto u = s.run({"unschedule", id});
  BOOST_TEST(u.code == 0, u.err);
  BOOST_TEST(u.out == "schedule " + id + ": deleted (a run in progress goes on; no further run)\n");
  auto again = s.run({"unschedule", id});
  BOOST_TEST(again.code == 2);
  BOOST_TEST(contains(again.err, "HTTP 404 not_found"), again.err);
  auto after = s.run({"schedules"});
  BOOST_TEST(!contains(after.out, "cleanup"), after.out);
}

BOOST_AUTO_TEST_CASE(work_completes_jobs_with_the_last_json_line_and_logs) {
  served s;
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(s.submit({"--kind", "echo", "--payload", R"({"n":)" + std::to_string(i) + "}"}));
  auto w = s.start(
      work_args({"--queues", "default", "--concurrency", "2"},
                {"--", "sh", "-c",
                 "echo \"job $JOBSMITH_JOB_ID attempt $JOBSMITH_ATTEMPT kind $JOBSMITH_KIND\"; "
                 "echo warning >&2; cat; echo; echo '{\"ok\":1}'"}));
  for (auto id : ids) BOOST_TEST(s.wait_state(id, "succeeded"), "job " << id << w->err());
  auto job = s.job(ids[1]);
  BOOST_TEST(job["job"]["result"] == json::parse(R"({"ok":1})"));
  auto st = s.run({"status", std::to_string(ids[1])});
  BOOST_TEST(contains(st.out, "job " + std::to_string(ids[1]) + " attempt 1 kind echo"), st.out);
  BOOST_TEST(contains(st.out, R"(info   {"n":1})"), st.out);
  BOOST_TEST(contains(st.out, "warn   warning"), st.out);
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(10s) == 0, w->err());
}

BOOST_AUTO_TEST_CASE(work_sets_a_line_s_level_by_its_prefix_on_either_stream) {
  served s;
  auto id = s.submit({"--kind", "k"});
  auto w = s.start(work_args(
      {}, {"--", "sh", "-c",
           "cat >/dev/null; echo '::error::disk full'; echo '::warning::slow disk'; "
           "echo '::info::from stderr' >&2; echo '::notice::noted'; echo '::error::on stderr' >&2; "
           "echo plain; echo 'plain err' >&2; echo '{\"ok\":1}'; echo '::info::after the result'"}));
  BOOST_TEST_REQUIRE(s.wait_state(id, "succeeded"), w->err());
  std::vector<std::string> lines;
  auto view = s.job(id);
  for (auto& ev : view["history"])
    if (ev["type"] == "job.progress")
      for (auto& l : ev["body"]["lines"])
        lines.push_back(l["level"].get<std::string>() + " " + l["text"].get<std::string>());
  std::sort(lines.begin(), lines.end());  // the two streams interleave as they were read
  BOOST_TEST(lines == (std::vector<std::string>{"error disk full", "error on stderr",
                                                "info after the result", "info from stderr",
                                                "info noted", "info plain", "info {\"ok\":1}",
                                                "warn plain err", "warn slow disk"}),
             boost::test_tools::per_element());
  // A prefixed line is not the result.
  BOOST_TEST(view["job"]["result"] == json::parse(R"({"ok":1})"));
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(10s) == 0, w->err());
}

BOOST_AUTO_TEST_CASE(work_takes_the_queues_right_before_the_command) {
  // As the README types it: `--queues Q -- sh -c ...`. --queues used to take
  // the `--` as the end of its list, and work then refused `-c`.
  served s;
  auto id = s.submit({"--kind", "k", "--queue", "q1"});
  auto other = s.submit({"--kind", "k", "--queue", "q2"});
  auto w = s.start({"work", "--wait", "500", "--queues", "q1,q2", "--", "sh", "-c",
                    "cat >/dev/null; echo '{\"ok\":1}'"});
  BOOST_TEST(s.wait_state(id, "succeeded"), w->err());
  BOOST_TEST(s.wait_state(other, "succeeded"), w->err());
  BOOST_TEST(s.job(id)["job"]["result"] == json::parse(R"({"ok":1})"));
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(10s) == 0, w->err());
}

BOOST_AUTO_TEST_CASE(a_failing_command_is_retried_and_a_permanent_code_discards) {
  served s;
  auto flaky =
      s.submit({"--kind", "f", "--queue", "flaky", "--max-attempts", "2", "--retry-initial", "0"});
  auto w = s.start(work_args({"--queues", "flaky"}, {"--", "sh", "-c", "echo boom >&2; exit 1"}));
  BOOST_TEST(s.wait_state(flaky, "discarded"), w->err());
  auto job = s.job(flaky)["job"];
  BOOST_TEST(job["attempts"] == 2);
  BOOST_TEST(contains(job["last_error"].get<std::string>(), "exit code 1: boom"),
             job["last_error"]);
  auto types = s.history(flaky);
  BOOST_TEST(std::count(types.begin(), types.end(), "job.failed") == 2, s.job(flaky).dump());
  auto tried_twice = s.run({"list", "--attempts-min", "2", "--attempts-max", "2"});
  BOOST_TEST((tried_twice.code == 0 && contains(tried_twice.out, "discarded")), tried_twice.err);
  BOOST_TEST(!contains(s.run({"list", "--attempts-max", "1"}).out, "discarded"));
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(10s) == 0);

  auto doomed = s.submit({"--kind", "f", "--queue", "doomed", "--max-attempts", "5"});
  auto w2 = s.start(work_args({"--queues", "doomed", "--permanent-exit-code", "7"},
                              {"--", "sh", "-c", "exit 7"}));
  BOOST_TEST(s.wait_state(doomed, "discarded"), w2->err());
  BOOST_TEST(s.job(doomed)["job"]["attempts"] == 1);
  // and `retry` gives it fresh attempts: it runs again and fails again
  auto rt = s.run({"retry", std::to_string(doomed)});
  BOOST_TEST(rt.code == 0, rt.err);
  BOOST_TEST(wait_until([&] {
    auto t = s.history(doomed);
    return std::count(t.begin(), t.end(), "job.failed") == 2;
  }));
  w2->signal(SIGTERM);
  BOOST_TEST(w2->wait(10s) == 0);
}

BOOST_AUTO_TEST_CASE(a_failed_command_hands_over_to_later_attempts_through_files) {
  // Attempt 1 has no handover and leaves one; attempt 2 fails without
  // leaving any; attempt 3 still reads attempt 1's.
  served s;
  auto id = s.submit({"--kind", "k", "--max-attempts", "3", "--retry-initial", "0"});
  auto w = s.start(work_args(
      {}, {"--", "sh", "-c",
           "cat >/dev/null; case $JOBSMITH_ATTEMPT in "
           "1) echo \"{\\\"page\\\":4,\\\"had\\\":\\\"${JOBSMITH_HANDOVER_FILE:-none}\\\"}\" "
           "> \"$JOBSMITH_HANDOVER_OUT\"; exit 1;; "
           "2) exit 1;; "
           "*) echo \"{\\\"seen\\\":$(cat \"$JOBSMITH_HANDOVER_FILE\")}\";; esac"}));
  BOOST_TEST_REQUIRE(s.wait_state(id, "succeeded"), w->err());
  auto job = s.job(id)["job"];
  BOOST_TEST(job["attempts"] == 3);
  BOOST_TEST(job["result"] == json::parse(R"({"seen":{"page":4,"had":"none"}})"), job.dump());
  BOOST_TEST(job["handover"] == json::parse(R"({"page":4,"had":"none"})"), job.dump());
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(10s) == 0, w->err());
}

BOOST_AUTO_TEST_CASE(a_handover_file_that_is_not_json_is_refused_with_a_log_line) {
  served s;
  auto id = s.submit({"--kind", "k", "--max-attempts", "1"});
  auto w = s.start(work_args(
      {}, {"--", "sh", "-c", "cat >/dev/null; echo 'page 4' > \"$JOBSMITH_HANDOVER_OUT\"; exit 1"}));
  BOOST_TEST_REQUIRE(s.wait_state(id, "discarded"), w->err());
  BOOST_TEST(!s.job(id)["job"].contains("handover"), s.job(id).dump());
  auto st = s.run({"status", std::to_string(id)});
  BOOST_TEST(contains(st.out, "JOBSMITH_HANDOVER_OUT is not JSON; no handover sent"), st.out);
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(10s) == 0, w->err());
}

BOOST_AUTO_TEST_CASE(a_last_stderr_line_that_is_not_utf8_still_fails_the_job) {
  // The error text carries the line; the worker once died encoding it.
  served s;
  auto id = s.submit({"--kind", "k", "--max-attempts", "1"});
  auto w = s.start(work_args({}, {"--", "sh", "-c", "cat >/dev/null; printf 'caf\\351\\n' >&2; exit 1"}));
  BOOST_TEST_REQUIRE(s.wait_state(id, "discarded"), w->err());
  auto error = s.job(id)["job"]["last_error"].get<std::string>();
  BOOST_TEST(error.rfind("exit code 1: caf", 0) == 0u, error);
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(10s) == 0, w->err());
}

BOOST_AUTO_TEST_CASE(sigterm_lets_the_running_job_finish_and_stops_leasing) {
  served s;
  auto first = s.submit({"--kind", "slow"});
  auto w = s.start(
      work_args({"--concurrency", "1"}, {"--", "sh", "-c", "sleep 1; echo '{\"finished\":true}'"}));
  BOOST_TEST_REQUIRE(s.wait_state(first, "running"), w->err());
  w->signal(SIGTERM);
  auto second = s.submit({"--kind", "slow"});
  BOOST_TEST(w->wait(15s) == 0, w->err());
  BOOST_TEST(s.state(first) == "succeeded");
  BOOST_TEST(s.job(first)["job"]["result"] == json::parse(R"({"finished":true})"));
  BOOST_TEST(s.state(second) == "queued");
}

BOOST_AUTO_TEST_CASE(a_killed_worker_s_job_is_reclaimed_and_run_by_another) {
  served s;
  // 2.5 s: the second worker beats every 0.8 s, so a loaded machine's
  // delays do not have its lease reclaimed too (a 1 s lease once was).
  auto id = s.submit({"--kind", "k", "--heartbeat", "2500", "--retry-initial", "0"});
  // The first attempt hangs (its orphaned shell ends by itself after 3 s);
  // later attempts succeed.
  std::vector<std::string> command = {"--", "sh", "-c",
                                      "if [ \"$JOBSMITH_ATTEMPT\" = 1 ]; then sleep 3; fi; echo "
                                      "\"{\\\"attempt\\\":$JOBSMITH_ATTEMPT}\""};
  auto w1 = s.start(work_args({"--name", "first"}, command));
  BOOST_TEST_REQUIRE(s.wait_state(id, "running"), w1->err());
  w1->signal(SIGKILL);
  w1->wait();
  auto w2 = s.start(work_args({"--name", "second"}, command));
  BOOST_TEST(s.wait_state(id, "succeeded", 20s), w2->err());
  auto job = s.job(id)["job"];
  BOOST_TEST(job["attempts"] == 2);
  std::string last_worker;
  auto final_view = s.job(id);
  for (auto& ev : final_view["history"])
    if (ev["type"] == "job.started") last_worker = ev["body"]["worker"];
  BOOST_TEST(last_worker == "second");
  BOOST_TEST(job["result"] == json::parse(R"({"attempt":2})"));
  auto types = s.history(id);
  BOOST_TEST((std::find(types.begin(), types.end(), "job.reclaimed") != types.end()));
  w2->signal(SIGTERM);
  BOOST_TEST(w2->wait(10s) == 0);
}

/// The reason of the job.cancelled event in job `id`'s history.
std::string cancel_reason(served& s, std::uint64_t id) {
  auto j = s.job(id);  // (a temporary's member in a range-for would dangle)
  for (auto& ev : j["history"])
    if (ev["type"] == "job.cancelled") return ev["body"].value("reason", "");
  return {};
}

BOOST_AUTO_TEST_CASE(a_cancelled_job_s_command_gets_sigterm_and_its_exit_cancels_the_job) {
  served s;
  auto id = s.submit({"--kind", "k", "--heartbeat", "600"});
  // Exits 3 on SIGTERM, after a last line on stderr.
  auto w = s.start(work_args(
      {}, {"--", "sh", "-c",
           "trap 'echo cleaning up >&2; exit 3' TERM; while :; do sleep 0.05; done"}));
  BOOST_TEST_REQUIRE(s.wait_state(id, "running"), w->err());
  auto c = s.run({"cancel", std::to_string(id)});
  BOOST_TEST(c.code == 0, c.err);
  BOOST_TEST(contains(c.out, "running (cancel requested"), c.out);
  // The next heartbeat (every 200 ms) brings the request.
  BOOST_TEST(s.wait_state(id, "cancelled", 10s), w->err());
  BOOST_TEST(contains(w->err(), "cancel requested; sending SIGTERM"), w->err());
  BOOST_TEST(!contains(w->err(), "sending SIGKILL"), w->err());
  BOOST_TEST(cancel_reason(s, id) ==
             "cancelled on request; attempt 1 ended: the worker reported failure: stopped by "
             "SIGTERM: exit code 3: cleaning up");
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(5s) == 0, w->err());
}

BOOST_AUTO_TEST_CASE(a_command_that_ignores_sigterm_is_killed_after_the_time_to_stop) {
  served s;
  auto id = s.submit({"--kind", "k", "--heartbeat", "600", "--timeout-stop", "1000"});
  auto w = s.start(work_args({}, {"--", "sh", "-c", "trap '' TERM; sleep 30"}));
  BOOST_TEST_REQUIRE(s.wait_state(id, "running"), w->err());
  auto asked = std::chrono::steady_clock::now();
  BOOST_TEST(s.run({"cancel", std::to_string(id)}).code == 0);
  BOOST_TEST(s.wait_state(id, "cancelled", 10s), w->err());
  BOOST_TEST((std::chrono::steady_clock::now() - asked >= 1s));
  // The server gives up when the time to stop has passed since the worker
  // was told; the worker kills at about the same moment.
  BOOST_TEST(wait_until([&] { return contains(w->err(), "sending SIGKILL"); }, 5s), w->err());
  auto reason = cancel_reason(s, id);
  BOOST_TEST((reason ==
                  "cancelled on request; attempt 1 did not stop within its time to stop (1000 ms)" ||
              contains(reason, "stopped by SIGKILL after SIGTERM")),
             reason);
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(5s) == 0, w->err());  // quickly: the sleep is gone
}

BOOST_AUTO_TEST_CASE(a_cancel_at_once_kills_the_command_at_the_next_heartbeat) {
  served s;
  auto id = s.submit({"--kind", "k", "--heartbeat", "600"});
  auto w = s.start(work_args({}, {"--", "sh", "-c", "sleep 30"}));
  BOOST_TEST_REQUIRE(s.wait_state(id, "running"), w->err());
  auto c = s.run({"cancel", std::to_string(id), "--at-once"});
  BOOST_TEST(c.code == 0, c.err);
  BOOST_TEST(contains(c.out, "cancelled"), c.out);
  // the next heartbeat (every 200 ms) learns the lease is gone
  BOOST_TEST(wait_until([&] { return contains(w->err(), "killing the command"); }, 5s), w->err());
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(5s) == 0, w->err());  // quickly: the sleep is gone
  BOOST_TEST(s.state(id) == "cancelled");
}

BOOST_AUTO_TEST_CASE(review_accept_after_work) {
  served s;
  auto id = s.submit({"--kind", "k", "--review"});
  auto w = s.start(work_args({}, ok_command));
  BOOST_TEST_REQUIRE(s.wait_state(id, "pending_review"), w->err());
  auto both = s.run({"review", std::to_string(id)});
  BOOST_TEST(both.code == 2);
  auto r = s.run({"review", std::to_string(id), "--accept", "--comment", "looks right"});
  BOOST_TEST(r.out == "job " + std::to_string(id) + ": accepted\n", r.err);
  BOOST_TEST(s.job(id)["job"]["review_comment"] == "looks right");
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(10s) == 0);
}

BOOST_AUTO_TEST_CASE(tail_prints_events_from_a_sequence) {
  served s;
  auto id = s.submit({"--kind", "k", "--queue", "tq"});
  auto t = s.run({"tail", "--from", "1", "--count", "3"});
  BOOST_TEST(t.code == 0, t.err);
  std::istringstream lines(t.out);
  std::vector<std::string> got;
  for (std::string line; std::getline(lines, line);) got.push_back(line);
  BOOST_REQUIRE(got.size() == 3u);
  BOOST_TEST(got[0].rfind("1  ", 0) == 0u, got[0]);
  BOOST_TEST(contains(got[0], "engine.started"), got[0]);
  // serve records its default retention when the log says otherwise.
  BOOST_TEST(contains(got[1], "queue.retention"), got[1]);
  BOOST_TEST(contains(got[2], "job.submitted"), got[2]);
  BOOST_TEST(contains(got[2], "job " + std::to_string(id)), got[2]);

  // Following: new events arrive as they happen, filtered by job and type, as JSON.
  auto follow = s.start({"tail", "--job", std::to_string(id), "--from", "1", "--json", "--type",
                         "job.submitted,job.started,job.succeeded", "--count", "3"});
  auto w = s.start(work_args({"--queues", "tq"}, ok_command));
  BOOST_TEST(follow->wait(15s) == 0, follow->err());
  std::istringstream jl(follow->out());
  std::vector<std::string> types;
  for (std::string line; std::getline(jl, line);) types.push_back(json::parse(line)["type"]);
  BOOST_TEST((types == std::vector<std::string>{"job.submitted", "job.started", "job.succeeded"}));
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(10s) == 0);
}

BOOST_AUTO_TEST_CASE(tail_resumes_after_the_last_event_when_the_server_restarts) {
  served s;
  auto follow = s.start({"tail", "--from", "1", "--json"});
  auto before = s.submit({"--kind", "k"});
  auto seqs_in = [&](const std::string& text) {
    std::vector<std::uint64_t> seqs;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) seqs.push_back(json::parse(line)["seq"]);
    return seqs;
  };
  auto has_job = [&](std::uint64_t id) {
    std::istringstream lines(follow->out());
    for (std::string line; std::getline(lines, line);)
      if (json::parse(line)["job"] == id) return true;
    return false;
  };
  BOOST_TEST_REQUIRE(wait_until([&] { return has_job(before); }), follow->err());
  s.restart();
  auto after = s.submit({"--kind", "k"});
  BOOST_TEST(wait_until([&] { return has_job(after); }, 15s), follow->err());
  BOOST_TEST(contains(follow->err(), "reconnecting after event"), follow->err());
  // every event once, in order, across the restart (the second engine.started too)
  auto seqs = seqs_in(follow->out());
  BOOST_REQUIRE(!seqs.empty());
  for (std::size_t i = 0; i < seqs.size(); ++i) BOOST_TEST(seqs[i] == i + 1);
}

BOOST_AUTO_TEST_CASE(a_job_command_does_not_get_the_worker_s_token) {
  // The worker's token may lease and complete any job; the command runs one
  // and gets that attempt's lease token only.
  served s;
  auto id = s.submit({"--kind", "k"});
  ::setenv("JOBSMITH_TOKEN", "worker-secret-token", 1);
  auto w = s.start(work_args({"--queues", "default"},
                             {"--", "sh", "-c",
                              "cat >/dev/null; echo \"{\\\"token\\\":\\\"${JOBSMITH_TOKEN:-none}\\\","
                              "\\\"lease\\\":\\\"${JOBSMITH_LEASE_TOKEN:-none}\\\"}\""}));
  ::unsetenv("JOBSMITH_TOKEN");
  BOOST_TEST_REQUIRE(s.wait_state(id, "succeeded"), w->err());
  auto result = s.job(id)["job"]["result"];
  BOOST_TEST(result["token"] == "none", result.dump());
  BOOST_TEST(result["lease"] != "none", result.dump());
  w->signal(SIGTERM);
  BOOST_TEST(w->wait(10s) == 0, w->err());
}
