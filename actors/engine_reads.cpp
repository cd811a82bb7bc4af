// The engine facade's reads (actors/engine.hpp, "reading"): a job with its
// history, lists, counts and stats from the projector and the scheduler;
// and retry, which first asks whether the job is retired.
#include <algorithm>

#include "actors/engine.hpp"
#include "actors/engine_impl.hpp"
#include "actors/recovery.hpp"
#include "events/time_text.hpp"

namespace jobsmith {

namespace {

/// " was retired at <time>", or " was retired" when the view let the
/// row go and its time with it (queue_view::retired_at answers -1).
std::string retired_text(millis at) {
  return at > 0 ? " was retired at " + format_time(at) : std::string(" was retired");
}

}  // namespace

result<job_record> engine::retry(job_id id, std::string principal) {
  // A retired job stays retired (docs/api.md, "Retention").
  auto retired = impl_->ask<millis>(impl_->core.projector, atom::retired::value, id);
  if (!retired) return retired.error();
  if (*retired != 0)
    return engine_error{engine_errc::retired,
                        "job " + std::to_string(id) + retired_text(*retired) + "; it cannot be retried"};
  return impl_->command(id, cmd_request{request_kind::retry}, std::move(principal));
}

// -- reading -------------------------------------------------------------------------------

result<job_view> engine::get(job_id id) const {
  auto& im = *impl_;
  if (im.closed) return engine_error{engine_errc::closed, "engine is closed"};
  // Id 0 is no job: the engine's own events (engine.started, queue and
  // schedule events) are filed under it.
  if (id == 0) return engine_error{engine_errc::not_found, "job 0 does not exist"};
  auto events = read_job_events(*im.log, id);
  if (!events) return events.error();
  if (events->empty())
    return engine_error{engine_errc::not_found, "job " + std::to_string(id) + " does not exist"};
  job_view view;
  for (auto& ev : *events) apply(view.job, ev);
  if (is_terminal(view.job.state)) {
    auto retired = im.ask<millis>(im.core.projector, atom::retired::value, id);
    if (!retired) return retired.error();
    if (*retired != 0)
      return engine_error{engine_errc::retired,
                          "job " + std::to_string(id) + retired_text(*retired) +
                              ", when its queue's retention ran out; its history is in the log: "
                              "jobsmith replay --job " + std::to_string(id)};
  }
  view.history = std::move(*events);
  return view;
}

result<std::vector<job_record>> engine::list(const job_filter& filter) const {
  auto& im = *impl_;
  // The queue view picks the jobs; their records come from their streams
  // in the log, read here on the caller's thread (RocksDB reads are
  // thread-safe), so the projector keeps ~150 bytes a job, not a record.
  auto ids = im.ask<std::vector<job_id>>(im.core.projector, atom::list::value, filter);
  if (!ids) return ids.error();
  std::vector<job_record> out;
  out.reserve(ids->size());
  for (auto id : *ids) {
    auto events = read_job_events(*im.log, id);
    if (!events) return events.error();
    job_record rec;
    for (auto& ev : *events) apply(rec, ev);
    out.push_back(std::move(rec));
  }
  return out;
}

result<std::vector<std::size_t>> engine::counts() const {
  return impl_->ask<std::vector<std::size_t>>(impl_->core.projector, atom::stats::value);
}

result<std::vector<queue_row>> engine::queue_counts() const {
  return impl_->ask<std::vector<queue_row>>(impl_->core.projector, atom::queues::value);
}

result<event_counts> engine::totals() const {
  return impl_->ask<event_counts>(impl_->core.projector, atom::totals::value);
}

result<engine::view_rows> engine::rows() const {
  auto r = impl_->ask<std::vector<std::uint64_t>>(impl_->core.projector, atom::rows::value);
  if (!r) return r.error();
  return view_rows{r->at(0), r->at(1)};
}

result<dispatch_explanation> engine::explain(job_id id) const {
  return impl_->ask<dispatch_explanation>(impl_->core.scheduler, atom::waits::value, id);
}

result<std::vector<queue_info>> engine::queues() const {
  return impl_->ask<std::vector<queue_info>>(impl_->core.scheduler, atom::queues::value);
}

result<std::vector<schedule_view>> engine::schedules() const {
  return impl_->ask<std::vector<schedule_view>>(impl_->core.scheduler, atom::schedule::value);
}

result<scheduler_stats> engine::stats() const {
  return impl_->ask<scheduler_stats>(impl_->core.scheduler, atom::stats::value);
}

engine_metrics engine::metrics() const {
  auto& im = *impl_;
  engine_metrics out;
  if (!im.core.metrics) return out;
  auto& m = *im.core.metrics;
  out.journal_batches = m.batches.load();
  out.journal_events = m.events.load();
  out.journal_max_batch = m.max_batch.load();
  out.journal_write_failures = m.write_failures.load();
  out.journal_resumes = m.resumes.load();
  out.journal_mean_write_ms =
      out.journal_batches ? m.write_nanos.load() / 1e6 / out.journal_batches : 0;
  out.journal_max_write_ms = m.max_write_nanos.load() / 1e6;
  out.refused_overloaded = m.refused_overloaded.load();
  if (im.log) {
    out.log_bytes = im.log->size_bytes();
    out.head = im.log->head();
  }
  return out;
}

}  // namespace jobsmith
