// The blocking HTTP/1.1 client (http_client.hpp): one socket, poll() bounding
// every wait, keep-alive with one reconnect, Content-Length / chunked /
// until-close bodies, and an incremental Server-Sent Events parser.
#include "apps/client/http_client.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace jobsmith::http {

namespace {

using ms = std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

int poll_ms(ms timeout) {
  auto n = timeout.count();
  return n > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(std::max<std::int64_t>(n, 0));
}

/// A connected socket with a read buffer. Every wait is bounded by poll().
class connection {
 public:
  ~connection() { close(); }

  bool open() const { return fd_ >= 0; }
  /// An open connection the server has closed (or sent something on
  /// unasked, which only a closing server does), seen without waiting.
  bool peer_closed() const {
    if (fd_ < 0 || !buf_.empty()) return fd_ < 0;
    pollfd p{fd_, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
  }

  /// Connects to host:port within `timeout`; on failure `error` says why.
  bool connect(const std::string& host, std::uint16_t port, ms timeout, std::string& error) {
    close();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    auto where = host + ":" + std::to_string(port);
    int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
    if (rc != 0) {
      error = "resolve " + where + ": " + ::gai_strerror(rc);
      return false;
    }
    std::string last = "no address";
    for (auto* ai = found; ai != nullptr; ai = ai->ai_next) {
      int fd =
          ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
      if (fd < 0) {
        last = std::strerror(errno);
        continue;
      }
      int err = 0;
      if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
          pollfd p{fd, POLLOUT, 0};
          int n = ::poll(&p, 1, poll_ms(timeout));
          if (n == 0) {
            err = ETIMEDOUT;
          } else if (n < 0) {
            err = errno;
          } else {
            socklen_t len = sizeof err;
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          }
        }
      }
      if (err != 0) {
        last = std::strerror(err);
        ::close(fd);
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fd_ = fd;
      ::freeaddrinfo(found);
      return true;
    }
    ::freeaddrinfo(found);
    error = "connect " + where + ": " + last;
    return false;
  }

  /// Sends all of `data`; false with `error` on failure or timeout.
  bool send_all(std::string_view data, ms timeout, std::string& error) {
    while (!data.empty()) {
      auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd_, POLLOUT, 0};
        int r = ::poll(&p, 1, poll_ms(timeout));
        if (r == 0) {
          error = "send: timed out";
          return false;
        }
        if (r < 0 && errno != EINTR) {
          error = std::string("send: ") + std::strerror(errno);
          return false;
        }
        continue;
      }
      error = std::string("send: ") + std::strerror(errno);
      return false;
    }
    return true;
  }

  enum class fill_result { data, eof, timeout, error };

  /// Appends what the socket has to the buffer, waiting at most `timeout`.
  fill_result fill(ms timeout, std::string& error) {
    char chunk[16384];
    for (;;) {
      auto n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        buf_.append(chunk, static_cast<std::size_t>(n));
        return fill_result::data;
      }
      if (n == 0) return fill_result::eof;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{fd_, POLLIN, 0};
        int r = ::poll(&p, 1, poll_ms(timeout));
        if (r == 0) {
          error = "receive: timed out after " + std::to_string(timeout.count()) + " ms";
          return fill_result::timeout;
        }
        if (r < 0 && errno != EINTR) {
          error = std::string("receive: ") + std::strerror(errno);
          return fill_result::error;
        }
        continue;
      }
      if (errno == ECONNRESET) return fill_result::eof;
      error = std::string("receive: ") + std::strerror(errno);
      return fill_result::error;
    }
  }

  std::string& buffer() { return buf_; }

 private:
  int fd_ = -1;
  std::string buf_;
};

/// How the body of a response is delimited, decoded incrementally.
class body_reader {
 public:
  enum class framing { none, length, chunked, until_close };
  enum class step { data, end, failed };

  body_reader(connection& conn, framing f, std::uint64_t length)
      : conn_(conn), framing_(f), remaining_(length) {
    if (f == framing::none || (f == framing::length && length == 0)) done_ = true;
  }

