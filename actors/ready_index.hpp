// The ready index: jobs that are due and wait for a slot, per queue, in
// dispatch order: jobs requested to run now first (earliest request first),
// then higher priority, then earlier due time, then lower job id
// (submission order). A plain class; the scheduler actor owns one.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>

#include "events/event.hpp"

namespace jobsmith {

class ready_index {
 public:
  struct entry {
    job_id id = 0;
    std::int32_t priority = 0;
    millis due_at = 0;
    millis requested_at = 0;  // of a run-now request; 0 = none
    // Dispatch order: the smallest entry goes first.
    friend bool operator<(const entry& a, const entry& b) {
      return std::tuple(a.requested_at == 0, a.requested_at, -static_cast<std::int64_t>(a.priority),
                        a.due_at, a.id) <
             std::tuple(b.requested_at == 0, b.requested_at, -static_cast<std::int64_t>(b.priority),
                        b.due_at, b.id);
    }
  };

  /// REQUIRES: `e.id` is not in the index.
  void insert(const std::string& queue, const entry& e);
  /// false when absent.
  bool erase(job_id id);
  bool contains(job_id id) const { return where_.count(id) != 0; }
  std::size_t size() const { return where_.size(); }
  std::size_t size(const std::string& queue) const;

  /// The first entry, in dispatch order, among the queues for which
  /// `eligible(queue_name)` holds; nullopt when there is none. Costs one
  /// predicate call per non-empty queue.
  template <class Predicate>
  std::optional<std::pair<std::string, entry>> best(Predicate&& eligible) const {
    std::optional<std::pair<std::string, entry>> found;
    for (auto& [name, entries] : queues_) {
      if (entries.empty()) continue;
      const auto& head = *entries.begin();
      if (found && !(head < found->second)) continue;
      if (!eligible(name)) continue;
      found.emplace(name, head);
    }
    return found;
  }

  /// Position of a job within its queue (0 = next), or nullopt.
  std::optional<std::size_t> position(job_id id) const;

 private:
  std::map<std::string, std::set<entry>> queues_;
  std::unordered_map<job_id, std::pair<std::string, entry>> where_;
};

}  // namespace jobsmith
