// /v1/schedules: the recurring schedules, and deleting one.
#include <string>

#include "apps/server/api_internal.hpp"
#include "events/json.hpp"

namespace jobsmith::server {

std::optional<stream_request> list_schedules(request_context& rt) {
  rt.only_query({});
  rt.on_pool([](request_context& r) {
    auto list = r.eng().schedules();
    if (!list) return r.fail(from_engine(list.error()));
    json arr = json::array();
    for (auto& sv : *list)
      arr.push_back({{"id", sv.id},
                     {"last_run", sv.last_run},
                     {"last_run_ended", sv.last_run_ended},
                     {"consecutive_failures", sv.consecutive_failures},
                     {"spec", spec_to_json(sv.spec)}});
    r.answer(200, {{"schedules", std::move(arr)}});
  });
  return std::nullopt;
}

std::optional<stream_request> delete_schedule(request_context& rt) {
  rt.only_query({});
  if (!rt.req.body.empty()) throw bad_request("DELETE takes no body");
  rt.on_pool([id = rt.id](request_context& r) {
    auto out = r.eng().delete_schedule(id, r.principal);
    if (!out) return r.fail(from_engine(out.error()));
    r.answer(200, {{"deleted", id}});
  });
  return std::nullopt;
}

}  // namespace jobsmith::server