  /// Appends the next decoded bytes to `out` (waiting at most `timeout` for
  /// each receive), or says the body ended or failed (`error`, `timed_out`).
  step next(std::string& out, ms timeout) {
    auto& buf = conn_.buffer();
    for (;;) {
      if (done_) return step::end;
      switch (framing_) {
        case framing::none:
          done_ = true;
          return step::end;
        case framing::length:
          if (!buf.empty()) {
            auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, buf.size()));
            out.append(buf, 0, n);
            buf.erase(0, n);
            remaining_ -= n;
            if (remaining_ == 0) done_ = true;
            return step::data;
          }
          break;
        case framing::until_close:
          if (!buf.empty()) {
            out.append(buf);
            buf.clear();
            return step::data;
          }
          break;
        case framing::chunked: {
          if (chunk_state_ == chunk::data && !buf.empty()) {
            auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, buf.size()));
            out.append(buf, 0, n);
            buf.erase(0, n);
            remaining_ -= n;
            if (remaining_ == 0) chunk_state_ = chunk::data_end;
            return step::data;
          }
          auto eol = buf.find("\r\n");
          if (chunk_state_ != chunk::data && eol != std::string::npos) {
            std::string_view line(buf.data(), eol);
            if (chunk_state_ == chunk::size) {
              auto hex = line.substr(0, line.find(';'));
              hex = trim(hex);
              std::uint64_t size = 0;
              auto [p, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), size, 16);
              if (ec != std::errc{} || p != hex.data() + hex.size() || hex.empty()) {
                error = "bad chunk size line";
                return step::failed;
              }
              remaining_ = size;
              chunk_state_ = size == 0 ? chunk::trailers : chunk::data;
            } else if (chunk_state_ == chunk::data_end) {
              if (!line.empty()) {
                error = "chunk not followed by CRLF";
                return step::failed;
              }
              chunk_state_ = chunk::size;
            } else if (line.empty()) {  // trailers end with an empty line
              done_ = true;
            }
            buf.erase(0, eol + 2);
            continue;
          }
          break;
        }
      }
      auto r = conn_.fill(timeout, error);
      if (r == connection::fill_result::data) continue;
      if (r == connection::fill_result::eof && framing_ == framing::until_close) {
        done_ = true;
        closed_ = true;
        return step::end;
      }
      if (r == connection::fill_result::eof) error = "connection closed in the middle of the body";
      timed_out = r == connection::fill_result::timeout;
      return step::failed;
    }
  }

  /// The connection cannot carry another request.
  bool closed() const { return closed_; }

  std::string error;
  bool timed_out = false;

 private:
  enum class chunk { size, data, data_end, trailers };
  connection& conn_;
  framing framing_;
  std::uint64_t remaining_;
  chunk chunk_state_ = chunk::size;
  bool done_ = false;
  bool closed_ = false;
};

/// The WHATWG event-stream interpretation, fed bytes as they arrive.
class sse_parser {
 public:
  /// Feeds bytes; calls `dispatch` per complete event; false once it returned false.
  bool feed(std::string_view bytes, const std::function<bool(const sse_event&)>& dispatch) {
    pending_.append(bytes);
    std::size_t pos = 0;
    for (;;) {
      if (skip_lf_ && pos < pending_.size()) {
        if (pending_[pos] == '\n') ++pos;
        skip_lf_ = false;
      }
      auto eol = pending_.find_first_of("\r\n", pos);
      if (eol == std::string::npos) break;
      std::string_view line(pending_.data() + pos, eol - pos);
      // A CR may be followed by an LF in the next bytes: skip it then.
      if (pending_[eol] == '\r') skip_lf_ = true;
      pos = eol + 1;
      if (first_line_ && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
      first_line_ = false;
      if (!process_line(line, dispatch)) {
        pending_.erase(0, pos);
        return false;
      }
    }
    pending_.erase(0, pos);
    return true;
  }

 private:
  bool process_line(std::string_view line, const std::function<bool(const sse_event&)>& dispatch) {
    if (line.empty()) {
      bool go_on = true;
      if (has_data_) {
        sse_event ev;
        ev.id = last_id_;
        ev.type = type_.empty() ? "message" : type_;
        ev.data = data_;
        if (!ev.data.empty() && ev.data.back() == '\n') ev.data.pop_back();
        go_on = dispatch(ev);
      }
      data_.clear();
      type_.clear();
      has_data_ = false;
      return go_on;
    }
    if (line.front() == ':') return true;  // a comment (keepalive)
    auto colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "event") {
      type_ = value;
    } else if (field == "data") {
      data_.append(value);
      data_.push_back('\n');
      has_data_ = true;
    } else if (field == "id") {
      if (value.find('\0') == std::string_view::npos) last_id_ = value;
    }  // "retry" and unknown fields are ignored
    return true;
  }

  std::string pending_;
  bool skip_lf_ = false;
  bool first_line_ = true;
  std::string data_;
  bool has_data_ = false;
  std::string type_;
  std::string last_id_;
};

}  // namespace

