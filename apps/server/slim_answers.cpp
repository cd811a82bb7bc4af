#include "apps/server/slim_answers.hpp"

#include <nlohmann/json.hpp>

#include "apps/server/header_text.hpp"
#include "events/json.hpp"

namespace jobsmith::server {

namespace {

void append_string(std::string& out, const std::string& s) {
  out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// JSON text as the whole job writes it: as is when compact, else compacted,
/// else (not JSON at all, an embedder's text) as a JSON string.
void append_json_value(std::string& out, const std::string& text) {
  if (!text.empty() && is_canonical_json(text)) {
    out += text;
    return;
  }
  auto parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    append_string(out, text);
    return;
  }
  out += parsed.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

bool prefers_minimal(std::string_view prefer_header) {
  while (!prefer_header.empty()) {
    auto comma = prefer_header.find(',');
    auto preference = prefer_header.substr(0, comma);
    prefer_header = comma == std::string_view::npos ? std::string_view{}
                                                    : prefer_header.substr(comma + 1);
    auto token = trim(preference.substr(0, preference.find(';')));
    auto eq = token.find('=');
    if (eq == std::string_view::npos) continue;
    auto value = trim(token.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    if (iequals(trim(token.substr(0, eq)), "return") && iequals(value, "minimal")) return true;
  }
  return false;
}

void append_leased_job_minimal(std::string& out, const job_record& job) {
  const auto& spec = job.spec;
  out += "{\"attempt\":";
  out += std::to_string(job.attempts);
  if (!job.handover.empty()) {
    out += ",\"handover\":";
    append_json_value(out, job.handover);
  }
  out += ",\"id\":";
  out += std::to_string(job.id);
  out += ",\"kind\":";
  append_string(out, spec.kind);
  out += ",\"lease_token\":";
  out += std::to_string(job.lease_token);
  out += ",\"payload\":";
  append_json_value(out, spec.payload);
  out += ",\"queue\":";
  append_string(out, spec.queue);
  out += ",\"timeouts\":{\"heartbeat\":";
  out += std::to_string(spec.timeouts.heartbeat);
  out += ",\"to_run\":";
  out += std::to_string(spec.timeouts.to_run);
  out += ",\"to_start\":";
  out += std::to_string(spec.timeouts.to_start);
  out += ",\"to_stop\":";
  out += std::to_string(spec.timeouts.to_stop);
  out += "}}";
}

std::string job_state_object(const job_record& job, millis now) {
  std::string out = "{\"id\":";
  out += std::to_string(job.id);
  out += ",\"state\":\"";
  out += to_string(effective_state(job, now));  // a plain name
  out += "\"}";
  return out;
}

std::string job_state_minimal(const job_record& job, millis now) {
  return "{\"job\":" + job_state_object(job, now) + "}";
}

}  // namespace jobsmith::server
