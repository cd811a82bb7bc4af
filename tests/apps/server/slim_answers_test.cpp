// Slim answers (Prefer: return=minimal, RFC 7240) over real HTTP: what a
// worker gets of a leased job, what a complete or fail answers, and that
// without the header every answer is the whole job as before.
#define BOOST_TEST_MODULE slim_answers
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <set>
#include <vector>
#include <string>

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

  served() {
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
