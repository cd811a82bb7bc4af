#include "projections/queue_view.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <map>
#include <thread>

#include "events/binary_io.hpp"
#include "events/time_text.hpp"

namespace jobsmith {

std::uint32_t name_table::intern(std::string_view name) {
  if (auto i = ids_.find(name); i != ids_.end()) return i->second;
  auto id = static_cast<std::uint32_t>(names_.size());
  names_.emplace_back(name);
  ids_.emplace(names_.back(), id);
  return id;
}

std::optional<std::uint32_t> name_table::find(std::string_view name) const {
  if (auto i = ids_.find(name); i != ids_.end()) return i->second;
  return std::nullopt;
}

namespace {

const std::vector<std::pair<std::uint32_t, lock_mode>> no_resources;

// The rules of events/job_state.cpp's apply(), on a row. Kept in the same
// order as there; the test compares both after every event.
void end_attempt(job_row& row, attempt_end how, millis next_run_at, millis time) {
  row.last_end = how;
  if (next_run_at > 0) {
    row.state = job_state::scheduled;
    row.due_at = next_run_at;
  } else {
    row.state = job_state::discarded;
    row.finished_at = time;
  }
}

// When a job that just ended retires under `p`; 0 = kept.
millis retire_time(const job_row& r, const retention_policy& p) {
  const bool success = r.state == job_state::succeeded || r.state == job_state::accepted;
  const millis keep = success ? p.succeeded : p.failed;
  return keep > 0 ? r.finished_at + keep : 0;
}

}  // namespace

const job_row* queue_view::find(job_id id) const {
  const job_row* row = rows_.find(id);
  return row != nullptr && row->id != 0 ? row : nullptr;
}

const std::vector<std::pair<std::uint32_t, lock_mode>>& queue_view::resources_of(
    const job_row& row) const {
  return row.resources == 0 ? no_resources : resource_sets_[row.resources - 1];
}

void apply_kind_event(kind_table& kinds, const event& ev) {
  auto k = std::get_if<kind_configured>(&ev.body);
  if (!k) return;
  if (k->on_accept.empty() && k->schema.empty())
    kinds.erase(k->kind);
  else
    kinds.insert_or_assign(k->kind, *k);
}

void queue_view::apply(const event& ev) {
  head_ = ev.seq;
  head_time_ = ev.time;
  ++totals_.events;
  if (ev.job == 0) {
    if (auto p = std::get_if<queue_paused>(&ev.body)) {
      settings_[names_.intern(p->queue)].paused = true;
    } else if (auto r = std::get_if<queue_resumed>(&ev.body)) {
      settings_[names_.intern(r->queue)].paused = false;
    } else if (auto c = std::get_if<queue_configured>(&ev.body)) {
      settings_[names_.intern(c->queue)].concurrency = c->concurrency;
    } else if (auto sc = std::get_if<schedule_created>(&ev.body)) {
      schedules_[sc->id] = schedule_row{sc->id, 0, false, 0};
    } else if (auto sd = std::get_if<schedule_deleted>(&ev.body)) {
      schedules_.erase(sd->id);
    } else if (auto rt = std::get_if<queue_retention>(&ev.body)) {
      apply_retention(*rt, ev.time);
    } else {
      apply_kind_event(kinds_, ev);
    }
    return;
  }
  // A retired job's events change nothing, whether its row was let go or
  // not (an id let go gets a row again only from its job.submitted: one
  // that was never submitted).
  if (rows_.released(ev.job) && !std::holds_alternative<job_submitted>(ev.body)) return;
  job_row* row = &rows_.get(ev.job);
  if (row->id != 0 && retired(*row, ev.time)) return;
  const bool was_live = row->id != 0 && !is_terminal(row->state);
  ++row->event_count;
  row->last_seq = ev.seq;
  std::visit(
      [&](const auto& b) {
        using body_t = std::decay_t<decltype(b)>;
        job_row& r = *row;
        if constexpr (std::is_same_v<body_t, job_submitted>) {
          if (r.id != 0 && r.event_count != 1) return;
          if (r.id == 0) ++job_count_;
          ++totals_.submitted;
          r.id = ev.job;
          r.state = job_state::scheduled;
          r.review_required = b.review_required;
          r.priority = b.priority;
          r.queue = names_.intern(b.queue);
          r.kind = names_.intern(b.kind);
          r.submitted_at = ev.time;
          r.due_at = b.run_at > 0 ? b.run_at : ev.time;
          r.attempts = 0;
          r.max_attempts = b.retry.max_attempts;
          r.retry_budget = b.retry.max_attempts;
          r.submitted_seq = ev.seq;
          r.schedule = b.schedule;
          if (b.schedule != 0) {
            if (auto s = schedules_.find(b.schedule); s != schedules_.end()) {
              s->second.last_run = ev.job;
              s->second.last_run_ended = false;
            }
          }
          if (!b.resources.empty()) {
            std::vector<std::pair<std::uint32_t, lock_mode>> set;
            set.reserve(b.resources.size());
            for (const auto& claim : b.resources)
              set.emplace_back(names_.intern(claim.name), claim.mode);
            auto [at, added] = resource_set_ids_.try_emplace(
                set, static_cast<std::uint32_t>(resource_sets_.size() + 1));
            if (added) resource_sets_.push_back(std::move(set));
            r.resources = at->second;
          }
        } else if constexpr (std::is_same_v<body_t, job_started>) {
          if (r.state != job_state::scheduled) return;
          ++totals_.started;
          r.state = job_state::running;
          r.requested_at = 0;
          r.attempts = b.attempt;
          r.worker = names_.intern(b.worker);
          r.lease_token = b.lease_token;
          r.started_at = ev.time;
          r.last_end = attempt_end::none;
        } else if constexpr (std::is_same_v<body_t, job_succeeded>) {
          if (r.state != job_state::running) return;
          ++totals_.succeeded;
          r.last_end = attempt_end::succeeded;
          if (r.review_required) {
            r.state = job_state::pending_review;
          } else {
            r.state = job_state::succeeded;
            r.finished_at = ev.time;
          }
        } else if constexpr (std::is_same_v<body_t, job_failed>) {
          if (r.state != job_state::running) return;
          ++totals_.failed;
          r.last_error = b.error;
          end_attempt(r, attempt_end::failed, b.next_run_at, ev.time);
        } else if constexpr (std::is_same_v<body_t, job_reclaimed>) {
          if (r.state != job_state::running) return;
          ++totals_.reclaimed;
          r.last_error = "reclaimed: " + b.reason;
          end_attempt(r, attempt_end::reclaimed, b.next_run_at, ev.time);
        } else if constexpr (std::is_same_v<body_t, job_discarded>) {
          if (is_terminal(r.state)) return;
          if (r.state == job_state::running) r.last_end = attempt_end::discarded;
          r.requested_at = 0;
          r.state = job_state::discarded;
          r.finished_at = ev.time;
          if (!b.reason.empty()) r.last_error = b.reason;
        } else if constexpr (std::is_same_v<body_t, job_cancelled>) {
          if (is_terminal(r.state)) return;
          ++totals_.cancelled;
          if (r.state == job_state::running) r.last_end = attempt_end::cancelled;
          r.requested_at = 0;
          r.state = job_state::cancelled;
          r.finished_at = ev.time;
        } else if constexpr (std::is_same_v<body_t, job_reviewed>) {
          if (r.state != job_state::pending_review) return;
          r.state = b.accepted ? job_state::accepted : job_state::declined;
          r.finished_at = ev.time;
        } else if constexpr (std::is_same_v<body_t, job_requested>) {
          if (b.what == request_kind::run_now) {
            if (r.state != job_state::scheduled) return;
            r.due_at = std::min(r.due_at, ev.time);
            if (r.requested_at == 0) r.requested_at = std::max<millis>(1, ev.time);
            return;
          }
          switch (r.state) {
            case job_state::discarded:
            case job_state::expired:
            case job_state::declined:
            case job_state::cancelled:
              r.state = job_state::scheduled;
              r.due_at = ev.time;
              r.max_attempts = r.attempts + r.retry_budget;
              r.finished_at = 0;
              return;
            default:
              return;
          }
        } else if constexpr (std::is_same_v<body_t, job_expired>) {
          if (r.state != job_state::scheduled) return;
          ++totals_.expired;
          r.requested_at = 0;
          r.state = job_state::expired;
          r.finished_at = ev.time;
        }
        // job.progress changes nothing the view keeps; queue, schedule and
        // engine events carry no job.
      },
      ev.body);
  // Retirement: fixed when the job ends, undone when a retry revives it.
  if (row->id != 0) {
    if (!is_terminal(row->state))
      row->retire_at = 0;
    else if (was_live)
      row->retire_at = retire_time(*row, policy_of(row->queue));
  }
  // A schedule's run that just ended: the schedule's next run is due, and
  // its end moves the failure streak (events/job_state.hpp, streak_after).
  if (was_live && is_terminal(row->state) && row->schedule != 0) {
    auto s = schedules_.find(row->schedule);
    if (s != schedules_.end() && s->second.last_run == row->id) {
      s->second.last_run_ended = true;
      s->second.consecutive_failures = streak_after(s->second.consecutive_failures, row->state);
    }
  }
}

retention_policy queue_view::policy_of(std::uint32_t queue) const {
  if (auto i = retention_.find(queue); i != retention_.end()) return i->second;
  return default_retention();
}

retention_policy queue_view::default_retention() const {
  auto i = retention_.find(0);
  return i != retention_.end() ? i->second : retention_policy{};
}

retention_policy queue_view::retention_for(std::string_view queue) const {
  auto id = names_.find(queue);
  return id ? policy_of(*id) : default_retention();
}

millis queue_view::retired_at(job_id id, millis now) const {
  if (rows_.released(id)) return id <= rows_.max_id() ? -1 : 0;
  const job_row* r = find(id);
  return r != nullptr && retired(*r, now) ? r->retire_at : 0;
}

std::size_t queue_view::release_retired(millis before) {
  if (retention_.empty()) return 0;  // no job was ever given a retirement time
  return rows_.release([&](const job_row& r) { return retired(r, before); },
                       [&](const job_row& r) { ++released_[r.queue]; });
}

std::uint64_t queue_view::released() const {
  std::uint64_t n = 0;
  for (const auto& [queue, count] : released_) n += count;
  return n;
}

// A new setting applies to the finished jobs it concerns that are not
// retired at its time: they retire by the new rule, but not before the
// setting was made (a shorter retention takes effect from now on, it does
// not rewrite what was shown before), and a retired job stays retired.
void queue_view::apply_retention(const queue_retention& setting, millis time) {
  const std::uint32_t queue = names_.intern(setting.queue);
  retention_[queue] = retention_policy{setting.succeeded, setting.failed};
  auto update = [&](job_row& r) {
    if (r.id == 0 || !is_terminal(r.state) || retired(r, time)) return;
    if (queue != 0 ? r.queue != queue : retention_.contains(r.queue)) return;
    const millis at = retire_time(r, policy_of(r.queue));
    r.retire_at = at == 0 ? 0 : std::max(at, time);
  };
  rows_.for_each(update);
}

std::vector<job_id> queue_view::match(const job_filter& filter, millis now) const {
  std::vector<job_id> out;
  if (filter.limit == 0) return out;
  auto contains = [](const std::vector<job_state>& v, job_state s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  // Names the view never saw match no job; compare interned ids, not text.
  std::uint32_t queue = 0, kind = 0;
  if (!filter.queue.empty()) {
    auto id = names_.find(filter.queue);
    if (!id) return out;
    queue = *id;
  }
  if (!filter.kind.empty()) {
    auto id = names_.find(filter.kind);
    if (!id) return out;
    kind = *id;
  }
  auto matches = [&](const job_row& r) {
    if (retired(r, now)) return false;
    job_state state = r.state;
    if (state == job_state::scheduled && r.due_at <= now) state = job_state::queued;
    if (!filter.states_in.empty() && !contains(filter.states_in, state)) return false;
    if (contains(filter.states_not_in, state)) return false;
    if (queue != 0 && r.queue != queue) return false;
    if (kind != 0 && r.kind != kind) return false;
    if (filter.submitted_from && r.submitted_at < filter.submitted_from) return false;
    if (filter.submitted_to && r.submitted_at > filter.submitted_to) return false;
    if ((filter.finished_from || filter.finished_to) && r.finished_at == 0) return false;
    if (filter.finished_from && r.finished_at < filter.finished_from) return false;
    if (filter.finished_to && r.finished_at > filter.finished_to) return false;
    if (!filter.error_contains.empty() &&
        r.last_error.find(filter.error_contains) == std::string::npos)
      return false;
    if (filter.attempts_min && r.attempts < *filter.attempts_min) return false;
    if (filter.attempts_max && r.attempts > *filter.attempts_max) return false;
    return true;
  };
  rows_.visit(filter.after, [&](const job_row& r) {
    if (matches(r)) out.push_back(r.id);
    return out.size() < filter.limit;
  });
  return out;
}

std::array<std::uint64_t, job_state_count> queue_view::counts(millis now) const {
  std::array<std::uint64_t, job_state_count> out{};
  rows_.visit(0, [&](const job_row& r) {
    if (retired(r, now)) return true;
    job_state s = r.state;
    if (s == job_state::scheduled && r.due_at <= now) s = job_state::queued;
    ++out[static_cast<std::size_t>(s)];
    return true;
  });
  return out;
}

std::vector<queue_row> queue_view::queues(millis now) const {
  std::map<std::string, queue_row> by_name;
  rows_.visit(0, [&](const job_row& r) {
    auto& q = by_name[names_.name(r.queue)];
    if (retired(r, now)) {
      ++q.retired;
      return true;
    }
    job_state s = r.state;
    if (s == job_state::scheduled && r.due_at <= now) s = job_state::queued;
    ++q.by_state[static_cast<std::size_t>(s)];
    return true;
  });
  for (const auto& [name_id, n] : released_) by_name[names_.name(name_id)].retired += n;
  for (const auto& [name_id, s] : settings_) {
    auto& q = by_name[names_.name(name_id)];
    q.paused = s.paused;
    q.concurrency = s.concurrency;
  }
  for (const auto& [name_id, p] : retention_)
    if (name_id != 0) by_name[names_.name(name_id)];  // a queue with a setting exists
  for (auto& [name, q] : by_name) q.retention = retention_for(name);
  std::vector<queue_row> out;
  out.reserve(by_name.size());
  for (auto& [name, q] : by_name) {
    q.name = name;
    out.push_back(std::move(q));
  }
  return out;
}

std::vector<const job_row*> queue_view::running() const {
  std::vector<const job_row*> out;
  rows_.visit(0, [&](const job_row& r) {
    if (r.state == job_state::running) out.push_back(&r);
    return true;
  });
  return out;
}

std::vector<const job_row*> queue_view::ready(millis now) const {
  std::vector<const job_row*> out;
  rows_.visit(0, [&](const job_row& r) {
    if (r.state == job_state::scheduled && r.due_at <= now) out.push_back(&r);
    return true;
  });
  std::sort(out.begin(), out.end(), [](const job_row* a, const job_row* b) {
    // Requested first, earliest request first (actors/ready_index.hpp).
    if ((a->requested_at == 0) != (b->requested_at == 0)) return a->requested_at != 0;
    if (a->requested_at != b->requested_at) return a->requested_at < b->requested_at;
    if (a->priority != b->priority) return a->priority > b->priority;
    if (a->due_at != b->due_at) return a->due_at < b->due_at;
    return a->submitted_seq < b->submitted_seq;
  });
  return out;
}

std::vector<resource_row> queue_view::resources(millis now) const {
  std::map<std::string, resource_row> by_name;
  for (const job_row* r : running())
    for (auto [name, mode] : resources_of(*r)) by_name[names_.name(name)].holders.emplace_back(r->id, mode);
  for (const job_row* r : ready(now))
    for (auto [name, mode] : resources_of(*r)) by_name[names_.name(name)].waiters.emplace_back(r->id, mode);
  std::vector<resource_row> out;
  for (auto& [name, row] : by_name) {
    row.name = name;
    out.push_back(std::move(row));
  }
  return out;
}

std::string queue_view::explain(job_id id, millis now) const {
  const job_row* r = find(id);
  if (r == nullptr) return "no such job";
  if (retired(*r, now)) return "retired at " + format_time(r->retire_at);
  const std::string& queue = names_.name(r->queue);
  switch (r->state) {
    case job_state::running:
      return "running on " + names_.name(r->worker) + " (attempt " + std::to_string(r->attempts) +
             ")";
    case job_state::pending_review:
      return "waiting for review";
    case job_state::scheduled:
      if (r->due_at > now) {
        std::string why = r->attempts > 0 ? "retry due at " : "due at ";
        return why + format_time(r->due_at);
      }
      break;
    default:
      return std::string(to_string(r->state));
  }
  // Due: what holds it back, in the order the scheduler checks.
  if (auto s = names_.find(queue); s) {
    if (auto i = settings_.find(*s); i != settings_.end()) {
      if (i->second.paused) return "queue '" + queue + "' is paused";
      if (i->second.concurrency > 0) {
        std::uint32_t running_in_queue = 0;
        for (const job_row* other : running())
          if (other->queue == r->queue) ++running_in_queue;
        if (running_in_queue >= i->second.concurrency)
          return "queue '" + queue + "' runs " + std::to_string(running_in_queue) + " of " +
                 std::to_string(i->second.concurrency) + " allowed";
      }
    }
  }
  // A resource held by a running job in a conflicting mode.
  for (auto [name, mode] : resources_of(*r)) {
    for (const job_row* holder : running()) {
      for (auto [held, held_mode] : resources_of(*holder)) {
        if (held != name) continue;
        if (mode == lock_mode::shared && held_mode == lock_mode::shared) continue;
        return "waiting for " + names_.name(name) + " held by job " + std::to_string(holder->id);
      }
    }
  }
  // Otherwise it waits its turn behind jobs ahead of it.
  auto order = ready(now);
  auto pos = std::find(order.begin(), order.end(), r) - order.begin();
  return "ready, " + std::to_string(pos) + " job" + (pos == 1 ? "" : "s") + " ahead";
}

}  // namespace jobsmith
