// Wall times as people read and type them: ISO-8601 in UTC.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "events/event.hpp"

namespace jobsmith {

/// "2026-11-22T14:02:00.123Z" for milliseconds since the Unix epoch.
std::string format_time(millis t);

/// Reads "2026-11-22T14:02:00.123Z", "2026-11-22T14:02:00Z",
/// "2026-11-22T14:02:00+00:00", "2026-11-22T14:02:00", "2026-11-22 14:02"
/// or "2026-11-22" (UTC only; seconds and fraction optional), or a plain
/// integer of milliseconds since the epoch. nullopt for anything else,
/// including dates that do not exist (2026-02-29).
std::optional<millis> parse_time(std::string_view text);

}  // namespace jobsmith
