// libFuzzer target: the storage codec of events (events/codec.hpp) on
// arbitrary bytes.
//
// Properties checked on every input, beyond "no crash, no sanitizer report":
//   - a failed decode leaves the output event unchanged and says why;
//   - a successful decode leaves seq and job untouched, and the event
//     re-encodes to exactly the input (the codec is canonical: it refuses
//     non-minimal varints, bools other than 0/1 and trailing bytes);
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

  const std::string again = encode(ev);
  if (again != bytes) violated("a decoded event does not re-encode to its input");

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
