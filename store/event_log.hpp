// The event log: an append-only, hash-chained sequence of records.
//
// Contracts shared by every implementation (tests/store/log_conformance_test.cpp
// runs one suite against each):
// - Sequence numbers start at 1 and are gap-free. head() never decreases.
// - append() is atomic: all records of a batch become visible and durable
//   together, or none do. It returns only after the batch is durable (for
//   the RocksDB log: one WriteBatch written with sync=true).
// - After an append fails, every later append returns status_code::refused
//   until resume() succeeds or the log is reopened; reads keep working. (So
//   do put_snapshot and put_meta: a failed write of any kind leaves the log
//   refusing writes.) A write that failed for lack of space returns
//   no_space, and the refusals after it have cause() == no_space.
// - No gaps, no silent loss: resume() lets writes continue only when the log
//   is exactly as it was acknowledged, i.e. the stored head record and its
//   chain hash equal head() and head_hash() (the failed batch did not land).
//   If the failed batch did land after all, resume() keeps refusing: the
//   caller holds state built without it, and only a reopen (which reads it
//   back) recovers.
// - Each record's chain hash is H(previous record's chain hash, seq, job,
//   body); the first record chains to 32 zero bytes. H is SHA-256.
// - Reads are inclusive of both bounds and return records in sequence order.
// - A record that fails to decode is reported as corruption with its
//   sequence number; it is never skipped.
// - Writes (append, put_snapshot, put_meta) are serialised inside the log;
//   reads may run on other threads while a write is in flight and see the
//   records up to head() as it was when the read began.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "events/event.hpp"
#include "store/status.hpp"

namespace jobsmith::store {

using chain_hash = std::array<std::uint8_t, 32>;

/// What the journal hands to append(): the job the record belongs to (0 for
/// none) and the encoded event (events/codec.hpp).
struct record_input {
  job_id job = 0;
  std::string body;
};

/// A stored record.
struct record {
  sequence_t seq = 0;
  job_id job = 0;
  chain_hash hash{};  // chain hash up to and including this record
  std::string body;
};

/// A projection checkpoint: `bytes` hold the views as they stood after
/// sequence `covered`.
struct snapshot {
  sequence_t covered = 0;
  std::string bytes;
};

/// A stored snapshot as the store lists it, without reading its bytes.
struct snapshot_info {
  std::string name;
  sequence_t covered = 0;
  std::uint64_t size = 0;  // bytes of snapshot::bytes
};

/// What event_log::verify_index found.
struct index_report {
  std::uint64_t records = 0;  // records in range read for the check
  std::uint64_t entries = 0;  // index entries in range read for the check
  /// "" when index and records agree; otherwise the first problem found:
  ///   index_mismatch  an entry names a record that is missing, does not
  ///                   decode, or belongs to another job
  ///   index_missing   a record has no entry under its job
  ///   read_error      the index or the records could not be read (the
  ///                   returned status says why: RocksDB's checksum errors
  ///                   are corruption, failed reads io_error)
  std::string problem;
  sequence_t seq = 0;  // the record the problem is about; 0 when none is known
  job_id job = 0;      // the job the entry or the record names
};

/// Return false to stop a scan early. The record passed in is valid only
/// during the call (implementations reuse it); copy what you keep.
using record_visitor = std::function<bool(const record&)>;

class event_log {
 public:
  virtual ~event_log() = default;

  /// Appends `batch` atomically and durably. On success *first_seq (if not
  /// null) is the sequence of batch[0]. An empty batch is a no-op.
  virtual status append(std::span<const record_input> batch, sequence_t* first_seq) = 0;

  /// Highest committed sequence; 0 when empty.
  virtual sequence_t head() const = 0;

  /// Chain hash of the record at head() (zeros when empty).
  virtual chain_hash head_hash() const = 0;

  /// Visits records with from <= seq <= to, in order.
  virtual status read(sequence_t from, sequence_t to, const record_visitor& visit) const = 0;

  /// Visits the records of one job, in sequence order.
  virtual status read_job(job_id job, const record_visitor& visit) const = 0;

