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

/// Reads a duration: "0", or digits followed by one unit, "ms", "s", "m",
/// "h" or "d" ("90s", "12h", "1d"). nullopt for anything else, or past
/// 2^53 ms.
std::optional<millis> parse_duration(std::string_view text);

/// The shortest exact form parse_duration reads back: "0", "1d", "36h",
/// "90s", "1500ms".
std::string format_duration(millis d);

}  // namespace jobsmith
