// The connection's I/O side: reading, the order in which commands start,
// answer slots, writing, flow control and closing (connection.hpp).
// What each command does is in commands.cpp and reports.cpp.
#include "apps/server/beanstalk/connection.hpp"

#include <algorithm>

namespace jobsmith::server::beanstalk {

namespace {

/// Commands that wait for every command before them to be answered, and
/// make every command after them wait (connection.hpp, "Pipelining").
bool is_barrier(verb v) {
  switch (v) {
    case verb::reserve:
    case verb::reserve_with_timeout:
    case verb::kick:
    case verb::peek_ready:
    case verb::peek_delayed:
    case verb::peek_buried:
    case verb::stats:
    case verb::stats_tube:
    case verb::list_tubes:
    case verb::pause_tube:
    case verb::quit:
      return true;
    default:
      return false;
  }
}

/// The job a command names, 0 for none.
job_id job_named(const command& c) {
  switch (c.what) {
    case verb::delete_job:
    case verb::release:
    case verb::bury:
    case verb::touch:
    case verb::peek:
    case verb::kick_job:
    case verb::stats_job:
      return c.id;
    default:
      return 0;
  }
}

}  // namespace

connection::connection(tcp::socket socket, service& svc, std::uint32_t number)
    : svc_(svc),
      number_(number),
      worker_("beanstalk:" + std::to_string(number)),
      socket_(std::move(socket)),
      reader_(svc.opts().max_job_bytes) {
  if (!svc_.tokens().empty()) {
    // Nothing but auth and quit until a token is given (commands.cpp).
    principal_.clear();
    who_ = role::read;
  }
  svc_.using_tube(used_, 1);
  svc_.watching_tube(watched_.front(), 1);
}

// Nothing to do: close_now() gave everything back, and the service may be
// gone by the time the last handler holding this connection is destroyed
// (the io_context drops its queued handlers last).
connection::~connection() = default;

void connection::start() {
  asio::error_code ignored;
  // Answers are small and a client often waits for each: no Nagle delay.
  socket_.set_option(tcp::no_delay(true), ignored);
  auto self = shared_from_this();
  on_strand([self] { self->pump(); });
}

void connection::shut(std::function<void()> closed) {
  auto self = shared_from_this();
  on_strand([self, closed = std::move(closed)] {
    self->close_now();  // nothing when it closed already
    if (closed) closed();
  });
}

void connection::read_more() {
  // Reading goes on while commands wait (so a client that hangs up while
  // its reserve waits is noticed), up to one put with its body plus one
  // read of slack; then the socket is left alone until the commands read
  // so far are started.
  const std::size_t cap = svc_.opts().max_job_bytes + command_reader::max_line_bytes + 2;
  if (reading_ || closing_ || eof_ || reader_.buffered() > cap) return;
  reading_ = true;
  auto self = shared_from_this();
  socket_.async_read_some(asio::buffer(in_), [self](const asio::error_code& ec, std::size_t n) {
    self->on_read(ec, n);
  });
}

void connection::on_read(const asio::error_code& ec, std::size_t n) {
  reading_ = false;
  if (closing_) return;
  if (ec == asio::error::eof) {
    // The client shut its sending side (`printf ... | nc -q1`): beanstalkd
    // has answered by then everything it read, as it runs each command
    // when it reads it. So the commands read go on, their answers are
    // written, and then the connection closes. A reserve that finds no job
    // (its lease call in flight waits a poll slice at most) ends the
    // connection instead (on_leased), as a hang-up ends a waiting reserve
    // in beanstalkd.
    eof_ = true;
    pump();
    return;
  }
  if (ec) {
    // An error (a reset): the connection ends at once. Commands already
    // started still take effect; their answers have nowhere to go.
    close_now();
    return;
  }
  reader_.feed(std::string_view{in_.data(), n});
  input_exhausted_ = false;
  pump();
}

bool connection::may_start(const input_item& item) const {
  if (!item.cmd) return true;  // a refusal depends on nothing
  if (barrier_in_flight_) return false;
  if (is_barrier(item.cmd->what)) return in_flight_ == 0;
  if (auto id = job_named(*item.cmd); id != 0) return busy_jobs_.count(id) == 0;
  return true;
}

void connection::pump() {
  // An answer known at once calls finish() -> pump() from inside this loop:
  // the loop goes on by itself, so the inner call returns (no recursion).
  if (pumping_) return;
  pumping_ = true;
  const std::size_t bound = std::max<std::size_t>(1, svc_.opts().max_unanswered);
  while (!closing_) {
    if (!waiting_) {
      if (unanswered_ >= bound) break;
      auto item = reader_.next();
      if (!item) {
        input_exhausted_ = true;
        break;
      }
      waiting_ = std::move(*item);
      ++unanswered_;
    }
    if (!may_start(*waiting_)) break;
    auto item = std::move(*waiting_);
    waiting_.reset();
    begin(std::move(item));
  }
  pumping_ = false;
  if (closing_) return;
  submit_puts();
  flush();
  read_more();
  close_if_done();
}

void connection::close_if_done() {
  if (eof_ && !closing_ && in_flight_ == 0 && slots_.empty() && !writing_ && !waiting_ &&
      input_exhausted_)
    close_now();
}

void connection::begin(input_item item) {
  started s;
  s.slot = first_slot_ + slots_.size();
  slots_.emplace_back();
  if (item.cmd) {
    s.job = job_named(*item.cmd);
    s.barrier = is_barrier(item.cmd->what);
  }
  ++in_flight_;
  if (s.job != 0) busy_jobs_.insert(s.job);
  if (s.barrier) barrier_in_flight_ = true;
  if (!item.cmd) {
    finish(s, std::string{item.refusal} + "\r\n");
    return;
  }
  auto& c = *item.cmd;
  if (c.what != verb::put) submit_puts();  // the puts before it go first
  svc_.count(c.what);
  if (!authenticated_ && !svc_.tokens().empty() && c.what != verb::auth && c.what != verb::quit) {
    finish(s, "UNAUTHORIZED\r\n");
    return;
  }
  run(c, s);
}

void connection::finish(const started& s, std::string text, bool close_after) {
  --in_flight_;
  if (s.job != 0) {
    if (auto it = busy_jobs_.find(s.job); it != busy_jobs_.end()) busy_jobs_.erase(it);
  }
  if (s.barrier) barrier_in_flight_ = false;
  if (closing_) {
    // A job this connection still holds, whose command kept it from being
    // released when the connection closed, is released now.
    if (s.job != 0 && busy_jobs_.count(s.job) == 0)
      if (auto it = reserved_.find(s.job); it != reserved_.end()) {
        release_now(s.job, it->second.token, "the beanstalkd connection closed");
        reserved_.erase(it);
      }
    return;
  }
  auto& slot = slots_[static_cast<std::size_t>(s.slot - first_slot_)];
  slot.ready = true;
  slot.close_after = close_after;
  slot.text = std::move(text);
  pump();
}

void connection::flush() {
  if (writing_ || closing_) return;
  std::size_t answers = 0;
  bool close_after = false;
  while (!slots_.empty() && slots_.front().ready) {
    auto& front = slots_.front();
    out_ += front.text;
    close_after = front.close_after;
    slots_.pop_front();
    ++first_slot_;
    ++answers;
    if (close_after) break;
  }
  if (answers == 0) return;
  writing_ = true;
  auto self = shared_from_this();
  asio::async_write(socket_, asio::buffer(out_),
                    [self, answers, close_after](const asio::error_code& ec, std::size_t) {
                      self->writing_ = false;
                      self->out_.clear();
                      self->unanswered_ -= answers;
                      if (ec || close_after) {
                        self->close_now();
                        return;
                      }
                      self->pump();
                    });
}

void connection::close_now() {
  if (closing_) return;
  closing_ = true;
  closed_.store(true);
  asio::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  svc_.using_tube(used_, -1);
  for (auto& tube : watched_) svc_.watching_tube(tube, -1);
  if (waiting_for_job_) svc_.waiting_on(watched_, -1);
  waiting_for_job_ = false;
  if (producer_) svc_.add_producer(-1);
  if (worker_counted_) svc_.add_worker(-1);
  // Give back what this connection holds, except jobs a command in flight
  // names (finish() releases those once it is answered).
  for (auto it = reserved_.begin(); it != reserved_.end();) {
    if (busy_jobs_.count(it->first) != 0) {
      ++it;
      continue;
    }
    release_now(it->first, it->second.token, "the beanstalkd connection closed");
    it = reserved_.erase(it);
  }
  svc_.leave(number_);
}

void connection::release_now(job_id id, std::uint64_t token, const char* why) {
  const std::string principal = principal_.empty() ? "beanstalk" : principal_;
  if (svc_.stopping()) {
    svc_.release_later(id, token, principal);  // service.hpp, begin_stop()
    return;
  }
  svc_.write_started();
  auto* svc = &svc_;
  svc_.eng().fail_async(id, token, why, true, principal, {},
                        [svc](result<job_record>) { svc->write_done(); });
}

}  // namespace jobsmith::server::beanstalk
