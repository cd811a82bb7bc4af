// The facade's kind registration (engine.hpp, "kinds").
#include "actors/engine_impl.hpp"
#include "events/json.hpp"

namespace jobsmith {

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
