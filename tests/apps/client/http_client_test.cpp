// The HTTP client against a scripted loopback server on real sockets:
// body framings, keep-alive reuse, reconnect after a server close, timeouts,
// and the Server-Sent Events parser.
#define BOOST_TEST_MODULE http_client
#include "apps/client/http_client.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace jobsmith;
using namespace std::chrono_literals;

namespace {

/// Accepts connections on 127.0.0.1:<free port> and runs `script(fd, n)` for
/// the n-th connection (0-based) on the accepting thread, one at a time.
class script_server {
 public:
  using script = std::function<void(int fd, int index)>;
  explicit script_server(script s) : script_(std::move(s)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    BOOST_REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    BOOST_REQUIRE(::listen(listen_fd_, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~script_server() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  std::uint16_t port() const { return port_; }
  int connections() const { return accepted_; }
  http::url url() const {
    http::url u;
    u.port = port_;
    return u;
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      int index = accepted_++;
      script_(fd, index);
      ::close(fd);
    }
  }
  script script_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Reads one request (head plus Content-Length body); "" when the peer closed.
std::string read_request(int fd) {
  std::string got;
  char buf[4096];
  for (;;) {
    auto end = got.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::size_t length = 0;
      auto cl = got.find("Content-Length: ");
      if (cl != std::string::npos && cl < end) length = std::stoul(got.substr(cl + 16));
      if (got.size() >= end + 4 + length) return got;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return {};
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return {};
    got.append(buf, static_cast<std::size_t>(n));
  }
}

/// Sends bytes in separate writes with a pause between, so the client sees
/// them arrive in pieces.
void send_pieces(int fd, const std::vector<std::string>& pieces) {
  for (auto& piece : pieces) {
    ::send(fd, piece.data(), piece.size(), MSG_NOSIGNAL);
    std::this_thread::sleep_for(5ms);
  }
}

std::string answer(const std::string& body, const std::string& extra_headers = {}) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

}  // namespace

BOOST_AUTO_TEST_CASE(url_parsing) {
  std::string error;
  auto u = http::url::parse("http://localhost:9000/api/", &error);
  BOOST_REQUIRE(u);
  BOOST_TEST(u->host == "localhost");
  BOOST_TEST(u->port == 9000);
  BOOST_TEST(u->base_path == "/api");
  auto v = http::url::parse("http://[::1]:81");
  BOOST_REQUIRE(v);
  BOOST_TEST(v->host == "::1");
  BOOST_TEST(v->port == 81);
  BOOST_TEST(v->base_path == "");
  BOOST_TEST(!http::url::parse("https://x:1", &error));
  BOOST_TEST(error.find("only http") != std::string::npos);
  BOOST_TEST(!http::url::parse("http://x:99999"));
  BOOST_TEST(!http::url::parse("http://:80"));
}

BOOST_AUTO_TEST_CASE(keep_alive_reuses_one_connection) {
  std::vector<std::string> seen;
  std::mutex mu;
  script_server server([&](int fd, int) {
    for (;;) {
      auto req = read_request(fd);
      if (req.empty()) return;
      {
        std::lock_guard<std::mutex> g{mu};
        seen.push_back(req);
      }
      auto body = R"({"n":)" + std::to_string(seen.size()) + "}";
      // head and body in separate writes
      auto a = answer(body);
      send_pieces(fd, {a.substr(0, 20), a.substr(20)});
    }
  });
  http::client c(server.url(), "secret", 2s);
  auto r1 = c.post("/v1/jobs", {{"kind", "x"}});
  auto r2 = c.get("/v1/jobs/1");
  BOOST_TEST(r1.status == 200);
  BOOST_TEST(r1.json()["n"] == 1);
  BOOST_TEST(r2.json()["n"] == 2);
  BOOST_TEST(r1.header("content-type") == "application/json");
  BOOST_TEST(server.connections() == 1);
  std::lock_guard<std::mutex> g{mu};
  BOOST_REQUIRE(seen.size() == 2u);
  BOOST_TEST(seen[0].find("POST /v1/jobs HTTP/1.1\r\n") == 0u);
  BOOST_TEST(seen[0].find("Authorization: Bearer secret\r\n") != std::string::npos);
  BOOST_TEST(seen[0].find("\r\n\r\n{\"kind\":\"x\"}") != std::string::npos);
  BOOST_TEST(seen[1].find("GET /v1/jobs/1 HTTP/1.1\r\n") == 0u);
}

BOOST_AUTO_TEST_CASE(chunked_body_in_pieces_with_extensions_and_trailers) {
  script_server server([&](int fd, int) {
    if (read_request(fd).empty()) return;
    send_pieces(fd,
                {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "5;ext=1\r\nhel", "lo\r",
                 "\n", "6\r\n wor", "ld\r\nA\r\n0123456789\r\n", "0\r\nX-Trailer: t\r\n", "\r\n"});
    // then a second request on the same connection
    if (read_request(fd).empty()) return;
    send_pieces(fd, {answer("{}")});
  });
  http::client c(server.url(), {}, 2s);
  auto r = c.get("/x");
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.transport_error == "");
  BOOST_TEST(r.body == "hello world0123456789");
  auto r2 = c.get("/y");
  BOOST_TEST(r2.body == "{}");
  BOOST_TEST(server.connections() == 1);
}

BOOST_AUTO_TEST_CASE(body_until_close_and_error_status) {
  script_server server([&](int fd, int index) {
    if (read_request(fd).empty()) return;
    if (index == 0)
      send_pieces(fd, {"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n",
                       R"({"error":{"code":"not_found","message":"no job 9"}})"});
    else
      send_pieces(fd, {answer("[1]")});
  });
  http::client c(server.url(), {}, 2s);
  auto r = c.get("/v1/jobs/9");
  BOOST_TEST(r.status == 404);
  BOOST_TEST(r.json()["error"]["message"] == "no job 9");
  auto r2 = c.get("/v1/jobs/1");  // a new connection, as the first said close
  BOOST_TEST(r2.status == 200);
  BOOST_TEST(r2.json().is_array());
  BOOST_TEST(server.connections() == 2);
}

BOOST_AUTO_TEST_CASE(reconnects_once_when_the_server_closed_a_kept_alive_connection) {
  script_server server([&](int fd, int) {
    // Each connection answers one request and then closes, without saying so.
    if (read_request(fd).empty()) return;
    send_pieces(fd, {answer(R"({"ok":true})")});
  });
  http::client c(server.url(), {}, 2s);
  for (int i = 0; i < 3; ++i) {
    auto r = c.post("/v1/workers/lease", {{"i", i}});
    BOOST_TEST(r.status == 200, "request " << i << ": " << r.transport_error);
    BOOST_TEST(r.json()["ok"] == true);
    std::this_thread::sleep_for(20ms);  // the close arrives while the connection idles
  }
  BOOST_TEST(server.connections() == 3);
}

BOOST_AUTO_TEST_CASE(a_post_the_server_read_but_did_not_answer_is_not_sent_again) {
  // The first connection answers one request, then reads the next and dies
  // without answering (as a server killed mid-request); later ones answer.
  std::atomic<int> requests{0};
  script_server server([&](int fd, int index) {
    for (;;) {
      if (read_request(fd).empty()) return;
      ++requests;
      if (index == 0 && requests == 2) return;  // read, maybe applied, no answer
      send_pieces(fd, {answer(R"({"ok":true})")});
    }
  });
  http::client c(server.url(), {}, 2s);
  BOOST_TEST(c.post("/v1/jobs", {{"kind", "k"}}).status == 200);
  auto lost = c.post("/v1/jobs/1/retry", nlohmann::json::object());
  BOOST_TEST(lost.status == 0);
  BOOST_TEST(lost.transport_error.find("POST not sent again") != std::string::npos,
             lost.transport_error);
  BOOST_TEST(requests.load() == 2);  // not a third time
  BOOST_TEST(server.connections() == 1);
  // The caller may choose to send it again: a new connection.
  BOOST_TEST(c.post("/v1/jobs/1/retry", nlohmann::json::object()).status == 200);
  BOOST_TEST(server.connections() == 2);
}

BOOST_AUTO_TEST_CASE(a_get_the_server_read_but_did_not_answer_is_sent_again_once) {
  std::atomic<int> requests{0};
  script_server server([&](int fd, int index) {
    for (;;) {
      if (read_request(fd).empty()) return;
      ++requests;
      if (index == 0 && requests == 2) return;
      send_pieces(fd, {answer(R"({"ok":true})")});
    }
  });
  http::client c(server.url(), {}, 2s);
  BOOST_TEST(c.get("/v1/jobs/1").status == 200);
  auto again = c.get("/v1/jobs/1");
  BOOST_TEST(again.status == 200, again.transport_error);
  BOOST_TEST(requests.load() == 3);
  BOOST_TEST(server.connections() == 2);
}

BOOST_AUTO_TEST_CASE(a_fresh_connection_closed_without_answer_is_an_error_not_a_loop) {
  script_server server([&](int fd, int) { read_request(fd); });
  http::client c(server.url(), {}, 2s);
  auto r = c.get("/x");
  BOOST_TEST(r.status == 0);
  BOOST_TEST(r.transport_error.find("closed") != std::string::npos, r.transport_error);
  BOOST_TEST(server.connections() == 1);
}

BOOST_AUTO_TEST_CASE(timeouts_and_refused_connections) {
  std::atomic<bool> release{false};
  script_server server([&](int fd, int) {
    read_request(fd);
    while (!release) std::this_thread::sleep_for(5ms);  // never answers
    (void)fd;
  });
  http::client c(server.url(), {}, 150ms);
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.get("/slow");
  auto took = std::chrono::steady_clock::now() - t0;
  release = true;
  BOOST_TEST(r.status == 0);
  BOOST_TEST(r.transport_error.find("timed out") != std::string::npos, r.transport_error);
  BOOST_TEST(took < 2s);

  // a port nobody listens on: bind one, note it, close it
  http::url dead;
  {
    script_server gone([](int, int) {});
    dead = gone.url();
  }
  http::client d(dead, {}, 1s);
  auto r2 = d.get("/healthz");
  BOOST_TEST(r2.status == 0);
  BOOST_TEST(r2.transport_error.find("connect 127.0.0.1:") == 0u, r2.transport_error);
  BOOST_TEST(r2.transport_error.find("refused") != std::string::npos, r2.transport_error);
}

BOOST_AUTO_TEST_CASE(sse_parsing_follows_the_whatwg_rules) {
  std::string seen_request;
  script_server server([&](int fd, int) {
    seen_request = read_request(fd);
    // Chunked, with events split across chunks and reads at awkward places.
    std::string stream =
        "\xEF\xBB\xBF: hello comment\n"
        "id: 7\nevent: job.submitted\ndata: {\"seq\":7}\n\n"
        ": keepalive\r\n"
        "data: line one\r\ndata: line two\r\ndata\r\n\r\n"    // type "message", id stays 7
        "id: 9\rdata:no-space\r\rretry: 100\nunknown: x\n\n"  // CR endings; no data: nothing
        "event: e\ndata:  two spaces\n\n"
        "data: after stop\n\n";
    std::vector<std::string> pieces = {
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"};
    std::size_t pos = 0;
    std::size_t sizes[] = {3, 17, 1, 30, 2, 11, 1, 40, 1000};
    for (auto s : sizes) {
      if (pos >= stream.size()) break;
      auto part = stream.substr(pos, s);
      pos += part.size();
      char hex[16];
      std::snprintf(hex, sizeof hex, "%zx\r\n", part.size());
      pieces.push_back(hex + part + "\r\n");
    }
    send_pieces(fd, pieces);
    std::this_thread::sleep_for(100ms);
  });
  http::client c(server.url(), "tok", 2s);
  std::vector<http::sse_event> got;
  auto r = c.stream("/v1/events/stream?from=1", {{"Last-Event-ID", "6"}},
                    [&](const http::sse_event& ev) {
                      got.push_back(ev);
                      return got.size() < 4;
                    });
  BOOST_TEST(r.status == 200);
  BOOST_TEST(seen_request.find("GET /v1/events/stream?from=1 HTTP/1.1") == 0u);
  BOOST_TEST(seen_request.find("Last-Event-ID: 6\r\n") != std::string::npos);
  BOOST_TEST(seen_request.find("Accept: text/event-stream\r\n") != std::string::npos);
  BOOST_REQUIRE(got.size() == 4u);
  BOOST_TEST(got[0].id == "7");
  BOOST_TEST(got[0].type == "job.submitted");
  BOOST_TEST(got[0].data == "{\"seq\":7}");
  BOOST_TEST(got[1].id == "7");
  BOOST_TEST(got[1].type == "message");
  BOOST_TEST(got[1].data == "line one\nline two\n");
  BOOST_TEST(got[2].id == "9");
  BOOST_TEST(got[2].type == "message");
  BOOST_TEST(got[2].data == "no-space");
  BOOST_TEST(got[3].type == "e");
  BOOST_TEST(got[3].data == " two spaces");
}

BOOST_AUTO_TEST_CASE(sse_stream_end_idle_timeout_and_error_answer) {
  script_server server([&](int fd, int index) {
    if (read_request(fd).empty()) return;
    if (index == 0) {  // until close, ends after one event
      send_pieces(fd, {"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n",
                       "id: 1\ndata: a\n\ndata: incomplete"});
    } else if (index == 1) {  // goes quiet
      send_pieces(
          fd, {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "c\r\n: keepalive\n\r\n"});
      std::this_thread::sleep_for(400ms);
    } else {
      send_pieces(fd, {"HTTP/1.1 401 Unauthorized\r\nContent-Length: 55\r\n\r\n"
                       R"({"error":{"code":"unauthorized","message":"no token"}})"});
    }
  });
  http::client c(server.url(), {}, 2s);
  int count = 0;
  auto r = c.stream("/s", {}, [&](const http::sse_event&) { return ++count, true; });
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.transport_error == "");
  BOOST_TEST(count == 1);  // the incomplete event is dropped at the end

  count = 0;
  auto r2 = c.stream(
      "/s", {}, [&](const http::sse_event&) { return ++count, true; }, 150ms);
  BOOST_TEST(r2.status == 200);
  BOOST_TEST(count == 0);
  BOOST_TEST(r2.transport_error.find("idle") != std::string::npos, r2.transport_error);

  auto r3 = c.stream("/s", {}, [&](const http::sse_event&) { return true; });
  BOOST_TEST(r3.status == 401);
  BOOST_TEST(r3.json()["error"]["code"] == "unauthorized");
}
