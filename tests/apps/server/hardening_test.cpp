// `jobsmith serve` against callers that are not well-behaved clients: web
// pages of other origins, hostile Host names, readers after lease tokens,
// floods of garbage connections, a port already taken, and filters that
// match rarely. Real HTTP on loopback, a real RocksDB data directory.
#define BOOST_TEST_MODULE server_hardening
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "apps/client/http_client.hpp"
#include "apps/server/auth.hpp"
#include "apps/server/log_limiter.hpp"
#include "apps/server/request_guard.hpp"
#include "apps/server/server.hpp"
#include "tests/test_support.hpp"

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace srv = jobsmith::server;
namespace http = jobsmith::http;
using jobsmith::test::temp_dir;
using jobsmith::test::wait_until;

namespace {

const char* admin_token = "admin-secret";
const char* producer_token = "producer-secret";
const char* worker_token = "worker-secret";
const char* other_worker_token = "other-worker-secret";
const char* reader_token = "reader-secret";

/// A running server on a fresh data directory; no tokens unless `with_tokens`.
struct served {
  temp_dir dir;
  std::unique_ptr<srv::server> server;

  explicit served(bool with_tokens = false,
                  std::function<void(srv::server_config&)> tweak = {}) {
    srv::server_config cfg;
    cfg.port = 0;
    cfg.engine.data_dir = dir.sub("data");
    if (with_tokens) {
      cfg.tokens.add("root", admin_token, srv::role::admin);
      cfg.tokens.add("alice", producer_token, srv::role::producer);
      cfg.tokens.add("w1", worker_token, srv::role::worker);
      cfg.tokens.add("w2", other_worker_token, srv::role::worker);
      cfg.tokens.add("viewer", reader_token, srv::role::read);
    }
    if (tweak) tweak(cfg);
    server = std::make_unique<srv::server>(std::move(cfg));
    auto err = server->start();
    BOOST_TEST_REQUIRE(err.empty(), err);
  }
  http::url url() const {
    http::url u;
    u.port = server->port();
    return u;
  }
  std::unique_ptr<http::client> as(const char* token = "") const {
    return std::make_unique<http::client>(url(), token, 10s);
  }
  std::uint64_t head() const { return server->engine_ref().head(); }
  std::string own_host() const { return "127.0.0.1:" + std::to_string(server->port()); }
};

std::string dump_response(const http::response& r) {
  return std::to_string(r.status) + " " + r.body + r.transport_error;
}

void expect_error(const http::response& r, int status, const std::string& code) {
  BOOST_TEST(r.status == status, dump_response(r));
  auto j = json::parse(r.body, nullptr, false);
  BOOST_TEST((j.is_object() && j.contains("error") && j["error"]["code"] == code),
             dump_response(r));
}

/// Sends `text` on a fresh connection and returns everything the server
/// wrote until it closed the connection (or 5 s passed).
std::string raw_exchange(std::uint16_t port, const std::string& text) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  BOOST_TEST_REQUIRE(fd >= 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_TEST_REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

/// The status of a raw HTTP/1.1 request with the given header lines.
int raw_status(std::uint16_t port, const std::string& method, const std::string& path,
               const std::string& header_lines, const std::string& body = {}) {
  std::string text = method + " " + path + " HTTP/1.1\r\n" + header_lines +
                     "Connection: close\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\n\r\n" + body;
  auto out = raw_exchange(port, text);
  if (out.rfind("HTTP/1.1 ", 0) != 0) return -1;
  return std::stoi(out.substr(9, 3));
}

}  // namespace

// -- browsers: other origins, rebound names, bodies that are not JSON -----------------

BOOST_AUTO_TEST_CASE(a_body_that_is_not_json_typed_is_refused_and_writes_nothing) {
  served s;
  auto before = s.head();
  auto c = s.as();
  // What a page's fetch(..., {mode: 'no-cors'}) can send without asking.
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded",
                           "multipart/form-data; boundary=x", ""}) {
    auto host = "Host: " + s.own_host() + "\r\n";
    std::string ct = *type != '\0' ? std::string{"Content-Type: "} + type + "\r\n" : "";
    BOOST_TEST(raw_status(s.server->port(), "POST", "/v1/jobs", host + ct, R"({"kind":"x"})") ==
                   415,
               "Content-Type '" << type << "'");
  }
  BOOST_TEST(s.head() == before, "a refused submit wrote to the log");
  // The same body typed as JSON goes through; so does a charset parameter.
  auto host = "Host: " + s.own_host() + "\r\n";
  BOOST_TEST(raw_status(s.server->port(), "POST", "/v1/jobs",
                        host + "Content-Type: application/json; charset=utf-8\r\n",
                        R"({"kind":"x"})") == 201);
}

