#include "apps/server/api.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <chrono>
#include <filesystem>
#include <memory>
#include <variant>

#include <nlohmann/json.hpp>

#include "apps/dashboard/dashboard.hpp"
#include "apps/server/api_error.hpp"
#include "apps/server/backup_target.hpp"
#include "apps/server/request_guard.hpp"
#include "apps/server/slim_answers.hpp"
#include "events/json.hpp"

namespace jobsmith::server {

using json = nlohmann::json;

namespace {

millis wall_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

/// docs/api.md's table: engine errors to HTTP.
api_error from_engine(const engine_error& err) {
  switch (err.code) {
    case engine_errc::invalid_argument:
    case engine_errc::unknown_kind: return {400, "bad_request", err.message};
    case engine_errc::illegal_transition: return {409, "conflict", err.message};
    case engine_errc::stale_token: return {409, "stale_token", err.message};
    case engine_errc::not_found: return {404, "not_found", err.message};
    case engine_errc::overloaded: return {429, "overloaded", err.message};
    case engine_errc::rejected: return {422, "rejected", err.message};
    // Nothing was written; the engine resumes by itself once space is freed.
    case engine_errc::no_space: return {507, "insufficient_storage", err.message};
    case engine_errc::storage: return {503, "unavailable", err.message};
    case engine_errc::closed:
    case engine_errc::corruption: return {503, "unavailable", err.to_string()};
  }
  return {500, "internal", err.to_string()};
}

const char* const max_safe_id_text = "9007199254740991";
constexpr std::uint64_t max_safe_id = 9007199254740991ULL;  // 2^53 - 1
/// Submit bodies up to this size are parsed on the Asio thread that read
/// them (a single job, a small batch); larger ones on a call thread.
constexpr std::size_t inline_parse_bytes = 64 * 1024;
/// Lease answers of up to this many jobs are encoded on the thread the
/// engine answered on; larger ones on a call thread.
constexpr std::size_t inline_encode_jobs = 16;

std::optional<std::uint64_t> parse_id(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty() || s.size() > 16) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v > max_safe_id) return std::nullopt;
  return v;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  std::int64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    auto pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos
                                                                 : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

/// Nesting depth of JSON text, outside strings; stops counting past `limit`.
std::size_t json_depth(std::string_view text, std::size_t limit) {
  std::size_t depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > limit) return max_depth;
    } else if ((c == '}' || c == ']') && depth > 0)
      --depth;
  }
  return max_depth;
}

/// Reads the fields of one JSON object by name, strictly: wrong types and
/// unknown names are errors naming the field.
class object_reader {
 public:
  object_reader(const json& j, std::string where) : j_(j), where_(std::move(where)) {
    if (!j_.is_object()) throw bad_request(where_ + "expected a JSON object");
  }
  const json* find(const char* key) {
    seen_.push_back(key);
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  std::optional<std::string> str(const char* key, std::size_t max_len) {
    auto v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) throw bad_request(where_ + key + ": expected a string");
    auto s = v->get<std::string>();
    if (s.size() > max_len)
      throw bad_request(where_ + key + ": longer than " + std::to_string(max_len) + " bytes");
    return s;
  }
  std::optional<std::int64_t> integer(const char* key) {
    auto v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_number_integer()) throw bad_request(where_ + key + ": expected an integer");
    if (v->is_number_unsigned() && v->get<std::uint64_t>() > max_safe_id)
      throw bad_request(where_ + key + ": above " + max_safe_id_text);
    return v->get<std::int64_t>();
  }
  std::optional<std::uint64_t> id(const char* key) {
    auto v = integer(key);
    if (v && *v < 0) throw bad_request(where_ + key + ": must not be negative");
    return v ? std::optional<std::uint64_t>(static_cast<std::uint64_t>(*v)) : std::nullopt;
  }
  std::optional<bool> boolean(const char* key) {
    auto v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) throw bad_request(where_ + key + ": expected true or false");
    return v->get<bool>();
  }
  /// Any JSON value as compact text.
  std::optional<std::string> any(const char* key) {
    auto it = j_.find(key);
    seen_.push_back(key);
    if (it == j_.end()) return std::nullopt;
    return it->dump();
  }
  void no_other_fields() {
    for (auto& [key, value] : j_.items())
      if (std::find(seen_.begin(), seen_.end(), key) == seen_.end())
        throw bad_request(where_ + "unknown field '" + key + "'");
  }

 private:
  const json& j_;
  std::string where_;
  std::vector<std::string> seen_;
};

json explanation_json(const dispatch_explanation& x) {
  json waits = json::array();
  for (auto& w : x.lock_waits)
    waits.push_back({{"resource", w.resource},
                     {"mode", std::string{to_string(w.wanted)}},
                     {"holders", w.holders},
                     {"queued_ahead", w.queued_ahead}});
  return {{"phase", x.phase}, {"text", x.text}, {"lock_waits", std::move(waits)}};
}

/// Decodes %XX escapes of a path segment; nothing when one is malformed.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

}  // namespace

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

namespace {

/// "N MiB", rounded up.
std::string mib(std::uint64_t bytes) {
  return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB";
}

http_reply json_reply(int status, const json& body) {
  http_reply r;
  r.status = status;
  r.body = dump(body);
  return r;
}

}  // namespace

/// Everything a handler needs for one request.
struct api::route {
  api& self;
  http_request req;
  reply_fn reply;
  std::string principal;
  role who = role::admin;

  /// Whose lease tokens this caller may read (event_hub.hpp).
  token_visibility tokens() const { return {who == role::admin, principal}; }

  void fail(const api_error& e) {
    if (e.status == 429) self.counters_.refused_overloaded.fetch_add(1);
    reply(error_reply(e.status, e.code, e.message));
  }
  void answer(int status, const json& body) { reply(json_reply(status, body)); }

