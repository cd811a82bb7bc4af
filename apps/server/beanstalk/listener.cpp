#include "apps/server/beanstalk/listener.hpp"

#include <spdlog/spdlog.h>

#include <future>
#include <vector>

#include "apps/server/beanstalk/connection.hpp"

namespace jobsmith::server::beanstalk {

namespace {

/// How long stop() waits for the acceptor and for each connection to close
/// on the io threads; they never block, so this only matters when the
/// io_context is not running at all.
constexpr auto close_wait = std::chrono::seconds(2);

}  // namespace

listener::listener(asio::io_context& io, options opts)
    : io_(io), opts_(std::move(opts)), acceptor_(asio::make_strand(io)) {}

listener::~listener() { stop(); }

std::string listener::bind() {
  const std::string what = "cannot listen for beanstalkd clients on " + opts_.host + ":" +
                           std::to_string(opts_.port) + ": ";
  asio::error_code ec;
  auto address = asio::ip::make_address(opts_.host == "localhost" ? "127.0.0.1" : opts_.host, ec);
  if (ec) return what + "not an IP address";
  tcp::endpoint endpoint{address, opts_.port};
  if (acceptor_.open(endpoint.protocol(), ec); ec) return what + ec.message();
  acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (acceptor_.bind(endpoint, ec); ec) return what + ec.message();
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec); ec)
    return what + ec.message();
  port_ = acceptor_.local_endpoint(ec).port();
  return {};
}

void listener::start(service::setup s) {
  s.opts = opts_;
  svc_ = std::make_unique<service>(io_, std::move(s));
  retry_timer_ = std::make_unique<asio::steady_timer>(acceptor_.get_executor());
  asio::post(acceptor_.get_executor(), [this] { accept(); });
}

void listener::accept() {
  // Each connection gets a strand of its own: its handlers never run at
  // once, on whichever io thread is free.
  acceptor_.async_accept(
      asio::make_strand(io_),
      [this](const asio::error_code& ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void listener::on_accept(const asio::error_code& ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    // Out of descriptors, most likely: try again shortly instead of
    // spinning on the error.
    spdlog::warn("beanstalk: accept failed: {}", ec.message());
    retry_timer_->expires_after(std::chrono::milliseconds(100));
    retry_timer_->async_wait([this](const asio::error_code& e) {
      if (!e && acceptor_.is_open()) accept();
    });
    return;
  }
  std::shared_ptr<connection> conn;
  {
    std::lock_guard<std::mutex> guard{mu_};
    auto number = stopped_ ? std::nullopt : svc_->admit();
    if (number) {
      conn = std::make_shared<connection>(std::move(socket), *svc_, *number);
      // Forget connections that closed on their own now and then.
      if (open_.size() >= 64 && open_.size() >= 2 * svc_->open_connections())
        for (auto it = open_.begin(); it != open_.end();)
          it = it->second.expired() ? open_.erase(it) : std::next(it);
      open_.emplace(next_serial_++, conn);
    }
  }
  if (conn)
    conn->start();
  else
    socket.close();  // at max_connections, or stopping: closed unanswered, as an overfull
                     // beanstalkd would
  accept();
}

void listener::stop() {
  std::vector<std::shared_ptr<connection>> conns;
  {
    std::lock_guard<std::mutex> guard{mu_};
    if (stopped_) return;
    stopped_ = true;
    for (auto& [serial, weak] : open_)
      if (auto c = weak.lock()) conns.push_back(std::move(c));
    open_.clear();
  }
  // 1. No new connections. The acceptor is closed on its strand, where
  //    its accept handler runs.
  {
    auto closed = std::make_shared<std::promise<void>>();
    auto done = closed->get_future();
    asio::post(acceptor_.get_executor(), [this, closed] {
      asio::error_code ignored;
      acceptor_.close(ignored);
      if (retry_timer_) retry_timer_->cancel();
      closed->set_value();
    });
    if (done.wait_for(close_wait) != std::future_status::ready) {
      // The io_context is not running (a start that failed early):
      // nothing else touches the acceptor now.
      asio::error_code ignored;
      acceptor_.close(ignored);
    }
  }
  if (!svc_) return;
  // 2. Close every connection. The jobs they hold are kept to be released
  //    once no lease call of theirs is waiting (service.hpp, begin_stop()).
  svc_->begin_stop();
  auto left = std::make_shared<std::atomic<std::size_t>>(conns.size());
  auto all_closed = std::make_shared<std::promise<void>>();
  auto done = all_closed->get_future();
  if (conns.empty()) all_closed->set_value();
  for (auto& c : conns)
    c->shut([left, all_closed] {
      if (left->fetch_sub(1) == 1) all_closed->set_value();
    });
  conns.clear();
  if (done.wait_for(close_wait) != std::future_status::ready)
    spdlog::warn("beanstalk: connections did not close within {} s",
                 std::chrono::duration_cast<std::chrono::seconds>(close_wait).count());
  // 3. Wait for their lease calls (each waits at most a poll slice); a job
  //    leased to a closed connection meanwhile is kept to be released too.
  if (!svc_->drain_polls(service::poll_slice + std::chrono::seconds(1)))
    spdlog::warn("beanstalk: lease calls still waiting at stop");
  // 4. Release what the connections held and the delayed releases; pause
  //    timers stop.
  svc_->stop();
  // 5. Wait for the engine to answer what was started.
  if (!svc_->drain_writes(opts_.stop_grace))
    spdlog::warn(
        "beanstalk: writes still unanswered after {} ms; the engine answers them as it closes",
        opts_.stop_grace.count());
}

}  // namespace jobsmith::server::beanstalk
