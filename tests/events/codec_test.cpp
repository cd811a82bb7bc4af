// The binary storage codec (events/codec.hpp): exact round trips, a fixed
// byte layout, and refusal of every kind of damaged input without crashing.
#define BOOST_TEST_MODULE events_codec_test
#include "events/codec.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <variant>
#include <utility>
#include <vector>

namespace jobsmith::test {
std::vector<event> sample_events();
}

using namespace jobsmith;
using namespace std::string_literals;

namespace {

// An event that no decode of the inputs below can produce, to see that a
// failed decode leaves its output alone.
event sentinel() {
  event ev;
  ev.seq = 77;
  ev.job = 88;
  ev.time = -99;
  ev.principal = "sentinel";
  ev.body = queue_paused{"sentinel"};
  return ev;
}

std::string varint(std::uint64_t v) {
  std::string s;
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
  return s;
}

// Header for type `tag`, version 1, time 0, empty principal.
std::string header(std::uint64_t tag) { return varint(tag) + "\x01\x00\x00"s; }

std::string decode_error(std::string_view bytes) {
  event out = sentinel();
  std::string error;
  BOOST_TEST_REQUIRE(!decode(bytes, out, &error));
  BOOST_TEST((out == sentinel()), "a failed decode changed its output");
  return error;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(codec)

BOOST_AUTO_TEST_CASE(samples_cover_every_event_type) {
  std::set<std::size_t> seen;
  for (const auto& ev : test::sample_events()) seen.insert(ev.body.index());
  BOOST_TEST(seen.size() == event_type_count);
}

BOOST_AUTO_TEST_CASE(every_type_round_trips_with_all_fields_set) {
  for (const auto& ev : test::sample_events()) {
    BOOST_TEST_CONTEXT(type_name(ev.body)) {
      const std::string bytes = encode(ev);
      event out;
      out.seq = 5;
      out.job = 6;
      std::string error;
      BOOST_TEST_REQUIRE(decode(bytes, out, &error), error);
      BOOST_TEST((out.body == ev.body));
      BOOST_TEST(out.time == ev.time);
      BOOST_TEST(out.principal == ev.principal);
      // seq and job live in the store's record, not in the encoding.
      BOOST_TEST(out.seq == 5u);
      BOOST_TEST(out.job == 6u);
    }
  }
}

BOOST_AUTO_TEST_CASE(every_type_round_trips_at_defaults) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (
        [&] {
          event ev;
          ev.body.emplace<I>();
          event out = sentinel();
          std::string error;
          BOOST_TEST_REQUIRE(decode(encode(ev), out, &error), error);
          BOOST_TEST((out.body == ev.body), type_name(ev.body));
          BOOST_TEST(out.time == 0);
          BOOST_TEST(out.principal.empty());
        }(),
        ...);
  }
  (std::make_index_sequence<event_type_count>{});
}

BOOST_AUTO_TEST_CASE(extreme_integers_round_trip) {
  event ev;
  ev.time = std::numeric_limits<millis>::min();
  job_submitted s;
  s.priority = std::numeric_limits<std::int32_t>::min();
  s.run_at = std::numeric_limits<millis>::max();
  s.retry.max_attempts = std::numeric_limits<std::uint32_t>::max();
  s.schedule = std::numeric_limits<std::uint64_t>::max();
  s.retry.jitter = -0.0;
  ev.body = s;
  event out;
  std::string error;
  BOOST_TEST_REQUIRE(decode(encode(ev), out, &error), error);
  BOOST_TEST((out == ev));
  BOOST_TEST(std::signbit(std::get<job_submitted>(out.body).retry.jitter));
}

BOOST_AUTO_TEST_CASE(encode_to_appends_to_the_buffer) {
  const auto samples = test::sample_events();
  std::string buffer = "prefix";
  encode_to(samples[0], buffer);
  encode_to(samples[1], buffer);
  BOOST_TEST(buffer == "prefix" + encode(samples[0]) + encode(samples[1]));
}

// The stored bytes are a contract with every existing data directory.
BOOST_AUTO_TEST_CASE(byte_layout_is_fixed) {
  event ev;
  ev.time = -2;
  ev.principal = "ab";
  ev.body = job_started{3, "w", 300};
  // type 1, version 1, time zigzag(-2) = 3, "ab", attempt 3, "w", token 300.
  BOOST_TEST(encode(ev) ==
             "\x01\x01\x03\x02"
             "ab"
             "\x03\x01"
             "w"
             "\xac\x02"s);

  // job.reviewed, version 2: accepted, comment, follow_up.
  event f;
  f.body = job_reviewed{true, "", 300};
  BOOST_TEST(encode(f) == "\x08\x02\x00\x00\x01\x00\xac\x02"s);

  event d;
  job_submitted s;
  s.kind = "k";
  s.retry.backoff_coefficient = 1.0;  // IEEE bits 0x3ff0000000000000
  d.body = s;
  const std::string bytes = encode(d);
  // Header (4) + kind (2) + queue "default" (8) + payload "{}" (3) +
  // priority (1) + run_at (1) + max_attempts (1) + initial_interval 1000 (2)
  // then the double, low byte first.
  BOOST_TEST(bytes.substr(22, 8) == "\x00\x00\x00\x00\x00\x00\xf0\x3f"s);
}

