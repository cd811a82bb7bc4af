// Slim answers (Prefer: return=minimal, RFC 7240) over real HTTP: what a
// worker gets of a leased job, what a complete or fail answers, and that
// without the header every answer is the whole job as before.
#define BOOST_TEST_MODULE slim_answers
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/client/http_client.hpp"
#include "apps/server/server.hpp"
#include "apps/server/slim_answers.hpp"
#include "tests/test_support.hpp"

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace srv = jobsmith::server;
namespace http = jobsmith::http;
using jobsmith::test::temp_dir;

namespace {

const http::headers minimal = {{"Prefer", "return=minimal"}};

struct served {
  temp_dir dir;
  std::unique_ptr<srv::server> server;
  std::unique_ptr<http::client> c;

  served() { start(); }
  /// A server on the data directory (the previous one's log, after restart()).
  void start() {
    srv::server_config cfg;
    cfg.port = 0;
    cfg.engine.data_dir = dir.sub("data");
    server = std::make_unique<srv::server>(std::move(cfg));
    auto err = server->start();
    BOOST_TEST_REQUIRE(err.empty(), err);
    http::url u;
    u.port = server->port();
    c = std::make_unique<http::client>(u, "", 10s);
  }
  void restart() {
    c.reset();
    server.reset();
    start();
  }
  std::uint64_t head() { return c->get("/readyz").json()["head"].get<std::uint64_t>(); }
  http::response post(const std::string& path, const json& body, bool slim) {
    return c->request("POST", path, body.dump(), slim ? minimal : http::headers{});
  }
  json lease_one(const std::string& queue, bool slim) {
    auto r = post("/v1/workers/lease", {{"worker", "w"}, {"queues", {queue}}, {"max_jobs", 1}},
                  slim);
    BOOST_TEST_REQUIRE(r.status == 200, r.body);
    BOOST_TEST(r.header("preference-applied") == (slim ? "return=minimal" : ""));
    auto jobs = r.json()["jobs"];
    BOOST_TEST_REQUIRE(jobs.size() == 1u, r.body);
    return jobs[0];
  }
  json whole(std::uint64_t id) { return c->get("/v1/jobs/" + std::to_string(id)).json()["job"]; }
};

/// The slim job's fields are the whole job's, under the names docs/api.md gives.
void expect_slim_matches_whole(const json& slim, const json& whole) {
  BOOST_TEST(slim["id"] == whole["id"]);
  BOOST_TEST(slim["attempt"] == whole["attempts"]);
  BOOST_TEST(slim["lease_token"] == whole["lease_token"]);
  BOOST_TEST(slim["kind"] == whole["spec"]["kind"]);
  BOOST_TEST(slim["queue"] == whole["spec"]["queue"]);
  BOOST_TEST(slim["payload"] == whole["spec"]["payload"]);
  BOOST_TEST(slim["timeouts"] == whole["spec"]["timeouts"]);
  BOOST_TEST(slim.contains("handover") == whole.contains("handover"));
  if (whole.contains("handover")) BOOST_TEST(slim["handover"] == whole["handover"]);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_prefer_header_is_read_as_rfc_7240_writes_it) {
  BOOST_TEST(srv::prefers_minimal("return=minimal"));
  BOOST_TEST(srv::prefers_minimal("respond-async, RETURN=Minimal"));
  BOOST_TEST(srv::prefers_minimal("return=\"minimal\"; foo=bar"));
  BOOST_TEST(srv::prefers_minimal(" wait=10 , return = minimal"));
  BOOST_TEST(!srv::prefers_minimal("return=representation"));
  BOOST_TEST(!srv::prefers_minimal("minimal"));
  BOOST_TEST(!srv::prefers_minimal(""));
}

BOOST_AUTO_TEST_CASE(a_slim_lease_carries_what_a_worker_needs_and_nothing_else) {
  served s;
  auto id = s.post("/v1/jobs",
                   {{"kind", "resize"},
                    {"queue", "images"},
                    {"payload", {{"image", "a.png"}, {"sizes", {64, 128}}}},
                    {"timeouts", {{"heartbeat", 5000}, {"to_run", 60000}}}},
                   false)
                .json()["id"]
                .get<std::uint64_t>();
  auto slim = s.lease_one("images", true);
  std::set<std::string> keys;
  for (auto& [k, v] : slim.items()) keys.insert(k);
  BOOST_TEST((keys == std::set<std::string>{"attempt", "id", "kind", "lease_token", "payload",
                                             "queue", "timeouts"}),
             slim.dump());
  expect_slim_matches_whole(slim, s.whole(id));
  BOOST_TEST(slim["attempt"] == 1);

  // A complete answers the new state only; the token is still the fence.
  auto stale = s.post("/v1/jobs/" + std::to_string(id) + "/complete",
                      {{"lease_token", slim["lease_token"].get<std::uint64_t>() + 1}}, true);
  BOOST_TEST(stale.status == 409, stale.body);
  auto done = s.post("/v1/jobs/" + std::to_string(id) + "/complete",
                     {{"lease_token", slim["lease_token"]}, {"result", {{"w", 64}}}}, true);
  BOOST_TEST_REQUIRE(done.status == 200, done.body);
  BOOST_TEST(done.json() == json::parse(R"({"job":{"id":)" + std::to_string(id) +
                                        R"(,"state":"succeeded"}})"));
  BOOST_TEST(done.header("preference-applied") == "return=minimal");
  BOOST_TEST(s.whole(id)["result"] == json::parse(R"({"w":64})"));
}

BOOST_AUTO_TEST_CASE(a_slim_fail_answers_the_state_and_the_next_lease_carries_the_handover) {
  served s;
  auto id = s.post("/v1/jobs",
                   {{"kind", "report"},
                    {"queue", "reports"},
                    {"retry", {{"max_attempts", 3}, {"initial_interval", 0}, {"max_interval", 0}}}},
                   false)
                .json()["id"]
                .get<std::uint64_t>();
  auto first = s.lease_one("reports", true);
  auto failed = s.post("/v1/jobs/" + std::to_string(id) + "/fail",
                       {{"lease_token", first["lease_token"]},
                        {"error", "database locked"},
                        {"handover", {{"page", 7}}}},
                       true);
  BOOST_TEST_REQUIRE(failed.status == 200, failed.body);
  auto state = failed.json()["job"]["state"].get<std::string>();
  BOOST_TEST((state == "queued" || state == "scheduled"), failed.body);
  BOOST_TEST(failed.json()["job"].size() == 2u, failed.body);
  BOOST_TEST_REQUIRE(jobsmith::test::wait_until([&] {
    return s.whole(id)["state"] == "queued";
  }, 10s));
  auto second = s.lease_one("reports", true);
  BOOST_TEST(second["attempt"] == 2);
  BOOST_TEST(second["handover"] == json::parse(R"({"page":7})"));
  expect_slim_matches_whole(second, s.whole(id));
}

BOOST_AUTO_TEST_CASE(without_the_header_answers_are_the_whole_job) {
  served s;
  auto id = s.post("/v1/jobs", {{"kind", "k"}, {"queue", "q"}}, false).json()["id"];
  auto job = s.lease_one("q", false);
  BOOST_TEST(job.contains("spec"));
  BOOST_TEST(job.contains("submitted_at"));
  auto done = s.post("/v1/jobs/" + std::to_string(id.get<std::uint64_t>()) + "/complete",
                     {{"lease_token", job["lease_token"]}}, false);
  BOOST_TEST_REQUIRE(done.status == 200, done.body);
  BOOST_TEST(done.json()["job"].contains("spec"));
  BOOST_TEST(done.json()["job"]["state"] == "succeeded");
}

BOOST_AUTO_TEST_CASE(a_complete_with_lease_next_hands_out_the_next_job_in_the_same_call) {
  served s;
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(s.post("/v1/jobs", {{"kind", "k"}, {"queue", "chain"}, {"payload", {{"n", i}}}},
                         false)
                      .json()["id"]
                      .get<std::uint64_t>());
  const json next = {{"worker", "w"}, {"queues", {"chain"}}, {"max_jobs", 1}};
  auto complete = [&](std::uint64_t id, const json& token, bool slim) {
    return s.post("/v1/jobs/" + std::to_string(id) + "/complete",
                  {{"lease_token", token}, {"lease_next", next}}, slim);
  };

  // Refused before anything is written: a complete does not wait.
  auto first = s.lease_one("chain", true);
  BOOST_TEST(first["id"] == ids[0]);
  auto waiting = s.post("/v1/jobs/" + std::to_string(ids[0]) + "/complete",
                        {{"lease_token", first["lease_token"]},
                         {"lease_next", {{"worker", "w"}, {"wait_ms", 100}}}},
                        true);
  BOOST_TEST(waiting.status == 400, waiting.body);
  auto unknown = s.post("/v1/jobs/" + std::to_string(ids[0]) + "/complete",
                        {{"lease_token", first["lease_token"]},
                         {"lease_next", {{"worker", "w"}, {"colour", "red"}}}},
                        true);
  BOOST_TEST(unknown.status == 400, unknown.body);
  BOOST_TEST(s.whole(ids[0])["state"] == "running");

  // Slim: the first job's new state and the second job, leased.
  auto r1 = complete(ids[0], first["lease_token"], true);
  BOOST_TEST_REQUIRE(r1.status == 200, r1.body);
  BOOST_TEST(r1.header("preference-applied") == "return=minimal");
  auto a1 = r1.json();
  BOOST_TEST(a1["job"] == json::parse(R"({"id":)" + std::to_string(ids[0]) +
                                      R"(,"state":"succeeded"})"));
  BOOST_TEST_REQUIRE(a1["jobs"].size() == 1u, r1.body);
  auto second = a1["jobs"][0];
  BOOST_TEST(second["id"] == ids[1]);
  expect_slim_matches_whole(second, s.whole(ids[1]));
  BOOST_TEST(s.whole(ids[1])["state"] == "running");

  // Whole answers without the header; the third job comes with them.
  auto r2 = complete(ids[1], second["lease_token"], false);
  BOOST_TEST_REQUIRE(r2.status == 200, r2.body);
  auto a2 = r2.json();
  BOOST_TEST(a2["job"]["state"] == "succeeded");
  BOOST_TEST(a2["job"].contains("spec"));
  BOOST_TEST_REQUIRE(a2["jobs"].size() == 1u, r2.body);
  BOOST_TEST(a2["jobs"][0]["id"] == ids[2]);
  BOOST_TEST(a2["jobs"][0]["spec"]["payload"] == json::parse(R"({"n":2})"));

  // Nothing left: the complete still answers, with no jobs.
  auto r3 = complete(ids[2], a2["jobs"][0]["lease_token"], true);
  BOOST_TEST_REQUIRE(r3.status == 200, r3.body);
  BOOST_TEST(r3.json()["jobs"].empty(), r3.body);
  for (auto id : ids) BOOST_TEST(s.whole(id)["state"] == "succeeded");
}

BOOST_AUTO_TEST_CASE(a_batch_complete_with_lease_next_hands_out_the_next_jobs_in_the_same_call) {
  served s;
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 6; ++i)
    ids.push_back(s.post("/v1/jobs", {{"kind", "k"}, {"queue", "batch"}, {"payload", {{"n", i}}}},
                         false)
                      .json()["id"]
                      .get<std::uint64_t>());
  auto first = s.post("/v1/workers/lease", {{"worker", "w"}, {"queues", {"batch"}}, {"max_jobs", 2}},
                      true);
  BOOST_TEST_REQUIRE(first.status == 200, first.body);
  auto leased = first.json()["jobs"];
  BOOST_TEST_REQUIRE(leased.size() == 2u, first.body);
  BOOST_TEST(leased[0]["id"] == ids[0]);
  BOOST_TEST(leased[1]["id"] == ids[1]);
  auto verdicts_of = [](const json& jobs) {
    json results = json::array();
    for (auto& j : jobs)
      results.push_back({{"id", j["id"]}, {"lease_token", j["lease_token"]}, {"result", {{"n", j["id"]}}}});
    return results;
  };
  auto started_by = [&](std::uint64_t id) {
    auto history = s.c->get("/v1/jobs/" + std::to_string(id)).json()["history"];
    return std::count_if(history.begin(), history.end(), [](const json& ev) {
      return ev["type"] == "job.started" && ev["body"]["worker"] == "w";
    });
  };

