#include "apps/server/api_internal.hpp"

#include <algorithm>
#include <charconv>

#include "apps/server/slim_answers.hpp"
#include "events/json.hpp"

namespace jobsmith::server {

// -- values and text ----------------------------------------------------------------------

millis wall_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

api_error from_engine(const engine_error& err) {
  switch (err.code) {
    case engine_errc::invalid_argument:
    case engine_errc::unknown_kind: return {400, "bad_request", err.message};
    case engine_errc::illegal_transition: return {409, "conflict", err.message};
    case engine_errc::stale_token: return {409, "stale_token", err.message};
    case engine_errc::not_found: return {404, "not_found", err.message};
    case engine_errc::retired: return {410, "gone", err.message};
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

std::string mib(std::uint64_t bytes) {
  return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB";
}

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

// -- object_reader ------------------------------------------------------------------------

object_reader::object_reader(const json& j, std::string where) : j_(j), where_(std::move(where)) {
  if (!j_.is_object()) throw bad_request(where_ + "expected a JSON object");
}

const json* object_reader::find(const char* key) {
  seen_.push_back(key);
  auto it = j_.find(key);
  return it == j_.end() || it->is_null() ? nullptr : &*it;
}

std::optional<std::string> object_reader::str(const char* key, std::size_t max_len) {
  auto v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw bad_request(where_ + key + ": expected a string");
  auto s = v->get<std::string>();
  if (s.size() > max_len)
    throw bad_request(where_ + key + ": longer than " + std::to_string(max_len) + " bytes");
  return s;
}

std::optional<std::int64_t> object_reader::integer(const char* key) {
  auto v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) throw bad_request(where_ + key + ": expected an integer");
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > max_safe_id)
    throw bad_request(where_ + key + ": above " + max_safe_id_text);
  return v->get<std::int64_t>();
}

std::optional<std::uint64_t> object_reader::id(const char* key) {
  auto v = integer(key);
  if (v && *v < 0) throw bad_request(where_ + key + ": must not be negative");
  return v ? std::optional<std::uint64_t>(static_cast<std::uint64_t>(*v)) : std::nullopt;
}

std::optional<bool> object_reader::boolean(const char* key) {
  auto v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw bad_request(where_ + key + ": expected true or false");
  return v->get<bool>();
}

std::optional<std::string> object_reader::any(const char* key) {
  auto it = j_.find(key);
  seen_.push_back(key);
  if (it == j_.end()) return std::nullopt;
  return it->dump();
}

void object_reader::no_other_fields() {
  for (auto& [key, value] : j_.items())
    if (std::find(seen_.begin(), seen_.end(), key) == seen_.end())
      throw bad_request(where_ + "unknown field '" + key + "'");
}

// -- request_context ----------------------------------------------------------------------

namespace {

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

}  // namespace

std::string_view request_context::path_arg(std::string_view name) const {
  for (auto& [key, text] : path_args)
    if (key == name) return text;
  return {};
}

void request_context::fail(const api_error& e) {
  if (e.status == 429) counters().refused_overloaded.fetch_add(1);
  reply(api::error_reply(e.status, e.code, e.message));
}

void request_context::answer(int status, const json& body) {
  http_reply r;
  r.status = status;
  r.body = dump(body);
  reply(std::move(r));
}

bool request_context::minimal() const { return prefers_minimal(req.prefer); }

void request_context::reply_minimal(http_reply r) {
  r.headers.emplace_back("Preference-Applied", "return=minimal");
  reply(std::move(r));
}

void request_context::answer_job(const job_record& job) {
  if (!minimal()) return answer(200, {{"job", to_json(job, wall_now())}});
  http_reply r;
  r.body = job_state_minimal(job, wall_now());
  reply_minimal(std::move(r));
}

void request_context::answer_job_and_next(const job_record& done,
                                          const result<std::vector<job_record>>& leased) {
  auto now = wall_now();
  http_reply r;
  r.body = "{\"job\":";
  if (minimal()) r.body += job_state_object(done, now);
  else append_json_text(r.body, done, now);
  r.body += ",\"jobs\":";
  static const std::vector<job_record> none;
  append_leased_jobs(r.body, leased ? *leased : none, minimal(), now);
  if (!leased) append_lease_error(r.body, leased.error());
  r.body += '}';
  if (minimal()) return reply_minimal(std::move(r));
  reply(std::move(r));
}

void request_context::answer_jobs(int status, const char* key, const std::vector<job_record>& jobs,
                                  const std::string& rest) {
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

json request_context::body_json(bool optional) const {
  if (req.body.empty() || req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (optional) return json::object();
    throw bad_request("a JSON body is required");
  }
  const auto max_depth = limits().max_json_depth;
  if (json_depth(req.body, max_depth) > max_depth)
    throw bad_request("JSON nested deeper than " + std::to_string(max_depth) + " levels");
  json_refusal why;
  auto parsed = parse_json_unique(req.body, &why);
  if (!parsed) throw bad_request(why.duplicate_key ? why.message : "the body is not valid JSON");
  json j = std::move(*parsed);
  if (!j.is_object()) throw bad_request("the body must be a JSON object");
  return j;
}

const std::string* request_context::query(std::string_view key) const {
  for (auto& [k, v] : req.query)
    if (k == key) return &v;
  return nullptr;
}

void request_context::only_query(std::initializer_list<std::string_view> allowed) const {
  for (auto& [k, v] : req.query)
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end() && k != "access_token")
      throw bad_request("unknown query parameter '" + k + "'");
}

std::int64_t request_context::query_int(std::string_view key, std::int64_t fallback,
                                        std::int64_t min) const {
  auto v = query(key);
  if (!v) return fallback;
  auto n = parse_int(*v);
  if (!n || *n < min)
    throw bad_request(std::string{key} + ": expected an integer >= " + std::to_string(min));
  return *n;
}

}  // namespace jobsmith::server