BOOST_AUTO_TEST_CASE(every_truncation_is_refused) {
  for (const auto& ev : test::sample_events()) {
    const std::string bytes = encode(ev);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      BOOST_TEST_CONTEXT(type_name(ev.body) << " cut to " << n << " of " << bytes.size()) {
        const std::string error = decode_error(std::string_view(bytes).substr(0, n));
        BOOST_TEST(!error.empty());
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(truncation_message_names_the_field) {
  event ev;
  ev.body = job_started{3, "worker", 1u << 20};
  const std::string bytes = encode(ev);
  BOOST_TEST(decode_error(std::string_view(bytes).substr(0, bytes.size() - 1)) ==
             "job.started: field 'lease_token': input ends inside a varint");
  BOOST_TEST(decode_error("") == "event header: field 'type': input ends inside a varint");
}

BOOST_AUTO_TEST_CASE(unknown_type_tag_is_refused) {
  std::string bytes = encode(test::sample_events()[1]);
  bytes[0] = static_cast<char>(event_type_count);
  BOOST_TEST(contains(decode_error(bytes),
                      "unknown event type tag " + std::to_string(event_type_count)));
  bytes[0] = '\x7f';
  BOOST_TEST(contains(decode_error(bytes), "unknown event type tag 127"));
}

BOOST_AUTO_TEST_CASE(newer_version_is_refused_with_both_versions_named) {
  event ev;
  ev.body = job_started{1, "w", 2};
  std::string bytes = encode(ev);
  BOOST_TEST_REQUIRE(bytes[1] == '\x01');
  bytes[1] = '\x07';
  BOOST_TEST(decode_error(bytes) == "job.started version 7 is newer than this reader (1)");
}

// Logs written before job.submitted gained `follows` and job.reviewed gained
// `follow_up` (version 2 of each) hold version 1 bodies, and logs written
// before job.submitted gained timeouts.to_stop (version 3) hold version 2
// ones: they still decode, with the new fields at their defaults ("none",
// a to_stop of 10 s).
BOOST_AUTO_TEST_CASE(older_bodies_of_evolved_types_still_decode) {
  const std::string default_to_stop = varint(static_cast<std::uint64_t>(2 * phase_timeouts{}.to_stop));  // zigzag
  for (const auto& sample : test::sample_events()) {
    const bool submitted = std::holds_alternative<job_submitted>(sample.body);
    if (!submitted && !std::holds_alternative<job_reviewed>(sample.body)) continue;
    event ev = sample;
    if (submitted) {
      std::get<job_submitted>(ev.body).timeouts.to_stop = phase_timeouts{}.to_stop;
      // Version 2: everything but to_stop.
      std::string bytes = encode(ev);
      BOOST_TEST_REQUIRE(bytes[1] == '\x03');
      BOOST_TEST_REQUIRE(bytes.ends_with(default_to_stop));
      bytes.resize(bytes.size() - default_to_stop.size());
      bytes[1] = '\x02';
      event out;
      out.seq = ev.seq;
      out.job = ev.job;
      std::string error;
      BOOST_TEST_REQUIRE(decode(bytes, out, &error), error);
      BOOST_TEST((out == ev));
      std::get<job_submitted>(ev.body).follows = 0;
    } else {
      std::get<job_reviewed>(ev.body).follow_up = 0;
    }
    // Version 1: without follows (and to_stop) or follow_up.
    std::string bytes = encode(ev);
    if (submitted) bytes.resize(bytes.size() - default_to_stop.size());
    BOOST_TEST_REQUIRE(bytes.back() == '\x00');  // follows or follow_up, 0, last
    bytes[1] = '\x01';
    bytes.pop_back();
    event out;
    out.seq = ev.seq;
    out.job = ev.job;
    std::string error;
    BOOST_TEST_REQUIRE(decode(bytes, out, &error), error);
    BOOST_TEST((out == ev));
  }
}

BOOST_AUTO_TEST_CASE(version_older_than_readable_is_refused) {
  static_assert(oldest_readable_version<job_started> == 1);
  event ev;
  ev.body = job_started{1, "w", 2};
  std::string bytes = encode(ev);
  bytes[1] = '\x00';
  BOOST_TEST(decode_error(bytes) ==
             "job.started version 0 is older than the oldest this reader can read (1)");
}

BOOST_AUTO_TEST_CASE(trailing_bytes_are_refused) {
  for (const auto& ev : test::sample_events()) {
    BOOST_TEST(contains(decode_error(encode(ev) + '\0'), "1 trailing bytes"), type_name(ev.body));
  }
}

BOOST_AUTO_TEST_CASE(string_longer_than_input_is_refused) {
  // job.cancelled with a reason claiming 1000 bytes but carrying 3.
  const std::string bytes = header(7) + varint(1000) + "abc";
  BOOST_TEST(decode_error(bytes) ==
             "job.cancelled: field 'reason': string length 1000 exceeds the 3 bytes left");
}

BOOST_AUTO_TEST_CASE(huge_vector_count_is_refused_before_allocating) {
  // job.progress whose line count is 2^60.
  const std::string bytes = header(2) + varint(1) + varint(0) + varint(1) + varint(1ULL << 60);
  BOOST_TEST(contains(decode_error(bytes), "field 'lines': count 1152921504606846976 exceeds"));
}

BOOST_AUTO_TEST_CASE(invalid_enum_values_are_refused) {
  BOOST_TEST(decode_error(header(9) + varint(2)) ==
             "job.requested: field 'what': invalid request_kind value 2");

  // The writer does not check enums, so a bad in-memory value is caught on read.
  event ev;
  job_submitted s;
  s.kind = "k";
  s.resources = {{"a", lock_mode::shared}, {"b", static_cast<lock_mode>(5)}};
  ev.body = s;
  BOOST_TEST(
      contains(decode_error(encode(ev)), "field 'resources[1].mode': invalid lock_mode value 5"));

  job_progress p;
  p.lines = {{static_cast<log_level>(3), 0, "x"}};
  ev.body = p;
  BOOST_TEST(contains(decode_error(encode(ev)), "field 'lines[0].level': invalid log_level"));
}

BOOST_AUTO_TEST_CASE(bool_other_than_0_or_1_is_refused) {
  BOOST_TEST(decode_error(header(8) + "\x02\x00"s) ==
             "job.reviewed: field 'accepted': bool byte 2 is neither 0 nor 1");
}

BOOST_AUTO_TEST_CASE(integers_out_of_field_range_are_refused) {
  // attempt is 32 bits wide.
  BOOST_TEST(decode_error(header(1) + varint(1ULL << 32) + varint(0) + varint(0)) ==
             "job.started: field 'attempt': value 4294967296 is out of range");
  // percent is a signed 32-bit field: zigzag(2^31) = 2^32.
  BOOST_TEST(contains(decode_error(header(2) + varint(0) + varint(0) + varint(1ULL << 32)),
                      "field 'percent': value 2147483648 is out of range"));
}

BOOST_AUTO_TEST_CASE(malformed_varints_are_refused) {
  // Non-minimal: 1 written in two bytes.
  BOOST_TEST(decode_error("\x81\x00"s) ==
             "event header: field 'type': varint is not minimally encoded");
  // Longer than 64 bits.
  BOOST_TEST(decode_error(std::string(11, '\xff')) ==
             "event header: field 'type': varint longer than 64 bits");
  BOOST_TEST(decode_error(std::string(9, '\xff') + '\x02') ==
             "event header: field 'type': varint longer than 64 bits");
}

BOOST_AUTO_TEST_CASE(error_pointer_may_be_null) {
  event out;
  BOOST_TEST(!decode("\x7f", out, nullptr));
}

// What a fuzzer does, deterministically: damaged records either decode to an
// event that encodes back to the very same bytes (at the current version of
// its type), or are refused with a
// message; nothing crashes or reads past the end (run under the sanitizer
// build to see the latter).
BOOST_AUTO_TEST_CASE(damaged_records_decode_canonically_or_are_refused) {
  std::size_t refused = 0;
  std::size_t accepted = 0;
  auto check = [&](const std::string& bytes) {
    event out;
    std::string error;
    if (decode(bytes, out, &error)) {
      ++accepted;
      // An older body version is written back at the current one. A record
      // that decoded has a one-byte type tag and version (both small, minimal).
      if (static_cast<unsigned char>(bytes[1]) == schema_version(out.body))
        BOOST_TEST_REQUIRE(encode(out) == bytes);
    } else {
      ++refused;
      BOOST_TEST_REQUIRE(!error.empty());
    }
  };
  for (const auto& ev : test::sample_events()) {
    const std::string bytes = encode(ev);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string damaged = bytes;
        damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
        check(damaged);
      }
    }
  }
  std::mt19937_64 rng(20240611);
  for (int i = 0; i < 50'000; ++i) {
    std::string bytes(rng() % 48, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng() % 4 == 0 ? rng() % 3 : rng());
    // Give most inputs a valid type tag and version so the bodies get exercised.
    if (bytes.size() >= 2 && i % 4 != 0) {
      bytes[0] = static_cast<char>(rng() % event_type_count);
      bytes[1] = '\x01';
    }
    check(bytes);
  }
  BOOST_TEST(refused > 0u);
  BOOST_TEST(accepted > 0u);
}

BOOST_AUTO_TEST_SUITE_END()
