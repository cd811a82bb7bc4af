// Retention over real HTTP: POST /v1/queues/{queue}/config, a finished job
// answering 410 once its queue's retention has passed, the lists, counts and
// /metrics without it, and the server's default recorded in the log. The
// engine's wall clock is the test's, so an hour passes without waiting.
#define BOOST_TEST_MODULE server_retention
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "actors/clock.hpp"
#include "apps/client/http_client.hpp"
#include "apps/server/server.hpp"
#include "projections/queue_view.hpp"
#include "tests/test_support.hpp"

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace srv = jobsmith::server;
namespace http = jobsmith::http;
using jobsmith::millis;
using jobsmith::test::temp_dir;

namespace {

constexpr millis hour = 3'600'000;

struct served {
  temp_dir dir;
  std::shared_ptr<std::atomic<millis>> offset = std::make_shared<std::atomic<millis>>(0);
  std::unique_ptr<srv::server> server;
  std::unique_ptr<http::client> c;

  explicit served(std::optional<jobsmith::retention_policy> retention = std::nullopt) {
    start(retention);
  }
  void start(std::optional<jobsmith::retention_policy> retention) {
    srv::server_config cfg;
    cfg.port = 0;
    cfg.engine.data_dir = dir.sub("data");
    cfg.engine.allow_unknown_kinds = true;
    cfg.engine.retention = retention;
    cfg.engine.clock = [offset = offset] { return jobsmith::system_wall_now() + offset->load(); };
    server = std::make_unique<srv::server>(std::move(cfg));
    auto err = server->start();
    BOOST_TEST_REQUIRE(err.empty(), err);
    http::url u;
    u.port = server->port();
    c = std::make_unique<http::client>(u, "", 10s);
  }
  void restart(std::optional<jobsmith::retention_policy> retention) {
    c.reset();
    server.reset();
    start(retention);
  }
  void pass(millis ms) { offset->fetch_add(ms); }
  std::uint64_t head() { return c->get("/readyz").json()["head"].get<std::uint64_t>(); }
  http::response post(const std::string& path, const json& body) {
    return c->request("POST", path, body.dump());
  }
  /// Submits a job to `queue`, leases and completes it; its id.
  std::uint64_t run_one(const std::string& queue) {
    auto r = post("/v1/jobs", {{"kind", "k"}, {"queue", queue}});
    BOOST_TEST_REQUIRE(r.status == 201, r.body);
    auto id = r.json()["id"].get<std::uint64_t>();
    auto leased = post("/v1/workers/lease", {{"worker", "w1"}, {"queues", {queue}}});
    BOOST_TEST_REQUIRE(leased.status == 200, leased.body);
    auto job = leased.json()["jobs"][0];
    BOOST_TEST_REQUIRE(job["id"] == id);
    auto done = post("/v1/jobs/" + std::to_string(id) + "/complete",
                     {{"lease_token", job["lease_token"]}, {"result", 1}});
    BOOST_TEST_REQUIRE(done.status == 200, done.body);
    return id;
  }
  json queue(const std::string& name) {
    auto all = c->get("/v1/queues").json();
    for (auto& q : all["queues"])
      if (q["name"] == name) return q;
    BOOST_FAIL("no queue " << name << " in " << all.dump());
    return {};
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_job_past_its_queues_retention_is_gone_from_every_view) {
  served s;
  auto id = s.run_one("reports");
  auto r = s.post("/v1/queues/reports/config", {{"retention", "1h"}});
  BOOST_TEST_REQUIRE(r.status == 200, r.body);
  BOOST_TEST(r.json() == json::parse(R"({"queue":{"name":"reports","retention":{"failed":0,"succeeded":3600000}}})"));
  auto q = s.queue("reports");
  BOOST_TEST(q["retention"]["succeeded"] == hour);
  BOOST_TEST(q["retired"] == 0);
  BOOST_TEST(q["counts"]["succeeded"] == 1);
  BOOST_TEST(s.c->get("/v1/jobs/" + std::to_string(id)).status == 200);

  s.pass(hour);
  auto gone = s.c->get("/v1/jobs/" + std::to_string(id));
  BOOST_TEST(gone.status == 410, gone.body);
  BOOST_TEST(gone.json()["error"]["code"] == "gone");
  auto message = gone.json()["error"]["message"].get<std::string>();
  BOOST_TEST(message.find("replay --job " + std::to_string(id)) != std::string::npos, message);
  BOOST_TEST(s.c->get("/v1/jobs?queue=reports").json()["jobs"] == json::array());
  q = s.queue("reports");
  BOOST_TEST(q["retired"] == 1);
  BOOST_TEST(q["counts"]["succeeded"] == 0);
  auto metrics = s.c->get("/metrics").body;
  BOOST_TEST(metrics.find("jobsmith_jobs_retired{queue=\"reports\"} 1") != std::string::npos);
  BOOST_TEST(metrics.find("jobsmith_jobs{queue=\"reports\",state=\"succeeded\"} 0") !=
             std::string::npos);
  // It cannot be brought back.
  auto retry = s.post("/v1/jobs/" + std::to_string(id) + "/retry", json::object());
  BOOST_TEST(retry.status == 410, retry.body);
  // The job's events are still in the log.
  auto events = s.c->get("/v1/events?job=" + std::to_string(id)).json()["events"];
  BOOST_TEST(events.size() >= 3u);
}

BOOST_AUTO_TEST_CASE(bad_retention_settings_get_400_and_write_nothing) {
  served s;
  auto head = s.head();
  for (const json& body : {json::object(), json{{"retention", "1 day"}}, json{{"retention", -1}},
                           json{{"retention", "1d"}, {"color", "red"}},
                           json{{"retention_failed", "99999d"}}}) {
    auto r = s.post("/v1/queues/reports/config", body);
    BOOST_TEST(r.status == 400, body.dump() << " " << r.body);
  }
  BOOST_TEST(s.head() == head);
}

BOOST_AUTO_TEST_CASE(the_servers_default_is_recorded_once_and_applies_to_queues_without_their_own) {
  served s(jobsmith::retention_policy{hour, 2 * hour});
  auto events = s.c->get("/v1/events?type=queue.retention").json()["events"];
  BOOST_TEST_REQUIRE(events.size() == 1u);
  BOOST_TEST(events[0]["principal"] == "engine");
  BOOST_TEST(events[0]["body"] ==
             json::parse(R"({"failed":7200000,"queue":"","succeeded":3600000})"));
  auto plain = s.run_one("plain");
  BOOST_TEST_REQUIRE(s.post("/v1/queues/kept/config", {{"retention", 0}}).status == 200);
  auto kept = s.run_one("kept");
  s.pass(hour);
  BOOST_TEST(s.c->get("/v1/jobs/" + std::to_string(plain)).status == 410);
  BOOST_TEST(s.c->get("/v1/jobs/" + std::to_string(kept)).status == 200);

  // The same default again writes nothing (the two are the default's and
  // the queue's); another one is recorded, and a retired job stays retired
  // across the restart.
  s.restart(jobsmith::retention_policy{hour, 2 * hour});
  BOOST_TEST(s.c->get("/v1/events?type=queue.retention").json()["events"].size() == 2u);
  s.restart(jobsmith::retention_policy{24 * hour, 24 * hour});
  BOOST_TEST(s.c->get("/v1/events?type=queue.retention").json()["events"].size() == 3u);
  BOOST_TEST(s.c->get("/v1/jobs/" + std::to_string(plain)).status == 410);
  BOOST_TEST(s.c->get("/v1/jobs/" + std::to_string(kept)).status == 200);
}

BOOST_AUTO_TEST_CASE(the_rows_of_retired_jobs_are_let_go_and_ids_go_on_after_a_restart) {
  served s(jobsmith::retention_policy{hour, hour});
  // More jobs than one block of rows holds (projections/row_store.hpp), in
  // batches: submitted, leased and completed.
  const std::size_t batch = 5000, rounds = 6;
  for (std::size_t round = 0; round < rounds; ++round) {
    json jobs = json::array();
    for (std::size_t i = 0; i < batch; ++i) jobs.push_back({{"kind", "k"}, {"queue", "bulk"}});
    auto r = s.post("/v1/jobs", {{"jobs", jobs}});
    BOOST_TEST_REQUIRE(r.status == 201, r.body.substr(0, 300));
    auto leased = s.post("/v1/workers/lease",
                         {{"worker", "w1"}, {"queues", {"bulk"}}, {"max_jobs", batch}});
    BOOST_TEST_REQUIRE(leased.status == 200);
    json results = json::array();
    const json answer = leased.json();
    for (auto& job : answer["jobs"])
      results.push_back({{"id", job["id"]}, {"lease_token", job["lease_token"]}});
    BOOST_TEST_REQUIRE(results.size() == batch, leased.body.substr(0, 300));
    BOOST_TEST_REQUIRE(s.post("/v1/workers/complete", {{"results", results}}).status == 200);
  }
  auto gauge = [&](const std::string& name) {
    auto metrics = s.c->get("/metrics").body;
    auto at = metrics.find("\n" + name + " ");
    BOOST_TEST_REQUIRE(at != std::string::npos, name);
    return std::stoull(metrics.substr(at + name.size() + 2));
  };
  const auto slots_before = gauge("jobsmith_view_row_slots");
  BOOST_TEST(slots_before >= batch * rounds);
  BOOST_TEST(gauge("jobsmith_view_rows_released") == 0u);

  // An hour and a minute later every job is retired, and every full block
  // of rows is let go: the first one (ids beyond it are still to come).
  s.pass(hour + 61'000);
  const std::uint64_t per_block = jobsmith::row_store::block_rows;
  BOOST_TEST(gauge("jobsmith_view_rows_released") == per_block);
  BOOST_TEST(gauge("jobsmith_view_row_slots") == slots_before - per_block);
  BOOST_TEST(s.queue("bulk")["retired"] == batch * rounds);
  auto gone = s.c->get("/v1/jobs/1");
  BOOST_TEST(gone.status == 410, gone.body);
  BOOST_TEST(gone.json()["error"]["message"].get<std::string>().find("job 1 was retired, when") == 0,
             gone.body);

  // A restart recovers the same: nothing comes back, and ids go on.
  s.restart(jobsmith::retention_policy{hour, hour});
  BOOST_TEST(gauge("jobsmith_view_rows_released") == per_block);
  BOOST_TEST(s.queue("bulk")["retired"] == batch * rounds);
  BOOST_TEST(s.c->get("/v1/jobs/1").status == 410);
  auto next = s.post("/v1/jobs", {{"kind", "k"}, {"queue", "bulk"}});
  BOOST_TEST(next.json()["id"] == batch * rounds + 1);
}