  /// Whether the client asked for slim answers (Prefer: return=minimal).
  bool minimal() const { return prefers_minimal(req.prefer); }
  /// A 200 with a slim body, saying so (RFC 7240's Preference-Applied).
  void reply_minimal(http_reply r) {
    r.headers.emplace_back("Preference-Applied", "return=minimal");
    reply(std::move(r));
  }
  /// The answer to a complete or fail: the whole job, or its new state.
  void answer_job(const job_record& job) {
    if (!minimal()) return answer(200, {{"job", to_json(job, wall_now())}});
    http_reply r;
    r.body = job_state_minimal(job, wall_now());
    reply_minimal(std::move(r));
  }
  /// The answer to a complete with lease_next: {"job": job or its state,
  /// "jobs": [the leased jobs]}, plus "lease_error" when the lease part
  /// failed (the completion stands: it is durable).
  void answer_job_and_next(const job_record& done, const result<std::vector<job_record>>& leased) {
    auto now = wall_now();
    http_reply r;
    r.body = "{\"job\":";
    if (minimal()) r.body += job_state_object(done, now);
    else append_json_text(r.body, done, now);
    r.body += ",\"jobs\":[";
    if (leased)
      for (std::size_t i = 0; i < leased->size(); ++i) {
        if (i != 0) r.body += ',';
        if (minimal()) append_leased_job_minimal(r.body, (*leased)[i]);
        else append_json_text(r.body, (*leased)[i], now);
      }
    r.body += ']';
    if (!leased) {
      auto e = from_engine(leased.error());
      r.body += ",\"lease_error\":" + dump(json{{"code", e.code}, {"message", e.message}});
    }
    r.body += '}';
    if (minimal()) return reply_minimal(std::move(r));
    reply(std::move(r));
  }
  /// Answers `{"<key>": [jobs...]<rest>}` with each job written by
  /// append_json_text (the same bytes as to_json, without building the tree).
  /// `rest` is further members as text, starting with a comma, or empty.
  void answer_jobs(int status, const char* key, const std::vector<job_record>& jobs,
                   const std::string& rest = {}) {
    auto now = wall_now();
    http_reply r;
    r.status = status;
    r.body = "{\"";
    r.body += key;
    r.body += "\":[";
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (i != 0) r.body += ',';
      append_json_text(r.body, jobs[i], now);
    }
    r.body += ']';
    r.body += rest;
    r.body += '}';
    reply(std::move(r));
  }

  /// Runs `fn` on the call pool; 429 when the pool is saturated.
  template <class Fn>
  void on_pool(Fn fn) {
    auto shared = std::make_shared<route>(std::move(*this));
    bool posted = shared->self.pool_.try_post([shared, fn = std::move(fn)]() mutable {
      try {
        fn(*shared);
      } catch (const api_error& e) {
        shared->fail(e);
      } catch (const std::exception& e) {
        shared->fail({500, "internal", e.what()});
      }
    });
    if (!posted) {
      shared->self.counters_.refused_busy.fetch_add(1);
      shared->reply(error_reply(429, "overloaded", "the server is busy; try again later"));
    }
  }

  json body_json(bool optional) const {
    if (req.body.empty() || req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
      if (optional) return json::object();
      throw bad_request("a JSON body is required");
    }
    if (json_depth(req.body, self.config_.limits.max_json_depth) > self.config_.limits.max_json_depth)
      throw bad_request("JSON nested deeper than " +
                        std::to_string(self.config_.limits.max_json_depth) + " levels");
    json_refusal why;
    auto parsed = parse_json_unique(req.body, &why);
    if (!parsed) throw bad_request(why.duplicate_key ? why.message : "the body is not valid JSON");
    json j = std::move(*parsed);
    if (!j.is_object()) throw bad_request("the body must be a JSON object");
    return j;
  }

  const std::string* query(std::string_view key) const {
    for (auto& [k, v] : req.query)
      if (k == key) return &v;
    return nullptr;
  }
  void only_query(std::initializer_list<std::string_view> allowed) const {
    for (auto& [k, v] : req.query)
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end() && k != "access_token")
        throw bad_request("unknown query parameter '" + k + "'");
  }
  std::int64_t query_int(std::string_view key, std::int64_t fallback, std::int64_t min) const {
    auto v = query(key);
    if (!v) return fallback;
    auto n = parse_int(*v);
    if (!n || *n < min)
      throw bad_request(std::string{key} + ": expected an integer >= " + std::to_string(min));
    return *n;
  }
};

// -- submissions ---------------------------------------------------------------------------

namespace {

job_submitted parse_submission(const json& j, const std::string& where, const server_limits& lim,
                               millis min_recurrence, millis now) {
  if (!j.is_object()) throw bad_request(where + "expected a submission object");
  millis delay = 0;
  json without_delay;  // a copy only when there is a delay to take out
  if (auto it = j.find("delay"); it != j.end()) {
    if (!it->is_number_integer()) throw bad_request(where + "delay: expected an integer");
    delay = it->get<std::int64_t>();
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > max_safe_id)
      throw bad_request(where + "delay: too large");
    if (delay < 0) throw bad_request(where + "delay: must be >= 0");
    if (delay > max_duration)
      throw bad_request(where + "delay: must be at most " + std::to_string(max_duration) +
                        " ms (10 years)");
    without_delay = j;
    without_delay.erase("delay");
  }
  job_submitted spec;
  std::string error;
  if (!spec_from_json(without_delay.is_null() ? j : without_delay, spec, &error))
    throw bad_request(where + error);
  if (auto e = validate(spec, min_recurrence)) throw bad_request(where + e->message);
  auto check_len = [&](const std::string& s, const char* field) {
    if (s.size() > lim.max_name_length)
      throw bad_request(where + field + ": longer than " + std::to_string(lim.max_name_length) +
                        " bytes");
  };
  check_len(spec.kind, "kind");
  check_len(spec.queue, "queue");
  check_len(spec.unique_key, "unique_key");
  for (auto& r : spec.resources) check_len(r.name, "resources");
  if (spec.run_at == 0 && delay > 0) spec.run_at = now + delay;
  return spec;
}

}  // namespace

