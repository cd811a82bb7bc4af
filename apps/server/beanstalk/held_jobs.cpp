#include "apps/server/beanstalk/held_jobs.hpp"

#include <algorithm>
#include <optional>

#include "actors/clock.hpp"

namespace jobsmith::server::beanstalk {

namespace {

/// Renew well before the lease ends: every third of it, but not more often
/// than every 100 ms.
std::chrono::milliseconds renew_every(millis ttr_ms) {
  return std::chrono::milliseconds(std::max<millis>(100, ttr_ms / 3));
}

}  // namespace

held_jobs::held_jobs(asio::io_context& io, engine& eng, std::function<void()> write_started,
                     std::function<void()> write_done)
    : io_(io),
      eng_(eng),
      write_started_(std::move(write_started)),
      write_done_(std::move(write_done)) {}

held_jobs::~held_jobs() {
  std::lock_guard<std::mutex> guard{mu_};
  held_.clear();  // timers cancel; their handlers find nothing
}

void held_jobs::hold(job_id id, std::uint64_t token, std::string tube, millis ttr_ms,
                     std::uint32_t delay_s, std::string principal, engine::callback<bool> done) {
  std::uint64_t generation = 0;
  {
    std::unique_lock<std::mutex> lock{mu_};
    if (stopped_) {
      lock.unlock();
      done(engine_error{engine_errc::closed, "the server is stopping"});
      return;
    }
    auto& e = held_[id];
    e.token = token;
    e.generation = generation = next_generation_++;
    e.tube = std::move(tube);
    e.principal = principal;
    e.ttr_ms = std::max<millis>(1, ttr_ms);
    e.delay_s = delay_s;
    e.due = steady::now() + std::chrono::seconds(delay_s);
    e.due_wall = system_wall_now() + static_cast<millis>(delay_s) * 1000;
  }
  heartbeat_request hb;
  hb.id = id;
  hb.lease_token = token;
  hb.principal = principal;
  hb.detail = "released with a delay of " + std::to_string(delay_s) + " s";
  eng_.heartbeat_async(std::move(hb),
                       [this, id, generation, done = std::move(done)](result<heartbeat_reply> r) {
                         {
                           std::lock_guard<std::mutex> guard{mu_};
                           auto it = held_.find(id);
                           bool ours = it != held_.end() && it->second.generation == generation;
                           if (ours && r.ok() && !stopped_) {
                             arm(id, it->second);
                           } else if (ours && !r.ok()) {
                             held_.erase(it);
                           }
                           // stopped_: stop() has released it already (or will: it is in held_).
                         }
                         if (r.ok())
                           done(true);
                         else
                           done(r.error());
                       });
}

void held_jobs::arm(job_id id, entry& e) {
  if (!e.timer) e.timer = std::make_unique<asio::steady_timer>(io_);
  auto at = std::min(e.due, steady::now() + renew_every(e.ttr_ms));
  e.timer->expires_at(at);
  auto generation = e.generation;
  e.timer->async_wait([this, id, generation](const asio::error_code& ec) {
    if (!ec) on_timer(id, generation);
  });
}

void held_jobs::on_timer(job_id id, std::uint64_t generation) {
  std::optional<heartbeat_request> renew;
  std::uint64_t token = 0;
  std::string principal;
  std::uint32_t delay_s = 0;
  {
    std::lock_guard<std::mutex> guard{mu_};
    auto it = held_.find(id);
    if (stopped_ || it == held_.end() || it->second.generation != generation) return;
    auto& e = it->second;
    if (steady::now() < e.due) {
      renew.emplace();
      renew->id = id;
      renew->lease_token = e.token;
      renew->principal = e.principal;
      arm(id, e);
    } else {
      token = e.token;
      principal = std::move(e.principal);
      delay_s = e.delay_s;
      held_.erase(it);
    }
  }
  // Engine calls outside the mutex: a refusal may be answered at once, on
  // this thread, and its callback takes the mutex.
  if (!renew) {
    release(id, token, std::move(principal), delay_s);
    return;
  }
  // A refusal (cancelled over HTTP, reclaimed) ends the hold.
  eng_.heartbeat_async(std::move(*renew), [this, id, generation](result<heartbeat_reply> r) {
    if (r.ok() || r.error().code == engine_errc::overloaded) return;
    std::lock_guard<std::mutex> guard{mu_};
    auto again = held_.find(id);
    if (again != held_.end() && again->second.generation == generation) held_.erase(again);
  });
}

void held_jobs::release(job_id id, std::uint64_t token, std::string principal,
                        std::uint32_t delay_s) {
  write_started_();
  eng_.fail_async(id, token, "released with a delay of " + std::to_string(delay_s) + " s", true,
                  std::move(principal), {}, [this](result<job_record>) { write_done_(); });
}

std::optional<std::uint64_t> held_jobs::take(job_id id) {
  std::lock_guard<std::mutex> guard{mu_};
  auto it = held_.find(id);
  if (it == held_.end()) return std::nullopt;
  auto token = it->second.token;
  held_.erase(it);
  return token;
}

std::optional<held_jobs::view> held_jobs::find(job_id id) const {
  std::lock_guard<std::mutex> guard{mu_};
  auto it = held_.find(id);
  if (it == held_.end()) return std::nullopt;
  return view{id, it->second.tube, it->second.delay_s, it->second.due_wall, it->second.due};
}

std::vector<held_jobs::view> held_jobs::in_tube(const std::string& tube, std::size_t limit) const {
  std::vector<view> out;
  {
    std::lock_guard<std::mutex> guard{mu_};
    for (auto& [id, e] : held_)
      if (e.tube == tube) out.push_back(view{id, e.tube, e.delay_s, e.due_wall, e.due});
  }
  std::sort(out.begin(), out.end(), [](const view& a, const view& b) {
    return a.due != b.due ? a.due < b.due : a.id < b.id;
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

std::size_t held_jobs::count_in(const std::string& tube) const {
  std::lock_guard<std::mutex> guard{mu_};
  return static_cast<std::size_t>(
      std::count_if(held_.begin(), held_.end(), [&](auto& kv) { return kv.second.tube == tube; }));
}

std::size_t held_jobs::size() const {
  std::lock_guard<std::mutex> guard{mu_};
  return held_.size();
}

void held_jobs::stop() {
  std::map<job_id, entry> all;
  {
    std::lock_guard<std::mutex> guard{mu_};
    if (stopped_) return;
    stopped_ = true;
    all.swap(held_);
  }
  for (auto& [id, e] : all) {
    if (e.timer) e.timer->cancel();
    release(id, e.token, e.principal, e.delay_s);
  }
}

}  // namespace jobsmith::server::beanstalk
