// `jobsmith audit export|verify|stats` and `jobsmith backup`: the verbs
// behind the command line (apps/audit/audit_cmds.cpp wires them to CLI11).
//
// Every audit verb opens the data directory read-only (RocksDB
// OpenForReadOnly, no LOCK taken, no file created or changed), so it runs on
// a copy of a live directory, on a checkpoint, or on a directory the user may
// only read. `backup --data` is the one verb that opens read-write: it takes
// RocksDB's LOCK to prove no engine is running there.
//
// Exit codes, shared by all verbs:
//   0  done; for verify: every record in range checks out
//   1  the log is damaged: a chain hash mismatch, a missing record (gap), or
//      a record that does not decode; the message names its sequence. For
//      verify also: the WAL's last write, the by_job index or a snapshot
//      (apps/audit/verify_checks.hpp)
//   2  usage error, or the directory cannot be opened or written
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "events/event.hpp"
#include "store/event_log.hpp"
#include "store/rocksdb_log.hpp"

namespace jobsmith::apps::audit {

inline constexpr int exit_ok = 0;
inline constexpr int exit_damaged = 1;
inline constexpr int exit_usage = 2;

// -- times and bounds ---------------------------------------------------------

// Times are read and written by events/time_text.hpp (ISO-8601, UTC).

/// A one-line progress bar on stderr: count, percent, events/s and ETA. Drawn
/// only when stderr is a terminal, so logs and pipes stay clean; redrawn at
/// most every 200 ms and erased by finish().
class progress_meter {
 public:
  progress_meter(const char* label, std::uint64_t total, bool wanted);
  progress_meter(const progress_meter&) = delete;
  progress_meter& operator=(const progress_meter&) = delete;
  ~progress_meter();

  /// Cheap enough per event: looks at the clock once every 4096 calls.
  void update(std::uint64_t done) {
    if (enabled_ && (done & 4095) == 0) redraw(done);
  }
  void finish();

 private:
  void redraw(std::uint64_t done);
  const char* label_;
  std::uint64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw_ = start_;
};

/// Opens a data directory's log read-only (no LOCK, nothing written), with
/// no tail check: the verbs report damage where they meet it. *dropped (when
/// given) says what the open dropped from the write-ahead log, which is what
/// a read-write open would drop (store/rocksdb_log.hpp).
store::status open_read_only(const std::string& dir, std::unique_ptr<store::event_log>* out,
                             store::wal_drop* dropped = nullptr);

/// An upper bound given as --to: a sequence number or a wall time.
struct upper_bound {
  bool is_time = false;
  sequence_t seq = ~sequence_t{0};  // when !is_time; the default = no bound
  millis time = 0;                  // when is_time: the last event with time <= time
};

/// Reads --to. A plain integer below 10^12 is a sequence number; a plain
/// integer of 10^12 or more (any time after 2001-09-09) or one with an "ms"
/// suffix is epoch milliseconds; an ISO-8601 UTC time (parse_time) is a time. A sequence
/// can never reach 10^12 in practice (30 years at 1,000 events/s), so the
/// two readings do not collide.
std::optional<upper_bound> parse_upper_bound(std::string_view text, std::string* error);

/// Reads a sequence number or job id (decimal, > 0).
std::optional<std::uint64_t> parse_positive(std::string_view text);

// -- verbs ----------------------------------------------------------------------

struct export_options {
  std::string data_dir;
  sequence_t from = 1;
  upper_bound to;
  std::optional<job_id> job;  // only this job's events
  std::string out_file;       // empty = stdout
  bool progress = true;       // a bar on stderr when stderr is a terminal
};

/// JSON Lines, one event per line: to_json(event) plus "hash", the record's
/// chain hash in hex. Stops at the first damaged record (exit 1; the lines
/// before it are written).
int run_export(const export_options& o);

struct verify_options {
  std::string data_dir;
  sequence_t from = 1;
  upper_bound to;
  bool json = false;
  bool progress = true;
};

/// Recomputes the chain over [from, to], anchored on the stored hash of
/// record from-1, and decodes every body; reports the first record that is
/// missing, does not decode, or does not match its hash. Then checks what a
/// read-write open would drop from the write-ahead log, the by_job index
/// over the range, and every stored snapshot (apps/audit/verify_checks.hpp).
int run_verify(const verify_options& o);

struct stats_options {
  std::string data_dir;
  bool json = false;
  bool progress = true;
};

/// Events by type and by UTC day, jobs, size on disk, head, first and last
/// event time.
int run_stats(const stats_options& o);

struct backup_options {
  std::string data_dir;  // --data: the engine is not running there
  std::string url;       // --url: ask this running server instead
  std::string token;     // with --url: an admin token
  std::string target;    // --to: must not exist
  bool verify = true;    // verify the copy afterwards (when it is reachable here)
  bool json = false;
  bool progress = true;
};

/// A consistent RocksDB checkpoint of the log in `target`.
int run_backup(const backup_options& o);

}  // namespace jobsmith::apps::audit
