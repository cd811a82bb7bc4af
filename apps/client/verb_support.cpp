#include "apps/client/verb_support.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>

namespace jobsmith::apps {

void add_connection_options(CLI::App* cmd, connection_options& o, bool with_json) {
  cmd->add_option("--url", o.url, "server URL")->envname("JOBSMITH_URL")->capture_default_str();
  cmd->add_option("--token", o.token, "bearer token")->envname("JOBSMITH_TOKEN");
  if (with_json) cmd->add_flag("--json", o.json, "print the server's raw JSON answer");
}

std::unique_ptr<http::client> make_client(const connection_options& o, std::string_view verb,
                                          std::chrono::milliseconds timeout) {
  std::string error;
  auto u = http::url::parse(o.url, &error);
  if (!u) {
    std::fprintf(stderr, "jobsmith %.*s: %s\n", static_cast<int>(verb.size()), verb.data(),
                 error.c_str());
    return nullptr;
  }
  return std::make_unique<http::client>(*u, o.token, timeout);
}

int report_failure(const http::response& r, const connection_options& o, std::string_view verb) {
  if (r.status >= 200 && r.status < 300) return exit_ok;
  auto v = std::string(verb);
  if (r.status == 0) {
    bool unreachable =
        r.transport_error.rfind("connect ", 0) == 0 || r.transport_error.rfind("resolve ", 0) == 0;
    std::fprintf(stderr, "jobsmith %s: %s the server at %s: %s\n", v.c_str(),
                 unreachable ? "cannot reach" : "no answer from", o.url.c_str(),
                 r.transport_error.c_str());
    return exit_failure;
  }
  auto j = r.json();
  std::string message;
  std::string code;
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    auto& e = j["error"];
    if (e.contains("message") && e["message"].is_string()) message = e["message"];
    if (e.contains("code") && e["code"].is_string()) code = e["code"];
    if (e.contains("details") && !e["details"].empty()) message += " " + compact(e["details"]);
  } else {
    message = r.body.substr(0, 200);
  }
  std::fprintf(stderr, "jobsmith %s: %s (HTTP %d%s%s)\n", v.c_str(), message.c_str(), r.status,
               code.empty() ? "" : " ", code.c_str());
  return r.status >= 400 && r.status < 500 && r.status != 429 ? exit_usage : exit_failure;
}

std::string format_time(std::int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[96];  // room for any int the compiler imagines
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

bool parse_time(std::string_view text, std::int64_t& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec == std::errc{} && p == text.data() + text.size()) return out >= 0;
  std::tm tm{};
  int millis = 0;
  int used = 0;
  std::string s(text);
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6)
    return false;
  std::string_view rest = std::string_view(s).substr(static_cast<std::size_t>(used));
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (digits < 3) millis = millis * 10 + (rest.front() - '0'), ++digits;
      rest.remove_prefix(1);
    }
    while (digits++ < 3) millis *= 10;
  }
  if (rest != "Z") return false;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  out = static_cast<std::int64_t>(::timegm(&tm)) * 1000 + millis;
  return true;
}

std::string query_escape(std::string_view value) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {  // RFC 3986 unreserved
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

std::string compact(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string text_of(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  auto& v = j[key];
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  return compact(v);
}

std::int64_t int_of(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
  return j[key].get<std::int64_t>();
}

}  // namespace jobsmith::apps
