// libFuzzer target: the HTTP API's request handling (apps/server/api.hpp,
// api::handle: routing, auth, query parsing, body parsing and validation)
// against a real engine on the in-memory log, without the HTTP transport.
//
// An input is read as a small HTTP-like request, so the seeds are readable:
//
//   METHOD SP TARGET LF            TARGET = path [ "?" raw query ]
//   *( NAME ":" [SP] VALUE LF )    Authorization and Last-Event-ID are kept
//   LF
//   body                           everything after the blank line
//
// Any byte string maps to some request (missing parts are empty). Requests
// with an Authorization header go to an API configured with tokens
// ("admin-token", "producer-token", "worker-token", "read-token"); the others
// to one without tokens (every caller is admin), as `jobsmith serve` runs
// on loopback.
//
// Properties checked on every input, beyond "no crash, no sanitizer report":
//   - the request is answered exactly once within 20 s, or opens a stream
//     (which then catches up from the log as the server's would);
//   - the status is 2xx or 4xx, never 5xx (the engine is healthy);
//   - a JSON answer parses; a 4xx is docs/api.md's error object
//     {"error": {"code": string, "message": string, "details": object}}.
//
// The engine is reopened every few thousand requests so that what accepted
// requests add (jobs, events) does not grow without bound across a long run.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "actors/engine.hpp"
#include "apps/server/api.hpp"
#include "apps/server/call_pool.hpp"
#include "apps/server/event_hub.hpp"

namespace {

using namespace jobsmith;
using namespace jobsmith::server;

[[noreturn]] void violated(const std::string& what) {
  std::fprintf(stderr, "fuzz_api_request: property violated: %s\n", what.c_str());
  std::abort();
}

// An event stream's far end. `keep` streams take everything (the fixture's
// one stream renders every event that requests commit); the others take the
// catch-up text, then end, as a client that disconnects.
struct null_sink : stream_sink {
  explicit null_sink(bool keep) : keep(keep) {}
  bool send(std::string) override { return keep; }
  void end() override {}
  bool keep;
};

// One engine with its hub, call pool and two API front ends.
struct fixture {
  server_config open_cfg;
  server_config auth_cfg;
  std::unique_ptr<engine> eng;
  std::unique_ptr<event_hub> hub;
  std::unique_ptr<call_pool> pool;
  std::unique_ptr<api> open_api;
  std::unique_ptr<api> auth_api;
  std::size_t served = 0;

  fixture() {
    for (auto* cfg : {&open_cfg, &auth_cfg}) {
      // Small bounds keep one input fast: a long poll waits at most 20 ms.
      cfg->limits.max_long_poll = std::chrono::milliseconds{20};
      cfg->limits.pool_threads = 2;
      cfg->limits.pool_queue = 64;
    }
    auth_cfg.tokens.add("alice", "admin-token", role::admin);
    auth_cfg.tokens.add("pat", "producer-token", role::producer);
    auth_cfg.tokens.add("wendy", "worker-token", role::worker);
    auth_cfg.tokens.add("rita", "read-token", role::read);

    engine_options opts;
    opts.in_memory = true;
    opts.allow_unknown_kinds = true;  // as `jobsmith serve`: remote workers run every kind
    opts.worker_threads = 1;
    opts.scheduler_threads = 1;
    auto opened = engine::open(std::move(opts));
    if (!opened) violated("cannot open the engine: " + opened.error().to_string());
    eng = std::move(*opened);
    hub = std::make_unique<event_hub>(*eng);
    if (auto err = hub->start(); !err.empty()) violated("cannot start the hub: " + err);
    if (!hub->add_stream(std::make_shared<null_sink>(true), {}, 0))
      violated("cannot open the fixture's event stream");
    pool = std::make_unique<call_pool>(open_cfg.limits.pool_threads, open_cfg.limits.pool_queue);
    open_api = std::make_unique<api>(*eng, *hub, *pool, open_cfg);
    auth_api = std::make_unique<api>(*eng, *hub, *pool, auth_cfg);
  }