  /// Recomputes the chain over [from, to] (from >= 1); on mismatch returns
  /// corruption and sets *first_bad to the first record that does not match.
  virtual status verify(sequence_t from, sequence_t to, sequence_t* first_bad) const = 0;

  /// Checks the per-job index that read_job() reads against the records
  /// with from <= seq <= to: every entry names a record of its job, every
  /// record (job 0 included) has its entry. Memory stays bounded whatever
  /// the log's size. ok with out->problem "" when they agree; corruption
  /// with out->problem set and a message naming the record when they do
  /// not; a read failure as it came, with out->problem "read_error". Logs
  /// whose index cannot part from their records (in memory) return ok.
  /// For `jobsmith audit verify`; not meant to race appends.
  virtual status verify_index(sequence_t from, sequence_t to, index_report* out) const {
    (void)from;
    (void)to;
    *out = {};
    return status::ok();
  }

  /// Stores a checkpoint under `name` (not starting with byte 0xff),
  /// replacing the previous one atomically; durable when it returns.
  virtual status put_snapshot(std::string_view name, const snapshot& snap) = 0;
  /// not_found when there is none. The bytes are not checked here: a
  /// snapshot's format carries its own checksums (queue_view::decode).
  virtual status get_snapshot(std::string_view name, snapshot* out) const = 0;
  /// Every snapshot whose name starts with `prefix`, oldest (lowest
  /// `covered`, then name) first. Cheap: reads no snapshot's bytes.
  virtual status list_snapshots(std::string_view prefix, std::vector<snapshot_info>* out) const = 0;
  /// Removes a snapshot; ok when there was none.
  virtual status delete_snapshot(std::string_view name) = 0;

  /// Small engine metadata (format version, ids), not part of the chain.
  /// The key "format" belongs to the store: get_meta reads "1", put_meta
  /// returns invalid_argument.
  virtual status put_meta(std::string_view key, std::string_view value) = 0;
  virtual status get_meta(std::string_view key, std::string* value) const = 0;
  /// put_meta without waiting for the disk: the value survives a crash of
  /// this process (the OS holds it) but not necessarily a power loss. For
  /// best-effort state that is rewritten often (the lease clock,
  /// actors/lease_clock.hpp). A failure counts as a failed write.
  virtual status put_meta_unsynced(std::string_view key, std::string_view value) {
    return put_meta(key, value);
  }

  /// Leaves the refusing state after a failed write once the disk works
  /// again (the contract at the top). ok when the log was not refusing.
  /// While the disk still fails, returns that failure (no_space, io_error)
  /// and keeps refusing; call again later. refused when the log cannot
  /// resume in this process (read-only, or the failed batch landed).
  /// Serialised with the writes; safe while reads run.
  virtual status resume() = 0;

  /// Bytes the log occupies on disk (approximate; 0 for in-memory).
  virtual std::uint64_t size_bytes() const = 0;

  /// Lets background maintenance run that the log deferred at open: the
  /// compactions (rocksdb_log_options::defer_compactions) and the flush of
  /// what the open replayed from RocksDB's write-ahead log. A no-op for
  /// logs without either.
  virtual void start_background_work() {}

  /// Writes a consistent copy of the whole log (records, snapshots, meta)
  /// into `target_dir`, a directory that must not exist yet (its parent
  /// must). Safe while appends run on other threads: the copy holds every
  /// batch committed before the call began and whole batches only, so it
  /// opens and verifies like the original. Used by `jobsmith backup`.
  /// Logs that cannot be copied (in-memory, read-only) return refused.
  virtual status checkpoint(const std::string& target_dir) const {
    return status::refused("this log cannot write a checkpoint to " + target_dir);
  }
};

/// Chain hash of a record given its predecessor's chain hash.
chain_hash chain(const chain_hash& previous, sequence_t seq, job_id job, std::string_view body);

/// Lower-case hex of a chain hash.
std::string to_hex(const chain_hash& h);

}  // namespace jobsmith::store
