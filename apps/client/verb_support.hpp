// What the client verbs, `jobsmith work` and `bench --url` share: the
// connection options every verb takes, how a failed answer is reported and
// turned into an exit code, and text formatting for people.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "apps/client/http_client.hpp"

namespace jobsmith::apps {

inline constexpr const char* default_server_url = "http://127.0.0.1:7878";

/// --url (env JOBSMITH_URL), --token (env JOBSMITH_TOKEN), --json.
struct connection_options {
  std::string url = default_server_url;
  std::string token;
  bool json = false;  // print the server's raw JSON answer
};

/// Adds the options above to `cmd` (with_json: whether --json makes sense).
void add_connection_options(CLI::App* cmd, connection_options& o, bool with_json = true);

/// A client for o.url; null after printing "jobsmith VERB: bad URL ..." to stderr.
std::unique_ptr<http::client> make_client(
    const connection_options& o, std::string_view verb,
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// Exit codes: 0 success, 1 server or transport failure, 2 a usage problem
/// (a 4xx answer other than 429, bad arguments).
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

/// For an answer that is not 2xx: prints "jobsmith VERB: <server message>
/// (HTTP 404 not_found)" or "cannot reach the server at URL: ..." to stderr
/// and returns the exit code. Returns exit_ok for a 2xx answer.
int report_failure(const http::response& r, const connection_options& o, std::string_view verb);

/// "2026-11-22T19:30:01.123Z"; "-" for 0.
std::string format_time(std::int64_t ms_since_epoch);

/// Milliseconds since the Unix epoch from digits or "YYYY-MM-DDTHH:MM:SS[.mmm]Z".
bool parse_time(std::string_view text, std::int64_t& out);

/// Percent-encodes a query-string value.
std::string query_escape(std::string_view value);

/// Prints rows as left-aligned columns separated by two spaces; the first
/// row is the header.
void print_table(const std::vector<std::vector<std::string>>& rows);

/// A JSON value as compact text, invalid UTF-8 replaced.
std::string compact(const nlohmann::json& j);

/// An answer's field as text (strings as they are, other values compact);
/// "" when absent or null.
std::string text_of(const nlohmann::json& j, const char* key);
/// An answer's numeric field; 0 when absent or not a number.
std::int64_t int_of(const nlohmann::json& j, const char* key);

}  // namespace jobsmith::apps