BOOST_AUTO_TEST_CASE(another_origin_is_refused_on_every_v1_route_and_its_own_is_served) {
  served s;
  auto c = s.as();
  auto id = c->post("/v1/jobs", {{"kind", "x"}}).json()["id"].get<std::uint64_t>();
  auto before = s.head();
  auto evil = http::headers{{"Origin", "http://127.0.0.1:9"}};
  auto cross = http::headers{{"Sec-Fetch-Site", "cross-site"}};
  for (auto& h : {evil, cross}) {
    expect_error(c->request("POST", "/v1/jobs", R"({"kind":"x"})", h), 403, "forbidden_origin");
    expect_error(c->request("POST", "/v1/jobs/" + std::to_string(id) + "/cancel", "", h), 403,
                 "forbidden_origin");
    expect_error(c->request("POST", "/v1/queues/default/pause", "", h), 403, "forbidden_origin");
    expect_error(c->request("POST", "/v1/admin/backup", R"({"to":"/tmp/x"})", h), 403,
                 "forbidden_origin");
    // Reads too: without tokens every caller is admin.
    expect_error(c->request("GET", "/v1/jobs", "", h), 403, "forbidden_origin");
  }
  BOOST_TEST(s.head() == before);
  // The server's own origin, as the dashboard sends it.
  auto own = http::headers{{"Origin", "http://" + s.own_host()}, {"Sec-Fetch-Site", "same-origin"}};
  BOOST_TEST(c->request("POST", "/v1/jobs", R"({"kind":"x"})", own).status == 201);
  BOOST_TEST(c->request("GET", "/v1/jobs", "", own).status == 200);
}

BOOST_AUTO_TEST_CASE(without_tokens_only_loopback_host_names_are_served) {
  served s;
  auto port = s.server->port();
  auto p = std::to_string(port);
  for (const char* path : {"/v1/jobs", "/metrics", "/", "/healthz"}) {
    BOOST_TEST(raw_status(port, "GET", path, "Host: evil.example:" + p + "\r\n") == 403, path);
    BOOST_TEST(raw_status(port, "GET", path, "Host: 127.evil.example:" + p + "\r\n") == 403, path);
    BOOST_TEST(raw_status(port, "GET", path, "Host: localhost:1\r\n") == 403, path);
  }
  for (std::string host : {"127.0.0.1:" + p, "localhost:" + p, "[::1]:" + p, std::string{"127.0.0.1"}})
    BOOST_TEST(raw_status(port, "GET", "/v1/jobs", "Host: " + host + "\r\n") == 200, host);
}

BOOST_AUTO_TEST_CASE(with_tokens_any_host_name_is_served) {
  // Behind a proxy a server has other names; tokens guard it there.
  served s{true};
  BOOST_TEST(raw_status(s.server->port(), "GET", "/v1/jobs",
                        "Host: jobs.example.com\r\nAuthorization: Bearer " +
                            std::string{reader_token} + "\r\n") == 200);
}

BOOST_AUTO_TEST_CASE(host_header_and_content_type_rules) {
  BOOST_TEST(srv::is_loopback_host_header("127.0.0.1:7878", 7878));
  BOOST_TEST(srv::is_loopback_host_header("127.1.2.3:7878", 7878));
  BOOST_TEST(srv::is_loopback_host_header("LOCALHOST:7878", 7878));
  BOOST_TEST(srv::is_loopback_host_header("[::1]:7878", 7878));
  BOOST_TEST(srv::is_loopback_host_header("localhost", 7878));
  BOOST_TEST(!srv::is_loopback_host_header("localhost:7879", 7878));
  BOOST_TEST(!srv::is_loopback_host_header("127.0.0.1.evil.example:7878", 7878));
  BOOST_TEST(!srv::is_loopback_host_header("127.evil:7878", 7878));
  BOOST_TEST(!srv::is_loopback_host_header("::1:7878", 7878));
  BOOST_TEST(!srv::is_loopback_host_header("10.0.0.1:7878", 7878));
  BOOST_TEST(!srv::is_loopback_host_header("localhost:7878x", 7878));
  BOOST_TEST(srv::is_json_content_type("application/json"));
  BOOST_TEST(srv::is_json_content_type("Application/JSON ; charset=UTF-8"));
  BOOST_TEST(!srv::is_json_content_type("application/jsonx"));
  BOOST_TEST(!srv::is_json_content_type("text/plain; application/json"));
}