std::optional<url> url::parse(std::string_view text, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<url> {
    if (error) *error = "bad URL '" + std::string(text) + "': " + why;
    return std::nullopt;
  };
  url u;
  std::string_view rest = text;
  if (auto p = rest.find("://"); p != std::string_view::npos) {
    if (lower(rest.substr(0, p)) != "http") return fail("only http:// is supported");
    rest.remove_prefix(p + 3);
  }
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  u.base_path = path;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {  // [::1]:7878
    auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("unclosed '['");
    u.host = authority.substr(1, close - 1);
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("junk after ']'");
      port_text = after.substr(1);
    }
  } else {
    auto colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (u.host.empty()) return fail("no host");
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || p != port_text.data() + port_text.size() || port == 0 || port > 65535)
      return fail("bad port");
    u.port = static_cast<std::uint16_t>(port);
  } else {
    u.port = 80;
  }
  return u;
}

std::string response::header(std::string_view name) const {
  for (auto& [k, v] : header_list)
    if (k == name) return v;
  return {};
}

nlohmann::json response::json() const {
  return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

struct client::impl {
  url base;
  std::string token;
  ms timeout;
  connection conn;

  std::string request_text(std::string_view method, std::string_view path, std::string_view body,
                           const headers& extra, bool keep_alive) const {
    std::string r;
    r.reserve(256 + body.size());
    r.append(method).append(" ").append(base.base_path).append(path).append(" HTTP/1.1\r\n");
    r.append("Host: ").append(base.host).append(":").append(std::to_string(base.port));
    r.append("\r\n");
    if (!token.empty()) r.append("Authorization: Bearer ").append(token).append("\r\n");
    if (!body.empty() || method == "POST" || method == "PUT") {
      r.append("Content-Type: application/json\r\n");
      r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    }
    if (!keep_alive) r.append("Connection: close\r\n");
    for (auto& [k, v] : extra) r.append(k).append(": ").append(v).append("\r\n");
    r.append("\r\n");
    r.append(body);
    return r;
  }

  enum class head_result { ok, closed_before_answer, failed };

  /// Reads a response head (skipping 1xx answers) into `out`.
  head_result read_head(response& out, ms wait) {
    auto& buf = conn.buffer();
    for (;;) {
      auto end = buf.find("\r\n\r\n");
      if (end == std::string::npos) {
        bool nothing_yet = buf.empty();
        auto r = conn.fill(wait, out.transport_error);
        if (r == connection::fill_result::data) continue;
        if (r == connection::fill_result::eof) {
          if (nothing_yet) return head_result::closed_before_answer;
          out.transport_error = "connection closed in the middle of the response head";
        }
        return head_result::failed;
      }
      std::string_view head(buf.data(), end);
      auto line_end = head.find("\r\n");
      std::string_view status_line = head.substr(0, line_end);
      // "HTTP/1.1 200 OK"
      if (status_line.substr(0, 5) != "HTTP/" || status_line.size() < 12) {
        out.transport_error = "not an HTTP answer: " + std::string(status_line.substr(0, 80));
        return head_result::failed;
      }
      int status = 0;
      auto code = status_line.substr(9, 3);
      auto [p, ec] = std::from_chars(code.data(), code.data() + code.size(), status);
      if (ec != std::errc{} || status < 100 || status > 999) {
        out.transport_error = "bad status line: " + std::string(status_line.substr(0, 80));
        return head_result::failed;
      }
      out.header_list.clear();
      http10_ = status_line.substr(0, 8) == "HTTP/1.0";
      std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        auto next = head.find("\r\n", pos);
        if (next == std::string_view::npos) next = head.size();
        auto line = head.substr(pos, next - pos);
        auto colon = line.find(':');
        if (colon != std::string_view::npos)
          out.header_list.emplace_back(lower(trim(line.substr(0, colon))),
                                       std::string(trim(line.substr(colon + 1))));
        pos = next + 2;
      }
      buf.erase(0, end + 4);
      if (status >= 100 && status < 200) continue;  // 100 Continue and friends
      out.status = status;
      return head_result::ok;
    }
  }

  bool http10_ = false;

  /// The body framing of `r` (RFC 9112 section 6.3) for a request of `method`.
  body_reader framing_of(const response& r, std::string_view method, std::string& error) {
    if (method == "HEAD" || r.status == 204 || r.status == 304)
      return body_reader(conn, body_reader::framing::none, 0);
    if (lower(r.header("transfer-encoding")).find("chunked") != std::string::npos)
      return body_reader(conn, body_reader::framing::chunked, 0);
    auto cl = r.header("content-length");
    if (!cl.empty()) {
      std::uint64_t n = 0;
      auto [p, ec] = std::from_chars(cl.data(), cl.data() + cl.size(), n);
      if (ec != std::errc{} || p != cl.data() + cl.size()) error = "bad Content-Length";
      return body_reader(conn, body_reader::framing::length, n);
    }
    return body_reader(conn, body_reader::framing::until_close, 0);
  }

  bool keeps_alive(const response& r) const {
    auto c = lower(r.header("connection"));
    if (c.find("close") != std::string::npos) return false;
    if (http10_ && c.find("keep-alive") == std::string::npos) return false;
    return true;
  }

  bool ensure_connected(std::string& error) {
    if (conn.open()) return true;
    return conn.connect(base.host, base.port, timeout, error);
  }
};

