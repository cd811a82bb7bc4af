#include "actors/recovery.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include "actors/journal.hpp"
#include "events/codec.hpp"

namespace jobsmith {

bool decode_record(const store::record& rec, event& out, std::string* error) {
  std::string why;
  if (!decode(rec.body, out, &why)) {
    if (error) *error = "record " + std::to_string(rec.seq) + ": body does not decode: " + why;
    return false;
  }
  out.seq = rec.seq;
  out.job = rec.job;
  return true;
}

void apply_queue_event(std::unordered_map<std::string, queue_settings>& queues, const event& ev) {
  if (auto p = std::get_if<queue_paused>(&ev.body)) {
    queues[p->queue].paused = true;
  } else if (auto r = std::get_if<queue_resumed>(&ev.body)) {
    queues[r->queue].paused = false;
  } else if (auto c = std::get_if<queue_configured>(&ev.body)) {
    queues[c->queue].concurrency = c->concurrency;
  }
}


result<recovered_state> recover(const store::event_log& log,
                                const std::function<void(const event&)>& observe) {
  recovered_state out;
  out.head = log.head();
  // Live jobs only: a terminal job leaves the map, so memory follows the
  // live set, not the history. A retry of a terminal job re-reads its stream.
  std::map<job_id, job_record> live;
  std::string error;
  job_id max_job = 0;

  auto fold_schedule_end = [&](const job_record& job) {
    if (job.spec.schedule == 0) return;
    auto s = out.schedules.find(job.spec.schedule);
    if (s == out.schedules.end() || s->second.last_run != job.id) return;
    s->second.last_run_ended = true;
    s->second.consecutive_failures = streak_after(s->second.consecutive_failures, job.state);
  };

  auto status = log.read(1, out.head, [&](const store::record& rec) {
    event ev;
    if (!decode_record(rec, ev, &error)) return false;
    ++out.events_replayed;
    if (observe) observe(ev);

    if (ev.job != 0) {
      max_job = std::max(max_job, ev.job);
      auto it = live.find(ev.job);
      if (it == live.end()) {
        if (std::holds_alternative<job_submitted>(ev.body)) {
          ++out.jobs_seen;
          it = live.emplace(ev.job, job_record{}).first;
        } else if (std::holds_alternative<job_requested>(ev.body)) {
          // A retry revives a terminal job: rebuild it from its stream up to here.
          auto stream = read_job_events(log, ev.job);
          if (!stream) {
            error = stream.error().message;
            return false;
          }
          job_record revived;
          for (auto& past : *stream) {
            if (past.seq >= ev.seq) break;
            apply(revived, past);
          }
          it = live.emplace(ev.job, std::move(revived)).first;
        } else {
          return true;  // an event for a job already terminal: nothing live changes
        }
      }
      apply(it->second, ev);
      if (auto sub = std::get_if<job_submitted>(&ev.body); sub && sub->schedule != 0) {
        auto s = out.schedules.find(sub->schedule);
        if (s != out.schedules.end()) {
          s->second.last_run = ev.job;
          s->second.last_run_ended = false;
          s->second.spec = *sub;
        }
      }
      if (is_terminal(it->second.state)) {
        fold_schedule_end(it->second);
        live.erase(it);
      }
      return true;
    }
    apply_queue_event(out.queues, ev);
    apply_kind_event(out.kinds, ev);
    if (auto c = std::get_if<schedule_created>(&ev.body)) {
      schedule_info info;
      info.id = c->id;
      out.schedules[c->id] = info;
    } else if (auto d = std::get_if<schedule_deleted>(&ev.body)) {
      out.schedules.erase(d->id);
    }
    return true;
  });
  if (!error.empty()) return engine_error{engine_errc::corruption, error};
  if (!status.is_ok()) {
    auto code = status.code() == store::status_code::corruption ? engine_errc::corruption
                                                                 : engine_errc::storage;
    return engine_error{code, status.to_string()};
  }
  out.live_jobs.reserve(live.size());
  for (auto& [id, job] : live) out.live_jobs.push_back(std::move(job));
  out.next_job_id = max_job + 1;
  return out;
}

namespace {

engine_error storage_error(const store::status& status) {
  auto code = status.code() == store::status_code::corruption ? engine_errc::corruption
                                                               : engine_errc::storage;
  return engine_error{code, status.to_string()};
}

/// The recovered state from `view` as it stood at `covered`: fold the tail
/// into it, then read what the view does not keep (live jobs' records, the
/// schedules' templates) from the jobs' streams.
result<recovered_state> from_view(const store::event_log& log, queue_view& view,
                                  sequence_t covered) {
  recovered_state out;
  out.head = log.head();
  out.snapshot_seq = covered;
  std::string error;
  auto status = log.read(covered + 1, out.head, [&](const store::record& rec) {
    event ev;
    if (!decode_record(rec, ev, &error)) return false;
    view.apply(ev);
    ++out.events_replayed;
    return true;
  });
  if (!error.empty()) return engine_error{engine_errc::corruption, error};
  if (!status.is_ok()) return storage_error(status);

  // Each live job's stream is a prefix scan plus point reads, mostly
  // waiting on memory and the block cache: a few threads read them at once
  // (thousands of live jobs took most of a second on one thread).
  std::vector<job_id> live;
  view.for_each_live([&](const job_row& row) { live.push_back(row.id); });
  out.live_jobs.resize(live.size());
  std::vector<std::optional<engine_error>> failed(live.size());
  std::atomic<std::size_t> next{0};
  auto read_live = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < live.size();) {
      auto events = read_job_events(log, live[i]);
      if (!events) {
        failed[i] = events.error();
        continue;
      }
      for (auto& ev : *events) apply(out.live_jobs[i], ev);
    }
  };
  {
    const std::size_t threads =
        live.size() < 256 ? 1 : std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
    std::vector<std::thread> pool;
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(read_live);
    read_live();
    for (auto& t : pool) t.join();
  }
  for (auto& f : failed)
    if (f) return *f;
  for (const auto& [name, s] : view.settings())
    out.queues[view.names().name(name)] = queue_settings{s.paused, s.concurrency};
  for (const auto& [id, s] : view.schedules()) {
    schedule_info info;
    info.id = id;
    info.last_run = s.last_run;
    info.last_run_ended = s.last_run_ended;
    info.consecutive_failures = s.consecutive_failures;
    if (s.last_run != 0) {
      auto events = read_job_events(log, s.last_run);
      if (!events) return events.error();
      if (!events->empty())
        if (auto sub = std::get_if<job_submitted>(&events->front().body)) info.spec = *sub;
    }
    out.schedules[id] = std::move(info);
  }
  out.kinds = view.kinds();
  out.next_job_id = view.max_job() + 1;
  out.jobs_seen = view.jobs();
  return out;
}

}  // namespace