// -- names from paths ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_queue_name_from_the_path_gets_the_checks_of_a_body) {
  served s;
  auto c = s.as();
  auto before = s.head();
  expect_error(c->request("POST", "/v1/queues/a%00b/pause"), 400, "bad_request");
  expect_error(c->request("POST", "/v1/queues/a%0Ab/resume"), 400, "bad_request");
  expect_error(c->request("POST", "/v1/queues/a%1Fb/concurrency", R"({"concurrency":2})"), 400,
               "bad_request");
  expect_error(c->request("POST", "/v1/queues/" + std::string(300, 'q') + "/pause"), 400,
               "bad_request");
  BOOST_TEST(s.head() == before, "a refused queue name was written");
  // The metrics stay one line per series.
  auto metrics = c->get("/metrics").body;
  BOOST_TEST(metrics.find('\0') == std::string::npos);
  BOOST_TEST(c->request("POST", "/v1/queues/reports%20daily/pause").status == 200);
}

// -- GET /v1/jobs/0 ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(job_zero_does_not_exist) {
  served s;
  auto c = s.as();
  expect_error(c->get("/v1/jobs/0"), 404, "not_found");
  expect_error(c->request("POST", "/v1/jobs/0/cancel"), 404, "not_found");
}

// -- lease tokens: the worker that leased, and admins ------------------------------------

BOOST_AUTO_TEST_CASE(a_lease_token_is_shown_to_its_worker_and_admins_only) {
  served s{true};
  auto producer = s.as(producer_token);
  auto worker = s.as(worker_token);
  auto id = producer->post("/v1/jobs", {{"kind", "k"}}).json()["id"].get<std::uint64_t>();
  auto leased = worker->post("/v1/workers/lease", {{"worker", "host-1"}, {"max_jobs", 1}}).json();
  BOOST_TEST_REQUIRE(leased["jobs"].size() == 1u, leased.dump());
  auto token = leased["jobs"][0]["lease_token"].get<std::uint64_t>();
  BOOST_TEST_REQUIRE(token != 0u);

  auto token_in_job = [&](const char* who) {
    auto r = s.as(who)->get("/v1/jobs/" + std::to_string(id));
    BOOST_TEST_REQUIRE(r.status == 200, dump_response(r));
    auto j = r.json();
    std::uint64_t in_history = 0;
    for (auto& ev : j["history"])
      if (ev["type"] == "job.started") in_history = ev["body"]["lease_token"].get<std::uint64_t>();
    BOOST_TEST(in_history == j["job"]["lease_token"].get<std::uint64_t>(), j.dump());
    return j["job"]["lease_token"].get<std::uint64_t>();
  };
  BOOST_TEST(token_in_job(worker_token) == token);
  BOOST_TEST(token_in_job(admin_token) == token);
  BOOST_TEST(token_in_job(reader_token) == 0u);
  BOOST_TEST(token_in_job(producer_token) == 0u);
  BOOST_TEST(token_in_job(other_worker_token) == 0u);

  auto listed = s.as(reader_token)->get("/v1/jobs").json();
  BOOST_TEST(listed["jobs"][0]["lease_token"] == 0, listed.dump());
  BOOST_TEST(s.as(admin_token)->get("/v1/jobs").json()["jobs"][0]["lease_token"] == token);

  auto started_token = [&](const char* who) {
    auto page = s.as(who)->get("/v1/events?type=job.started").json();
    BOOST_TEST_REQUIRE(page["events"].size() == 1u, page.dump());
    return page["events"][0]["body"]["lease_token"].get<std::uint64_t>();
  };
  BOOST_TEST(started_token(reader_token) == 0u);
  BOOST_TEST(started_token(worker_token) == token);
  BOOST_TEST(started_token(admin_token) == token);

  // The live stream, caught up from the start of the log.
  auto streamed_token = [&](const char* who) {
    std::uint64_t seen = 1;  // not a token: set when the event arrives
    bool got = false;
    auto head = s.as(who)->stream("/v1/events/stream?from=1&type=job.started", {},
                                  [&](const http::sse_event& e) {
                                    seen = json::parse(e.data)["body"]["lease_token"];
                                    got = true;
                                    return false;
                                  },
                                  5s);
    BOOST_TEST(head.status == 200, dump_response(head));
    BOOST_TEST(got);
    return seen;
  };
  BOOST_TEST(streamed_token(reader_token) == 0u);
  BOOST_TEST(streamed_token(worker_token) == token);

  // With the token it holds, the worker completes the job as before.
  auto done = worker->post("/v1/jobs/" + std::to_string(id) + "/complete", {{"lease_token", token}});
  BOOST_TEST(done.status == 200, dump_response(done));
}

