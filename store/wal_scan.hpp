// A reader of RocksDB's write-ahead log files that tells where the first
// damaged record is and whether whole writes follow it: the one question
// RocksDB's own recovery modes do not answer (point-in-time recovery drops
// everything after the damage; skipping corrupted records drops the rest
// of the damaged 32 KiB block too, so it cannot see what follows either).
//
// The format (RocksDB's db/log_format.h, the same as LevelDB's): the file
// is a sequence of 32 KiB blocks; a block holds records and, at its end,
// fewer than a header's bytes of zero padding. A record never crosses a
// block:
//
//   +---------+-----------+-----------+------------------+
//   | CRC (4) | length (2)| type (1)  | payload (length) |   legacy header, 7 bytes
//   +---------+-----------+-----------+------------------+
//   CRC: masked CRC32C of type and payload, little-endian; length
//   little-endian. Types 1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST (one write is a
//   FULL record or FIRST MIDDLE* LAST); 5-8 the same in the recyclable
//   format, whose header adds a 4-byte log number (11 bytes, covered by
//   the CRC); 0 with length 0 is preallocated space; other types are
//   metadata records, read and checked like the rest.
//
// The log opens its WAL with the legacy format (no log recycling).
#pragma once

#include <cstdint>
#include <string>

namespace jobsmith::store {

struct wal_scan_result {
  bool damaged = false;           // a record failed its CRC or its header is impossible
  std::string file;               // the WAL file with the first damaged record
  std::uint64_t offset = 0;       // byte offset of that record in `file`
  std::uint64_t writes_after = 0; // whole writes (FULL or FIRST records, CRC intact) after it
  // The payload of the write that holds the first damaged record (a
  // RocksDB WriteBatch), its fragments joined as far as their headers hold
  // together, CRCs not checked: what the damaged write says it held.
  std::string damaged_write;
  bool damaged_write_whole = false;  // every fragment of it was found
  std::string error;              // a file could not be read ("" otherwise)
};

/// Scans every `*.log` file of the RocksDB directory `dir`, oldest first.
/// A record cut short by the end of the last file is a torn write, not
/// damage. After the first damaged record it goes on at the next record
/// its header points to, or, when that is damaged too, at the next block.
wal_scan_result scan_wal_files(const std::string& dir);

/// The records of the event log a WAL write puts (keys of the `events`
/// column family, whose RocksDB id is `events_cf`), read from its payload
/// with RocksDB's own WriteBatch decoder. first..last is what decoded;
/// `whole` when the payload decoded to its end with the count its header
/// gives, so that nothing else was in it.
struct write_records {
  std::uint64_t first = 0;  // 0 when no record decoded
  std::uint64_t last = 0;
  bool whole = false;
};
write_records records_in_write(const std::string& payload, std::uint32_t events_cf);

}  // namespace jobsmith::store
