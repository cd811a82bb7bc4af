// How a beanstalkd job maps onto a jobsmith submission and back: the body
// (bytes) as a payload (JSON text), and the priority. Pure functions, no
// engine (docs/beanstalk.md, "Decisions").
//
// Body -> payload:
//   * a body that is JSON text (what the engine itself accepts as a
//     payload), nested at most `max_depth` deep, is stored exactly as sent;
//   * any other body is stored in an envelope, an object of one member:
//       {"$beanstalk_text":"..."}    the body is UTF-8 (a JSON string holds
//                                    it exactly)
//       {"$beanstalk_base64":"..."}  any other bytes, base64 (RFC 4648,
//                                    with padding)
//   * a JSON body that itself has an envelope's shape is enveloped too
//     (as text), so payload -> body is never ambiguous:
// Payload -> body: an envelope gives its content back, anything else is the
// body byte for byte. body_of(payload_of(b)) == b for every b.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jobsmith::server::beanstalk {

/// The payload that stores `body`.
std::string payload_of(std::string_view body, std::size_t max_depth);

/// The body a payload stands for.
std::string body_of(const std::string& payload);

/// beanstalkd's priority (0 runs first) as jobsmith's (higher runs first):
/// -min(pri, 2^31). Monotone: a lower pri is never a lower priority.
std::int32_t priority_of(std::uint32_t pri);
/// The inverse where there is one: -priority for priority <= 0, else 0 (a
/// job submitted over HTTP with a positive priority is as urgent as pri 0).
std::uint32_t pri_of(std::int32_t priority);

/// RFC 4648 base64 with padding, and back (nullopt for malformed text).
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

/// Whether `bytes` are well-formed UTF-8 (no overlongs, no surrogates).
bool is_utf8(std::string_view bytes);

}  // namespace jobsmith::server::beanstalk
