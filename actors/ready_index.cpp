#include "actors/ready_index.hpp"

#include <iterator>

namespace jobsmith {

void ready_index::insert(const std::string& queue, const entry& e) {
  queues_[queue].insert(e);
  where_.emplace(e.id, std::make_pair(queue, e));
}

bool ready_index::erase(job_id id) {
  auto i = where_.find(id);
  if (i == where_.end()) return false;
  auto q = queues_.find(i->second.first);
  if (q != queues_.end()) q->second.erase(i->second.second);
  where_.erase(i);
  return true;
}

std::size_t ready_index::size(const std::string& queue) const {
  auto q = queues_.find(queue);
  return q == queues_.end() ? 0 : q->second.size();
}

std::optional<std::size_t> ready_index::position(job_id id) const {
  auto i = where_.find(id);
  if (i == where_.end()) return std::nullopt;
  const auto& entries = queues_.at(i->second.first);
  return static_cast<std::size_t>(
      std::distance(entries.begin(), entries.find(i->second.second)));
}

}  // namespace jobsmith
