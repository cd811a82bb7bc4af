// The lease clock: what is left of each remote worker's lease, saved now
// and then so that a restart does not hand every lease a fresh deadline.
//
// A lease's time runs only while an engine runs (workers cannot heartbeat
// an engine that is down, so downtime is not held against them), and it
// keeps running across restarts: a job whose worker is gone is reclaimed
// after its heartbeat timeout of engine uptime, however often the engine
// restarts meanwhile. Without this, a crash loop faster than the timeout
// kept such a job `running` forever, holding its slot and its locks.
//
// The scheduler saves the remaining time of every remote lease at most
// every lease_save_interval while any is held, through the journal, with
// event_log::put_meta_unsynced (it survives a crash of the process, not
// necessarily a power loss; it is not part of the hash chain). Recovery
// gives a running job what its saved entry says, when the entry's token is
// the job's; otherwise (no entry, another token, no record) the whole
// heartbeat timeout, as before. An entry can be up to one interval stale,
// so a lease may end up to that much early after a restart.
//
// Record (meta key "leases"), varints (events/binary_io.hpp):
//   version (= 1) | count | count x ( job id | lease token | remaining ms )
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/event.hpp"

namespace jobsmith {

inline constexpr std::string_view leases_meta_key = "leases";
inline constexpr std::chrono::milliseconds lease_save_interval{100};

struct saved_lease {
  job_id id = 0;
  std::uint64_t token = 0;
  std::uint64_t remaining_ms = 0;

  friend bool operator==(const saved_lease&, const saved_lease&) = default;
};

std::string encode_leases(const std::vector<saved_lease>& leases);

/// nullopt when `bytes` is not a whole record of a known version.
std::optional<std::vector<saved_lease>> decode_leases(std::string_view bytes);

}  // namespace jobsmith
