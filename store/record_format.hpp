// The on-disk format of the event log: the one place that knows how keys and
// values are laid out. Everything that reads or writes RocksDB bytes (the log,
// the audit tools, tests that tamper with stored records) goes through the
// helpers below.
//
// One RocksDB database per data directory, four column families. All
// integers are big-endian, so RocksDB's bytewise key order is numeric order.
//
//   events     key   = seq:u64be                                   (8 bytes)
//              value = version:u8 job:u64be hash:u8[32] body:u8[*]
//
//                +---------+-----------------+----------------------+------------+
//                | version | job id          | chain hash           | body       |
//                | 1 byte  | 8 bytes (BE)    | 32 bytes (SHA-256)   | rest       |
//                +---------+-----------------+----------------------+------------+
//                  offset 0  offset 1          offset 9               offset 41
//
//              version: record_version (1); a reader refuses any other.
//              hash:    chain(previous hash, seq, job, body), see event_log.hpp.
//              body:    the encoded event (events/codec.hpp), opaque here.
//
//   by_job     key   = job:u64be seq:u64be                         (16 bytes)
//              value = empty
//              One entry per record, written in the same WriteBatch as the
//              events entry, so a job's stream is a prefix scan.
//
//   snapshots  key   = name (bytes, not starting with 0xff)
//              value = covered:u64be bytes:u8[*]
//              key   = 0xff name                  the snapshot index
//              value = covered:u64be size:u64be                (16 bytes)
//              Written and deleted in the same batch as the snapshot; index
//              keys sort after every name, so listing seeks straight to
//              them and reads no snapshot. Snapshot writes skip the WAL:
//              put_snapshot flushes the column family before it returns.
//
//   meta       key   = name (bytes)
//              value = bytes
//              "format" = "1" is written when the log is created; open
//              refuses any other value.
//
// The `default` column family exists (RocksDB requires it) and stays empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "store/event_log.hpp"

namespace jobsmith::store::format {

inline constexpr std::string_view cf_events = "events";
inline constexpr std::string_view cf_by_job = "by_job";
inline constexpr std::string_view cf_snapshots = "snapshots";
inline constexpr std::string_view cf_meta = "meta";

/// meta key and value of the data directory's format.
inline constexpr std::string_view meta_format_key = "format";
inline constexpr std::string_view meta_format_value = "1";

/// The first byte of the snapshot index's keys (then the snapshot's name).
inline constexpr char snapshot_index_mark = '\xff';
inline constexpr std::size_t snapshot_index_size = 16;

/// The only record version this build reads and writes.
inline constexpr std::uint8_t record_version = 1;

inline constexpr std::size_t seq_key_size = 8;
inline constexpr std::size_t job_key_size = 16;
inline constexpr std::size_t value_header_size = 1 + 8 + 32;
inline constexpr std::size_t snapshot_header_size = 8;

// -- big-endian integers ------------------------------------------------------

/// REQUIRES: dst has room for 8 bytes.
inline void put_be64(char* dst, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    dst[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

/// REQUIRES: p points at 8 readable bytes.
inline std::uint64_t get_be64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// -- keys ---------------------------------------------------------------------

/// events key. REQUIRES: dst has room for seq_key_size bytes.
inline void encode_seq_key(char* dst, sequence_t seq) { put_be64(dst, seq); }

inline std::string seq_key(sequence_t seq) {
  std::string k(seq_key_size, '\0');
  encode_seq_key(k.data(), seq);
  return k;
}

/// False unless `key` is exactly an events key.
inline bool decode_seq_key(std::string_view key, sequence_t* seq) {
  if (key.size() != seq_key_size) return false;
  *seq = get_be64(key.data());
  return true;
}

/// by_job key. REQUIRES: dst has room for job_key_size bytes.
inline void encode_job_key(char* dst, job_id job, sequence_t seq) {
  put_be64(dst, job);
  put_be64(dst + 8, seq);
}

inline std::string job_key(job_id job, sequence_t seq) {
  std::string k(job_key_size, '\0');
  encode_job_key(k.data(), job, seq);
  return k;
}

/// False unless `key` is exactly a by_job key.
inline bool decode_job_key(std::string_view key, job_id* job, sequence_t* seq) {
  if (key.size() != job_key_size) return false;
  *job = get_be64(key.data());
  *seq = get_be64(key.data() + 8);
  return true;
}

// -- events value -------------------------------------------------------------

/// Writes the value header; the body follows it.
/// REQUIRES: dst has room for value_header_size bytes.
inline void encode_value_header(char* dst, job_id job, const chain_hash& hash) {
  dst[0] = static_cast<char>(record_version);
  put_be64(dst + 1, job);
  std::memcpy(dst + 9, hash.data(), hash.size());
}

/// The whole value, for tests and tools (the log builds it in place).
inline std::string encode_value(job_id job, const chain_hash& hash, std::string_view body) {
  std::string v(value_header_size, '\0');
  encode_value_header(v.data(), job, hash);
  v.append(body);
  return v;
}

/// Splits a stored value. False when it is shorter than the header or its
/// version is not record_version; outputs are then unspecified. `body`
/// points into `value`.
inline bool decode_value(std::string_view value, job_id* job, chain_hash* hash,
                         std::string_view* body) {
  if (value.size() < value_header_size) return false;
  if (static_cast<std::uint8_t>(value[0]) != record_version) return false;
  *job = get_be64(value.data() + 1);
  std::memcpy(hash->data(), value.data() + 9, hash->size());
  *body = value.substr(value_header_size);
  return true;
}

// -- snapshots value ----------------------------------------------------------

inline std::string encode_snapshot_value(sequence_t covered, std::string_view bytes) {
  std::string v(snapshot_header_size, '\0');
  put_be64(v.data(), covered);
  v.append(bytes);
  return v;
}

/// False when shorter than the header.
inline bool decode_snapshot_value(std::string_view value, sequence_t* covered,
                                  std::string_view* bytes) {
  if (value.size() < snapshot_header_size) return false;
  *covered = get_be64(value.data());
  *bytes = value.substr(snapshot_header_size);
  return true;
}

}  // namespace jobsmith::store::format
