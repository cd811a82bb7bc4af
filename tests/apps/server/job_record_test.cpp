// What a job's record and the job list say over real HTTP: who ran a job,
// the handover an attempt left, and lists by attempts made
// (docs/api.md, "Jobs").
#define BOOST_TEST_MODULE server_job_record
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/client/http_client.hpp"
#include "apps/server/server.hpp"
#include "tests/test_support.hpp"

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace srv = jobsmith::server;
namespace http = jobsmith::http;
using jobsmith::test::temp_dir;

namespace {

/// A server without tokens on a fresh data directory: every caller is the
/// local admin.
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
  std::uint64_t head() { return c->get("/readyz").json()["head"].get<std::uint64_t>(); }
  std::uint64_t submit(const json& spec) {
    auto r = c->post("/v1/jobs", spec);
    BOOST_TEST_REQUIRE(r.status == 201, r.body);
    return r.json()["id"].get<std::uint64_t>();
  }
  /// Leases one job of `queue` as `worker`: {id, lease_token, ...}.
  json lease_one(const std::string& worker, const std::string& queue) {
    auto r = c->post("/v1/workers/lease", {{"worker", worker}, {"queues", {queue}}, {"max_jobs", 1}});
    BOOST_TEST_REQUIRE(r.status == 200, r.body);
    auto jobs = r.json()["jobs"];
    BOOST_TEST_REQUIRE(jobs.size() == 1u, r.body);
    return jobs[0];
  }
  void outcome(const json& leased, const std::string& action, json body) {
    body["lease_token"] = leased["lease_token"];
    auto r = c->post("/v1/jobs/" + std::to_string(leased["id"].get<std::uint64_t>()) + "/" + action,
                     body);
    BOOST_TEST_REQUIRE(r.status == 200, r.body);
  }
  json job(std::uint64_t id) { return c->get("/v1/jobs/" + std::to_string(id)).json()["job"]; }
  /// The ids GET /v1/jobs?<query> lists.
  std::vector<std::uint64_t> list(const std::string& query) {
    auto r = c->get("/v1/jobs?" + query);
    BOOST_TEST_REQUIRE(r.status == 200, r.body);
    const json answer = r.json();  // (a temporary's member in a range-for would dangle)
    std::vector<std::uint64_t> ids;
    for (auto& j : answer["jobs"]) ids.push_back(j["id"].get<std::uint64_t>());
    return ids;
  }
};

/// Retried at once after a failure, so the next lease takes it again.
const json retry_at_once = {{"initial_interval", 0}, {"max_attempts", 5}};

}  // namespace

BOOST_AUTO_TEST_CASE(a_finished_job_names_the_worker_that_ran_its_last_attempt) {
  served s;
  auto done = s.submit({{"kind", "k"}, {"queue", "once"}});
  s.outcome(s.lease_one("host-a", "once"), "complete", {{"result", {{"ok", true}}}});
  BOOST_TEST(s.job(done)["state"] == "succeeded");
  BOOST_TEST(s.job(done)["worker"] == "host-a");

  auto retried = s.submit({{"kind", "k"}, {"queue", "twice"}, {"retry", retry_at_once}});
  s.outcome(s.lease_one("host-a", "twice"), "fail", {{"error", "flaky"}});
  // Waiting for its next attempt, it still says who ran the last one.
  BOOST_TEST(s.job(retried)["state"] == "queued");
  BOOST_TEST(s.job(retried)["worker"] == "host-a");
  s.outcome(s.lease_one("host-b", "twice"), "complete", {});
  BOOST_TEST(s.job(retried)["state"] == "succeeded");
  BOOST_TEST(s.job(retried)["worker"] == "host-b");
  BOOST_TEST(s.job(retried)["attempts"] == 2);
}

BOOST_AUTO_TEST_CASE(jobs_are_listed_by_the_attempts_they_made) {
  served s;
  auto fresh = s.submit({{"kind", "k"}, {"queue", "idle"}});
  auto once = s.submit({{"kind", "k"}, {"queue", "once"}});
  auto twice = s.submit({{"kind", "k"}, {"queue", "twice"}, {"retry", retry_at_once}});
  s.outcome(s.lease_one("w", "once"), "complete", {});
  s.outcome(s.lease_one("w", "twice"), "fail", {{"error", "flaky"}});
  s.outcome(s.lease_one("w", "twice"), "fail", {{"error", "flaky"}});
  using ids = std::vector<std::uint64_t>;
  BOOST_TEST(s.list("attempts_min=1") == (ids{once, twice}), boost::test_tools::per_element());
  BOOST_TEST(s.list("attempts_min=2") == (ids{twice}), boost::test_tools::per_element());
  BOOST_TEST(s.list("attempts_max=0") == (ids{fresh}), boost::test_tools::per_element());
  BOOST_TEST(s.list("attempts_min=1&attempts_max=1") == (ids{once}),
             boost::test_tools::per_element());
  BOOST_TEST(s.list("attempts_min=1&state=queued") == (ids{twice}),
             boost::test_tools::per_element());

  // A bad bound is 400 naming it, and lists nothing.
  const auto head = s.head();
  for (std::string query : {"attempts_min=-1", "attempts_max=two", "attempts_min=",
                            "attempts_max=4294967296", "attempts_min=1.5"}) {
    auto r = s.c->get("/v1/jobs?" + query);
    BOOST_TEST(r.status == 400, query << ": " << r.body);
    auto name = query.substr(0, query.find('='));
    BOOST_TEST(r.json()["error"]["code"] == "bad_request", r.body);
    BOOST_TEST(r.json()["error"]["message"].get<std::string>().rfind(name + ":", 0) == 0u, r.body);
  }
  BOOST_TEST(s.head() == head);
}
