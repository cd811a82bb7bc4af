// The storage encoding of events: compact binary, one record value per event.
// The grammar of the bytes is written at the top of events/codec.cpp, the one
// file that encodes and decodes events.
//
// The encoding carries an event's type, schema version, time, principal and
// body. It does NOT carry `seq` or `job`: the store keeps those in the record
// itself (store/event_log.hpp, record_input / record).
//
// Versioning: the writer always writes each type's current version
// (`T::version`). A reader decodes every version from
// `oldest_readable_version<T>` up to `T::version` and refuses anything newer
// (it cannot know the fields) or older (support for it was dropped).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "events/event.hpp"

namespace jobsmith {

/// The oldest schema version of body type `Body` this reader still decodes.
/// Raise it only when the code for the older layout is removed.
template <class Body>
inline constexpr std::uint16_t oldest_readable_version = 1;

/// The encoding of `ev` without seq and job.
std::string encode(const event& ev);

/// Appends the encoding of `ev` to `out` (no other allocation than the
/// growth of `out`), so a batch of records can share one buffer.
void encode_to(const event& ev, std::string& out);

/// Decodes exactly one event from all of `bytes`. On success fills every
/// field of `out` except `seq` and `job`, which are left untouched. On failure
/// returns false, leaves `out` unchanged and, if `error` is non-null, stores a
/// message naming the type and field. Safe on arbitrary input: it never reads
/// past `bytes` and never allocates more than `bytes` could describe.
/// Rejected: unknown type tag, version newer or older than this reader
/// supports, truncated input, lengths beyond the input, trailing bytes,
/// invalid enum or bool values, integers out of the field's range, and
/// non-minimal varints (so a decoded event re-encodes to the same bytes).
[[nodiscard]] bool decode(std::string_view bytes, event& out, std::string* error);

}  // namespace jobsmith
