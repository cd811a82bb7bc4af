// Registered job kinds, as the facade checks submissions against them: each
// kind's JSON Schema, compiled once, and its on-accept follow-up kind. A
// fold of kind.configured events (recovery, then each configure_kind); read
// on every submit, from any thread.
//
// Schemas are JSON Schema draft 7, validated by valijson (Debian's
// libvalijson-dev). A schema must be self-contained: a $ref that leaves the
// document is refused when the kind is configured, since the engine fetches
// nothing.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "events/event.hpp"
#include "projections/queue_view.hpp"

namespace jobsmith {

class kind_registry {
 public:
  kind_registry();
  ~kind_registry();
  kind_registry(const kind_registry&) = delete;
  kind_registry& operator=(const kind_registry&) = delete;

  /// Why `schema` (JSON text) cannot be a kind's schema, or nullopt when it
  /// compiles: valid JSON, an object or a boolean, draft 7, no reference
  /// outside itself.
  static std::optional<std::string> check_schema(const std::string& schema);

  /// Replaces every kind with `kinds` (at recovery).
  void reset(const kind_table& kinds);
  /// Replaces one kind's settings (after its kind.configured committed);
  /// with neither follow-up nor schema the kind is forgotten.
  void set(const kind_configured& k);

  std::optional<kind_configured> find(std::string_view kind) const;
  kind_table all() const;

  /// Nullopt when `payload` (JSON text) matches the schema of `kind` or the
  /// kind has none; else the first violation, naming where in the payload
  /// (a JSON pointer) and the rule it breaks.
  std::optional<std::string> check_payload(std::string_view kind, const std::string& payload) const;

 /// A kind's settings and its parsed schema (kind_registry.cpp).
  struct compiled;

 private:
  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<const compiled>, std::less<>> kinds_;
  /// Kinds with a schema: submits skip the lock while there are none.
  std::atomic<std::size_t> with_schema_{0};
};

}  // namespace jobsmith
