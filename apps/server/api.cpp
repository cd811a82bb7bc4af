// The route table and the dispatch of api::handle: admission by body bytes,
// the route (404, 405), the browser checks, the token (401) and the role
// (403), the checks every authorised route shares (query, path ids, body
// size), then the route's handler (routes_*.cpp, api_internal.hpp).
#include "apps/server/api.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "apps/server/api_internal.hpp"
#include "apps/server/request_guard.hpp"

namespace jobsmith::server {

void parse_query(std::string_view raw, http_request& r) {
  std::size_t start = 0;
  while (start <= raw.size()) {
    auto end = raw.find('&', start);
    if (end == std::string_view::npos) end = raw.size();
    std::string_view pair = raw.substr(start, end - start);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      std::string key{pair.substr(0, eq)};
      std::string value{eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1)};
      std::replace(key.begin(), key.end(), '+', ' ');
      std::replace(value.begin(), value.end(), '+', ' ');
      auto k = percent_decode(key);
      auto v = percent_decode(value);
      if (!k || !v) {
        r.query_malformed = true;
        return;
      }
      r.query.emplace_back(std::move(*k), std::move(*v));
    }
    start = end + 1;
  }
}

// -- plumbing -----------------------------------------------------------------------------

http_reply api::error_reply(int status, std::string_view code, std::string_view message) {
  http_reply r;
  r.status = status;
  json j = {{"error", {{"code", code}, {"message", message}, {"details", json::object()}}}};
  r.body = dump(j);
  // 503 and 507: the engine retries its disk once a second (a full disk:
  // RocksDB checks for free space every 5 s).
  if (status == 429 || status == 503) r.headers.emplace_back("Retry-After", "1");
  if (status == 507) r.headers.emplace_back("Retry-After", "5");
  return r;
}

api::api(engine& eng, event_hub& hub, call_pool& pool, const server_config& config)
    : eng_(eng), hub_(hub), pool_(pool), config_(config) {}

bool api::admit_stream() {
  auto n = open_streams_.fetch_add(1) + 1;
  if (n > config_.limits.max_streams) {
    open_streams_.fetch_sub(1);
    return false;
  }
  return true;
}

void api::stream_closed() { open_streams_.fetch_sub(1); }

bool api::over_memory_budget() const {
  auto budget = config_.limits.memory_budget_bytes;
  return budget != 0 && resident_bytes_.load() > budget;
}

// -- the route table ----------------------------------------------------------------------

