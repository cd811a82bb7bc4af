// The routes served without a token: GET /healthz, GET /readyz and the
// dashboard's files (GET / and /ui/...). GET /metrics is in api_metrics.cpp.
#include <string>

#include "apps/dashboard/dashboard.hpp"
#include "apps/server/api_internal.hpp"

namespace jobsmith::server {

std::optional<stream_request> get_health(request_context& rt) {
  rt.answer(200, {{"status", "ok"}});
  return std::nullopt;
}

std::optional<stream_request> get_readiness(request_context& rt) {
  auto head = rt.eng().head();
  if (head == 0) {
    rt.fail({503, "unavailable", "the engine is not serving"});
  } else if (rt.self.over_memory_budget()) {
    rt.fail({503, "memory_budget",
            "submits are refused: resident memory " + mib(rt.resident_bytes()) +
                " is over the budget of " + mib(rt.limits().memory_budget_bytes)});
  } else if (auto refusal = rt.eng().write_refusal()) {
    // Not ready while writes are refused (reads still work); the code
    // says why: insufficient_storage for a full disk.
    auto e = from_engine(*refusal);
    rt.fail({503, e.code, "writes are refused: " + refusal->message});
  } else {
    rt.answer(200, {{"status", "ready"}, {"head", head}});
  }
  return std::nullopt;
}

std::optional<stream_request> get_dashboard_file(request_context& rt) {
  const std::string& path = rt.req.path;
  auto a = dashboard::find_asset(path);
  if (!a) {
    rt.fail({404, "not_found", "no such file " + path});
    return std::nullopt;
  }
  http_reply out;
  out.content_type = std::string{a->content_type};
  out.body = std::string{a->body};
  rt.reply(std::move(out));
  return std::nullopt;
}

}  // namespace jobsmith::server
