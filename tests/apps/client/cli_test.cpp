// The client verbs as a user runs them: the real `jobsmith` binary
// (JOBSMITH_BINARY) as subprocesses against a real `jobsmith serve` on a
// free loopback port with a fresh data directory (tests/apps/client/
// cli_support.hpp). `jobsmith work` has its own suite, work_test.cpp.
#define BOOST_TEST_MODULE cli
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/apps/client/cli_support.hpp"

using namespace jobsmith::test::cli;
using jobsmith::test::temp_dir;
using jobsmith::test::wait_until;

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