  // Refused before anything is written: a complete does not wait, and a
  // lease_next is read as strictly as a lease.
  const auto head = s.head();
  auto waiting = s.post("/v1/workers/complete",
                        {{"results", verdicts_of(leased)},
                         {"lease_next", {{"worker", "w"}, {"queues", {"batch"}}, {"wait_ms", 100}}}},
                        true);
  BOOST_TEST(waiting.status == 400, waiting.body);
  BOOST_TEST(waiting.json()["error"]["message"] ==
                 "lease_next.wait_ms: a complete answers at once; wait with a lease",
             waiting.body);
  auto unknown = s.post("/v1/workers/complete",
                        {{"results", verdicts_of(leased)},
                         {"lease_next", {{"worker", "w"}, {"colour", "red"}}}},
                        true);
  BOOST_TEST(unknown.status == 400, unknown.body);
  BOOST_TEST(s.head() == head);
  for (auto id : {ids[0], ids[1]}) BOOST_TEST(s.whole(id)["state"] == "running");
  for (auto id : {ids[2], ids[3]}) BOOST_TEST(s.whole(id)["state"] == "queued");

  // Slim: each verdict, and the next two jobs leased (started events
  // written) in the same call.
  auto r1 = s.post("/v1/workers/complete",
                   {{"results", verdicts_of(leased)},
                    {"lease_next", {{"worker", "w"}, {"queues", {"batch"}}, {"max_jobs", 2}}}},
                   true);
  BOOST_TEST_REQUIRE(r1.status == 200, r1.body);
  BOOST_TEST(r1.header("preference-applied") == "return=minimal");
  auto a1 = r1.json();
  BOOST_TEST(a1["results"] == json::parse(R"([{"id":)" + std::to_string(ids[0]) +
                                          R"(,"state":"succeeded","status":200},{"id":)" +
                                          std::to_string(ids[1]) +
                                          R"(,"state":"succeeded","status":200}])"),
             r1.body);
  BOOST_TEST(!a1.contains("lease_error"), r1.body);
  auto next = a1["jobs"];
  BOOST_TEST_REQUIRE(next.size() == 2u, r1.body);
  // A lease's jobs come in the queue's order, though their starts may
  // commit in any.
  BOOST_TEST(next[0]["id"] == ids[2]);
  BOOST_TEST(next[1]["id"] == ids[3]);
  for (auto& job : next) {
    auto id = job["id"].get<std::uint64_t>();
    expect_slim_matches_whole(job, s.whole(id));
    BOOST_TEST(s.whole(id)["state"] == "running");
    BOOST_TEST(started_by(id) == 1);
  }

