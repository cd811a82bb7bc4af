// /v1/kinds: registered kinds, each with its on-accept follow-up kind and
// the JSON Schema its payloads must match (engine::configure_kind).
#include <string>

#include "apps/server/api_internal.hpp"

namespace jobsmith::server {

namespace {

/// {"kind", "on_accept", "schema"}: a setting not given is null.
json kind_json(const kind_configured& k) {
  json out = {{"kind", k.kind}, {"on_accept", nullptr}, {"schema", nullptr}};
  if (!k.on_accept.empty()) out["on_accept"] = k.on_accept;
  if (!k.schema.empty()) out["schema"] = json::parse(k.schema, nullptr, false);
  return out;
}

/// The path's {kind}, percent-decoded; 400 when malformed or too long.
std::string kind_arg(request_context& rt) {
  const auto& lim = rt.limits();
  auto name = percent_decode(rt.path_arg("kind"));
  if (!name || name->empty() || name->size() > lim.max_name_length)
    throw bad_request("kind: 1 to " + std::to_string(lim.max_name_length) + " bytes");
  return *name;
}

}  // namespace

std::optional<stream_request> list_kinds(request_context& rt) {
  rt.only_query({});
  json arr = json::array();
  for (const auto& [name, k] : rt.eng().kinds()) arr.push_back(kind_json(k));
  rt.answer(200, {{"kinds", std::move(arr)}});
  return std::nullopt;
}

std::optional<stream_request> get_kind(request_context& rt) {
  rt.only_query({});
  auto name = kind_arg(rt);
  auto kinds = rt.eng().kinds();
  auto k = kinds.find(name);
  if (k == kinds.end())
    throw api_error{404, "not_found", "kind '" + name + "' is not registered"};
  rt.answer(200, {{"kind", kind_json(k->second)}});
  return std::nullopt;
}

std::optional<stream_request> configure_kind(request_context& rt) {
  rt.only_query({});
  kind_configured settings;
  settings.kind = kind_arg(rt);
  auto body = rt.body_json(true);
  object_reader in{body, ""};
  if (auto on_accept = in.str("on_accept", rt.limits().max_name_length))
    settings.on_accept = std::move(*on_accept);
  if (auto schema = in.find("schema")) settings.schema = schema->dump();
  in.no_other_fields();
  rt.on_pool([settings = std::move(settings)](request_context& r) mutable {
    auto out = r.eng().configure_kind(std::move(settings), r.principal);
    if (!out) return r.fail(from_engine(out.error()));
    r.answer(200, {{"kind", kind_json(*out)}});
  });
  return std::nullopt;
}

}  // namespace jobsmith::server
