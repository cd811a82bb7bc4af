// libFuzzer target: the queue view's snapshot decoder
// (projections/queue_view.hpp, queue_view::decode) on arbitrary bytes.
//
// The snapshot's head and each chunk of rows carry a 64-bit checksum
// (queue_view::checksum) that random mutations almost never get right, so
// nearly every input would stop at the first check. Each input is therefore
// decoded twice: as it is, and with every checksum its framing locates
// recomputed ("repaired"), so the fuzzer reaches the parsing behind the
// checksums. The repair is a pure function of the input: a crash
// reproduces from the saved input alone.
//
// Properties checked on every successful decode, beyond "no crash, no
// sanitizer report":
//   - the view re-encodes, the encoding decodes again, and that view
//     encodes to the same bytes (encode -> decode round trip is exact);
//   - head, job count and totals survive the round trip;
//   - the read-only queries answer on the decoded view (a decoded view must
//     be as usable as a folded one).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "events/binary_io.hpp"
#include "projections/queue_view.hpp"

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "fuzz_snapshot_decoder: property violated: %s\n", what);
  std::abort();
}

void put_le64(std::string& s, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) s[at + static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
}

// Reads a varint at `at`; advances `at`. False when there is none.
bool varint_at(const std::string& s, std::size_t& at, std::uint64_t& v) {
  if (at > s.size()) return false;
  jobsmith::binary::reader r(std::string_view(s).substr(at));
  if (!r.get_varint(v)) return false;
  at = s.size() - r.left();
  return true;
}

// The input with the head's and each chunk's checksum recomputed, as far as
// the framing ("jsqv" | u32 version | u64 sum | varint len | head | varint
// chunks | { u64 sum | varint rows | varint len | rows }) can be followed.
std::string repair(std::string s) {
  if (s.size() < 16) return s;
  std::size_t at = 16;
  std::uint64_t len = 0;
  if (!varint_at(s, at, len) || len > s.size() - at) return s;
  put_le64(s, 8, jobsmith::queue_view::checksum(std::string_view(s).substr(at, len)));
  at += len;
  std::uint64_t chunks = 0;
  if (!varint_at(s, at, chunks)) return s;
  for (std::uint64_t k = 0; k < chunks; ++k) {
    if (s.size() - at < 8) return s;
    const std::size_t sum_at = at;
    at += 8;
    std::uint64_t rows = 0;
    if (!varint_at(s, at, rows) || !varint_at(s, at, len) || len > s.size() - at) return s;
    put_le64(s, sum_at, jobsmith::queue_view::checksum(std::string_view(s).substr(at, len)));
    at += len;
  }
  return s;
}

void check(std::string_view bytes) {
  using jobsmith::queue_view;
  std::string error;
  auto view = queue_view::decode(bytes, &error);
  if (!view) {
    if (error.empty()) violated("a refused snapshot gave no reason");
    return;
  }
  const std::string encoded = view->encode();
  auto back = queue_view::decode(encoded, &error);
  if (!back) {
    std::fprintf(stderr, "re-decode: %s\n", error.c_str());
    violated("a decoded view's encoding does not decode");
  }
  if (back->encode() != encoded) violated("encode -> decode -> encode is not exact");
  if (back->head() != view->head() || back->head_time() != view->head_time() ||
      back->jobs() != view->jobs() || !(back->totals() == view->totals()))
    violated("head, job count or totals changed in the round trip");

  // The read-only queries, at a time before and after every due time.
  for (jobsmith::millis now : {jobsmith::millis{0}, jobsmith::millis{1} << 62}) {
    (void)view->counts(now);
    (void)view->queues(now);
    (void)view->ready(now);
    (void)view->resources(now);
    jobsmith::job_filter all;
    all.limit = 1000;
    (void)view->match(all, now);
  }
  (void)view->running();
  const auto max_job = view->max_job();
  std::size_t explained = 0;
  view->for_each_live([&](const jobsmith::job_row& row) {
    if (explained++ < 32) (void)view->explain(row.id, 0);
  });
  (void)view->explain(max_job + 1, 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string raw(reinterpret_cast<const char*>(data), size);
  check(raw);
  const std::string repaired = repair(raw);
  if (repaired != raw) check(repaired);
  return 0;
}
