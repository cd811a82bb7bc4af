#include "actors/recovery.hpp"

#include <algorithm>
#include <map>

#include "actors/journal.hpp"
#include "events/codec.hpp"

namespace jobsmith {

void apply_queue_event(std::unordered_map<std::string, queue_settings>& queues, const event& ev) {
  if (auto p = std::get_if<queue_paused>(&ev.body)) {
    queues[p->queue].paused = true;
  } else if (auto r = std::get_if<queue_resumed>(&ev.body)) {
    queues[r->queue].paused = false;
  } else if (auto c = std::get_if<queue_configured>(&ev.body)) {
    queues[c->queue].concurrency = c->concurrency;
  }
}

run_verdict verdict_of(job_state terminal) {
  switch (terminal) {
    case job_state::succeeded:
    case job_state::accepted:
    case job_state::declined:
      return run_verdict::success;
    case job_state::discarded:
    case job_state::expired:
      return run_verdict::failure;
    default:
      return run_verdict::neutral;
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
    switch (verdict_of(job.state)) {
      case run_verdict::success: s->second.consecutive_failures = 0; break;
      case run_verdict::failure: ++s->second.consecutive_failures; break;
      case run_verdict::neutral: break;
    }
  };

  auto status = log.read(1, out.head, [&](const store::record& rec) {
    event ev;
    if (!decode(rec.body, ev, &error)) {
      error = "record " + std::to_string(rec.seq) + ": " + error;
      return false;
    }
    ev.seq = rec.seq;
    ev.job = rec.job;
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

}  // namespace jobsmith

