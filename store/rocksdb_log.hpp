// The event log on RocksDB: one database per data directory, laid out as
// store/record_format.hpp describes.
//
// open_rocksdb_log() recovers in these steps:
//   1. Open the database with its column families (events, by_job, snapshots,
//      meta), creating the database and any missing family when
//      create_if_missing. RocksDB replays its write-ahead log here; a torn
//      tail (a batch whose fsync never returned) is dropped, so the log holds
//      exactly the acknowledged batches (WAL recovery: point in time).
//   2. Find the head: the last key of `events` (0 when empty).
//   3. Check meta "format": a new, empty log gets "1"; any other value, or a
//      log with records but no format, is refused. A non-empty log must start
//      at record 1.
//   4. Verify the tail: recompute the chain over the last `tail_verify`
//      records, starting from the stored hash of the record before them, and
//      check their keys are consecutive. A mismatch is corruption naming the
//      record.
//   5. Keep head and its chain hash in memory; append() continues from them.
//
// read_only is for offline tools (audit, replay). Do not open a directory
// read-only while an engine has it open for writing: RocksDB leaves that
// undefined (a compaction may delete files the reader still needs).
//
// Appends are group-committed by the caller (the journal): each append() is
// one WriteBatch, written with sync=true, so one fsync per batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "store/event_log.hpp"
#include "store/status.hpp"

namespace rocksdb {
class Env;
}

namespace jobsmith::store {

struct rocksdb_log_options {
  /// Create the database and its column families when missing.
  bool create_if_missing = true;
  /// Open with DB::OpenForReadOnly for offline tools: never writes, every
  /// write returns refused.
  bool read_only = false;
  /// Records at the tail whose chain is recomputed at open (0 = none; the
  /// head record is still decoded for its hash).
  std::uint64_t tail_verify = 64;
  /// Open with RocksDB's compactions paused until start_background_work():
  /// the engine's recovery then has both cores to itself (a compaction left
  /// over from the last run otherwise starts at open and takes one).
  bool defer_compactions = false;
  /// RocksDB environment, for fault injection in tests; nullptr = default.
  /// Must outlive the log.
  rocksdb::Env* env = nullptr;
};

/// What an open dropped from the write-ahead log: its damaged last write
/// (below). Read-only opens decide as read-write ones do, so an offline
/// tool learns what opening the directory for writing would drop.
struct wal_drop {
  bool dropped = false;
  std::string where;   // the WAL file and byte offset of the damage
  sequence_t kept = 0; // the log's head after the open
  /// The records the dropped write held, read from its damaged bytes with
  /// RocksDB's WriteBatch decoder (CRC not checked); 0..0 when none could
  /// be read. `whole`: it decoded to its end, so first..last is all it held.
  sequence_t first = 0;
  sequence_t last = 0;
  bool whole = false;
};

/// Opens (or creates) the log in directory `dir`; on success *out holds it.
/// Errors: io_error when the directory is locked by another open log (the
/// message is RocksDB's, naming the LOCK file) or a file cannot be read;
/// corruption naming the sequence when the tail fails verification;
/// invalid_argument for an unknown format; not_found when there is no log in
/// `dir` and read_only is set or create_if_missing is not (nothing is
/// created then).
///
/// The write-ahead log: a torn final write (a crash in the middle of it) is
/// dropped silently, as it was never acknowledged. Other damage there is
/// corruption naming the first record lost and the last one behind the
/// damage, and nothing is opened; damage only in the WAL's last write is
/// dropped, and *warning (when given) says so, and *dropped (when given)
/// says what. Otherwise *warning is "" and dropped->dropped false.
status open_rocksdb_log(const std::string& dir, const rocksdb_log_options& opts,
                        std::unique_ptr<event_log>* out, std::string* warning = nullptr,
                        wal_drop* dropped = nullptr);

}  // namespace jobsmith::store