namespace {

constexpr std::optional<permission> no_token = std::nullopt;

/// The routes of docs/api.md. A path that fits no pattern is 404; one that
/// fits only rows of other methods is 405, with those rows' methods, in
/// this order, as the Allow header.
const route routes[] = {
    // Health, metrics and the dashboard: served without a token
    // (routes_service.cpp, api_metrics.cpp).
    {"GET", "/healthz", no_token, get_health},
    {"GET", "/readyz", no_token, get_readiness},
    {"GET", "/metrics", no_token, get_metrics},
    {"GET", "/", no_token, get_dashboard_file},
    {"GET", "/ui/*", no_token, get_dashboard_file},

    // routes_jobs.cpp
    {"GET", "/v1/jobs", permission::read, list_jobs},
    {"POST", "/v1/jobs", permission::produce, submit_jobs},
    {"GET", "/v1/jobs/{job_id}", permission::read, get_job},
    {"POST", "/v1/jobs/{job_id}/cancel", permission::produce, cancel_job},
    {"POST", "/v1/jobs/{job_id}/run-now", permission::produce, run_job_now},
    {"POST", "/v1/jobs/{job_id}/retry", permission::produce, retry_job},
    {"POST", "/v1/jobs/{job_id}/review", permission::produce, review_job},

    // routes_workers.cpp
    {"POST", "/v1/workers/lease", permission::work, lease_jobs},
    {"POST", "/v1/jobs/{job_id}/heartbeat", permission::work, heartbeat_job},
    {"POST", "/v1/jobs/{job_id}/complete", permission::work, complete_job},
    {"POST", "/v1/jobs/{job_id}/fail", permission::work, fail_job},
    {"POST", "/v1/workers/complete", permission::work, complete_jobs},

    // routes_queues.cpp
    {"GET", "/v1/queues", permission::read, list_queues},
    {"POST", "/v1/queues/{queue}/pause", permission::administer, pause_queue},
    {"POST", "/v1/queues/{queue}/resume", permission::administer, resume_queue},
    {"POST", "/v1/queues/{queue}/concurrency", permission::administer, configure_queue},
    {"POST", "/v1/queues/{queue}/config", permission::administer, configure_queue_retention},

    // routes_kinds.cpp
    {"GET", "/v1/kinds", permission::read, list_kinds},
    {"GET", "/v1/kinds/{kind}", permission::read, get_kind},
    {"POST", "/v1/kinds/{kind}", permission::administer, configure_kind},

    // routes_schedules.cpp
    {"GET", "/v1/schedules", permission::read, list_schedules},
    {"DELETE", "/v1/schedules/{schedule_id}", permission::produce, delete_schedule},

    // routes_events.cpp
    {"GET", "/v1/events", permission::read, get_events_page},
    {"GET", "/v1/events/stream", permission::read, open_event_stream, /*token_in_query=*/true},

    // routes_admin.cpp
    {"POST", "/v1/admin/backup", permission::administer, write_backup},
};

/// A row of `routes` with its pattern cut at '/' once ("" first, as for
/// every absolute path).
struct table_row {
  const route* spec;
  std::vector<std::string_view> segments;
};

const std::vector<table_row>& route_table() {
  static const std::vector<table_row> table = [] {
    std::vector<table_row> rows;
    for (const auto& r : routes) rows.push_back({&r, split(r.pattern, '/')});
    return rows;
  }();
  return table;
}

bool is_placeholder(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

/// Whether a path cut at '/' fits a pattern cut the same way.
bool fits(const std::vector<std::string_view>& pattern, const std::vector<std::string_view>& path) {
  const bool takes_rest = !pattern.empty() && pattern.back() == "*";
  if (takes_rest ? path.size() < pattern.size() : path.size() != pattern.size()) return false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (takes_rest && i + 1 == pattern.size()) break;
    if (!is_placeholder(pattern[i]) && pattern[i] != path[i]) return false;
  }
  return true;
}

}  // namespace

// -- dispatch -----------------------------------------------------------------------------

