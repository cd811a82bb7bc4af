// A small blocking HTTP/1.1 client for the client verbs, `jobsmith work`,
// `bench --url` and the server's tests. One connection, kept alive and
// reopened once when the server closed it; one client per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jobsmith::http {

using headers = std::vector<std::pair<std::string, std::string>>;

/// "http://host:port[/base]"; only plain http.
struct url {
  std::string host = "127.0.0.1";
  std::uint16_t port = 7878;
  std::string base_path;  // prepended to every request path, no trailing '/'
  static std::optional<url> parse(std::string_view text, std::string* error = nullptr);
};

struct response {
  int status = 0;               // 0: no HTTP answer at all (see transport_error)
  std::string transport_error;  // "connect 127.0.0.1:7878: Connection refused", ...
  headers header_list;          // names lower-cased
  std::string body;
  /// The first header of that (lower-case) name, or "".
  std::string header(std::string_view name) const;
  /// The body parsed as JSON; a discarded value when it is not JSON.
  nlohmann::json json() const;
};

/// One Server-Sent Event as it arrived.
struct sse_event {
  std::string id;
  std::string type;  // "message" when the server sent no "event:" line
  std::string data;  // "data:" lines joined by '\n'
};

class client {
 public:
  /// `token` goes out as "Authorization: Bearer <token>" when not empty.
  /// `timeout` bounds connect, each send and each receive.
  explicit client(url base, std::string token = {},
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  response request(std::string_view method, std::string_view path, std::string_view body = {},
                   const headers& extra = {});
  response get(std::string_view path) { return request("GET", path); }
  response post(std::string_view path, const nlohmann::json& body);

  /// GET `path` as an event stream: calls `on_event` for each event until it
  /// returns false, the server ends the stream, or nothing (not even a
  /// keepalive comment) arrived for `idle_timeout`. Returns the response
  /// head (status, headers); the body holds the answer only when the status
  /// is not 200. The connection is closed afterwards.
  response stream(std::string_view path, const headers& extra,
                  const std::function<bool(const sse_event&)>& on_event,
                  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60));

 private:
  struct impl;
  impl* impl_;
};

}  // namespace jobsmith::http