// -- leases -------------------------------------------------------------------------------

namespace {

/// The fields of a lease (POST /v1/workers/lease, and a complete's
/// lease_next): worker, queues, max_jobs, worker_limit, wait_ms. `where`
/// prefixes the messages ("lease_next.").
lease_request read_lease_request(object_reader& in, const std::string& where,
                                 const std::string& principal, const server_limits& lim) {
  lease_request lr;
  lr.principal = principal;
  auto worker = in.str("worker", lim.max_name_length);
  if (!worker || worker->empty()) throw bad_request(where + "worker: required, a non-empty string");
  lr.worker = *worker;
  if (auto qs = in.find("queues")) {
    if (!qs->is_array()) throw bad_request(where + "queues: expected an array of strings");
    for (auto& q : *qs) {
      if (!q.is_string() || q.get<std::string>().empty() ||
          q.get<std::string>().size() > lim.max_name_length)
        throw bad_request(where + "queues: expected non-empty strings");
      lr.queues.push_back(q.get<std::string>());
    }
    if (lr.queues.size() > 1000) throw bad_request(where + "queues: at most 1000");
  }
  auto max_jobs = in.integer("max_jobs").value_or(1);
  if (max_jobs < 1) throw bad_request(where + "max_jobs: must be >= 1");
  lr.max_jobs = static_cast<std::uint32_t>(
      std::min<std::int64_t>(max_jobs, static_cast<std::int64_t>(lim.max_lease_jobs)));
  auto worker_limit = in.integer("worker_limit").value_or(0);
  if (worker_limit < 0 || worker_limit > 0xffffffffLL)
    throw bad_request(where + "worker_limit: must be >= 0");
  lr.worker_limit = static_cast<std::uint32_t>(worker_limit);
  auto wait = in.integer("wait_ms").value_or(0);
  if (wait < 0) throw bad_request(where + "wait_ms: must be >= 0");
  lr.wait = std::min<millis>(wait, lim.max_long_poll.count());
  return lr;
}

}  // namespace

// -- the router ------------------------------------------------------------------------------

