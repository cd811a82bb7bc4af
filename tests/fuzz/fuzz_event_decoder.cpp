// libFuzzer target: the storage codec of events (events/codec.hpp) on
// arbitrary bytes.
//
// Properties checked on every input, beyond "no crash, no sanitizer report":
//   - a failed decode leaves the output event unchanged and says why;
//   - a successful decode leaves seq and job untouched, and an event of
//     its type's current version re-encodes to exactly the input (the codec
//     is canonical: it refuses non-minimal varints, bools other than 0/1
//     and trailing bytes; an older version is written back as the current);
//   - the re-encoding decodes again to an event that encodes the same.
// Bytes are compared rather than events so that a NaN double (NaN != NaN)
// still counts as equal when its bits are.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "events/codec.hpp"

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "fuzz_event_decoder: property violated: %s\n", what);
  std::abort();
}

/// The body version a decoded record holds: the second varint (after the
/// type tag). Only called on bytes that decoded, so both varints are there.
std::uint64_t stored_version(std::string_view bytes) {
  std::size_t i = 0;
  while (static_cast<unsigned char>(bytes[i]) & 0x80) ++i;  // the type tag
  ++i;
  std::uint64_t v = 0;
  for (int shift = 0;; shift += 7, ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace jobsmith;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  event ev;
  ev.seq = 77;
  ev.job = 88;
  const event before = ev;
  std::string error;
  if (!decode(bytes, ev, &error)) {
    if (!(ev == before)) violated("a failed decode changed its output");
    if (error.empty()) violated("a failed decode gave no reason");
    return 0;
  }
  if (ev.seq != 77 || ev.job != 88) violated("decode touched seq or job");

  // An older body version decodes and is written back at the current one.
  const std::string again = encode(ev);
  if (again != bytes && stored_version(bytes) == schema_version(ev.body))
    violated("a decoded event does not re-encode to its input");

  event ev2;
  if (!decode(again, ev2, &error)) violated("a re-encoded event does not decode");
  if (encode(ev2) != again) violated("decode(encode(e)) encodes differently");

  // encode_to appends: it must not depend on what the buffer held.
  std::string appended = "prefix";
  encode_to(ev2, appended);
  if (appended.compare(0, 6, "prefix") != 0 || std::string_view(appended).substr(6) != again)
    violated("encode_to differs from encode");
  return 0;
}
