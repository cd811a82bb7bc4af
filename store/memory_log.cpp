#include "store/memory_log.hpp"

#include <algorithm>

#include "store/record_format.hpp"

namespace jobsmith::store {

memory_log::memory_log() {
  meta_.emplace(std::string(format::meta_format_key), std::string(format::meta_format_value));
}

status memory_log::append(std::span<const record_input> batch, sequence_t* first_seq) {
  std::lock_guard lock(mu_);
  if (refusal_) return *refusal_;
  if (batch.empty()) return status::ok();
  const sequence_t first = records_.size() + 1;
  if (std::optional<status> cause = inject_failure(first)) return *cause;
  chain_hash prev = records_.empty() ? chain_hash{} : records_.back().hash;
  sequence_t seq = first;
  for (const record_input& in : batch) {
    record r{seq, in.job, chain(prev, seq, in.job, in.body), in.body};
    prev = r.hash;
    records_.push_back(std::move(r));
    by_job_[in.job].push_back(seq);
    ++seq;
  }
  if (first_seq != nullptr) *first_seq = first;
  return status::ok();
}

std::optional<status> memory_log::inject_failure(sequence_t seq) {
  std::optional<status> cause;
  if (fail_next_) {
    cause = std::move(*fail_next_);
    fail_next_.reset();
  } else if (failing_) {
    cause = *failing_;
  }
  if (cause) refusal_ = refused_after_failed_write(seq, *cause);
  return cause;
}

status memory_log::resume() {
  std::lock_guard lock(mu_);
  if (!refusal_) return status::ok();
  if (failing_) return *failing_;
  refusal_.reset();
  return status::ok();
}

sequence_t memory_log::head() const {
  std::lock_guard lock(mu_);
  return records_.size();
}

chain_hash memory_log::head_hash() const {
  std::lock_guard lock(mu_);
  return records_.empty() ? chain_hash{} : records_.back().hash;
}

std::vector<const record*> memory_log::collect(sequence_t from, sequence_t to) const {
  std::lock_guard lock(mu_);
  std::vector<const record*> out;
  from = std::max<sequence_t>(from, 1);
  to = std::min<sequence_t>(to, records_.size());
  if (from > to) return out;
  out.reserve(to - from + 1);
  for (sequence_t s = from; s <= to; ++s) out.push_back(&records_[s - 1]);
  return out;
}

status memory_log::read(sequence_t from, sequence_t to, const record_visitor& visit) const {
  for (const record* r : collect(from, to)) {
    if (!visit(*r)) break;
  }
  return status::ok();
}

status memory_log::read_job(job_id job, const record_visitor& visit) const {
  std::vector<const record*> recs;
  {
    std::lock_guard lock(mu_);
    auto it = by_job_.find(job);
    if (it == by_job_.end()) return status::ok();
    recs.reserve(it->second.size());
    for (sequence_t s : it->second) recs.push_back(&records_[s - 1]);
  }
  for (const record* r : recs) {
    if (!visit(*r)) break;
  }
  return status::ok();
}

status memory_log::verify(sequence_t from, sequence_t to, sequence_t* first_bad) const {
  if (from == 0) return status::invalid_argument("verify: from must be >= 1");
  chain_hash prev{};
  if (from > 1) {
    std::lock_guard lock(mu_);
    if (from - 1 > records_.size()) return status::ok();  // nothing in range
    prev = records_[from - 2].hash;
  }
  for (const record* r : collect(from, to)) {
    if (chain(prev, r->seq, r->job, r->body) != r->hash) {
      if (first_bad != nullptr) *first_bad = r->seq;
      return status::corruption("record " + std::to_string(r->seq) +
                                ": chain hash mismatch (tampered or corrupt)");
    }
    prev = r->hash;
  }
  return status::ok();
}

status memory_log::put_snapshot(std::string_view name, const snapshot& snap) {
  if (name.starts_with(format::snapshot_index_mark))
    return status::invalid_argument("snapshot names starting with byte 0xff belong to the store");
  std::lock_guard lock(mu_);
  if (refusal_) return *refusal_;
  if (failing_) return *inject_failure(records_.size() + 1);
  auto it = snapshots_.find(name);
  if (it == snapshots_.end()) {
    snapshots_.emplace(std::string(name), snap);
  } else {
    it->second = snap;
  }
  return status::ok();
}

status memory_log::get_snapshot(std::string_view name, snapshot* out) const {
  std::lock_guard lock(mu_);
  auto it = snapshots_.find(name);
  if (it == snapshots_.end()) return status::not_found("no snapshot named " + std::string(name));
  *out = it->second;
  return status::ok();
}

status memory_log::list_snapshots(std::string_view prefix,
                                  std::vector<snapshot_info>* out) const {
  std::lock_guard lock(mu_);
  out->clear();
  for (auto it = snapshots_.lower_bound(prefix);
       it != snapshots_.end() && std::string_view(it->first).starts_with(prefix); ++it)
    out->push_back(snapshot_info{it->first, it->second.covered, it->second.bytes.size()});
  std::sort(out->begin(), out->end(), [](const snapshot_info& a, const snapshot_info& b) {
    return a.covered != b.covered ? a.covered < b.covered : a.name < b.name;
  });
  return status::ok();
}

status memory_log::delete_snapshot(std::string_view name) {
  std::lock_guard lock(mu_);
  if (refusal_) return *refusal_;
  auto it = snapshots_.find(name);
  if (it != snapshots_.end()) snapshots_.erase(it);
  return status::ok();
}

status memory_log::put_meta(std::string_view key, std::string_view value) {
  if (key == format::meta_format_key) {
    return status::invalid_argument("meta key \"format\" belongs to the store");
  }
  std::lock_guard lock(mu_);
  if (refusal_) return *refusal_;
  if (failing_) return *inject_failure(records_.size() + 1);
  auto it = meta_.find(key);
  if (it == meta_.end()) {
    meta_.emplace(std::string(key), std::string(value));
  } else {
    it->second.assign(value);
  }
  return status::ok();
}

status memory_log::get_meta(std::string_view key, std::string* value) const {
  std::lock_guard lock(mu_);
  auto it = meta_.find(key);
  if (it == meta_.end()) return status::not_found("no meta key " + std::string(key));
  *value = it->second;
  return status::ok();
}

void memory_log::fail_next_append(status s) {
  std::lock_guard lock(mu_);
  if (!s.is_ok()) fail_next_ = std::move(s);
}

void memory_log::fail_writes(status s) {
  std::lock_guard lock(mu_);
  if (!s.is_ok()) failing_ = std::move(s);
}

void memory_log::heal() {
  std::lock_guard lock(mu_);
  failing_.reset();
}

std::unique_ptr<event_log> make_memory_log() { return std::make_unique<memory_log>(); }

}  // namespace jobsmith::store