  // Whole jobs without the header; a stale item is refused on its own and
  // the lease still runs.
  json mixed = verdicts_of(next);
  mixed[1]["lease_token"] = next[1]["lease_token"].get<std::uint64_t>() + 1;
  auto r2 = s.post("/v1/workers/complete",
                   {{"results", mixed},
                    {"lease_next", {{"worker", "w"}, {"queues", {"batch"}}, {"max_jobs", 1}}}},
                   false);
  BOOST_TEST_REQUIRE(r2.status == 200, r2.body);
  BOOST_TEST(r2.header("preference-applied") == "");
  auto a2 = r2.json();
  BOOST_TEST_REQUIRE(a2["results"].size() == 2u, r2.body);
  BOOST_TEST(a2["results"][0]["status"] == 200);
  BOOST_TEST(a2["results"][1]["status"] == 409);
  BOOST_TEST(a2["results"][1]["error"]["code"] == "stale_token");
  BOOST_TEST_REQUIRE(a2["jobs"].size() == 1u, r2.body);
  BOOST_TEST(a2["jobs"][0]["id"] == ids[4]);
  BOOST_TEST(a2["jobs"][0]["spec"]["payload"] == json::parse(R"({"n":4})"));
  BOOST_TEST(a2["jobs"][0]["state"] == "running");
  BOOST_TEST(started_by(ids[4]) == 1);

