// `audit verify` beyond the hash chain: what opening the directory for
// writing would drop from the write-ahead log, the by_job index against the
// records, and the stored snapshots. Each part reports its first problem
// with a class for scripts:
//
//   wal_tail_damaged      the WAL's last write is damaged; a read-write
//                         open (jobsmith serve) drops it and the records in it
//   index_mismatch        a by_job entry names a record that is missing, does
//                         not decode, or belongs to another job
//   index_missing         a record has no by_job entry under its job
//   read_error            RocksDB could not read the index or a snapshot
//                         (its checksum failed: damage; or the read failed)
//   snapshot_undecodable  a stored snapshot is unreadable or does not decode
//   snapshot_mismatch     a snapshot decodes but does not fit the log or
//                         its own index entry (sequence, time, size)
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "events/event.hpp"
#include "store/event_log.hpp"
#include "store/rocksdb_log.hpp"

namespace jobsmith::apps::audit {

struct part_outcome {
  const char* part = "";      // "wal" | "index" | "snapshots"
  std::uint64_t checked = 0;  // entries or snapshots that were read
  std::string problem;        // "" when the part checks out; else a class above
  std::string message;        // one line, for FAILED: ...
  std::string summary;        // one line, for ok: ... when it checks out
  sequence_t first_bad = 0;   // the record concerned; 0 when none is
  bool damage = true;         // false: a read failed (I/O), which is not damage
  nlohmann::json detail = nlohmann::json::object();  // the part's own fields
  double seconds = 0;
};

/// What the open reported dropping from the write-ahead log.
part_outcome check_wal(const store::wal_drop& dropped);

/// by_job against the records with from <= seq <= to.
part_outcome check_index(const store::event_log& log, sequence_t from, sequence_t to);

/// Every stored snapshot: read, decoded (queue views), and fitted to the log
/// (its index entry's sequence and size, its head record and that record's
/// time). One snapshot in memory at a time.
part_outcome check_snapshots(const store::event_log& log);

}  // namespace jobsmith::apps::audit
