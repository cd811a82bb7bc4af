// /v1/kinds over real HTTP: registering a kind's schema and on-accept
// follow-up, payloads refused with 400 and nothing written, and the
// follow-up of an accepted review leased by a remote worker.
#define BOOST_TEST_MODULE server_kinds
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <string>

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

struct served {
  temp_dir dir;
  std::unique_ptr<srv::server> server;
  std::unique_ptr<http::client> c;

  served() { start(); }
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
  http::response post(const std::string& path, const json& body) {
    return c->request("POST", path, body.dump());
  }
  /// Submits one job; the response.
  http::response submit(const json& job) { return post("/v1/jobs", job); }
};

const json builder_schema = {{"type", "object"},
                             {"properties", {{"builder", {{"type", "string"}}}}},
                             {"required", {"builder"}}};

}  // namespace

BOOST_AUTO_TEST_CASE(a_kind_is_registered_read_back_and_listed) {
  served s;
  auto r = s.post("/v1/kinds/import", {{"on_accept", "publish"}, {"schema", builder_schema}});
  BOOST_TEST_REQUIRE(r.status == 200, r.body);
  json expected = {{"kind", "import"}, {"on_accept", "publish"}, {"schema", builder_schema}};
  BOOST_TEST(r.json()["kind"] == expected);
  BOOST_TEST(s.c->get("/v1/kinds/import").json()["kind"] == expected);
  BOOST_TEST(s.c->get("/v1/kinds").json()["kinds"] == json::array({expected}));
  auto missing = s.c->get("/v1/kinds/export");
  BOOST_TEST(missing.status == 404, missing.body);
  s.restart();
  BOOST_TEST(s.c->get("/v1/kinds/import").json()["kind"] == expected);
  // Both settings null: the kind is no longer registered.
  r = s.post("/v1/kinds/import", {{"on_accept", nullptr}, {"schema", nullptr}});
  BOOST_TEST_REQUIRE(r.status == 200, r.body);
  BOOST_TEST(s.c->get("/v1/kinds").json()["kinds"] == json::array());
}

BOOST_AUTO_TEST_CASE(a_payload_that_breaks_the_schema_gets_400_and_nothing_is_written) {
  served s;
  BOOST_TEST_REQUIRE(s.post("/v1/kinds/import", {{"schema", builder_schema}}).status == 200);
  auto head = s.head();
  auto r = s.submit({{"kind", "import"}, {"payload", {{"builder", 42}}}});
  BOOST_TEST(r.status == 400, r.body);
  auto message = r.json()["error"]["message"].get<std::string>();
  BOOST_TEST(message.find("at /builder") != std::string::npos, message);
  BOOST_TEST(message.find("type") != std::string::npos, message);
  r = s.submit({{"kind", "import"}, {"payload", "not an object"}});
  BOOST_TEST(r.status == 400, r.body);
  r = s.submit({{"kind", "import"}, {"payload", json::object()}});
  BOOST_TEST(r.status == 400, r.body);
  BOOST_TEST(r.json()["error"]["message"].get<std::string>().find("builder") != std::string::npos,
             r.body);
  BOOST_TEST(s.head() == head);
  r = s.submit({{"kind", "import"}, {"payload", {{"builder", "linux-rel"}}}});
  BOOST_TEST(r.status == 201, r.body);
}

BOOST_AUTO_TEST_CASE(bad_kind_settings_get_400_and_nothing_is_written) {
  served s;
  auto head = s.head();
  for (const json& body :
       {json{{"schema", {{"type", "no-such-type"}}}}, json{{"schema", json::array({1, 2})}},
        json{{"schema", {{"$ref", "http://example.com/schema.json"}}}},
        json{{"on_accept", 7}}, json{{"scheme", json::object()}}}) {
    auto r = s.post("/v1/kinds/import", body);
    BOOST_TEST(r.status == 400, body.dump() << " -> " << r.body);
  }
  BOOST_TEST(s.head() == head);
  BOOST_TEST(s.c->get("/v1/kinds").json()["kinds"] == json::array());
}

BOOST_AUTO_TEST_CASE(an_accepted_review_hands_its_follow_up_to_a_remote_worker) {
  served s;
  BOOST_TEST_REQUIRE(s.post("/v1/kinds/import", {{"on_accept", "publish"}}).status == 200);
  auto sub = s.submit({{"kind", "import"},
                       {"queue", "imports"},
                       {"payload", {{"file", "a.csv"}}},
                       {"review_required", true}});
  BOOST_TEST_REQUIRE(sub.status == 201, sub.body);
  auto id = sub.json()["id"].get<std::uint64_t>();
  auto lease = s.post("/v1/workers/lease", {{"worker", "w1"}, {"queues", {"imports"}}});
  BOOST_TEST_REQUIRE(lease.status == 200, lease.body);
  auto token = lease.json()["jobs"][0]["lease_token"].get<std::uint64_t>();
  auto done = s.post("/v1/jobs/" + std::to_string(id) + "/complete",
                     {{"lease_token", token}, {"result", {{"rows", 3}}}});
  BOOST_TEST_REQUIRE(done.status == 200, done.body);
  auto reviewed = s.post("/v1/jobs/" + std::to_string(id) + "/review", {{"accept", true}});
  BOOST_TEST_REQUIRE(reviewed.status == 200, reviewed.body);

  auto history = s.c->get("/v1/jobs/" + std::to_string(id)).json()["history"];
  auto review_event = history.back();
  BOOST_TEST(review_event["type"] == "job.reviewed");
  auto follow = review_event["body"]["follow_up"].get<std::uint64_t>();
  BOOST_TEST(follow != 0u);

  lease = s.post("/v1/workers/lease", {{"worker", "w2"}, {"queues", {"imports"}}});
  BOOST_TEST_REQUIRE(lease.status == 200, lease.body);
  auto job = lease.json()["jobs"][0];
  BOOST_TEST(job["id"] == follow);
  BOOST_TEST(job["spec"]["kind"] == "publish");
  BOOST_TEST(job["spec"]["follows"] == id);
  json payload = {{"job", id}, {"payload", {{"file", "a.csv"}}}, {"result", {{"rows", 3}}}};
  BOOST_TEST(job["spec"]["payload"] == payload);
  // A second accept changes nothing: the job is accepted already.
  auto again = s.post("/v1/jobs/" + std::to_string(id) + "/review", {{"accept", true}});
  BOOST_TEST(again.status == 409, again.body);
}
