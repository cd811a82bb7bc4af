#include "apps/server/event_hub.hpp"

#include <algorithm>
#include <cmath>

#include "events/json.hpp"

namespace jobsmith::server {

// -- histogram ------------------------------------------------------------------------

void histogram::observe(double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  std::size_t i = 0;
  while (i < bounds.size() && seconds > bounds[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<std::uint64_t>(std::llround(seconds * 1e6)),
                        std::memory_order_relaxed);
}

void histogram::write(std::string& out, const std::string& name, const std::string& help) const {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  std::uint64_t cumulative = 0;
  char buf[64];
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    std::snprintf(buf, sizeof(buf), "%g", bounds[i]);
    out += name + "_bucket{le=\"" + buf + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += counts_[bounds.size()].load(std::memory_order_relaxed);
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  std::snprintf(buf, sizeof(buf), "%.6f", sum_micros_.load(std::memory_order_relaxed) / 1e6);
  out += name + "_sum " + buf + "\n";
  out += name + "_count " + std::to_string(cumulative) + "\n";
}

// -- the hub ----------------------------------------------------------------------------

event_hub::event_hub(engine& eng) : eng_(eng) {}

event_hub::~event_hub() { stop(); }

std::string event_hub::start() {
  // The head first, then the subscription: what commits in between arrives
  // with a gap, which on_committed reads from the log.
  {
    std::lock_guard<std::mutex> guard{mu_};
    seen_ = eng_.head();
  }
  // On the engine's threads: on_committed never waits (a stream's sink
  // queues its bytes, or ends a stream that lags), and a thread of its own
  // would be woken for every commit.
  sub_ = eng_.subscribe([this](const event& ev) { on_committed(ev); },
                        engine::subscriber_thread::engine);
  return {};
}

void event_hub::stop() {
  sub_.cancel();
  std::vector<live_stream> ending;
  {
    std::lock_guard<std::mutex> guard{mu_};
    stopped_ = true;
    ending.swap(streams_);
  }
  for (auto& s : ending) s.sink->end();
}

void event_hub::on_committed(const event& ev) {
  std::lock_guard<std::mutex> guard{mu_};
  if (ev.seq <= seen_) return;
  if (ev.seq > seen_ + 1) {
    // Committed before the subscription reached the journal: read the gap.
    auto res = eng_.read_events(seen_ + 1, ev.seq - 1, [&](const event& missed) {
      fold(missed);
      deliver(missed);
      return true;
    });
    (void)res;  // a log that cannot be read fails the streams' own catch-up loudly
  }
  fold(ev);
  deliver(ev);
}

void event_hub::remember_queue(job_id id, const std::string& queue) const {
  if (job_queue_.size() >= max_remembered) job_queue_.clear();
  auto [it, added] = queue_index_.try_emplace(queue, static_cast<std::uint32_t>(queue_names_.size()));
  if (added) queue_names_.push_back(queue);
  job_queue_[id] = it->second;
}

const std::string& event_hub::queue_of(job_id id) const {
  static const std::string unknown;
  if (auto it = job_queue_.find(id); it != job_queue_.end()) return queue_names_[it->second];
  auto view = eng_.get(id);
  if (!view) return unknown;
  remember_queue(id, view->job.spec.queue);
  return queue_names_[job_queue_.at(id)];
}

void event_hub::fold(const event& ev) {
  seen_ = ev.seq;
  if (ev.job == 0) return;
  auto ended = [&] {
    auto it = started_.find(ev.job);
    if (it == started_.end()) return;  // started before this server did
    run_seconds_.observe(static_cast<double>(ev.time - it->second) / 1000.0);
    started_.erase(it);
  };
  std::visit(
      [&](const auto& b) {
        using B = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<B, job_submitted>) {
          remember_queue(ev.job, b.queue);
        } else if constexpr (std::is_same_v<B, job_started>) {
          started_[ev.job] = ev.time;
        } else if constexpr (std::is_same_v<B, job_succeeded> || std::is_same_v<B, job_failed> ||
                             std::is_same_v<B, job_reclaimed>) {
          ended();
        } else if constexpr (std::is_same_v<B, job_cancelled> || std::is_same_v<B, job_discarded>) {
          started_.erase(ev.job);
        }
      },
      ev.body);
}

event visible_to(const event& ev, const token_visibility& who) {
  event out = ev;
  if (who.hides(ev)) std::get<job_started>(out.body).lease_token = 0;
  return out;
}

std::string event_hub::sse_text(const event& ev) {
  std::string out = "id: " + std::to_string(ev.seq) + "\nevent: ";
  out += type_name(ev.body);
  out += "\ndata: ";
  out += to_json(ev).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out += "\n\n";
  return out;
}

bool event_hub::matches_locked(const stream_filter& f, const event& ev) const {
  if (f.job != 0 && ev.job != f.job) return false;
  if (!f.types.empty() &&
      std::find(f.types.begin(), f.types.end(), static_cast<int>(ev.body.index())) == f.types.end())
    return false;
  if (!f.queue.empty()) {
    if (ev.job != 0) {
      if (queue_of(ev.job) != f.queue) return false;
    } else {
      const std::string* q = nullptr;
      if (auto* p = std::get_if<queue_paused>(&ev.body)) q = &p->queue;
      if (auto* r = std::get_if<queue_resumed>(&ev.body)) q = &r->queue;
      if (auto* c = std::get_if<queue_configured>(&ev.body)) q = &c->queue;
      if (!q || *q != f.queue) return false;
    }
  }
  return true;
}

bool event_hub::matches(const stream_filter& f, const event& ev) const {
  std::lock_guard<std::mutex> guard{mu_};
  return matches_locked(f, ev);
}

void event_hub::deliver(const event& ev) {
  if (streams_.empty()) return;
  // Formatted once, only when some stream wants it; a job.started twice at
  // most (with and without its lease token).
  std::string text, text_without_token;
  for (std::size_t i = 0; i < streams_.size();) {
    auto& s = streams_[i];
    if (ev.seq < s.from || !matches_locked(s.filter, ev)) {
      ++i;
      continue;
    }
    bool hidden = s.filter.tokens.hides(ev);
    auto& out = hidden ? text_without_token : text;
    if (out.empty()) out = sse_text(hidden ? visible_to(ev, s.filter.tokens) : ev);
    if (s.sink->send(out)) {
      ++i;
      continue;
    }
    s.sink->end();
    streams_.erase(streams_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

bool event_hub::add_stream(std::shared_ptr<stream_sink> sink, stream_filter filter,
                           sequence_t from) {
  sequence_t next;
  {
    std::lock_guard<std::mutex> guard{mu_};
    if (stopped_) {
      sink->end();
      return false;
    }
    // "New events only" means after the log's head now; the hub itself may
    // still be behind the head (its events arrive on another thread).
    next = from == 0 ? eng_.head() + 1 : from;
  }
  constexpr sequence_t page = 512;
  for (;;) {
    sequence_t upto;
    {
      std::lock_guard<std::mutex> guard{mu_};
      if (stopped_) {
        sink->end();
        return false;
      }
      if (next > seen_) {
        // Caught up: from here on the hub delivers, in order, under mu_.
        streams_.push_back(live_stream{std::move(sink), std::move(filter), next});
        return true;
      }
      upto = std::min(seen_, next + page - 1);
    }
    // Read outside the lock; the queue filter needs the tally, so the page
    // is matched under the lock afterwards.
    std::vector<event> events;
    auto res = eng_.read_events(next, upto, [&](const event& ev) {
      events.push_back(ev);
      return true;
    });
    if (!res) {
      sink->send(": error reading the log: " + res.error().to_string() + "\n\n");
      sink->end();
      return false;
    }
    std::string text;
    {
      std::lock_guard<std::mutex> guard{mu_};
      for (auto& ev : events)
        if (matches_locked(filter, ev))
          text += sse_text(filter.tokens.hides(ev) ? visible_to(ev, filter.tokens) : ev);
    }
    if (!text.empty() && (!sink->wait_writable() || !sink->send(std::move(text)))) {
      sink->end();
      return false;
    }
    next = upto + 1;
  }
}

void event_hub::keepalive() {
  std::lock_guard<std::mutex> guard{mu_};
  for (std::size_t i = 0; i < streams_.size();) {
    if (streams_[i].sink->send(": keepalive\n\n")) {
      ++i;
      continue;
    }
    streams_[i].sink->end();
    streams_.erase(streams_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

std::size_t event_hub::stream_count() const {
  std::lock_guard<std::mutex> guard{mu_};
  return streams_.size();
}

std::vector<queue_row> event_hub::counts_by_queue() const {
  auto rows = eng_.queue_counts();
  return rows ? std::move(*rows) : std::vector<queue_row>{};
}

event_counts event_hub::totals() const {
  auto t = eng_.totals();
  return t ? *t : event_counts{};
}

sequence_t event_hub::seen() const {
  std::lock_guard<std::mutex> guard{mu_};
  return seen_;
}

}  // namespace jobsmith::server
