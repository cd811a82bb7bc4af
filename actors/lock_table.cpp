#include "actors/lock_table.hpp"

#include <algorithm>
#include <utility>

namespace jobsmith {

namespace {

bool conflicts(lock_mode a, lock_mode b) {
  return a == lock_mode::exclusive || b == lock_mode::exclusive;
}

}  // namespace

bool lock_table::may_take(const resource_entry& r, lock_mode m, ticket_t ticket) {
  // (1) compatible with the holders.
  if (!r.holders.empty() && conflicts(m, r.held_mode)) return false;
  // (2) no earlier conflicting waiter. An exclusive claim conflicts with any
  // waiter, a shared one only with exclusive waiters. A job's own ticket
  // never counts as earlier; a new job's ticket is later than every queued one.
  if (m == lock_mode::exclusive) return r.queue.empty() || r.queue.begin()->first >= ticket;
  return r.exclusive_queued.empty() || *r.exclusive_queued.begin() >= ticket;
}

bool lock_table::grantable(const job_entry& j) const {
  return std::all_of(j.claims.begin(), j.claims.end(), [&](const claim_ref& c) {
    return may_take(c.resource->second, c.mode, j.ticket);
  });
}

void lock_table::grant(job_id job, job_entry& j) {
  for (const claim_ref& c : j.claims) {
    resource_entry& r = c.resource->second;
    if (j.waiting) {
      r.queue.erase(j.ticket);
      if (c.mode == lock_mode::exclusive) r.exclusive_queued.erase(j.ticket);
    }
    if (r.holders.empty()) r.held_mode = c.mode;
    r.holders.insert(job);
  }
  if (j.waiting) --waiting_count_;
  j.waiting = false;
  ++held_count_;
}

bool lock_table::acquire(job_id job, const std::vector<resource_claim>& claims) {
  auto [it, inserted] = jobs_.try_emplace(job);
  if (!inserted) return !it->second.waiting;
  job_entry& j = it->second;
  j.ticket = next_ticket_++;

  std::vector<resource_claim> sorted = claims;
  std::sort(sorted.begin(), sorted.end(),
            [](const resource_claim& a, const resource_claim& b) { return a.name < b.name; });
  for (const resource_claim& c : sorted) {
    if (!j.claims.empty() && j.claims.back().resource->first == c.name) {
      if (c.mode == lock_mode::exclusive) j.claims.back().mode = lock_mode::exclusive;
      continue;
    }
    auto& node = *resources_.try_emplace(c.name).first;
    j.claims.push_back({&node, c.mode});
  }

  if (grantable(j)) {
    grant(job, j);
    return true;
  }
  for (const claim_ref& c : j.claims) {
    resource_entry& r = c.resource->second;
    r.queue.emplace(j.ticket, queued{job, c.mode});
    if (c.mode == lock_mode::exclusive) r.exclusive_queued.insert(j.ticket);
  }
  j.waiting = true;
  ++waiting_count_;
  return false;
}

std::vector<job_id> lock_table::release(job_id job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return {};
  job_entry j = std::move(it->second);
  jobs_.erase(it);
  if (j.waiting) {
    --waiting_count_;
  } else {
    --held_count_;
  }

  // Waiters the departure may have unblocked: see "Release" in the header.
  std::vector<std::pair<ticket_t, job_id>> candidates;
  for (const claim_ref& c : j.claims) {
    resource_entry& r = c.resource->second;
    if (j.waiting) {
      r.queue.erase(j.ticket);
      if (c.mode == lock_mode::exclusive) r.exclusive_queued.erase(j.ticket);
    } else {
      r.holders.erase(job);
      // Shared holders remain: they blocked nobody the leaving shared holder
      // did not also block, so nothing changed on this resource.
      if (!r.holders.empty()) continue;
    }
    for (const auto& [ticket, w] : r.queue) {
      candidates.emplace_back(ticket, w.job);
      if (w.mode == lock_mode::exclusive) break;
    }
    if (r.holders.empty() && r.queue.empty()) resources_.erase(resources_.find(c.resource->first));
  }

  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  std::vector<job_id> granted;
  for (const auto& [ticket, id] : candidates) {
    job_entry& w = jobs_.at(id);
    if (grantable(w)) {
      grant(id, w);
      granted.push_back(id);
    }
  }
  return granted;
}

bool lock_table::holds(job_id job) const {
  auto it = jobs_.find(job);
  return it != jobs_.end() && !it->second.waiting;
}

bool lock_table::waits(job_id job) const {
  auto it = jobs_.find(job);
  return it != jobs_.end() && it->second.waiting;
}

std::vector<lock_table::wait_reason> lock_table::waits_for(job_id job) const {
  std::vector<wait_reason> reasons;
  auto it = jobs_.find(job);
  if (it == jobs_.end() || !it->second.waiting) return reasons;
  const job_entry& j = it->second;
  for (const claim_ref& c : j.claims) {
    const resource_entry& r = c.resource->second;
    wait_reason reason{c.resource->first, c.mode, {}, {}};
    if (!r.holders.empty() && conflicts(c.mode, r.held_mode))
      reason.holders.assign(r.holders.begin(), r.holders.end());
    for (auto q = r.queue.begin(); q != r.queue.end() && q->first < j.ticket; ++q)
      if (conflicts(c.mode, q->second.mode)) reason.queued_ahead.push_back(q->second.job);
    if (!reason.holders.empty() || !reason.queued_ahead.empty())
      reasons.push_back(std::move(reason));
  }
  return reasons;
}

std::vector<lock_table::holder> lock_table::holders_of(const std::string& resource) const {
  std::vector<holder> result;
  auto it = resources_.find(resource);
  if (it == resources_.end()) return result;
  for (job_id h : it->second.holders) result.push_back({h, it->second.held_mode});
  return result;
}

std::vector<lock_table::resource_state> lock_table::resources() const {
  std::vector<resource_state> result;
  result.reserve(resources_.size());
  for (const auto& [name, r] : resources_) {
    resource_state s{name, {}, {}};
    for (job_id h : r.holders) s.holders.push_back({h, r.held_mode});
    for (const auto& [ticket, w] : r.queue) s.waiters.push_back({w.job, w.mode});
    result.push_back(std::move(s));
  }
  std::sort(result.begin(), result.end(), [](const resource_state& a, const resource_state& b) {
    return a.resource < b.resource;
  });
  return result;
}

}  // namespace jobsmith
