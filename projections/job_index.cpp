#include "projections/job_index.hpp"

#include <algorithm>

namespace jobsmith {

void job_index::apply(const event& ev) {
  if (ev.job == 0) return;
  auto& rec = jobs_[ev.job];
  jobsmith::apply(rec, ev);
  // The log keeps these; the index only needs what filters and lists show.
  rec.spec.payload.clear();
  rec.result.clear();
  rec.handover.clear();
}

std::vector<job_record> job_index::query(const job_filter& filter, millis now) const {
  std::vector<job_record> out;
  auto contains = [](const std::vector<job_state>& v, job_state s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  for (auto it = jobs_.upper_bound(filter.after); it != jobs_.end(); ++it) {
    if (out.size() >= filter.limit) break;
    const auto& rec = it->second;
    if (rec.id == 0) continue;  // events of a job whose submission we never saw
    auto state = effective_state(rec, now);
    if (!filter.states_in.empty() && !contains(filter.states_in, state)) continue;
    if (contains(filter.states_not_in, state)) continue;
    if (!filter.queue.empty() && rec.spec.queue != filter.queue) continue;
    if (!filter.kind.empty() && rec.spec.kind != filter.kind) continue;
    if (filter.submitted_from && rec.submitted_at < filter.submitted_from) continue;
    if (filter.submitted_to && rec.submitted_at > filter.submitted_to) continue;
    if ((filter.finished_from || filter.finished_to) && rec.finished_at == 0) continue;
    if (filter.finished_from && rec.finished_at < filter.finished_from) continue;
    if (filter.finished_to && rec.finished_at > filter.finished_to) continue;
    if (!filter.error_contains.empty() &&
        rec.last_error.find(filter.error_contains) == std::string::npos)
      continue;
    out.push_back(rec);
  }
  return out;
}

std::vector<std::size_t> job_index::counts(millis now) const {
  std::vector<std::size_t> out(job_state_count, 0);
  for (auto& [id, rec] : jobs_)
    if (rec.id != 0) ++out[static_cast<std::size_t>(effective_state(rec, now))];
  return out;
}

}  // namespace jobsmith
