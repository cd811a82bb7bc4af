#include "apps/server/beanstalk/service.hpp"

#include <algorithm>

namespace jobsmith::server::beanstalk {

namespace {

/// Tubes whose cmd-delete / cmd-pause-tube are counted. A client naming a
/// new tube in every command must not grow the table without bound; past
/// this, counts of new tubes are not kept (stats-tube shows 0).
constexpr std::size_t max_counted_tubes = 10'000;

}  // namespace

std::string_view refusal_of(const engine_error& e) {
  switch (e.code) {
    case engine_errc::closed:
      return "DRAINING";
    case engine_errc::overloaded:
    case engine_errc::no_space:
      return "OUT_OF_MEMORY";
    case engine_errc::not_found:
    case engine_errc::retired:
    case engine_errc::stale_token:
    case engine_errc::illegal_transition:
      return "NOT_FOUND";
    case engine_errc::invalid_argument:
      return "BAD_FORMAT";
    case engine_errc::unknown_kind:
    case engine_errc::storage:
    case engine_errc::corruption:
    case engine_errc::rejected:
      return "INTERNAL_ERROR";
  }
  return "INTERNAL_ERROR";
}

service::service(asio::io_context& io, setup s)
    : io_(io),
      setup_(std::move(s)),
      holds_(
          io, *setup_.eng, [this] { write_started(); }, [this] { write_done(); }) {}

service::~service() { stop(); }

bool service::over_memory_budget() const {
  return setup_.over_memory_budget && setup_.over_memory_budget();
}

std::optional<std::uint32_t> service::admit() {
  std::lock_guard<std::mutex> guard{mu_};
  if (stopping_.load() || open_ >= setup_.opts.max_connections) return std::nullopt;
  ++open_;
  total_connections_.fetch_add(1);
  if (!free_numbers_.empty()) {
    auto n = *free_numbers_.begin();
    free_numbers_.erase(free_numbers_.begin());
    return n;
  }
  return next_number_++;
}

void service::leave(std::uint32_t number) {
  std::lock_guard<std::mutex> guard{mu_};
  if (open_ > 0) --open_;
  free_numbers_.insert(number);
}

std::uint64_t service::open_connections() const {
  std::lock_guard<std::mutex> guard{mu_};
  return open_;
}

void service::using_tube(const std::string& tube, int delta) {
  std::lock_guard<std::mutex> guard{mu_};
  auto& p = presence_[tube];
  p.using_it += static_cast<std::uint64_t>(delta);
  if (p.using_it == 0 && p.watching == 0 && p.waiting == 0) presence_.erase(tube);
}

void service::watching_tube(const std::string& tube, int delta) {
  std::lock_guard<std::mutex> guard{mu_};
  auto& p = presence_[tube];
  p.watching += static_cast<std::uint64_t>(delta);
  if (p.using_it == 0 && p.watching == 0 && p.waiting == 0) presence_.erase(tube);
}

void service::waiting_on(const std::vector<std::string>& tubes, int delta) {
  waiting_connections_.fetch_add(static_cast<std::uint64_t>(delta));
  std::lock_guard<std::mutex> guard{mu_};
  for (auto& tube : tubes) {
    auto& p = presence_[tube];
    p.waiting += static_cast<std::uint64_t>(delta);
    if (p.using_it == 0 && p.watching == 0 && p.waiting == 0) presence_.erase(tube);
  }
}

tube_presence service::presence(const std::string& tube) const {
  std::lock_guard<std::mutex> guard{mu_};
  auto it = presence_.find(tube);
  return it == presence_.end() ? tube_presence{} : it->second;
}

std::vector<std::string> service::present_tubes() const {
  std::lock_guard<std::mutex> guard{mu_};
  std::vector<std::string> out;
  for (auto& [name, p] : presence_) out.push_back(name);
  return out;
}

void service::count_tube_delete(const std::string& tube) {
  std::lock_guard<std::mutex> guard{mu_};
  auto it = tube_counts_.find(tube);
  if (it == tube_counts_.end()) {
    if (tube_counts_.size() >= max_counted_tubes) return;
    it = tube_counts_.emplace(tube, std::make_pair(0, 0)).first;
  }
  ++it->second.first;
}

std::uint64_t service::tube_deletes(const std::string& tube) const {
  std::lock_guard<std::mutex> guard{mu_};
  auto it = tube_counts_.find(tube);
  return it == tube_counts_.end() ? 0 : it->second.first;
}

std::uint64_t service::tube_pauses(const std::string& tube) const {
  std::lock_guard<std::mutex> guard{mu_};
  auto it = tube_counts_.find(tube);
  return it == tube_counts_.end() ? 0 : it->second.second;
}

void service::begin_delete(job_id id) {
  std::lock_guard<std::mutex> guard{mu_};
  deleting_.insert(id);
}

void service::end_delete(job_id id) {
  std::lock_guard<std::mutex> guard{mu_};
  deleting_.erase(id);
}

bool service::being_deleted(job_id id) const {
  std::lock_guard<std::mutex> guard{mu_};
  return deleting_.count(id) != 0;
}

result<bool> service::pause_tube(const std::string& tube, std::uint32_t seconds,
                                 const std::string& principal) {
  if (stopping_.load()) return engine_error{engine_errc::closed, "the server is stopping"};
  auto done = seconds == 0 ? eng().resume(tube, principal) : eng().pause(tube, principal);
  if (!done) return done.error();
  std::lock_guard<std::mutex> guard{mu_};
  if (auto it = tube_counts_.find(tube); it != tube_counts_.end()) {
    ++it->second.second;
  } else if (tube_counts_.size() < max_counted_tubes) {
    tube_counts_.emplace(tube, std::make_pair(0, 1));
  }
  if (seconds == 0) {
    pauses_.erase(tube);  // its timer is cancelled with it
    return true;
  }
  if (stopping_.load()) return true;
  auto& p = pauses_[tube];
  p.state.seconds = seconds;
  p.state.until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  p.generation = next_pause_generation_++;
  p.principal = principal;
  if (!p.timer) p.timer = std::make_unique<asio::steady_timer>(io_);
  p.timer->expires_at(p.state.until);
  p.timer->async_wait([this, tube, generation = p.generation](const asio::error_code& ec) {
    if (!ec) on_pause_over(tube, generation);
  });
  return true;
}

void service::on_pause_over(const std::string& tube, std::uint64_t generation) {
  std::string principal;
  {
    std::lock_guard<std::mutex> guard{mu_};
    auto it = pauses_.find(tube);
    if (stopping_.load() || it == pauses_.end() || it->second.generation != generation) return;
    principal = std::move(it->second.principal);
    pauses_.erase(it);
  }
  // resume() blocks: on a pool thread. Forced past the pool's bound: the
  // pause was admitted, its end must not be lost to a busy moment.
  pool().force_post([this, tube, principal] {
    if (!stopping_.load()) (void)eng().resume(tube, principal);
  });
}

std::optional<tube_pause> service::pause_of(const std::string& tube) const {
  std::lock_guard<std::mutex> guard{mu_};
  auto it = pauses_.find(tube);
  if (it == pauses_.end()) return std::nullopt;
  return it->second.state;
}

void service::write_done() {
  if (writes_.fetch_sub(1) == 1) {
    std::lock_guard<std::mutex> guard{drain_mu_};
    drained_.notify_all();
  }
}

bool service::drain_writes(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock{drain_mu_};
  return drained_.wait_for(lock, limit, [&] { return writes_.load() == 0; });
}

void service::poll_done() {
  if (polls_.fetch_sub(1) == 1) {
    std::lock_guard<std::mutex> guard{drain_mu_};
    drained_.notify_all();
  }
}

bool service::drain_polls(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock{drain_mu_};
  return drained_.wait_for(lock, limit, [&] { return polls_.load() == 0; });
}

void service::release_later(job_id id, std::uint64_t token, std::string principal) {
  {
    std::lock_guard<std::mutex> guard{mu_};
    if (!stopped_) {
      release_later_.push_back(later{id, token, std::move(principal)});
      return;
    }
  }
  // After stop(): nothing waits any more, release now.
  write_started();
  eng().fail_async(id, token, "the beanstalkd connection closed", true, std::move(principal), {},
                   [this](result<job_record>) { write_done(); });
}

void service::stop() {
  stopping_.store(true);
  std::vector<later> jobs;
  {
    std::lock_guard<std::mutex> guard{mu_};
    if (stopped_) return;
    stopped_ = true;
    jobs.swap(release_later_);
  }
  for (auto& j : jobs) {
    write_started();
    eng().fail_async(j.id, j.token, "the beanstalkd connection closed", true, j.principal, {},
                     [this](result<job_record>) { write_done(); });
  }
  holds_.stop();
  std::map<std::string, pause_entry> pauses;
  {
    std::lock_guard<std::mutex> guard{mu_};
    pauses.swap(pauses_);
  }
  for (auto& [tube, p] : pauses)
    if (p.timer) p.timer->cancel();
}

}  // namespace jobsmith::server::beanstalk
