// The facade's kind registration and retention settings (engine.hpp,
// "kinds", "retention").
#include "actors/engine_impl.hpp"
#include "events/json.hpp"

namespace jobsmith {

std::optional<engine_error> check_retention(const retention_policy& policy) {
  for (auto [name, value] : {std::pair{"succeeded", policy.succeeded}, {"failed", policy.failed}}) {
    if (value < 0 || value > max_duration)
      return engine_error{engine_errc::invalid_argument,
                          std::string("retention ") + name + ": must be 0 (kept) to " +
                              std::to_string(max_duration) + " ms (10 years)"};
  }
  return std::nullopt;
}

result<sequence_t> engine::set_retention(std::string queue, retention_policy policy,
                                         std::string principal) {
  auto& im = *impl_;
  if (!queue.empty())
    if (auto problem = validate_name("queue", queue))
      return engine_error{engine_errc::invalid_argument, problem->message};
  if (auto problem = check_retention(policy)) return *problem;
  std::vector<event> events{event{0, 0, im.clock(), im.principal_or_default(std::move(principal)),
                                  queue_retention{std::move(queue), policy.succeeded,
                                                  policy.failed}}};
  return im.ask<sequence_t>(im.core.journal, atom::append::value, std::move(events));
}

result<retention_policy> engine::default_retention() const {
  return impl_->ask<retention_policy>(impl_->core.projector, atom::retention::value);
}

result<kind_configured> engine::configure_kind(kind_configured settings, std::string principal) {
  auto& im = *impl_;
  if (auto problem = validate_name("kind", settings.kind))
    return engine_error{engine_errc::invalid_argument, problem->message};
  if (!settings.on_accept.empty()) {
    if (auto problem = validate_name("on_accept", settings.on_accept))
      return engine_error{engine_errc::invalid_argument, problem->message};
    if (!im.options.allow_unknown_kinds && im.options.handlers.find(settings.on_accept) == nullptr)
      return engine_error{engine_errc::unknown_kind,
                          "on_accept: no handler is registered for kind '" + settings.on_accept + "'"};
  }
  if (!settings.schema.empty()) {
    // Stored compact, as payloads are, so its text round-trips exactly.
    auto compact = compact_json(std::move(settings.schema));
    if (!compact) return engine_error{engine_errc::invalid_argument, "schema is not valid JSON"};
    settings.schema = std::move(*compact);
    if (auto problem = kind_registry::check_schema(settings.schema))
      return engine_error{engine_errc::invalid_argument, *problem};
  }
  // One at a time: the registry then changes in the log's order.
  std::lock_guard lock(im.configuring_kinds);
  auto seq = im.ask<sequence_t>(im.core.scheduler, atom::kind::value, settings,
                                im.principal_or_default(std::move(principal)));
  if (!seq) return seq.error();
  im.kinds.set(settings);
  return settings;
}

kind_table engine::kinds() const { return impl_->kinds.all(); }

}  // namespace jobsmith
