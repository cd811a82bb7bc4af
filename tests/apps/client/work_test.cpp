// `jobsmith work` as a user runs it: the real binary (JOBSMITH_BINARY) as a
// subprocess leasing from a real `jobsmith serve` (tests/apps/client/
// cli_support.hpp), running real commands: outcomes, log levels, handover
// files, retries, signals, cancels and the time to stop.
#define BOOST_TEST_MODULE work
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "tests/apps/client/cli_support.hpp"

using namespace jobsmith::test::cli;
using jobsmith::test::temp_dir;
using jobsmith::test::wait_until;

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
  // was told; the worker kills at about the same moment: at its own deadline
  // ("sending SIGKILL"), or at the heartbeat that finds the job cancelled
  // (409, "killing the command"), whichever comes first.
  BOOST_TEST(wait_until(
                 [&] {
                   auto err = w->err();
                   return contains(err, "sending SIGKILL") || contains(err, "killing the command");
                 },
                 5s),
             w->err());
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
