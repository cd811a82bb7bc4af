// The on-accept follow-up job an accepted review submits
// (events/job_state.hpp, follow_up_spec).
#include <string>

#include "events/job_state.hpp"

namespace jobsmith {

std::string follow_up_key(job_id reviewed) { return "on-accept:" + std::to_string(reviewed); }

job_submitted follow_up_spec(const job_record& reviewed, const std::string& kind) {
  job_submitted spec;
  spec.kind = kind;
  spec.queue = reviewed.spec.queue;
  spec.priority = reviewed.spec.priority;
  // Keys in sorted order, the form the engine stores JSON in; both texts
  // are JSON already (checked when they were recorded).
  spec.payload = "{\"job\":" + std::to_string(reviewed.id) +
                 ",\"payload\":" + reviewed.spec.payload + ",\"result\":" + reviewed.result + "}";
  spec.unique_key = follow_up_key(reviewed.id);
  spec.follows = reviewed.id;
  return spec;
}

}  // namespace jobsmith