client::client(url base, std::string token, std::chrono::milliseconds timeout)
    : impl_(new impl{std::move(base), std::move(token), timeout, {}}) {}

client::~client() { delete impl_; }

response client::post(std::string_view path, const nlohmann::json& body) {
  return request("POST", path, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

response client::request(std::string_view method, std::string_view path, std::string_view body,
                         const headers& extra) {
  auto& m = *impl_;
  auto text = m.request_text(method, path, body, extra, true);
  // A kept-alive connection the server closed meanwhile is seen closed
  // before the request goes out, or fails on send, or answers EOF before any
  // byte. The first two mean the server never read the request: connect
  // again once. The third may mean the server read it, acted, and died
  // before answering (a SIGKILL): only an idempotent method is sent again
  // then (RFC 9110, 9.2.2); a POST answers status 0, for the caller to
  // decide (it may have been applied).
  const bool idempotent = method == "GET" || method == "HEAD" || method == "PUT" ||
                          method == "DELETE" || method == "OPTIONS";
  for (int attempt = 0; attempt < 2; ++attempt) {
    response r;
    if (m.conn.open() && m.conn.peer_closed()) m.conn.close();
    bool reused = m.conn.open();
    if (!m.ensure_connected(r.transport_error)) return r;
    if (!m.conn.send_all(text, m.timeout, r.transport_error)) {
      m.conn.close();
      if (reused) continue;
      return r;
    }
    auto head = m.read_head(r, m.timeout);
    if (head != impl::head_result::ok) {
      m.conn.close();
      if (head == impl::head_result::closed_before_answer) {
        if (reused && idempotent) continue;
        r.transport_error = "connection closed by the server before it answered";
        if (reused)
          r.transport_error += " (" + std::string{method} +
                               " not sent again: the server may have applied it)";
      }
      r.status = 0;
      return r;
    }
    std::string framing_error;
    auto reader = m.framing_of(r, method, framing_error);
    if (!framing_error.empty()) {
      m.conn.close();
      r.transport_error = framing_error;
      r.status = 0;
      return r;
    }
    for (;;) {
      auto s = reader.next(r.body, m.timeout);
      if (s == body_reader::step::end) break;
      if (s == body_reader::step::failed) {
        m.conn.close();
        r.transport_error = reader.error;
        r.status = 0;
        return r;
      }
    }
    if (reader.closed() || !m.keeps_alive(r)) m.conn.close();
    return r;
  }
  response r;
  r.transport_error = "connection closed by the server twice before it answered";
  return r;
}

response client::stream(std::string_view path, const headers& extra,
                        const std::function<bool(const sse_event&)>& on_event,
                        std::chrono::milliseconds idle_timeout) {
  auto& m = *impl_;
  // A stream gets a connection of its own, closed afterwards.
  m.conn.close();
  response r;
  struct closer {
    connection& c;
    ~closer() { c.close(); }
  } close_after{m.conn};
  if (!m.ensure_connected(r.transport_error)) return r;
  headers all = extra;
  all.emplace_back("Accept", "text/event-stream");
  if (!m.conn.send_all(m.request_text("GET", path, {}, all, false), m.timeout, r.transport_error))
    return r;
  auto head = m.read_head(r, m.timeout);
  if (head != impl::head_result::ok) {
    if (head == impl::head_result::closed_before_answer)
      r.transport_error = "connection closed by the server before it answered";
    r.status = 0;
    return r;
  }
  std::string framing_error;
  auto reader = m.framing_of(r, "GET", framing_error);
  if (!framing_error.empty()) {
    r.transport_error = framing_error;
    return r;
  }
  if (r.status != 200) {  // an error answer: keep its body for the caller
    for (;;) {
      auto s = reader.next(r.body, m.timeout);
      if (s == body_reader::step::end) break;
      if (s == body_reader::step::failed) {
        r.transport_error = reader.error;
        break;
      }
    }
    return r;
  }
  sse_parser parser;
  std::string chunk;
  for (;;) {
    chunk.clear();
    auto s = reader.next(chunk, idle_timeout);
    if (s == body_reader::step::end) return r;
    if (s == body_reader::step::failed) {
      r.transport_error = reader.timed_out
                              ? "stream idle for " + std::to_string(idle_timeout.count()) + " ms"
                              : reader.error;
      return r;
    }
    if (!parser.feed(chunk, on_event)) return r;
  }
}

}  // namespace jobsmith::http
