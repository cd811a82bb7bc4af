#include "events/event.hpp"

#include <array>
#include <utility>

namespace jobsmith {

namespace {

// Type names in variant order, built from the body types themselves so the
// table cannot drift from event_body.
template <std::size_t... I>
constexpr std::array<std::string_view, sizeof...(I)> make_type_names(std::index_sequence<I...>) {
  return {std::variant_alternative_t<I, event_body>::type_name...};
}

constexpr auto type_names = make_type_names(std::make_index_sequence<event_type_count>{});

}  // namespace

std::string_view type_name(const event_body& body) {
  return std::visit([](const auto& b) { return std::decay_t<decltype(b)>::type_name; }, body);
}

std::uint16_t schema_version(const event_body& body) {
  return std::visit([](const auto& b) { return std::decay_t<decltype(b)>::version; }, body);
}

int type_index(std::string_view name) {
  for (std::size_t i = 0; i < type_names.size(); ++i)
    if (type_names[i] == name) return static_cast<int>(i);
  return -1;
}

std::string_view to_string(lock_mode m) {
  switch (m) {
    case lock_mode::shared:
      return "shared";
    case lock_mode::exclusive:
      return "exclusive";
  }
  return "invalid";
}

std::string_view to_string(log_level l) {
  switch (l) {
    case log_level::info:
      return "info";
    case log_level::warn:
      return "warn";
    case log_level::error:
      return "error";
  }
  return "invalid";
}

std::string_view to_string(request_kind r) {
  switch (r) {
    case request_kind::run_now:
      return "run_now";
    case request_kind::retry:
      return "retry";
  }
  return "invalid";
}

std::optional<lock_mode> parse_lock_mode(std::string_view name) {
  if (name == "shared") return lock_mode::shared;
  if (name == "exclusive") return lock_mode::exclusive;
  return std::nullopt;
}

std::optional<log_level> parse_log_level(std::string_view name) {
  if (name == "info") return log_level::info;
  if (name == "warn") return log_level::warn;
  if (name == "error") return log_level::error;
  return std::nullopt;
}

std::optional<request_kind> parse_request_kind(std::string_view name) {
  if (name == "run_now") return request_kind::run_now;
  if (name == "retry") return request_kind::retry;
  return std::nullopt;
}

}  // namespace jobsmith