std::optional<stream_request> api::handle(http_request&& req, reply_fn reply) {
  counters_.requests.fetch_add(1);
  // Admission by body bytes, before anything is parsed: a body alone is
  // always admitted, so no size under max_body_bytes is refused forever.
  const std::uint64_t body_bytes = req.body.size();
  if (body_bytes > 0) {
    auto held = inflight_bytes_.fetch_add(body_bytes) + body_bytes;
    if (held > config_.limits.max_inflight_bytes && held != body_bytes) {
      inflight_bytes_.fetch_sub(body_bytes);
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
    reply(std::move(r));
  };
  route rt{*this, std::move(req), std::move(counted), {}, role::admin};
  const auto method = rt.req.method;
  const std::string path = rt.req.path;
  auto parts = split(path, '/');  // "" first for an absolute path
  // Which methods a known path takes; set before the method check (405).
  std::vector<std::string_view> methods;
  permission need = permission::read;
  enum class op {
    none, healthz, readyz, metrics, asset, submit, list, get, cancel, run_now, retry, review,
    heartbeat, complete, fail, lease, complete_batch, queues, pause, resume, concurrency,
    schedules, delete_schedule, events, stream, backup
  } what = op::none;
  std::uint64_t id = 0;
  std::string queue_name;
  bool bad_id = false;

  auto n = parts.size();
  if (path == "/healthz") { what = op::healthz; methods = {"GET"}; }
  else if (path == "/readyz") { what = op::readyz; methods = {"GET"}; }
  else if (path == "/metrics") { what = op::metrics; methods = {"GET"}; }
  else if (path == "/" || path.rfind("/ui/", 0) == 0) { what = op::asset; methods = {"GET"}; }
  else if (n >= 3 && parts[0].empty() && parts[1] == "v1") {
    auto p2 = parts[2];
    if (p2 == "jobs" && n == 3) {
      what = method == "POST" ? op::submit : op::list;
      methods = {"GET", "POST"};
      need = method == "POST" ? permission::produce : permission::read;
    } else if (p2 == "jobs" && (n == 4 || n == 5)) {
      auto parsed = parse_id(parts[3]);
      bad_id = !parsed;
      id = parsed.value_or(0);
      if (n == 4) { what = op::get; methods = {"GET"}; }
      else {
        auto a = parts[4];
        methods = {"POST"};
        if (a == "cancel") { what = op::cancel; need = permission::produce; }
        else if (a == "run-now") { what = op::run_now; need = permission::produce; }
        else if (a == "retry") { what = op::retry; need = permission::produce; }
        else if (a == "review") { what = op::review; need = permission::produce; }
        else if (a == "heartbeat") { what = op::heartbeat; need = permission::work; }
        else if (a == "complete") { what = op::complete; need = permission::work; }
        else if (a == "fail") { what = op::fail; need = permission::work; }
        else methods.clear();
      }
    } else if (p2 == "workers" && n == 4) {
      methods = {"POST"};
      need = permission::work;
      if (parts[3] == "lease") what = op::lease;
      else if (parts[3] == "complete") what = op::complete_batch;
      else methods.clear();
    } else if (p2 == "queues" && n == 3) {
      what = op::queues;
      methods = {"GET"};
    } else if (p2 == "queues" && n == 5) {
      methods = {"POST"};
      need = permission::administer;
      queue_name = std::string{parts[3]};
      if (parts[4] == "pause") what = op::pause;
      else if (parts[4] == "resume") what = op::resume;
      else if (parts[4] == "concurrency") what = op::concurrency;
      else methods.clear();
    } else if (p2 == "schedules" && n == 3) {
      what = op::schedules;
      methods = {"GET"};
    } else if (p2 == "schedules" && n == 4) {
      auto parsed = parse_id(parts[3]);
      bad_id = !parsed;
      id = parsed.value_or(0);
      what = op::delete_schedule;
      methods = {"DELETE"};
      need = permission::produce;
    } else if (p2 == "events" && n == 3) {
      what = op::events;
      methods = {"GET"};
    } else if (p2 == "events" && n == 4 && parts[3] == "stream") {
      what = op::stream;
      methods = {"GET"};
    } else if (p2 == "admin" && n == 4 && parts[3] == "backup") {
      what = op::backup;
      methods = {"POST"};
      need = permission::administer;
    }
  }
  if (methods.empty()) {
    rt.fail({404, "not_found", "no route " + path});
    return std::nullopt;
  }
  if (std::find(methods.begin(), methods.end(), method) == methods.end()) {
    auto r = error_reply(405, "method_not_allowed", method + " is not allowed on " + path);
    std::string allow;
    for (auto m : methods) allow += (allow.empty() ? "" : ", ") + std::string{m};
    r.headers.emplace_back("Allow", allow);
    rt.reply(std::move(r));
    return std::nullopt;
  }

  // Browsers: no cross-site writes, no reads through a rebound DNS name,
  // no bodies but JSON (apps/server/request_guard.hpp).
  if (auto refusal = check_request_source(rt.req.source, path, !rt.req.body.empty(),
                                          {!config_.tokens.empty(), port_.load()})) {
    rt.fail(*refusal);
    return std::nullopt;
  }

  try {
    // -- no auth ------------------------------------------------------------------
    switch (what) {
      case op::healthz:
        rt.answer(200, {{"status", "ok"}});
        return std::nullopt;
      case op::readyz: {
        auto head = eng_.head();
        if (head == 0) {
          rt.fail({503, "unavailable", "the engine is not serving"});
        } else if (over_memory_budget()) {
          rt.fail({503, "memory_budget",
                   "submits are refused: resident memory " + mib(resident_bytes_.load()) +
                       " is over the budget of " + mib(config_.limits.memory_budget_bytes)});
        } else if (auto refusal = eng_.write_refusal()) {
          // Not ready while writes are refused (reads still work); the code
          // says why: insufficient_storage for a full disk.
          auto e = from_engine(*refusal);
          rt.fail({503, e.code, "writes are refused: " + refusal->message});
        } else {
          rt.answer(200, {{"status", "ready"}, {"head", head}});
        }
        return std::nullopt;
      }
      case op::metrics:
        rt.on_pool([](route& r) {
          http_reply out;
          out.content_type = "text/plain; version=0.0.4; charset=utf-8";
          out.body = r.self.metrics_text();
          r.reply(std::move(out));
        });
        return std::nullopt;
      case op::asset: {
        auto a = dashboard::find_asset(path);
        if (!a) {
          rt.fail({404, "not_found", "no such file " + path});
          return std::nullopt;
        }
        http_reply out;
        out.content_type = std::string{a->content_type};
        out.body = std::string{a->body};
        rt.reply(std::move(out));
        return std::nullopt;
      }
      default: break;
    }

    // -- auth ---------------------------------------------------------------------
    if (config_.tokens.empty()) {
      rt.principal = "local";
      rt.who = role::admin;
    } else {
      std::string token;
      const std::string& h = rt.req.authorization;
      if (h.size() > 7 && (h.compare(0, 7, "Bearer ") == 0 || h.compare(0, 7, "bearer ") == 0))
        token = h.substr(7);
      else if (what == op::stream)
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
    if (!allows(rt.who, need)) {
      rt.fail({403, "forbidden", "role '" + std::string{to_string(rt.who)} +
                                     "' may not " + method + " " + path});
      return std::nullopt;
    }
    if (rt.req.query_malformed) throw bad_request("the query string is malformed");
    if (bad_id)
      throw bad_request(std::string{what == op::delete_schedule ? "schedule" : "job"} +
                        " id must be a number below 2^53");
    auto& lim = config_.limits;
    if (rt.req.body.size() > lim.max_body_bytes)
      throw api_error{413, "too_large", "the body is larger than " +
                                            std::to_string(lim.max_body_bytes) + " bytes"};

    // -- jobs -----------------------------------------------------------------------
    switch (what) {
      case op::submit: {
        rt.only_query({});
        if (over_memory_budget()) {
          counters_.refused_memory.fetch_add(1);
          throw api_error{503, "memory_budget",
                          "resident memory " + mib(resident_bytes_.load()) +
                              " is over the server's budget of " +
                              mib(lim.memory_budget_bytes) +
                              "; submits are refused until it is below (workers still run "
                              "what is queued)"};
        }
        // A large body is parsed on a call thread: an Asio thread that parses
        // a large batch keeps /healthz and every other request on it
        // waiting. A small one is parsed here. Either way the submit itself
        // holds no thread while its commit is in flight.
        auto parse_and_submit = [](route& r) {
          const auto& lim = r.self.config_.limits;
          auto body = r.body_json(false);
          auto now = wall_now();
          const millis min_recurrence = r.self.config_.engine.min_recurrence_interval;
          std::vector<job_submitted> specs;
          bool batch = body.contains("jobs");
          if (batch) {
            if (body.size() != 1) throw bad_request("a batch has only the field \"jobs\"");
            auto& arr = body["jobs"];
            if (!arr.is_array()) throw bad_request("jobs: expected an array");
            if (arr.size() > lim.max_batch)
              throw api_error{413, "too_large", "batch of " + std::to_string(arr.size()) +
                                                    " jobs is over the limit of " +
                                                    std::to_string(lim.max_batch)};
            specs.reserve(arr.size());
            for (std::size_t i = 0; i < arr.size(); ++i)
              specs.push_back(
                  parse_submission(arr[i], "jobs[" + std::to_string(i) + "]: ", lim,
                                   min_recurrence, now));
          } else {
            specs.push_back(parse_submission(body, "", lim, min_recurrence, now));
          }
          body = json{};  // the parsed tree is not needed past here
          submit_options opts;
          opts.principal = r.principal;
          auto shared = std::make_shared<route>(std::move(r));
          shared->self.eng_.submit_many_async(
              std::move(specs), std::move(opts), [shared, batch](result<std::vector<job_id>> ids) {
                if (!ids) return shared->fail(from_engine(ids.error()));
                if (batch) shared->answer(201, {{"ids", *ids}});
                else shared->answer(201, {{"id", ids->front()}});
              });
        };
        if (rt.req.body.size() > inline_parse_bytes) rt.on_pool(parse_and_submit);
        else parse_and_submit(rt);
        return std::nullopt;
      }
      case op::list: {
        rt.only_query({"state", "not_state", "queue", "kind", "submitted_from", "submitted_to",
                       "finished_from", "finished_to", "error", "limit", "after"});
        job_filter f;
        auto states = [&](const char* key, std::vector<job_state>& out) {
          if (auto v = rt.query(key))
            for (auto name : split(*v, ',')) {
              auto s = parse_job_state(name);
              if (!s) throw bad_request(std::string{key} + ": unknown state '" + std::string{name} + "'");
              out.push_back(*s);
            }
        };
        states("state", f.states_in);
        states("not_state", f.states_not_in);
        if (auto v = rt.query("queue")) f.queue = *v;
        if (auto v = rt.query("kind")) f.kind = *v;
        if (auto v = rt.query("error")) f.error_contains = *v;
        f.submitted_from = rt.query_int("submitted_from", 0, 0);
        f.submitted_to = rt.query_int("submitted_to", 0, 0);
        f.finished_from = rt.query_int("finished_from", 0, 0);
        f.finished_to = rt.query_int("finished_to", 0, 0);
        f.after = static_cast<job_id>(rt.query_int("after", 0, 0));
        auto limit = rt.query_int("limit", 100, 1);
        if (limit > 1000) throw bad_request("limit: at most 1000");
        f.limit = static_cast<std::size_t>(limit);
        rt.on_pool([f](route& r) {
          auto jobs = r.self.eng_.list(f);
          if (!jobs) return r.fail(from_engine(jobs.error()));
          bool all_tokens = r.tokens().all;
          for (auto& rec : *jobs) {
            // Pages stay small: payload and result only in GET /v1/jobs/{id}.
            rec.spec.payload = "null";
            rec.result = "null";
            if (!all_tokens) rec.lease_token = 0;
          }
          // Keys in the order a JSON object dumps them: "jobs" < "next".
          auto next = jobs->size() == f.limit && !jobs->empty() ? std::to_string(jobs->back().id)
                                                                : std::string("null");
          r.answer_jobs(200, "jobs", *jobs, ",\"next\":" + next);
        });
        return std::nullopt;
      }
      case op::get:
        rt.only_query({});
        rt.on_pool([id](route& r) {
          auto view = r.self.eng_.get(id);
          if (!view) return r.fail(from_engine(view.error()));
          auto now = wall_now();
          auto who = r.tokens();
          json history = json::array();
          const event* last_start = nullptr;
          for (auto& ev : view->history) {
            if (std::holds_alternative<job_started>(ev.body)) last_start = &ev;
            history.push_back(to_json(who.hides(ev) ? visible_to(ev, who) : ev));
          }
          // The job's token is its last attempt's: shown as that start is.
          if (last_start == nullptr || who.hides(*last_start)) view->job.lease_token = 0;
          json explanation;
          if (is_terminal(view->job.state)) {
            explanation = {{"phase", "not live"},
                           {"text", "job " + std::to_string(id) + " is " +
                                        std::string{to_string(view->job.state)}},
                           {"lock_waits", json::array()}};
          } else {
            auto x = r.self.eng_.explain(id);
            if (x) explanation = explanation_json(*x);
            else explanation = {{"phase", "not live"}, {"text", x.error().message}, {"lock_waits", json::array()}};
          }
          r.answer(200, {{"job", to_json(view->job, now)},
                         {"history", std::move(history)},
                         {"explanation", std::move(explanation)}});
        });
        return std::nullopt;
      case op::cancel:
      case op::run_now:
      case op::retry:
      case op::review: {
        rt.only_query({});
        auto body = rt.body_json(true);
        object_reader in{body, ""};
        std::string reason;
        bool accept = false;
        std::string comment;
        if (what == op::cancel) reason = in.str("reason", 4096).value_or("");
        if (what == op::review) {
          auto a = in.boolean("accept");
          if (!a) throw bad_request("accept: required (true or false)");
          accept = *a;
          comment = in.str("comment", 4096).value_or("");
        }
        in.no_other_fields();
        rt.on_pool([what, id, reason, accept, comment](route& r) {
          auto& eng = r.self.eng_;
          result<job_record> out = engine_error{engine_errc::invalid_argument, "no operation"};
          if (what == op::cancel) out = eng.cancel(id, reason, r.principal);
          else if (what == op::run_now) out = eng.run_now(id, r.principal);
          else if (what == op::retry) out = eng.retry(id, r.principal);
          else out = eng.review(id, accept, comment, r.principal);
          if (!out) return r.fail(from_engine(out.error()));
          if (!r.tokens().all) out->lease_token = 0;  // producers hold no leases
          r.answer(200, {{"job", to_json(*out, wall_now())}});
        });
        return std::nullopt;
      }

      // -- workers ----------------------------------------------------------------------
      case op::heartbeat: {
        rt.only_query({});
        auto body = rt.body_json(false);
        object_reader in{body, ""};
        heartbeat_request hb;
        hb.id = id;
        hb.principal = rt.principal;
        auto token = in.id("lease_token");
        if (!token) throw bad_request("lease_token: required");
        hb.lease_token = *token;
        hb.detail = in.str("detail", 4096).value_or("");
        auto pct = in.integer("percent");
        if (pct && (*pct < -1 || *pct > 100)) throw bad_request("percent: must be in [-1, 100]");
        hb.percent = static_cast<std::int32_t>(pct.value_or(-1));
        if (auto lines = in.find("lines")) {
          if (!lines->is_array()) throw bad_request("lines: expected an array");
          if (lines->size() > 1000) throw api_error{413, "too_large", "lines: at most 1000"};
          auto now = wall_now();
          for (std::size_t i = 0; i < lines->size(); ++i) {
            object_reader line{(*lines)[i], "lines[" + std::to_string(i) + "]."};
            log_line l;
            l.time = now;
            auto level = line.str("level", 16).value_or("info");
            auto parsed = parse_log_level(level);
            if (!parsed) throw bad_request("lines[" + std::to_string(i) + "].level: info, warn or error");
            l.level = *parsed;
            l.text = line.str("text", 16384).value_or("");
            line.no_other_fields();
            hb.lines.push_back(std::move(l));
          }
        }
        in.no_other_fields();
        auto shared = std::make_shared<route>(std::move(rt));
        eng_.heartbeat_async(std::move(hb), [shared](result<heartbeat_reply> out) {
          if (!out) return shared->fail(from_engine(out.error()));
          shared->answer(200, {{"lease_ms", out->lease_ms},
                               {"cancel_requested", out->cancel_requested}});
        });
        return std::nullopt;
      }
      case op::complete: {
        rt.only_query({});
        auto body = rt.body_json(false);
        object_reader in{body, ""};
        auto token = in.id("lease_token");
        if (!token) throw bad_request("lease_token: required");
        auto result_text = in.any("result").value_or("null");
        // Complete and take the next jobs in one call: the lease runs once
        // the completion is durable, as if it were the next request.
        std::optional<lease_request> next;
        if (auto ln = in.find("lease_next")) {
          object_reader next_in{*ln, "lease_next."};
          next = read_lease_request(next_in, "lease_next.", rt.principal, lim);
          next_in.no_other_fields();
          if (next->wait > 0)
            throw bad_request("lease_next.wait_ms: a complete answers at once; wait with a lease");
        }
        in.no_other_fields();
        auto shared = std::make_shared<route>(std::move(rt));
        eng_.complete_async(
            id, *token, std::move(result_text), shared->principal,
            [shared, next = std::move(next)](result<job_record> out) mutable {
              if (!out) return shared->fail(from_engine(out.error()));
              if (!next) return shared->answer_job(*out);
              // Chained from the engine's thread: no hand-off to a call thread.
              shared->self.eng_.lease_async(
                  std::move(*next), [shared, done = std::move(*out)](
                                        result<std::vector<job_record>> leased) {
                    if (leased) shared->self.counters_.leased_jobs.fetch_add(leased->size());
                    shared->answer_job_and_next(done, leased);
                  });
            });
        return std::nullopt;
      }
      case op::fail: {
        rt.only_query({});
        auto body = rt.body_json(false);
        object_reader in{body, ""};
        auto token = in.id("lease_token");
        if (!token) throw bad_request("lease_token: required");
        auto error = in.str("error", 65536).value_or("");
        auto retryable = in.boolean("retryable").value_or(true);
        std::string handover;
        if (auto it = body.find("handover"); it != body.end() && !it->is_null()) handover = it->dump();
        in.find("handover");
        in.no_other_fields();
        auto shared = std::make_shared<route>(std::move(rt));
        eng_.fail_async(id, *token, std::move(error), retryable, shared->principal,
                        std::move(handover), [shared](result<job_record> out) {
                          if (!out) return shared->fail(from_engine(out.error()));
                          shared->answer_job(*out);
                        });
        return std::nullopt;
      }
      case op::complete_batch: {
        rt.only_query({});
        auto body = rt.body_json(false);
        object_reader in{body, ""};
        auto results = in.find("results");
        in.no_other_fields();
        if (!results || !results->is_array()) throw bad_request("results: expected an array");
        if (results->size() > lim.max_batch)
          throw api_error{413, "too_large", "batch of " + std::to_string(results->size()) +
                                                " results is over the limit of " +
                                                std::to_string(lim.max_batch)};
        std::vector<engine::completion> items;
        items.reserve(results->size());
        for (std::size_t i = 0; i < results->size(); ++i) {
          object_reader r{(*results)[i], "results[" + std::to_string(i) + "]."};
          auto jid = r.id("id");
          auto token = r.id("lease_token");
          if (!jid || !token)
            throw bad_request("results[" + std::to_string(i) + "]: id and lease_token are required");
          items.push_back({*jid, *token, r.any("result").value_or("null")});
          r.no_other_fields();
        }
        if (items.empty()) {
          rt.answer(200, {{"results", json::array()}});
          return std::nullopt;
        }
        // Every item goes to the engine at once, so their events share fsyncs;
        // the answer is built when the last one is back.
        std::vector<job_id> ids;
        ids.reserve(items.size());
        for (auto& it : items) ids.push_back(it.id);
        auto shared = std::make_shared<route>(std::move(rt));
        eng_.complete_many_async(
            std::move(items), shared->principal,
            [shared, ids = std::move(ids)](result<std::vector<result<job_record>>> outs) {
              if (!outs) return shared->fail(from_engine(outs.error()));  // not expected
              auto now = wall_now();
              // Written as text, keys in the order nlohmann would dump them:
              // the same bytes as building the tree, at a fraction of the cost.
              http_reply r;
              r.status = 200;
              r.body.reserve(outs->size() * 48 + 16);
              r.body += "{\"results\":[";
              for (std::size_t i = 0; i < outs->size(); ++i) {
                auto& out = (*outs)[i];
                if (i != 0) r.body += ',';
                if (out) {
                  // Not the whole job: a worker answering hundreds of jobs
                  // at once needs only each one's verdict.
                  r.body += "{\"id\":";
                  r.body += std::to_string(ids[i]);
                  r.body += ",\"state\":\"";
                  r.body += to_string(effective_state(*out, now));  // a plain name
                  r.body += "\",\"status\":200}";
                } else {
                  auto e = from_engine(out.error());
                  r.body += dump(json{{"id", ids[i]},
                                      {"status", e.status},
                                      {"error", {{"code", e.code}, {"message", e.message}}}});
                }
              }
              r.body += "]}";
              shared->reply(std::move(r));
            });
        return std::nullopt;
      }
      case op::lease: {
        rt.only_query({});
        auto body = rt.body_json(false);
        object_reader in{body, ""};
        auto lr = read_lease_request(in, "", rt.principal, lim);
        in.no_other_fields();
        bool long_poll = lr.wait > 0;
        if (long_poll && counters_.long_polls.fetch_add(1) >= lim.max_long_polls) {
          counters_.long_polls.fetch_sub(1);
          counters_.refused_busy.fetch_add(1);
          throw api_error{429, "overloaded", "too many workers are waiting for jobs"};
        }
        auto shared = std::make_shared<route>(std::move(rt));
        auto started = std::chrono::steady_clock::now();
        eng_.lease_async(std::move(lr), [shared, long_poll, started](
                                            result<std::vector<job_record>> out) {
          auto& self = shared->self;
          if (long_poll) self.counters_.long_polls.fetch_sub(1);
          self.lease_seconds_.observe(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
          if (!out) return shared->fail(from_engine(out.error()));
          self.counters_.leased_jobs.fetch_add(out->size());
          // Encoding a large batch is real work: off the engine's thread. A
          // few jobs are encoded here, which costs less than a hand-off.
          auto jobs = std::make_shared<std::vector<job_record>>(std::move(*out));
          auto encode = [shared, jobs] {
            if (!shared->minimal()) return shared->answer_jobs(200, "jobs", *jobs);
            http_reply r;
            r.body.reserve(jobs->size() * 256 + 16);
            r.body = "{\"jobs\":[";
            for (std::size_t i = 0; i < jobs->size(); ++i) {
              if (i != 0) r.body += ',';
              append_leased_job_minimal(r.body, (*jobs)[i]);
            }
            r.body += "]}";
            shared->reply_minimal(std::move(r));
          };
          if (jobs->size() <= inline_encode_jobs || !self.pool_.force_post(encode)) encode();
        });
        return std::nullopt;
      }

      // -- queues ---------------------------------------------------------------------------
      case op::queues:
        rt.only_query({});
        rt.on_pool([](route& r) {
          auto infos = r.self.eng_.queues();
          if (!infos) return r.fail(from_engine(infos.error()));
          auto counts = r.self.hub_.counts_by_queue();
          std::map<std::string, json> by_name;
          auto counts_json = [](const queue_row* c) {
            json out = json::object();
            for (int s = 0; s < job_state_count; ++s)
              out[std::string{to_string(static_cast<job_state>(s))}] =
                  c ? c->by_state[static_cast<std::size_t>(s)] : 0;
            return out;
          };
          for (auto& q : *infos) {
            const queue_row* c = nullptr;
            for (auto& x : counts)
              if (x.name == q.name) c = &x;
            by_name[q.name] = {{"name", q.name},         {"paused", q.paused},
                               {"concurrency", q.concurrency}, {"scheduled", q.scheduled},
                               {"ready", q.ready},       {"locking", q.locking},
                               {"running", q.running},   {"counts", counts_json(c)}};
          }
          // Queues whose jobs all finished are gone from the scheduler but
          // still have counts.
          for (auto& c : counts)
            if (!by_name.count(c.name))
              by_name[c.name] = {{"name", c.name},  {"paused", false}, {"concurrency", 0},
                                 {"scheduled", 0},  {"ready", 0},      {"locking", 0},
                                 {"running", 0},    {"counts", counts_json(&c)}};
          json arr = json::array();
          for (auto& [name, q] : by_name) arr.push_back(std::move(q));
          r.answer(200, {{"queues", std::move(arr)}});
        });
        return std::nullopt;
      case op::pause:
      case op::resume:
      case op::concurrency: {
        rt.only_query({});
        auto name_or = percent_decode(queue_name);
        if (!name_or || name_or->empty() || name_or->size() > lim.max_name_length)
          throw bad_request("queue name: 1 to " + std::to_string(lim.max_name_length) + " bytes");
        std::uint32_t concurrency = 0;
        auto body = rt.body_json(what != op::concurrency);
        object_reader in{body, ""};
        if (what == op::concurrency) {
          auto c = in.integer("concurrency");
          if (!c || *c < 0 || *c > 0xffffffffLL)
            throw bad_request("concurrency: required, an integer >= 0 (0 = unlimited)");
          concurrency = static_cast<std::uint32_t>(*c);
        }
        in.no_other_fields();
        rt.on_pool([what, name = *name_or, concurrency](route& r) {
          auto& eng = r.self.eng_;
          result<queue_info> out =
              what == op::pause    ? eng.pause(name, r.principal)
              : what == op::resume ? eng.resume(name, r.principal)
                                   : eng.configure(name, concurrency, r.principal);
          if (!out) return r.fail(from_engine(out.error()));
          auto& q = *out;
          r.answer(200, {{"queue",
                          {{"name", q.name}, {"paused", q.paused}, {"concurrency", q.concurrency},
                           {"scheduled", q.scheduled}, {"ready", q.ready},
                           {"locking", q.locking}, {"running", q.running}}}});
        });
        return std::nullopt;
      }

      // -- recurring schedules -------------------------------------------------------------
      case op::schedules:
        rt.only_query({});
        rt.on_pool([](route& r) {
          auto list = r.self.eng_.schedules();
          if (!list) return r.fail(from_engine(list.error()));
          json arr = json::array();
          for (auto& sv : *list)
            arr.push_back({{"id", sv.id},
                           {"last_run", sv.last_run},
                           {"last_run_ended", sv.last_run_ended},
                           {"consecutive_failures", sv.consecutive_failures},
                           {"spec", spec_to_json(sv.spec)}});
          r.answer(200, {{"schedules", std::move(arr)}});
        });
        return std::nullopt;
      case op::delete_schedule:
        rt.only_query({});
        if (!rt.req.body.empty()) throw bad_request("DELETE takes no body");
        rt.on_pool([id](route& r) {
          auto out = r.self.eng_.delete_schedule(id, r.principal);
          if (!out) return r.fail(from_engine(out.error()));
          r.answer(200, {{"deleted", id}});
        });
        return std::nullopt;

      // -- backup: a RocksDB checkpoint written by the engine that holds the log -----------
      case op::backup: {
        rt.only_query({});
        auto body = rt.body_json(false);
        object_reader in{body, ""};
        auto to = in.str("to", 4096);
        in.no_other_fields();
        // Only inside serve --backup-dir, never inside the data directory.
        auto target = resolve_backup_target(config_.backup_dir, config_.engine.data_dir,
                                            to ? std::string_view{*to} : std::string_view{});
        if (auto* refused = std::get_if<backup_target_error>(&target))
          throw api_error{refused->status, refused->code, refused->message};
        // Blocks for a memtable flush, hard links and a WAL copy: on the pool.
        rt.on_pool([dir = std::get<std::filesystem::path>(target).string()](route& r) {
          auto out = r.self.eng_.checkpoint(dir);
          if (!out) return r.fail(from_engine(out.error()));
          r.answer(200, {{"backup", {{"dir", *out}}}});
        });
        return std::nullopt;
      }

      // -- events -----------------------------------------------------------------------------
      case op::events:
      case op::stream: {
        if (what == op::events) rt.only_query({"from", "limit", "job", "queue", "type"});
        else rt.only_query({"from", "job", "queue", "type"});
        stream_filter f;
        f.tokens = rt.tokens();
        f.job = static_cast<job_id>(rt.query_int("job", 0, 0));
        if (auto q = rt.query("queue")) f.queue = *q;
        if (auto t = rt.query("type"))
          for (auto name : split(*t, ',')) {
            auto idx = type_index(name);
            if (idx < 0) throw bad_request("type: unknown event type '" + std::string{name} + "'");
            f.types.push_back(idx);
          }
        if (what == op::stream) {
          // "New events only" starts after the head as this request is read,
          // not when a pool thread gets to the stream: an event committed in
          // between (the client may already have been told the stream is
          // open) would otherwise be lost to it.
          sequence_t from = eng_.head() + 1;
          if (!rt.req.last_event_id.empty()) {
            auto last = parse_id(rt.req.last_event_id);
            if (!last) throw bad_request("Last-Event-ID: expected a sequence number");
            from = *last + 1;
          } else if (rt.query("from")) {
            from = static_cast<sequence_t>(rt.query_int("from", 1, 1));
          }
          return stream_request{std::move(f), from};
        }
        auto from = static_cast<sequence_t>(rt.query_int("from", 1, 1));
        auto limit = rt.query_int("limit", 100, 1);
        if (static_cast<std::size_t>(limit) > lim.max_events_page)
          throw bad_request("limit: at most " + std::to_string(lim.max_events_page));
        rt.on_pool([f = std::move(f), from, limit](route& r) {
          auto& self = r.self;
          auto head = self.eng_.head();
          // Scans until the page is full or the head is reached, for at most
          // events_scan_time: a rare filter over a long log answers a short
          // page with "next" where the scan stopped and "head" to say that
          // there is more (docs/api.md).
          const auto deadline =
              std::chrono::steady_clock::now() + self.config_.limits.events_scan_time;
          json events = json::array();
          sequence_t next = from;
          std::uint32_t since_clock = 0;
          auto res = self.eng_.read_events(from, head, [&](const event& ev) {
            if (self.hub_.matches(f, ev))
              events.push_back(to_json(f.tokens.hides(ev) ? visible_to(ev, f.tokens) : ev));
            next = ev.seq + 1;
            if (events.size() >= static_cast<std::size_t>(limit)) return false;
            if (++since_clock == 1024) {
              since_clock = 0;
              if (std::chrono::steady_clock::now() >= deadline) return false;
            }
            return true;
          });
          if (!res) return r.fail(from_engine(res.error()));
          if (head < from) next = from;
          r.answer(200, {{"events", std::move(events)}, {"head", head}, {"next", next}});
        });
        return std::nullopt;
      }
      default:
        rt.fail({404, "not_found", "no route " + path});
        return std::nullopt;
    }
  } catch (const api_error& e) {
    rt.fail(e);
  }
  return std::nullopt;
}

}  // namespace jobsmith::server
