// Who may reach the API from a browser: the checks that keep a web page on
// another origin from driving a server (cross-site request forgery) and a
// hostile DNS name from reading it (DNS rebinding).
//
// A browser lets any page send a "simple" request (a POST with a text/plain
// or form body, no custom headers) to any address without asking first, and
// it sends Origin and Sec-Fetch-Site with it. So:
//   - a request body must be application/json (415 otherwise): a browser
//     asks the server first (a CORS preflight, which this server never
//     approves) before it sends that type across origins;
//   - a /v1 request whose Origin is not the server's own, or whose
//     Sec-Fetch-Site is cross-site, is refused (403);
//   - without tokens, only loopback Host names are served (403 otherwise):
//     a page on evil.example whose name was made to resolve to 127.0.0.1
//     still sends Host: evil.example.
// Clients that are not browsers send neither Origin nor Sec-Fetch-Site and
// are unaffected; the dashboard is same-origin and passes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "apps/server/api_error.hpp"

namespace jobsmith::server {

/// The headers the checks read, as the client sent them ("" = absent).
struct request_source {
  std::string host;
  std::string origin;
  std::string sec_fetch_site;
  std::string content_type;
};

struct source_policy {
  bool tokens_configured = false;  // false: every caller is admin, so Host is checked
  std::uint16_t port = 0;          // the bound port, for Host without tokens
};

/// True when `host_header` ("name", "name:port", "[::1]:port") names a
/// loopback address (127.0.0.0/8, ::1, localhost) and, when it has a port,
/// that port is `port`.
bool is_loopback_host_header(std::string_view host_header, std::uint16_t port);

/// True when `content_type` is application/json, with or without
/// parameters ("application/json; charset=utf-8"), in any letter case.
bool is_json_content_type(std::string_view content_type);

/// The refusal for a request from `src` to `path`, or nullopt when it may
/// go on. `has_body`: the request carries a non-empty body.
std::optional<api_error> check_request_source(const request_source& src, std::string_view path,
                                              bool has_body, const source_policy& policy);

}  // namespace jobsmith::server