// -- the tokens file ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_tokens_file_without_tokens_or_with_a_token_twice_is_refused) {
  srv::token_table t;
  auto err = t.load_json(R"({"tokens": []})");
  BOOST_TEST(err.find("no tokens") != std::string::npos, err);
  BOOST_TEST(t.empty());
  err = t.load_json(R"({"tokens": [{"name": "a", "token": "same", "role": "admin"},
                                   {"name": "b", "token": "same", "role": "read"}]})");
  BOOST_TEST(err.find("also another entry's token") != std::string::npos, err);
  BOOST_TEST(t.empty());
  BOOST_TEST(t.load_json(R"({"tokens": [{"name": "a", "token": "t1", "role": "admin"}]})").empty());
  BOOST_TEST(!t.empty());
}

// -- the log under a flood of garbage connections ----------------------------------------

BOOST_AUTO_TEST_CASE(garbage_connections_cannot_flood_the_log_and_are_counted) {
  served s;
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  auto before = srv::http_error_log().seen();
  auto started = std::chrono::steady_clock::now();
  constexpr int connections = 1000;
  for (int i = 0; i < connections; ++i) raw_exchange(s.server->port(), "GARBAGE\r\n\r\n");
  // Every connection is counted once its error is handled.
  BOOST_TEST(wait_until([&] { return srv::http_error_log().seen() - before >= connections; }, 10s),
             srv::http_error_log().seen() - before);
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  spdlog::set_default_logger(previous);
  auto text = captured.str();
  std::size_t lines = 0;
  for (std::size_t at = text.find("http: "); at != std::string::npos; at = text.find("http: ", at + 1))
    ++lines;
  // 20 at once, then one a second.
  BOOST_TEST(lines >= 1u);
  BOOST_TEST(lines <= 20u + static_cast<std::size_t>(seconds) + 1u, lines << " lines in " << seconds << " s");
  auto metrics = s.as()->get("/metrics").body;
  BOOST_TEST(metrics.find("jobsmith_http_connection_errors_total ") != std::string::npos);
  BOOST_TEST(metrics.find("jobsmith_http_connection_errors_unlogged_total ") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_log_limiter_lets_a_burst_through_then_one_per_refill) {
  srv::log_limiter lim{3, std::chrono::seconds(1)};
  auto t0 = srv::log_limiter::clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 3; ++i) BOOST_TEST(lim.admit(t0).write);
  for (int i = 0; i < 5; ++i) BOOST_TEST(!lim.admit(t0 + std::chrono::milliseconds(100)).write);
  auto v = lim.admit(t0 + std::chrono::milliseconds(1200));
  BOOST_TEST(v.write);
  BOOST_TEST(v.suppressed == 5u);
  BOOST_TEST(!lim.admit(t0 + std::chrono::milliseconds(1300)).write);
  BOOST_TEST(lim.seen() == 10u);
  BOOST_TEST(lim.suppressed() == 6u);
}

// -- a port already taken ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_server_that_cannot_listen_writes_nothing) {
  int taken = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_TEST_REQUIRE(::bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  BOOST_TEST_REQUIRE(::listen(taken, 1) == 0);
  socklen_t len = sizeof(addr);
  ::getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len);

  temp_dir dir;
  srv::server_config cfg;
  cfg.port = ntohs(addr.sin_port);
  cfg.engine.data_dir = dir.sub("data");
  srv::server server{std::move(cfg)};
  auto err = server.start();
  ::close(taken);
  BOOST_TEST(err.find("cannot listen") != std::string::npos, err);
  // No engine was opened: no log, so no engine.started in it.
  BOOST_TEST(!std::filesystem::exists(dir.sub("data")));
}

// -- GET /v1/events with a filter that matches rarely ----------------------------------------

