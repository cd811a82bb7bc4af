// The JSON mapping of events, submissions and job records, for export
// (JSON Lines) and the HTTP API. The binary storage encoding is elsewhere
// (events/codec.hpp).
//
// Shapes:
//   event  {"seq":N, "job":N, "time":ms, "principal":"...", "type":"job.submitted",
//           "version":1, "body":{...}}
//   body   one key per struct field, snake_case as in events/event.hpp; enums
//          as their names ("exclusive", "warn", "run_now"). The job.submitted
//          body is the submission shape below plus "schedule".
//   submission (spec_to_json / spec_from_json, as an HTTP client sends it)
//          {"kind", "queue", "payload", "priority", "run_at",
//           "retry": {"max_attempts", "initial_interval", "backoff_coefficient",
//                     "max_interval", "jitter"},
//           "timeouts": {"to_start", "to_run", "heartbeat", "to_stop"},
//           "resources": [{"name", "mode": "shared"|"exclusive"} or "name"],
//           "unique_key", "review_required",
//           "recurrence": {"interval", "failure_backoff", "max_interval", "failure_limit"}}
//          (the struct field `recur` is "recurrence" here and in the body, so
//          a submission and the event that records it have one shape).
//
// JSON-text fields (payload, result, handover) are embedded as JSON values,
// not strings; an empty handover is omitted. Reading them back stores
// `value.dump()` (compact). The engine stores these fields in that compact
// form (spec_from_json and the HTTP API produce it), which makes
// to_json/from_json an exact round trip. Text in another form (an embedder's
// pretty-printed payload) comes back equal as JSON but compact; text that is
// not JSON at all (validate() keeps it out) is exported as a JSON string.
//
// Strings are not checked for UTF-8 here; dump untrusted output with
// nlohmann::json::error_handler_t::replace.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "events/event.hpp"
#include "events/job_state.hpp"

namespace jobsmith {

/// The event with all its fields, including seq and job.
nlohmann::json to_json(const event& ev);

/// Exact inverse of to_json(event). "type" is required; other keys may be
/// missing and then take the struct defaults ("body" too). Unknown keys, wrong
/// JSON types, out-of-range integers, unknown enum names and versions this
/// reader cannot read give false with a message naming the field
/// ("body.priority: expected integer"); `out` is then unchanged. Never throws.
[[nodiscard]] bool from_json(const nlohmann::json& j, event& out, std::string* error);

/// Parses a submission (shape above). Missing fields take the struct
/// defaults; unknown keys are an error ("unknown field 'priorty'"). Only
/// checks shapes and types: validate() (events/job_state.hpp) checks values.
/// `out` is unchanged on failure. Never throws.
[[nodiscard]] bool spec_from_json(const nlohmann::json& j, job_submitted& out, std::string* error);

/// The submission shape of `spec` (all fields except `schedule`, which the
/// engine sets); spec_from_json reads it back.
nlohmann::json spec_to_json(const job_submitted& spec);

/// Every field of `job` (the spec in job.submitted body shape; result and
/// handover embedded, an empty handover omitted; last_end by name) plus
/// "state": to_string(effective_state(job, now)).
nlohmann::json to_json(const job_record& job, millis now);

/// to_json(job, now) as compact text (invalid UTF-8 replaced), written
/// directly: the same bytes, several times faster. For answers that list
/// many jobs.
std::string to_json_text(const job_record& job, millis now);
/// True for JSON text in a subset of nlohmann's compact form that is cheap
/// to recognize (no whitespace, plain ASCII strings without escapes, object
/// keys strictly increasing, integers of up to 18 digits, nesting up to 64):
/// such text is valid JSON and dumps to itself once parsed. False says
/// nothing: the text may still be JSON (floats, escapes, spacing).
bool is_canonical_json(std::string_view text);

/// `text` in nlohmann's compact form (the form the log keeps JSON text in),
/// or nullopt when it is not JSON. Text already in that form is returned as
/// is, without the parser.
std::optional<std::string> compact_json(std::string text);

/// Why parse_json_unique refused a text.
struct json_refusal {
  bool duplicate_key = false;  // else the text is not JSON at all
  /// "duplicate key 'kind' in jobs[1].retry" ("... in the top-level
  /// object"; keys cut to 64 bytes), or the parser's message.
  std::string message;
};

/// Parses `text` as nlohmann::json::parse does, except that an object naming
/// the same key twice, at any depth, is refused: nlohmann keeps one of the
/// two silently, so `{"kind":"a","kind":"b"}` would mean whichever it kept.
/// The same key in different objects (`[{"a":1},{"a":2}]`) is fine. One pass
/// without recursion; the check is the lookup the object insert makes
/// anyway, so it costs what json::parse costs. nullopt on failure, with
/// `*why` (when given) saying why. Throws only std::bad_alloc.
/// (events/json_guard.cpp)
std::optional<nlohmann::json> parse_json_unique(std::string_view text,
                                                json_refusal* why = nullptr);

/// to_json_text, appended to `out`.
void append_json_text(std::string& out, const job_record& job, millis now);

}  // namespace jobsmith
