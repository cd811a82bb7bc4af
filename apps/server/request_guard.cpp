#include "apps/server/request_guard.hpp"

#include <arpa/inet.h>

#include <charconv>

#include "apps/server/header_text.hpp"

namespace jobsmith::server {

namespace {

/// A loopback address written as an IP literal or the name localhost.
/// Strict: "127.evil.example" is a DNS name, not 127.0.0.0/8.
bool is_loopback_name(std::string_view name) {
  if (iequals(name, "localhost") || iequals(name, "localhost.")) return true;
  std::string text{name};
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

/// Splits "name", "name:port", "[v6]" or "[v6]:port". False if malformed.
bool split_host_port(std::string_view hp, std::string_view* name, std::string_view* port) {
  *port = {};
  if (!hp.empty() && hp.front() == '[') {
    auto close = hp.find(']');
    if (close == std::string_view::npos) return false;
    *name = hp.substr(1, close - 1);
    auto rest = hp.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    *port = rest.substr(1);
    return true;
  }
  auto colon = hp.find(':');
  if (colon == std::string_view::npos) {
    *name = hp;
    return true;
  }
  if (hp.find(':', colon + 1) != std::string_view::npos) return false;  // bare IPv6: malformed
  *name = hp.substr(0, colon);
  *port = hp.substr(colon + 1);
  return true;
}

bool port_is(std::string_view text, std::uint16_t port) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} && end == text.data() + text.size() && value == port;
}

}  // namespace

bool is_loopback_host_header(std::string_view host_header, std::uint16_t port) {
  std::string_view name, port_text;
  if (!split_host_port(trim(host_header), &name, &port_text)) return false;
  if (!is_loopback_name(name)) return false;
  return port_text.empty() || port_is(port_text, port);
}

bool is_json_content_type(std::string_view content_type) {
  auto semi = content_type.find(';');
  return iequals(trim(content_type.substr(0, semi)), "application/json");
}

std::optional<api_error> check_request_source(const request_source& src, std::string_view path,
                                              bool has_body, const source_policy& policy) {
  // A browser always sends Host; a client without one is no browser, and
  // DNS rebinding needs a browser.
  if (!policy.tokens_configured && !src.host.empty() &&
      !is_loopback_host_header(src.host, policy.port))
    return api_error{403, "forbidden_host",
                     "Host '" + src.host +
                         "' is not a loopback name: without tokens this server answers only "
                         "127.0.0.1, localhost and [::1] (give --tokens FILE to serve other names)"};
  if (path.rfind("/v1/", 0) != 0) return std::nullopt;
  if (iequals(trim(src.sec_fetch_site), "cross-site"))
    return api_error{403, "forbidden_origin",
                     "cross-site requests from browsers are refused (Sec-Fetch-Site: cross-site)"};
  if (!src.origin.empty()) {
    // The server's own origin is the scheme and the Host the browser used.
    auto origin = trim(src.origin);
    bool own = !src.host.empty() && (iequals(origin, "http://" + src.host) ||
                                     iequals(origin, "https://" + src.host));
    if (!own)
      return api_error{403, "forbidden_origin",
                       "requests from the web origin '" + std::string{origin} +
                           "' are refused: only the server's own pages may call its API"};
  }
  if (has_body && !is_json_content_type(src.content_type))
    return api_error{415, "unsupported_media_type",
                     "a request body must be JSON, sent with Content-Type: application/json" +
                         (src.content_type.empty() ? std::string{" (none was given)"}
                                                   : " (not '" + src.content_type + "')")};
  return std::nullopt;
}

}  // namespace jobsmith::server