namespace {

/// `n` queued jobs in queue "bulk", submitted embedded (fast), then one in "rare".
void bulk_then_rare(srv::server& server, std::size_t n) {
  std::vector<jobsmith::job_submitted> specs(n);
  for (auto& j : specs) {
    j.kind = "k";
    j.queue = "bulk";
  }
  BOOST_TEST_REQUIRE(server.engine_ref().submit_many(std::move(specs)).ok());
  jobsmith::job_submitted rare;
  rare.kind = "k";
  rare.queue = "rare";
  BOOST_TEST_REQUIRE(server.engine_ref().submit(rare).ok());
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_events_page_scans_until_it_is_full_or_at_the_head) {
  served s{false, [](srv::server_config& c) { c.limits.events_scan_time = 30s; }};
  bulk_then_rare(*s.server, 25'000);
  auto page = s.as()->get("/v1/events?queue=rare&limit=10").json();
  BOOST_TEST_REQUIRE(page["events"].size() == 1u, page.dump().substr(0, 300));
  BOOST_TEST(page["events"][0]["body"]["queue"] == "rare");
  BOOST_TEST(page["next"].get<std::uint64_t>() == page["head"].get<std::uint64_t>() + 1);
}

BOOST_AUTO_TEST_CASE(an_events_page_cut_by_its_time_says_where_to_go_on) {
  // No time at all: each page stops at its first clock check (1,024 records).
  served s{false, [](srv::server_config& c) { c.limits.events_scan_time = 0ms; }};
  bulk_then_rare(*s.server, 5'000);
  auto c = s.as();
  std::uint64_t from = 1;
  int pages = 0;
  json found = json::array();
  for (;;) {
    auto page = c->get("/v1/events?queue=rare&limit=10&from=" + std::to_string(from)).json();
    ++pages;
    for (auto& ev : page["events"]) found.push_back(ev);
    auto next = page["next"].get<std::uint64_t>();
    BOOST_TEST_REQUIRE(next > from, "no progress: " << page.dump());
    from = next;
    if (next > page["head"].get<std::uint64_t>()) break;
    BOOST_TEST_REQUIRE(pages < 100);
  }
  BOOST_TEST(pages > 1);
  BOOST_TEST(found.size() == 1u, found.dump());
}

// -- calls in flight: counted, not threads ---------------------------------------------

BOOST_AUTO_TEST_CASE(requests_in_flight_past_the_bound_get_429_and_free_their_slots_when_answered) {
  // Two long polls hold the two slots; a third request is refused at once,
  // writes nothing, and is served again once a poll is answered. A stream
  // does not keep a slot.
  served s{false, [](srv::server_config& c) { c.limits.max_inflight_calls = 2; }};
  std::vector<std::thread> polls;
  std::atomic<int> leased{0};
  for (int i = 0; i < 2; ++i)
    polls.emplace_back([&, i] {
      auto c = s.as();
      auto r = c->post("/v1/workers/lease",
                       {{"worker", "w" + std::to_string(i)}, {"max_jobs", 1}, {"wait_ms", 10'000}});
      if (r.status == 200 && r.json()["jobs"].size() == 1) ++leased;
    });
  // Both polls wait in the engine (their workers are known to it), asked
  // without HTTP so that the check itself takes no slot.
  BOOST_REQUIRE(wait_until([&] {
    auto st = s.server->engine_ref().stats();
    return st.ok() && st->workers.size() == 2;
  }));
  auto c = s.as();
  expect_error(c->get("/v1/queues"), 429, "overloaded");
  auto head = s.head();
  expect_error(c->post("/v1/jobs", {{"kind", "x"}}), 429, "overloaded");
  BOOST_TEST(s.head() == head);
  // A job for one poll: its answer frees a slot (the job goes in directly).
  jobsmith::job_submitted job;
  job.kind = "x";
  BOOST_REQUIRE(s.server->engine_ref().submit(job).ok());
  BOOST_REQUIRE(wait_until([&] { return leased.load() == 1; }));
  BOOST_TEST(c->get("/v1/queues").status == 200);
  BOOST_REQUIRE(s.server->engine_ref().submit(job).ok());
  for (auto& t : polls) t.join();
  BOOST_TEST(leased.load() == 2);
  // A stream is counted by max_streams: two open streams leave both slots.
  std::vector<std::thread> streams;
  std::atomic<bool> stop{false};
  for (int i = 0; i < 2; ++i)
    streams.emplace_back([&] {
      auto sc = s.as();
      sc->stream("/v1/events/stream", {}, [&](const http::sse_event&) { return !stop.load(); });
    });
  BOOST_REQUIRE(wait_until([&] {
    return c->get("/metrics").body.find("\njobsmith_event_streams 2\n") != std::string::npos;
  }));
  BOOST_TEST(c->get("/v1/queues").status == 200);
  stop = true;
  s.server->stop();
  for (auto& t : streams) t.join();
}