  // The order of server::stop(): hub, pool, API, engine.
  ~fixture() {
    hub->stop();
    pool->stop();
    open_api.reset();
    auth_api.reset();
    eng->close();
  }
};

// Never destroyed at exit: CAF's own statics may be gone by then, and
// closing an engine after them crashes in ~actor_system. Reachable from
// here, so LeakSanitizer does not count it.
fixture* current = nullptr;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Splits the input as the header comment says.
http_request parse_input(std::string_view in, bool& has_auth) {
  http_request req;
  // A JSON body unless the input says otherwise: the seeds carry no
  // Content-Type, and every body would stop at the 415 check.
  req.source.content_type = "application/json";
  has_auth = false;
  auto line = [&]() {
    auto nl = in.find('\n');
    std::string_view l = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    return l;
  };
  std::string_view first = line();
  auto sp = first.find(' ');
  req.method = std::string(first.substr(0, sp));
  std::string_view target = sp == std::string_view::npos ? std::string_view{} : first.substr(sp + 1);
  auto q = target.find('?');
  req.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) parse_query(target.substr(q + 1), req);
  while (!in.empty()) {
    std::string_view h = line();
    if (h.empty()) break;
    auto colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = h.substr(0, colon), value = h.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (iequals(name, "authorization")) {
      req.authorization = std::string(value);
      has_auth = true;
    } else if (iequals(name, "last-event-id")) {
      req.last_event_id = std::string(value);
    } else if (iequals(name, "content-type")) {
      req.source.content_type = std::string(value);
    } else if (iequals(name, "host")) {
      req.source.host = std::string(value);
    } else if (iequals(name, "origin")) {
      req.source.origin = std::string(value);
    } else if (iequals(name, "sec-fetch-site")) {
      req.source.sec_fetch_site = std::string(value);
    }
  }
  req.body = std::string(in);
  return req;
}

// What the reply function saw; shared with it (it may run on another thread,
// and a second call would come after the input's run).
struct answer {
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  http_reply reply;
};

void check_reply(const http_reply& r, const http_request& req) {
  const std::string where = req.method + " " + req.path + " -> " + std::to_string(r.status) +
                            " " + r.body.substr(0, 300);
  if (r.status >= 500 || r.status < 200 || (r.status >= 300 && r.status < 400))
    violated("status outside 2xx/4xx: " + where);
  if (r.content_type != "application/json") return;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded()) violated("JSON answer does not parse: " + where);
  if (r.status >= 400) {
    if (!j.is_object() || !j.contains("error") || !j["error"].is_object())
      violated("4xx without an error object: " + where);
    const auto& e = j["error"];
    if (!e.contains("code") || !e["code"].is_string() || !e.contains("message") ||
        !e["message"].is_string() || !e.contains("details") || !e["details"].is_object())
      violated("malformed error object: " + where);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (!current || current->served >= 5000 || current->eng->head() > 50'000) {
    delete current;
    current = new fixture();
  }
  ++current->served;

  bool has_auth = false;
  http_request req = parse_input(std::string_view(reinterpret_cast<const char*>(data), size),
                                 has_auth);
  const http_request copy = req;
  auto ans = std::make_shared<answer>();
  api& front = has_auth ? *current->auth_api : *current->open_api;
  auto stream = front.handle(std::move(req), [ans](http_reply r) {
    std::lock_guard<std::mutex> guard{ans->mu};
    if (++ans->calls > 1) violated("a request was answered twice");
    ans->reply = std::move(r);
    ans->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock{ans->mu};
  if (stream) {
    if (ans->calls != 0) violated("a stream request was also answered");
    lock.unlock();
    // What the server does next (on a pool thread there): catch up from
    // `from`, then the client goes away.
    current->hub->add_stream(std::make_shared<null_sink>(false), std::move(stream->filter),
                             stream->from);
    return 0;
  }
  if (!ans->cv.wait_for(lock, std::chrono::seconds{20}, [&] { return ans->calls > 0; }))
    violated("no answer within 20 s: " + copy.method + " " + copy.path);
  check_reply(ans->reply, copy);
  return 0;
}
