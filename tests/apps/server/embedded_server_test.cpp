// The HTTP API over an engine the caller opened and owns (server(config,
// engine&), docs/embedding.md), over real HTTP on a loopback port: jobs
// submitted over HTTP run on the caller's in-process handlers and hooks,
// and stopping the server leaves the engine open and working.
#define BOOST_TEST_MODULE server_embedded
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "apps/client/http_client.hpp"
#include "apps/server/server.hpp"
#include "tests/test_support.hpp"

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace srv = jobsmith::server;
namespace http = jobsmith::http;
using jobsmith::test::temp_dir;
using jobsmith::test::wait_until;

namespace {

/// An engine with local handlers for kind "k" (counts its runs) and kind
/// "r" (with an on-accept hook that counts its calls), and a server over it.
struct embedded {
  temp_dir dir;
  std::atomic<int> runs{0};
  std::atomic<int> hook_calls{0};
  std::unique_ptr<jobsmith::engine> eng;
  std::unique_ptr<srv::server> server;

  explicit embedded(std::function<void(srv::server_config&)> tweak = {}) {
    jobsmith::engine_options opts;
    opts.data_dir = dir.sub("data");
    opts.handlers.add("k", [this](jobsmith::job_context& ctx) {
      runs.fetch_add(1);
      return jobsmith::outcome::success(R"({"ran":"in-process","payload":)" + ctx.payload() + "}");
    });
    opts.handlers.add(
        "r", [](jobsmith::job_context&) { return jobsmith::outcome::success(R"("staged")"); },
        [this](jobsmith::job_id, const std::string&, const std::string&) {
          hook_calls.fetch_add(1);
        });
    auto opened = jobsmith::engine::open(std::move(opts));
    BOOST_TEST_REQUIRE(opened.ok(), jobsmith::test::why(opened));
    eng = std::move(*opened);
    srv::server_config cfg;
    cfg.port = 0;
    if (tweak) tweak(cfg);
    server = std::make_unique<srv::server>(std::move(cfg), *eng);
    auto err = server->start();
    BOOST_TEST_REQUIRE(err.empty(), err);
  }
  ~embedded() {
    server.reset();
    if (eng) eng->close();
  }
  http::client client() const {
    http::url u;
    u.port = server->port();
    return http::client{u, {}, 10s};
  }
};

std::string dump_response(const http::response& r) {
  return std::to_string(r.status) + " " + r.body + r.transport_error;
}

std::uint64_t submit(http::client& c, const json& spec) {
  auto r = c.post("/v1/jobs", spec);
  BOOST_TEST_REQUIRE(r.status == 201, dump_response(r));
  return r.json()["id"].get<std::uint64_t>();
}

std::string state_over_http(http::client& c, std::uint64_t id) {
  auto r = c.get("/v1/jobs/" + std::to_string(id));
  return r.status == 200 ? r.json()["job"]["state"].get<std::string>() : dump_response(r);
}

std::string state_in_process(jobsmith::engine& eng, jobsmith::job_id id) {
  auto view = eng.get(id);
  return view ? std::string{jobsmith::to_string(view->job.state)} : view.error().to_string();
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_job_submitted_over_http_runs_on_the_callers_handler) {
  embedded e;
  auto c = e.client();
  auto id = submit(c, {{"kind", "k"}, {"payload", {{"n", 7}}}});
  BOOST_TEST_REQUIRE(wait_until([&] { return state_over_http(c, id) == "succeeded"; }),
                     state_over_http(c, id));
  auto got = c.get("/v1/jobs/" + std::to_string(id)).json();
  BOOST_TEST(got["job"]["result"] == json({{"ran", "in-process"}, {"payload", {{"n", 7}}}}),
             got.dump());
  // Run by the engine's own pool (worker "local:..."), not leased over HTTP.
  std::string worker;
  for (auto& ev : got["history"])
    if (ev["type"] == "job.started") worker = ev["body"]["worker"].get<std::string>();
  BOOST_TEST(worker.rfind("local:", 0) == 0u, got.dump());
  BOOST_TEST(e.runs.load() == 1);
  // The same job, read in-process.
  BOOST_TEST(state_in_process(*e.eng, id) == "succeeded");
}

BOOST_AUTO_TEST_CASE(stopping_the_server_leaves_the_engine_open) {
  embedded e;
  auto c = e.client();
  auto id = submit(c, {{"kind", "k"}});
  BOOST_TEST_REQUIRE(wait_until([&] { return state_over_http(c, id) == "succeeded"; }));
  const auto port = e.server->port();
  e.server->stop();

  // The port no longer answers...
  http::url u;
  u.port = port;
  http::client gone{u, {}, 2s};
  auto r = gone.get("/healthz");
  BOOST_TEST(r.status == 0, dump_response(r));
  BOOST_TEST(!r.transport_error.empty());
  // ...while the engine reads, submits and runs handlers as before.
  BOOST_TEST(state_in_process(*e.eng, id) == "succeeded");
  jobsmith::job_submitted spec;
  spec.kind = "k";
  auto next = e.eng->submit(spec);
  BOOST_TEST_REQUIRE(next.ok(), jobsmith::test::why(next));
  BOOST_TEST(wait_until([&] { return state_in_process(*e.eng, *next) == "succeeded"; }),
             state_in_process(*e.eng, *next));
  BOOST_TEST(e.runs.load() == 2);
}

BOOST_AUTO_TEST_CASE(a_review_over_http_runs_the_callers_on_accept_hook_once) {
  embedded e;
  auto c = e.client();
  auto id = submit(c, {{"kind", "r"}, {"review_required", true}});
  BOOST_TEST_REQUIRE(wait_until([&] { return state_over_http(c, id) == "pending_review"; }),
                     state_over_http(c, id));
  BOOST_TEST(e.hook_calls.load() == 0);
  auto r = c.post("/v1/jobs/" + std::to_string(id) + "/review", {{"accept", true}});
  BOOST_TEST_REQUIRE(r.status == 200, dump_response(r));
  BOOST_TEST(r.json()["job"]["state"] == "accepted");
  BOOST_TEST(e.hook_calls.load() == 1);
}

BOOST_AUTO_TEST_CASE(kinds_without_a_handler_follow_the_callers_engine) {
  // The caller's engine was opened without allow_unknown_kinds: a kind it
  // has no handler for is refused over HTTP too, and nothing is written.
  embedded e;
  auto c = e.client();
  auto head = e.eng->head();
  auto r = c.post("/v1/jobs", {{"kind", "elsewhere"}});
  BOOST_TEST(r.status == 400, dump_response(r));
  BOOST_TEST(r.json()["error"]["code"] == "bad_request", dump_response(r));
  BOOST_TEST(e.eng->head() == head);
}

BOOST_AUTO_TEST_CASE(stop_waits_for_a_long_poll_and_the_engine_goes_on) {
  // A remote worker waits for jobs of a queue nobody submits to; stop()
  // returns once the engine answered its lease (within max_long_poll).
  embedded e{[](srv::server_config& cfg) { cfg.limits.max_long_poll = 1500ms; }};
  std::atomic<bool> polled{false};
  std::chrono::steady_clock::time_point poll_ended;
  std::thread worker([&] {
    auto c = e.client();
    polled = true;
    (void)c.post("/v1/workers/lease",
                 {{"worker", "w"}, {"queues", {"empty"}}, {"wait_ms", 1500}});
    poll_ended = std::chrono::steady_clock::now();
  });
  BOOST_TEST_REQUIRE(wait_until([&] { return polled.load(); }));
  BOOST_TEST_REQUIRE(wait_until([&] {
    auto c = e.client();
    auto m = c.get("/metrics");
    return m.body.find("jobsmith_long_polls 1") != std::string::npos;
  }));
  // Meanwhile the engine commits: the server's event subscription ends
  // while events arrive.
  std::atomic<bool> submitting{true};
  std::thread producer([&] {
    jobsmith::job_submitted spec;
    spec.kind = "k";
    while (submitting) {
      (void)e.eng->submit(spec);
      std::this_thread::sleep_for(1ms);
    }
  });
  auto started = std::chrono::steady_clock::now();
  e.server->stop();
  auto took = std::chrono::steady_clock::now() - started;
  submitting = false;
  producer.join();
  worker.join();
  BOOST_TEST(std::chrono::duration<double>(took).count() < 5.0);
  // The worker's connection closed with the server (not at its 10 s timeout).
  BOOST_TEST(std::chrono::duration<double>(poll_ended - started).count() < 5.0);
  BOOST_TEST_MESSAGE("stop took " << std::chrono::duration<double>(took).count() << " s");
  jobsmith::job_submitted spec;
  spec.kind = "k";
  auto last = e.eng->submit(spec);
  BOOST_TEST_REQUIRE(last.ok(), jobsmith::test::why(last));
  BOOST_TEST(wait_until([&] { return state_in_process(*e.eng, *last) == "succeeded"; }));
}

BOOST_AUTO_TEST_CASE(the_beanstalkd_protocol_is_refused_over_the_callers_engine) {
  temp_dir dir;
  jobsmith::engine_options opts;
  opts.in_memory = true;
  auto eng = jobsmith::engine::open(std::move(opts));
  BOOST_TEST_REQUIRE(eng.ok(), jobsmith::test::why(eng));
  srv::server_config cfg;
  cfg.port = 0;
  cfg.beanstalk.host = "127.0.0.1";
  srv::server s{std::move(cfg), **eng};
  auto err = s.start();
  BOOST_TEST(err.find("beanstalkd") != std::string::npos, err);
  BOOST_TEST((*eng)->head() > 0);  // still open
}