std::string queue_view_snapshot_name(sequence_t covered) {
  char digits[21];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(covered));
  return std::string(queue_view_snapshot_prefix) + digits;
}

std::optional<millis> record_time(const store::event_log& log, sequence_t seq) {
  std::optional<millis> time;
  std::string error;
  (void)log.read(seq, seq, [&](const store::record& rec) {
    event ev;
    if (decode_record(rec, ev, &error)) time = ev.time;
    return false;
  });
  return time;
}

std::optional<stored_view> load_queue_view(
    const store::event_log& log, sequence_t limit, std::vector<std::string>* warnings,
    const std::function<bool(const store::snapshot_info&)>& accept) {
  std::vector<store::snapshot_info> stored;
  auto listed = log.list_snapshots(queue_view_snapshot_prefix, &stored);
  if (!listed.is_ok()) {
    warnings->push_back("queue view snapshots unlisted: " + listed.to_string());
    return std::nullopt;
  }
  for (auto info = stored.rbegin(); info != stored.rend(); ++info) {
    const std::string at = "queue view snapshot at " + std::to_string(info->covered) + ": ";
    if (info->covered > log.head()) {
      // Stored after a record the log no longer has: the log lost its end
      // (a damaged last write dropped at open, a restored older copy).
      warnings->push_back(at + "it covers more than the log, which ends at " +
                          std::to_string(log.head()) + "; records after that were lost");
      continue;
    }
    if (info->covered > limit || (accept && !accept(*info))) continue;
    store::snapshot snap;
    auto read = log.get_snapshot(info->name, &snap);
    if (!read.is_ok()) {
      warnings->push_back(at + "unreadable: " + read.to_string());
      continue;
    }
    std::string why;
    auto decoded = queue_view::decode(snap.bytes, &why);
    if (!decoded) {
      constexpr std::string_view said = "queue view snapshot: ";  // decode's own prefix
      if (std::string_view(why).starts_with(said)) why.erase(0, said.size());
      warnings->push_back(at + why);
      continue;
    }
    // The view must be of this log: its head is the record it claims to
    // cover, with that record's time.
    std::optional<millis> covered_time;
    if (snap.covered != 0 && snap.covered <= log.head()) covered_time = record_time(log, snap.covered);
    if (decoded->head() != snap.covered || snap.covered != info->covered ||
        snap.covered > log.head() || !covered_time || *covered_time != decoded->head_time()) {
      warnings->push_back(at + "it covers sequence " + std::to_string(snap.covered) +
                          " (view head " + std::to_string(decoded->head()) +
                          ") which does not fit the log, which ends at " +
                          std::to_string(log.head()));
      continue;
    }
    return stored_view{std::move(*decoded), snap.covered};
  }
  return std::nullopt;
}

result<recovered_state> recover_from_snapshot(const store::event_log& log, queue_view& view) {
  std::vector<std::string> warnings;
  auto join = [&](std::string_view tail) {
    std::string out;
    for (auto& w : warnings) out += w + "; ";
    return out + std::string(tail);
  };
  if (auto stored = load_queue_view(log, log.head(), &warnings)) {
    view = std::move(stored->view);
    auto out = from_view(log, view, stored->covered);
    if (out && !warnings.empty())
      out->snapshot_warning = join("used the one at " + std::to_string(stored->covered));
    return out;
  }
  queue_view fresh;
  auto out = recover(log, [&](const event& ev) { fresh.apply(ev); });
  if (!out) return out;
  view = std::move(fresh);
  if (!warnings.empty()) out->snapshot_warning = join("replayed the log from the start");
  return out;
}

}  // namespace jobsmith

