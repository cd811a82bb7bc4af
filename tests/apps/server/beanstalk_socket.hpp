// A blocking loopback client socket for the beanstalkd protocol, for the
// load tool (beanstalk_load.cpp) and the kill loop (tests/crash/
// beanstalk_crash.cpp). Header-only; every read has a deadline (SO_RCVTIMEO).
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace jobsmith::test {

class beanstalk_socket {
 public:
  /// Connects to 127.0.0.1:port; ok() says whether it worked.
  explicit beanstalk_socket(std::uint16_t port,
                            std::chrono::seconds read_timeout = std::chrono::seconds(30)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close();
      return;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{static_cast<time_t>(read_timeout.count()), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~beanstalk_socket() { close(); }
  beanstalk_socket(const beanstalk_socket&) = delete;
  beanstalk_socket& operator=(const beanstalk_socket&) = delete;

  bool ok() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool send(const std::string& bytes) {
    std::size_t off = 0;
    while (fd_ >= 0 && off < bytes.size()) {
      auto n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return fd_ >= 0;
  }
  /// One answer line without its CRLF; nullopt when the connection ended or
  /// nothing came in time.
  std::optional<std::string> line() {
    for (;;) {
      if (auto i = buf_.find("\r\n"); i != std::string::npos) {
        auto l = buf_.substr(0, i);
        buf_.erase(0, i + 2);
        return l;
      }
      if (!fill()) return std::nullopt;
    }
  }
  /// The next `n` bytes.
  std::optional<std::string> bytes(std::size_t n) {
    while (buf_.size() < n)
      if (!fill()) return std::nullopt;
    auto out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }

 private:
  bool fill() {
    if (fd_ < 0) return false;
    char tmp[65536];
    auto n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
};

}  // namespace jobsmith::test
