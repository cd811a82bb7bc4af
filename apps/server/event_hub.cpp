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
  // Subscribe first, then fold the log: an event committed in between
  // arrives through the subscription and is skipped or gap-filled there.
  sub_ = eng_.subscribe([this](const event& ev) { on_committed(ev); });
  std::lock_guard<std::mutex> guard{mu_};
  auto head = eng_.head();
  auto res = eng_.read_events(seen_ + 1, head, [&](const event& ev) {
    fold(ev);
    return true;
  });
  if (!res) return "reading the log: " + res.error().to_string();
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

std::uint32_t event_hub::queue_slot(const std::string& name) {
  auto [it, added] = queue_index_.try_emplace(name, static_cast<std::uint32_t>(queues_.size()));
  if (added) queues_.push_back(queue_tally{name, {}, {}});
  return it->second;
}

void event_hub::set_state(job_tally& t, job_state s, millis due) {
  auto& q = queues_[t.queue];
  --q.stored[static_cast<std::size_t>(t.state)];
  if (t.state == job_state::scheduled) {
    auto it = q.due.find(t.due_at);
    if (it != q.due.end()) q.due.erase(it);
  }
  t.state = s;
  t.due_at = due;
  ++q.stored[static_cast<std::size_t>(s)];
  if (s == job_state::scheduled) q.due.insert(due);
}

// Mirrors apply() of events/job_state.cpp for the fields kept here.
void event_hub::fold(const event& ev) {
  seen_ = ev.seq;
  ++totals_.events;
  if (ev.job == 0) {
    if (auto* p = std::get_if<queue_paused>(&ev.body)) queue_slot(p->queue);
    if (auto* c = std::get_if<queue_configured>(&ev.body)) queue_slot(c->queue);
    return;
  }
  if (auto* s = std::get_if<job_submitted>(&ev.body)) {
    if (jobs_.count(ev.job)) return;
    job_tally t;
    t.queue = queue_slot(s->queue);
    t.review_required = s->review_required;
    t.due_at = std::max(s->run_at, ev.time);
    auto& q = queues_[t.queue];
    ++q.stored[static_cast<std::size_t>(job_state::scheduled)];
    q.due.insert(t.due_at);
    jobs_.emplace(ev.job, t);
    ++totals_.submitted;
    return;
  }
  auto it = jobs_.find(ev.job);
  if (it == jobs_.end()) return;
  auto& t = it->second;
  auto ended = [&](millis next_run_at) {
    run_seconds_.observe(static_cast<double>(ev.time - t.started_at) / 1000.0);
    if (next_run_at > 0)
      set_state(t, job_state::scheduled, next_run_at);
    else
      set_state(t, job_state::discarded, 0);
  };
  std::visit(
      [&](const auto& b) {
        using B = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<B, job_started>) {
          if (t.state != job_state::scheduled) return;
          ++totals_.started;
          t.started_at = ev.time;
          set_state(t, job_state::running, 0);
        } else if constexpr (std::is_same_v<B, job_succeeded>) {
          if (t.state != job_state::running) return;
          ++totals_.succeeded;
          run_seconds_.observe(static_cast<double>(ev.time - t.started_at) / 1000.0);
          set_state(t, t.review_required ? job_state::pending_review : job_state::succeeded, 0);
        } else if constexpr (std::is_same_v<B, job_failed>) {
          if (t.state != job_state::running) return;
          ++totals_.failed;
          ended(b.next_run_at);
        } else if constexpr (std::is_same_v<B, job_reclaimed>) {
          if (t.state != job_state::running) return;
          ++totals_.reclaimed;
          ended(b.next_run_at);
        } else if constexpr (std::is_same_v<B, job_discarded>) {
          if (!is_terminal(t.state)) set_state(t, job_state::discarded, 0);
        } else if constexpr (std::is_same_v<B, job_cancelled>) {
          if (is_terminal(t.state)) return;
          ++totals_.cancelled;
          set_state(t, job_state::cancelled, 0);
        } else if constexpr (std::is_same_v<B, job_reviewed>) {
          if (t.state == job_state::pending_review)
            set_state(t, b.accepted ? job_state::accepted : job_state::declined, 0);
        } else if constexpr (std::is_same_v<B, job_requested>) {
          if (b.what == request_kind::run_now) {
            if (t.state == job_state::scheduled && ev.time < t.due_at)
              set_state(t, job_state::scheduled, ev.time);
          } else if (t.state == job_state::discarded || t.state == job_state::expired ||
                     t.state == job_state::declined || t.state == job_state::cancelled) {
            set_state(t, job_state::scheduled, ev.time);
          }
        } else if constexpr (std::is_same_v<B, job_expired>) {
          if (t.state != job_state::scheduled) return;
          ++totals_.expired;
          set_state(t, job_state::expired, 0);
        }
      },
      ev.body);
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
      auto it = jobs_.find(ev.job);
      if (it == jobs_.end() || queues_[it->second.queue].name != f.queue) return false;
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
  std::string text;  // formatted once, only when some stream wants it
  for (std::size_t i = 0; i < streams_.size();) {
    auto& s = streams_[i];
    if (ev.seq < s.from || !matches_locked(s.filter, ev)) {
      ++i;
      continue;
    }
    if (text.empty()) text = sse_text(ev);
    if (s.sink->send(text)) {
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
        if (matches_locked(filter, ev)) text += sse_text(ev);
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

std::vector<queue_counts> event_hub::counts_by_queue(millis now) const {
  std::lock_guard<std::mutex> guard{mu_};
  std::vector<queue_counts> out;
  out.reserve(queues_.size());
  for (auto& q : queues_) {
    queue_counts c;
    c.name = q.name;
    for (std::size_t i = 0; i < job_state_count; ++i) c.by_state[i] = q.stored[i];
    // A stored `scheduled` job is `queued` once due (effective_state()).
    auto due = static_cast<std::uint64_t>(std::distance(q.due.begin(), q.due.upper_bound(now)));
    c.by_state[static_cast<std::size_t>(job_state::scheduled)] -= due;
    c.by_state[static_cast<std::size_t>(job_state::queued)] += due;
    out.push_back(std::move(c));
  }
  return out;
}

event_totals event_hub::totals() const {
  std::lock_guard<std::mutex> guard{mu_};
  return totals_;
}

sequence_t event_hub::seen() const {
  std::lock_guard<std::mutex> guard{mu_};
  return seen_;
}

}  // namespace jobsmith::server