  // The lease part fails (the engine refuses the worker's name): the
  // completions stand, nothing is leased, and the answer says why.
  json last = {{{"id", ids[3]}, {"lease_token", next[1]["lease_token"]}},
               {{"id", ids[4]}, {"lease_token", a2["jobs"][0]["lease_token"]}}};
  auto r3 = s.post("/v1/workers/complete",
                   {{"results", last}, {"lease_next", {{"worker", "local:w"}, {"queues", {"batch"}}}}},
                   true);
  BOOST_TEST_REQUIRE(r3.status == 200, r3.body);
  BOOST_TEST(r3.body == R"({"jobs":[],"lease_error":{"code":"bad_request","message":"worker name )"
                        R"(must be non-empty and not start with 'local:'"},"results":[{"id":)" +
                            std::to_string(ids[3]) + R"(,"state":"succeeded","status":200},{"id":)" +
                            std::to_string(ids[4]) + R"(,"state":"succeeded","status":200}]})");
  BOOST_TEST(s.whole(ids[5])["state"] == "queued");

  // Completions are durable: a server on the same log has them.
  s.restart();
  for (int i = 0; i < 5; ++i) {
    auto job = s.whole(ids[i]);
    BOOST_TEST(job["state"] == "succeeded", job.dump());
  }
  BOOST_TEST(s.whole(ids[1])["result"] == json::parse(R"({"n":)" + std::to_string(ids[1]) + "}"));
  BOOST_TEST(s.whole(ids[5])["state"] == "queued");

  // Nothing to complete: the call is a lease.
  auto r4 = s.post("/v1/workers/complete",
                   {{"results", json::array()},
                    {"lease_next", {{"worker", "w"}, {"queues", {"batch"}}}}},
                   true);
  BOOST_TEST_REQUIRE(r4.status == 200, r4.body);
  BOOST_TEST(r4.json()["results"] == json::array(), r4.body);
  BOOST_TEST_REQUIRE(r4.json()["jobs"].size() == 1u, r4.body);
  BOOST_TEST(r4.json()["jobs"][0]["id"] == ids[5]);
  BOOST_TEST(s.whole(ids[5])["state"] == "running");
}