std::optional<stream_request> api::handle(http_request&& req, reply_fn reply) {
  counters_.requests.fetch_add(1);
  // Admission by body bytes, before anything is parsed: a body alone is
  // always admitted, so no size under max_body_bytes is refused forever.
  // Admission by count: each admitted request holds a slot until its
  // answer, on whatever thread that comes (no thread is parked per call).
  if (inflight_calls_.fetch_add(1) >= config_.limits.max_inflight_calls) {
    inflight_calls_.fetch_sub(1);
    counters_.refused_busy.fetch_add(1);
    counters_.client_errors.fetch_add(1);
    reply(error_reply(429, "overloaded",
                      std::to_string(config_.limits.max_inflight_calls) +
                          " requests are in progress; try again later"));
    return std::nullopt;
  }
  const std::uint64_t body_bytes = req.body.size();
  if (body_bytes > 0) {
    auto held = inflight_bytes_.fetch_add(body_bytes) + body_bytes;
    if (held > config_.limits.max_inflight_bytes && held != body_bytes) {
      inflight_bytes_.fetch_sub(body_bytes);
      inflight_calls_.fetch_sub(1);
      counters_.refused_busy.fetch_add(1);
      counters_.client_errors.fetch_add(1);
      reply(error_reply(429, "overloaded",
                        "requests holding " + mib(held - body_bytes) +
                            " of bodies are in progress (limit " +
                            mib(config_.limits.max_inflight_bytes) + "); try again later"));
      return std::nullopt;
    }
  }
  auto counted = [this, body_bytes, reply = std::move(reply)](http_reply r) {
    if (r.status >= 500) counters_.server_errors.fetch_add(1);
    else if (r.status >= 400) counters_.client_errors.fetch_add(1);
    if (body_bytes > 0) inflight_bytes_.fetch_sub(body_bytes);
    inflight_calls_.fetch_sub(1);
    reply(std::move(r));
  };
  request_context rt{*this, std::move(req), std::move(counted), {}, role::admin};
  // A stream is never answered through `counted`: it gives its slot back
  // here, and counts against max_streams from now on.
  auto answered_or_stream = [this](std::optional<stream_request> stream) {
    if (stream) inflight_calls_.fetch_sub(1);
    return stream;
  };
  const auto method = rt.req.method;
  const std::string path = rt.req.path;
  const auto segments = split(path, '/');

  // The row of this path and method; the methods the path takes (405).
  const table_row* target = nullptr;
  std::string allow;
  for (const auto& row : route_table()) {
    if (!fits(row.segments, segments)) continue;
    if (row.spec->method == method) target = &row;
    allow += (allow.empty() ? "" : ", ") + std::string{row.spec->method};
  }
  if (allow.empty()) {
    rt.fail({404, "not_found", "no route " + path});
    return std::nullopt;
  }
  if (target == nullptr) {
    auto r = error_reply(405, "method_not_allowed", method + " is not allowed on " + path);
    r.headers.emplace_back("Allow", allow);
    rt.reply(std::move(r));
    return std::nullopt;
  }
  for (std::size_t i = 0; i < target->segments.size(); ++i)
    if (is_placeholder(target->segments[i]))
      rt.path_args.emplace_back(target->segments[i].substr(1, target->segments[i].size() - 2),
                                std::string{segments[i]});

  // Browsers: no cross-site writes, no reads through a rebound DNS name,
  // no bodies but JSON (apps/server/request_guard.hpp).
  if (auto refusal = check_request_source(rt.req.source, path, !rt.req.body.empty(),
                                          {!config_.tokens.empty(), port_.load()})) {
    rt.fail(*refusal);
    return std::nullopt;
  }

  const route& to = *target->spec;
  try {
    if (!to.need) return answered_or_stream(to.handle(rt));

    // -- auth ---------------------------------------------------------------------
    if (config_.tokens.empty()) {
      rt.principal = "local";
      rt.who = role::admin;
    } else {
      std::string token;
      const std::string& h = rt.req.authorization;
      if (h.size() > 7 && (h.compare(0, 7, "Bearer ") == 0 || h.compare(0, 7, "bearer ") == 0))
        token = h.substr(7);
      else if (to.token_in_query)
        if (auto t = rt.query("access_token")) token = *t;
      auto found = token.empty() ? std::nullopt : config_.tokens.find(token);
      if (!found) {
        rt.fail({401, "unauthorized",
                 token.empty() ? "missing token (Authorization: Bearer <token>)" : "unknown token"});
        return std::nullopt;
      }
      rt.principal = found->name;
      rt.who = found->who;
    }
    if (!allows(rt.who, *to.need)) {
      rt.fail({403, "forbidden", "role '" + std::string{to_string(rt.who)} +
                                     "' may not " + method + " " + path});
      return std::nullopt;
    }

    // -- what every authorised route checks ---------------------------------------
    if (rt.req.query_malformed) throw bad_request("the query string is malformed");
    for (auto& [name, text] : rt.path_args) {
      if (!name.ends_with("_id")) continue;
      auto id = parse_id(text);
      // "{job_id}": "job id must be ...".
      if (!id)
        throw bad_request(std::string{name.substr(0, name.size() - 3)} +
                          " id must be a number below 2^53");
      rt.id = *id;
    }
    const auto& lim = config_.limits;
    if (rt.req.body.size() > lim.max_body_bytes)
      throw api_error{413, "too_large", "the body is larger than " +
                                            std::to_string(lim.max_body_bytes) + " bytes"};
    return answered_or_stream(to.handle(rt));
  } catch (const api_error& e) {
    rt.fail(e);
  }
  return std::nullopt;
}

}  // namespace jobsmith::server
