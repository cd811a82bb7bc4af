#include "store/rocksdb_log.hpp"
#include "store/index_check.hpp"
#include "store/wal_scan.hpp"

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <vector>

#include "store/record_format.hpp"

namespace jobsmith::store {

namespace {

// Scans longer than this many records bypass the block cache (a replay would
// only evict the hot blocks) and read ahead in large chunks.
constexpr std::uint64_t large_scan = 4096;
constexpr std::size_t scan_readahead = 2 << 20;
// Point lookups read_job() sends to RocksDB per MultiGet.
constexpr std::size_t multiget_chunk = 256;
// The reused WriteBatch keeps its buffer between appends; a buffer grown past
// this by an unusually large batch is released afterwards.
constexpr std::size_t batch_keep_bytes = 16 << 20;

constexpr sequence_t max_seq = std::numeric_limits<sequence_t>::max();

std::string_view view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }
rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }

status from_rocksdb(const rocksdb::Status& s, std::string_view what) {
  std::string m = std::string(what) + ": " + s.ToString();
  if (s.IsNoSpace()) return status::no_space(std::move(m));
  if (s.IsCorruption()) return status::corruption(std::move(m));
  if (s.IsNotFound()) return status::not_found(std::move(m));
  if (s.IsInvalidArgument()) return status::invalid_argument(std::move(m));
  return status::io_error(std::move(m));
}

std::string record_prefix(sequence_t seq) { return "record " + std::to_string(seq) + ": "; }

status missing(sequence_t seq) {
  return status::corruption(record_prefix(seq) + "missing (gap in the log)");
}

status undecodable(sequence_t seq, std::string_view value) {
  std::string m =
      record_prefix(seq) + "undecodable value (" + std::to_string(value.size()) + " bytes";
  if (!value.empty()) {
    m += ", version byte " + std::to_string(static_cast<unsigned char>(value[0]));
  }
  return status::corruption(m + ")");
}

status hash_mismatch(sequence_t seq) {
  return status::corruption(record_prefix(seq) + "chain hash mismatch (tampered or corrupt)");
}

// RocksDB's info LOG, written with stdio; a line that cannot be written (a
// full disk) is dropped. RocksDB 7.8's own logger writes through a
// WritableFileWriter, which asserts on the next line after a failed write,
// and Debian's librocksdb keeps its assertions: on a full disk (the LOG
// shares the data directory) the process aborted (store_disk_full_test).
class info_logger final : public rocksdb::Logger {
 public:
  /// Starts `dir`/LOG, renaming an existing one to LOG.old.<micros> as
  /// RocksDB does (RocksDB deletes old ones beyond keep_log_file_num).
  /// nullptr when the file cannot be opened: RocksDB then makes its own.
  static std::shared_ptr<rocksdb::Logger> open(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path log = fs::path(dir) / "LOG";
    if (fs::exists(log, ec)) {
      const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      fs::rename(log, fs::path(dir) / ("LOG.old." + std::to_string(micros)), ec);
    }
    std::FILE* f = std::fopen(log.c_str(), "a");
    if (f == nullptr) return nullptr;
    return std::make_shared<info_logger>(f);
  }

  explicit info_logger(std::FILE* f) : f_(f) {}
  ~info_logger() override { (void)info_logger::CloseImpl(); }

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char line[1024];
    const auto now = std::chrono::system_clock::now();
    const std::time_t secs = std::chrono::system_clock::to_time_t(now);
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                            now.time_since_epoch()).count() % 1000000;
    std::tm tm{};
    localtime_r(&secs, &tm);
    int n = std::snprintf(line, sizeof line, "%04d/%02d/%02d-%02d:%02d:%02d.%06lld ",
                          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                          tm.tm_sec, static_cast<long long>(micros));
    if (n < 0) return;
    va_list copy;
    va_copy(copy, ap);
    const int body = std::vsnprintf(line + n, sizeof line - n, format, copy);
    va_end(copy);
    // Long lines (RocksDB's stats dumps) are formatted again in a buffer of
    // their size, up to 64 KB as RocksDB's own logger does.
    std::string big;
    if (body >= static_cast<int>(sizeof line) - n) {
      big.assign(line, static_cast<std::size_t>(n));
      big.resize(static_cast<std::size_t>(n) + std::min(body, 65535) + 1);
      va_copy(copy, ap);
      std::vsnprintf(big.data() + n, big.size() - n, format, copy);
      va_end(copy);
      big.resize(big.size() - 1);
    }
    std::lock_guard lock(mu_);
    if (f_ == nullptr) return;
    // Errors are ignored and cleared: the next line tries again.
    std::fputs(big.empty() ? line : big.c_str(), f_);
    std::fputc('\n', f_);
    std::fflush(f_);
    std::clearerr(f_);
  }

 protected:
  rocksdb::Status CloseImpl() override {
    std::lock_guard lock(mu_);
    if (f_ != nullptr) std::fclose(f_);
    f_ = nullptr;
    return rocksdb::Status::OK();
  }

 private:
  std::mutex mu_;
  std::FILE* f_;
};

rocksdb::DBOptions make_db_options(const rocksdb_log_options& o) {
  rocksdb::DBOptions d;
  d.create_if_missing = o.create_if_missing;
  d.create_missing_column_families = o.create_if_missing;
  if (o.env != nullptr) d.env = o.env;
  // Flushes and compactions of an append-only log are light; the engine's
  // machines have few cores and the journal needs one.
  d.max_background_jobs = 2;
  // One writer (the journal), and by_job's hash memtable requires it.
  d.allow_concurrent_memtable_write = false;
  // A WAL file is deleted only once every column family has flushed past it.
  // snapshots and meta are written rarely, so their memtables would pin old
  // WAL files for a long time (the default cap is 4x all write buffers, over
  // 1 GB here); a lower cap makes RocksDB flush them instead.
  d.max_total_wal_size = 256ull << 20;
  d.keep_log_file_num = 10;  // RocksDB's own info LOG files
  // WAL recovery: a torn final write (never acknowledged) is dropped
  // silently, any other damage fails the open, which then looks at the
  // damage (rocksdb_log::open, step 1) instead of dropping what follows it
  // the way point-in-time recovery would.
  d.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  // After a crash, keep what the WAL replay rebuilt in the memtables
  // instead of flushing it during open: by_job's hash memtable has to be
  // sorted into a skiplist to be flushed, and with half a million events
  // in the WAL that took most of a 14 s open. The WAL files stay until the
  // memtables flush as usual (tests/store/rocksdb_log_test.cpp's torn-WAL
  // test reopens after writing behind a torn tail).
  d.avoid_flush_during_recovery = true;
  return d;
}

rocksdb::CompressionType block_compression() {
  // LZ4 is cheap enough for the write path and helps the JSON bodies; fall
  // back to none if this librocksdb was built without it.
  for (rocksdb::CompressionType c : rocksdb::GetSupportedCompressions()) {
    if (c == rocksdb::kLZ4Compression) return c;
  }
  return rocksdb::kNoCompression;
}

std::vector<rocksdb::ColumnFamilyDescriptor> column_families() {
  const rocksdb::CompressionType compression = block_compression();

  rocksdb::ColumnFamilyOptions events;
  // Twice the default memtable: fewer, larger flushes of a log that only
  // grows. Keys arrive in order, so flushed files do not overlap and level
  // compaction can often move them down without rewriting them.
  // RocksDB's recovery from a full disk waits until this much is free (the
  // largest write buffer; resume() and docs/operations.md say so).
  events.write_buffer_size = 128ull << 20;
  events.compression = compression;
  events.level_compaction_dynamic_level_bytes = true;
  rocksdb::BlockBasedTableOptions table;
  // Reads are mostly long scans (replay, audit); larger blocks cut per-block
  // work there, while read_job's point lookups pay for each block they touch.
  // Measured on 200-byte records: 32 KB scans ~25% faster than 16 KB and
  // keeps read_job within ~25% of it; 64 KB halves read_job's speed.
  table.block_size = 32 * 1024;
  events.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  rocksdb::ColumnFamilyOptions by_job;
  // by_job keys arrive in sequence order, not key order (job first): in a
  // skiplist memtable every insert walks from the top and misses the cache,
  // which cost more than everything else in an append (measured with
  // `jobsmith bench --log`: 6.7 us/event with by_job, 2.7 without). A hash
  // memtable keyed by the job id (the 8-byte prefix) makes the insert a
  // bucket lookup plus a short list; reads of one job are prefix scans
  // (read_job sets prefix_same_as_start), the only reads by_job serves.
  by_job.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(format::job_key_size / 2));
  by_job.memtable_factory.reset(rocksdb::NewHashLinkListRepFactory(1u << 18));
  by_job.write_buffer_size = 32ull << 20;
  by_job.compression = compression;
  by_job.level_compaction_dynamic_level_bytes = true;

  rocksdb::ColumnFamilyOptions small;  // meta: rare, small writes
  small.write_buffer_size = 8ull << 20;
  small.compression = compression;

  // Snapshots are large (~31 bytes a job: 103 MB at 3.3 M jobs) and several
  // are kept. In table files every compaction of the column family rewrote
  // all of them (450 MB, seconds of CPU, at every fourth snapshot and at
  // open) and every read decompressed one. As blob files (RocksDB's
  // integrated BlobDB) a snapshot is written once, read without a
  // decompression, and its file is dropped once compaction of the small
  // table files (keys, blob references, the index) has dropped its key.
  rocksdb::ColumnFamilyOptions snapshots = small;
  snapshots.enable_blob_files = true;
  snapshots.min_blob_size = 4096;  // index entries stay in the table files
  snapshots.blob_compression_type = rocksdb::kNoCompression;

  // clang-format off
  return {
      {rocksdb::kDefaultColumnFamilyName, small},
      {std::string(format::cf_events), events},
      {std::string(format::cf_by_job), by_job},
      {std::string(format::cf_snapshots), snapshots},
      {std::string(format::cf_meta), small},
  };
  // clang-format on
}

class rocksdb_log final : public event_log {
 public:
  rocksdb_log(std::string dir, bool read_only) : dir_(std::move(dir)), read_only_(read_only) {
    sync_write_.sync = true;
  }

  rocksdb_log(const rocksdb_log&) = delete;
  rocksdb_log& operator=(const rocksdb_log&) = delete;

  ~rocksdb_log() override {
    if (!db_) return;
    // A clean close leaves nothing in the write-ahead log to replay: the
    // next open starts at once (RocksDB does not flush on Close itself).
    if (!read_only_ && !refusal_) {
      rocksdb::FlushOptions flush;
      flush.allow_write_stall = true;
      (void)db_->Flush(flush, handles_);
    }
    for (rocksdb::ColumnFamilyHandle* h : handles_) {
      rocksdb::Status s = db_->DestroyColumnFamilyHandle(h);
      (void)s;  // only fails for the default handle, which is not destroyed
    }
    // After a failed write Close() reports that error again; nothing to do.
    rocksdb::Status s = db_->Close();
    (void)s;
  }

  /// Recovery steps 1-5 of rocksdb_log.hpp.
  status open(const rocksdb_log_options& o);

  status append(std::span<const record_input> batch, sequence_t* first_seq) override;
  sequence_t head() const override {
    std::lock_guard lock(head_mu_);
    return head_;
  }
  chain_hash head_hash() const override {
    std::lock_guard lock(head_mu_);
    return head_hash_;
  }
  status read(sequence_t from, sequence_t to, const record_visitor& visit) const override;
  status read_job(job_id job, const record_visitor& visit) const override;
  status verify(sequence_t from, sequence_t to, sequence_t* first_bad) const override;
  status verify_index(sequence_t from, sequence_t to, index_report* out) const override {
    return check_job_index(*db_, events_, by_job_, std::max<sequence_t>(from, 1), to, out);
  }
  status put_snapshot(std::string_view name, const snapshot& snap) override;
  status get_snapshot(std::string_view name, snapshot* out) const override;
  status list_snapshots(std::string_view prefix, std::vector<snapshot_info>* out) const override;
  status delete_snapshot(std::string_view name) override;
  status put_meta(std::string_view key, std::string_view value) override;
  status get_meta(std::string_view key, std::string* value) const override;
  status put_meta_unsynced(std::string_view key, std::string_view value) override;
  std::uint64_t size_bytes() const override;
  status resume() override;
  status checkpoint(const std::string& target_dir) const override;
  void start_background_work() override {
    if (db_ && deferred_) {
      (void)db_->EnableAutoCompaction(handles_);
      deferred_ = false;
    }
    // What the open replayed from the write-ahead log stayed in the
    // memtables (avoid_flush_during_recovery, make_db_options): flush it
    // now, in the background, so that the next open does not replay it
    // all again (a kill loop saw restarts grow to 13 s without this).
    if (db_ && !read_only_) {
      rocksdb::FlushOptions flush;
      flush.wait = false;
      flush.allow_write_stall = true;
      (void)db_->Flush(flush, handles_);
    }
  }

  /// What open() dropped and why (a damaged final WAL write), or "".
  const std::string& open_warning() const { return open_warning_; }
  const wal_drop& open_drop() const { return open_drop_; }

 private:
  /// put_meta and put_meta_unsynced: `options` says whether to sync.
  status write_meta(const rocksdb::WriteOptions& options, std::string_view key,
                    std::string_view value, const char* what);
  // Iterates `events` over [from, last] and calls
  // f(seq, job, hash, body) -> bool (false stops) for each record. A gap or
  // an undecodable record is corruption and sets *bad to its sequence.
  // REQUIRES: 1 <= from <= last.
  template <class F>
  status scan(sequence_t from, sequence_t last, sequence_t* bad, F&& f) const;
  // Looks up, decodes and visits the records `seqs` of `job`; *stop is set
  // when the visitor asked to stop.
  status fetch_job_records(job_id job, const std::vector<sequence_t>& seqs,
                           const record_visitor& visit, bool* stop) const;
  // The stored chain hash of record `seq`; *bad = seq on corruption.
  status stored_hash(sequence_t seq, chain_hash* out, sequence_t* bad) const;
  // Why a write may not go ahead, if it may not. REQUIRES: write_mu_ held.
  std::optional<status> refuse_write() const;
  // Remembers a failed write and returns its io_error. REQUIRES: write_mu_ held.
  status write_failed(const rocksdb::Status& s, std::string_view what);

  bool deferred_ = false;  // compactions paused until start_background_work()
  std::string open_warning_;  // set by open() when it dropped a damaged final WAL write
  wal_drop open_drop_;        // the same, for tools

  // Constant after open().
  const std::string dir_;
  const bool read_only_;
  rocksdb::WriteOptions sync_write_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // owned; order of column_families()
  rocksdb::ColumnFamilyHandle* events_ = nullptr;
  rocksdb::ColumnFamilyHandle* by_job_ = nullptr;
  rocksdb::ColumnFamilyHandle* snapshots_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;

  // Writer state: guarded by write_mu_ (append, put_snapshot, put_meta).
  std::mutex write_mu_;
  std::optional<status> refusal_;  // set by the first failed write, cleared by resume()
  bool landed_ = false;            // a failed batch landed: refuse until reopened
  rocksdb::WriteBatch batch_;      // reused by every append: no per-call allocation

  // The committed head. Changed only with both write_mu_ and head_mu_ held,
  // so the writer reads it under write_mu_ alone and others under head_mu_.
  mutable std::mutex head_mu_;
  sequence_t head_ = 0;
  chain_hash head_hash_{};
};

namespace {

/// Opens `dir` read-only with WAL recovery `mode` and returns in *last the
/// highest sequence in `events` (0 when empty). For telling where a damaged
/// write-ahead log leaves the log; never writes.
rocksdb::Status last_seq_when_replayed(rocksdb::DBOptions options, const std::string& dir,
                                       rocksdb::WALRecoveryMode mode, sequence_t* last) {
  options.wal_recovery_mode = mode;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      rocksdb::DB::OpenForReadOnly(options, dir, column_families(), &handles, &raw);
  if (!s.ok()) return s;
  std::unique_ptr<rocksdb::DB> db(raw);
  *last = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), handles[1]));
    it->SeekToLast();
    if (it->Valid() && !format::decode_seq_key(view(it->key()), last)) *last = 0;
    s = it->status();
  }
  for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
  return s;
}

}  // namespace

status rocksdb_log::open(const rocksdb_log_options& o) {
  // 1. Open the database and its column families.
  rocksdb::DBOptions db_options = make_db_options(o);
  // Read-only opens keep RocksDB's logger: they must not rename the LOG of
  // a directory (see rocksdb_log.hpp), and they write little.
  if (!read_only_) {
    std::error_code ec;
    if (o.create_if_missing) std::filesystem::create_directories(dir_, ec);
    db_options.info_log = info_logger::open(dir_);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> families = column_families();
  deferred_ = o.defer_compactions && !read_only_;
  if (deferred_)
    for (auto& f : families) f.options.disable_auto_compactions = true;
  rocksdb::DB* raw = nullptr;
  auto open_db = [&] {
    return read_only_ ? rocksdb::DB::OpenForReadOnly(db_options, dir_, families, &handles_, &raw)
                      : rocksdb::DB::Open(db_options, dir_, families, &handles_, &raw);
  };
  rocksdb::Status s = open_db();
  if (s.IsCorruption()) {
    // Damage in the write-ahead log other than a torn final write, or in a
    // table file (then the point-in-time open below fails too, and so does
    // this one). Replayed up to the damage, the log ends at `before`; the
    // WAL files themselves say whether whole writes follow the damage.
    sequence_t before = 0;
    rocksdb::Status pit = last_seq_when_replayed(
        db_options, dir_, rocksdb::WALRecoveryMode::kPointInTimeRecovery, &before);
    wal_scan_result scan = scan_wal_files(dir_);
    if (!pit.ok() || !scan.error.empty() || !scan.damaged)
      return from_rocksdb(s, "open " + dir_);
    const std::string where = scan.file + " at byte " + std::to_string(scan.offset);
    if (scan.writes_after > 0) {
      return status::corruption(
          "open " + dir_ + ": the write-ahead log is damaged at record " +
          std::to_string(before + 1) + " (" + where + "), and " +
          std::to_string(scan.writes_after) +
          " whole writes lie behind the damage; opening would drop them, so the log is not "
          "opened (RocksDB: " + s.ToString() + "). Restore a backup, or move " + scan.file +
          " aside to open without the records from " + std::to_string(before + 1) + " on");
    }
    // Nothing whole follows the damage: it is in the last write, as a write
    // torn by a crash can leave it. Drop that write and say so, with the
    // records it held as far as its damaged bytes still tell.
    db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
    handles_.clear();
    raw = nullptr;
    const std::string damage = s.ToString();
    s = open_db();
    if (s.ok()) {
      const write_records held = records_in_write(scan.damaged_write, handles_[1]->GetID());
      open_drop_ = {true, where, before, held.first, held.last, held.whole};
      std::string lost = "it held no record of the log";
      if (held.first != 0) {
        lost = "records " + std::to_string(held.first) + ".." + std::to_string(held.last) +
               (held.whole ? " go with it"
                           : " and maybe more (it does not decode to its end) go with it");
      } else if (!held.whole) {
        lost = "its records cannot be read";
      }
      open_warning_ = "the write-ahead log's last write was damaged (" + where +
                      ") and is dropped: the log ends at record " + std::to_string(before) +
                      "; " + lost + " (RocksDB: " + damage + ")";
    }
  }
  if (!s.ok()) return from_rocksdb(s, "open " + dir_);
  db_.reset(raw);
  events_ = handles_[1];
  by_job_ = handles_[2];
  snapshots_ = handles_[3];
  meta_ = handles_[4];

  // 2. Find the head (and the first key, checked in 3).
  sequence_t first = 0;
  sequence_t last = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), events_));
    it->SeekToLast();
    if (it->Valid()) {
      if (!format::decode_seq_key(view(it->key()), &last)) {
        return status::corruption("events: last key has " + std::to_string(it->key().size()) +
                                  " bytes, not 8; run `jobsmith audit verify`");
      }
      it->SeekToFirst();
      if (it->Valid() && !format::decode_seq_key(view(it->key()), &first)) first = 0;
    }
    if (!it->status().ok()) return from_rocksdb(it->status(), "open " + dir_ + ": find head");
  }

  // 3. Check the format, and that the log starts at 1.
  std::string fmt;
  s = db_->Get(rocksdb::ReadOptions(), meta_, slice(format::meta_format_key), &fmt);
  if (s.IsNotFound()) {
    if (last != 0) {
      return status::corruption("open " + dir_ + ": meta has no \"format\" but events holds " +
                                "records; not a jobsmith log or damaged");
    }
    if (!read_only_) {
      s = db_->Put(sync_write_, meta_, slice(format::meta_format_key),
                   slice(format::meta_format_value));
      if (!s.ok()) return from_rocksdb(s, "open " + dir_ + ": write format");
    }
  } else if (!s.ok()) {
    return from_rocksdb(s, "open " + dir_ + ": read format");
  } else if (fmt != format::meta_format_value) {
    return status::invalid_argument("open " + dir_ + ": data format \"" + fmt +
                                    "\" is not supported; this build reads format " +
                                    std::string(format::meta_format_value));
  }
  if (last != 0 && first != 1) {
    return status::corruption(record_prefix(1) +
                              "missing (log does not start at 1); run `jobsmith audit verify`");
  }
  head_ = last;
  if (head_ == 0) return status::ok();

  // 4. Verify the tail.
  if (o.tail_verify > 0) {
    const sequence_t from = head_ > o.tail_verify ? head_ - o.tail_verify + 1 : 1;
    sequence_t bad = 0;
    status v = verify(from, head_, &bad);
    if (!v.is_ok()) {
      if (v.code() != status_code::corruption) return v;
      return status::corruption(v.message() + "; run `jobsmith audit verify`");
    }
  }

  // 5. Keep the head's hash for appends.
  sequence_t bad = 0;
  status h = stored_hash(head_, &head_hash_, &bad);
  if (!h.is_ok() && h.code() == status_code::corruption) {
    return status::corruption(h.message() + "; run `jobsmith audit verify`");
  }
  return h;
}

status rocksdb_log::append(std::span<const record_input> batch, sequence_t* first_seq) {
  std::lock_guard lock(write_mu_);
  if (std::optional<status> r = refuse_write()) return *r;
  if (batch.empty()) return status::ok();

  // head_ and head_hash_ change only under write_mu_: read without head_mu_.
  const sequence_t first = head_ + 1;
  sequence_t seq = head_;
  chain_hash hash = head_hash_;
  char key[format::seq_key_size];
  char job_key[format::job_key_size];
  char header[format::value_header_size];
  batch_.Clear();
  for (const record_input& in : batch) {
    ++seq;
    hash = chain(hash, seq, in.job, in.body);
    format::encode_seq_key(key, seq);
    format::encode_value_header(header, in.job, hash);
    format::encode_job_key(job_key, in.job, seq);
    // SliceParts: the body goes into the batch once, without an extra copy.
    const rocksdb::Slice key_part(key, sizeof key);
    const rocksdb::Slice value_parts[2] = {rocksdb::Slice(header, sizeof header), slice(in.body)};
    rocksdb::Status s =
        batch_.Put(events_, rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(value_parts, 2));
    if (s.ok()) s = batch_.Put(by_job_, rocksdb::Slice(job_key, sizeof job_key), rocksdb::Slice());
    if (!s.ok()) {
      // Nothing was written: the log stays usable.
      batch_.Clear();
      return status::invalid_argument(record_prefix(seq) + "cannot be batched: " + s.ToString());
    }
  }

  rocksdb::Status s = db_->Write(sync_write_, &batch_);
  if (batch_.GetDataSize() > batch_keep_bytes) {
    batch_ = rocksdb::WriteBatch();
  }
  if (!s.ok()) {
    return write_failed(s,
                        "append of records " + std::to_string(first) + ".." + std::to_string(seq));
  }
  {
    std::lock_guard head_lock(head_mu_);
    head_ = seq;
    head_hash_ = hash;
  }
  if (first_seq != nullptr) *first_seq = first;
  return status::ok();
}

std::optional<status> rocksdb_log::refuse_write() const {
  if (read_only_) return status::refused("log is open read-only: " + dir_);
  return refusal_;
}

status rocksdb_log::write_failed(const rocksdb::Status& s, std::string_view what) {
  std::string m = std::string(what) + ": " + s.ToString();
  status cause = s.IsNoSpace() ? status::no_space(std::move(m)) : status::io_error(std::move(m));
  if (!refusal_) refusal_ = refused_after_failed_write(head_ + 1, cause);
  return cause;
}

status rocksdb_log::resume() {
  std::lock_guard lock(write_mu_);
  if (read_only_) return status::refused("log is open read-only: " + dir_);
  if (!refusal_) return status::ok();
  if (landed_) return *refusal_;
  // A failed write leaves RocksDB with a background error that stops every
  // write. Resume() clears it by flushing every memtable and switching to a
  // new WAL (RocksDB 7.8), so bytes of the failed batch in the old WAL become
  // obsolete and are never replayed; ok when there was no background error.
  // What RocksDB 7.8 does by kind of error (tests/store/rocksdb_log_test.cpp,
  // fault_injection):
  // - no space: a hard error that RocksDB recovers from by itself (its
  //   SstFileManager checks every 5 s and flushes once writes work); Resume()
  //   answers Busy meanwhile, and ok once that recovery succeeded.
  // - any other I/O error on the WAL: fatal; this process cannot write again.
  // A failure of the flush itself (the disk still fails) is returned as is.
  rocksdb::Status s = db_->Resume();
  if (s.IsBusy()) {
    return refusal_->is_no_space()
               ? status::no_space("RocksDB resumes by itself once the disk has room for its "
                                  "largest memtable (128 MB; it checks every 5 s)")
               : status::io_error("RocksDB is still recovering from the failed write");
  }
  if (!s.ok() && s.severity() >= rocksdb::Status::Severity::kFatalError) {
    return status::refused("log cannot resume in this process: RocksDB treats the failed write "
                           "as fatal (" + s.ToString() + "); restart the engine (" +
                           refusal_->message() + ")");
  }
  if (!s.ok()) return from_rocksdb(s, "resume after failed write");
  // The failed batch never reached the memtable (RocksDB inserts only after
  // the WAL write and its sync succeeded), so the stored head is ours. Check
  // it rather than trust it: continuing from a head the store does not hold
  // would leave a gap or fork the chain.
  sequence_t stored = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), events_));
    it->SeekToLast();
    if (it->Valid() && !format::decode_seq_key(view(it->key()), &stored)) {
      return status::corruption("resume: events: last key has " +
                                std::to_string(it->key().size()) + " bytes, not 8");
    }
    if (!it->status().ok()) return from_rocksdb(it->status(), "resume: find head");
  }
  chain_hash stored_head_hash{};
  if (stored != 0) {
    sequence_t bad = 0;
    status h = stored_hash(stored, &stored_head_hash, &bad);
    if (!h.is_ok()) return h;
  }
  if (stored != head_ || stored_head_hash != head_hash_) {
    landed_ = true;
    refusal_ = status::refused(
        "log cannot resume: the store holds record " + std::to_string(stored) +
        " with chain hash " + to_hex(stored_head_hash) + " but this process acknowledged up to " +
        std::to_string(head_) + " (" + to_hex(head_hash_) +
        "); a failed write landed after all: restart the engine to recover it");
    return *refusal_;
  }
  refusal_.reset();
  return status::ok();
}

template <class F>
status rocksdb_log::scan(sequence_t from, sequence_t last, sequence_t* bad, F&& f) const {
  char lower[format::seq_key_size];
  char upper[format::seq_key_size];
  format::encode_seq_key(lower, from);
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper_slice;
  if (last < max_seq) {
    format::encode_seq_key(upper, last + 1);
    upper_slice = rocksdb::Slice(upper, sizeof upper);
    ro.iterate_upper_bound = &upper_slice;
  }
  if (last - from >= large_scan) {
    ro.fill_cache = false;
    ro.readahead_size = scan_readahead;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_));
  sequence_t expect = from;
  for (it->Seek(rocksdb::Slice(lower, sizeof lower)); it->Valid(); it->Next()) {
    sequence_t seq = 0;
    if (!format::decode_seq_key(view(it->key()), &seq)) {
      *bad = expect;
      return status::corruption(record_prefix(expect) + "found an events key of " +
                                std::to_string(it->key().size()) + " bytes in its place");
    }
    if (seq != expect) {
      *bad = expect;
      return missing(expect);
    }
    job_id job = 0;
    chain_hash hash;
    std::string_view body;
    const std::string_view value = view(it->value());
    if (!format::decode_value(value, &job, &hash, &body)) {
      *bad = seq;
      return undecodable(seq, value);
    }
    if (!f(seq, job, hash, body) || seq == last) return status::ok();
    ++expect;
  }
  if (!it->status().ok()) {
    *bad = expect;
    return from_rocksdb(it->status(), record_prefix(expect) + "read failed");
  }
  *bad = expect;
  return missing(expect);
}

status rocksdb_log::read(sequence_t from, sequence_t to, const record_visitor& visit) const {
  from = std::max<sequence_t>(from, 1);
  const sequence_t last = std::min(to, head());
  if (from > last) return status::ok();
  record r;
  sequence_t bad = 0;
  return scan(from, last, &bad,
              [&](sequence_t seq, job_id job, const chain_hash& hash, std::string_view body) {
                r.seq = seq;
                r.job = job;
                r.hash = hash;
                r.body.assign(body);  // reuses r.body's buffer
                return visit(r);
              });
}

status rocksdb_log::read_job(job_id job, const record_visitor& visit) const {
  const sequence_t last = head();
  char lower[format::job_key_size];
  char upper[format::job_key_size];
  format::encode_job_key(lower, job, 0);
  rocksdb::ReadOptions ro;
  ro.prefix_same_as_start = true;  // by_job's hash memtable serves prefix scans only
  rocksdb::Slice upper_slice;
  if (job < std::numeric_limits<job_id>::max()) {
    format::encode_job_key(upper, job + 1, 0);
    upper_slice = rocksdb::Slice(upper, sizeof upper);
    ro.iterate_upper_bound = &upper_slice;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, by_job_));
  std::vector<sequence_t> seqs;
  seqs.reserve(multiget_chunk);
  bool stop = false;
  for (it->Seek(rocksdb::Slice(lower, sizeof lower)); it->Valid(); it->Next()) {
    job_id j = 0;
    sequence_t seq = 0;
    if (!format::decode_job_key(view(it->key()), &j, &seq)) {
      return status::corruption("by_job: key of " + std::to_string(it->key().size()) +
                                " bytes under job " + std::to_string(job));
    }
    if (j != job || seq > last) break;  // past the job, or appended after this read began
    seqs.push_back(seq);
    if (seqs.size() == multiget_chunk) {
      status s = fetch_job_records(job, seqs, visit, &stop);
      if (!s.is_ok() || stop) return s;
      seqs.clear();
    }
  }
  if (!it->status().ok()) return from_rocksdb(it->status(), "read by_job");
  if (seqs.empty()) return status::ok();
  return fetch_job_records(job, seqs, visit, &stop);
}

status rocksdb_log::fetch_job_records(job_id job, const std::vector<sequence_t>& seqs,
                                      const record_visitor& visit, bool* stop) const {
  // Written in the same batch as their by_job entries, so each is visible.
  const std::size_t n = seqs.size();
  std::vector<char> key_bytes(n * format::seq_key_size);
  std::vector<rocksdb::Slice> keys(n);
  for (std::size_t i = 0; i < n; ++i) {
    char* k = key_bytes.data() + i * format::seq_key_size;
    format::encode_seq_key(k, seqs[i]);
    keys[i] = rocksdb::Slice(k, format::seq_key_size);
  }
  std::vector<rocksdb::PinnableSlice> values(n);
  std::vector<rocksdb::Status> statuses(n);
  db_->MultiGet(rocksdb::ReadOptions(), events_, n, keys.data(), values.data(), statuses.data(),
                /*sorted_input=*/true);
  record r;
  for (std::size_t i = 0; i < n; ++i) {
    const sequence_t seq = seqs[i];
    if (statuses[i].IsNotFound()) {
      return status::corruption(record_prefix(seq) + "missing (listed under job " +
                                std::to_string(job) + " in by_job)");
    }
    if (!statuses[i].ok()) return from_rocksdb(statuses[i], record_prefix(seq) + "read failed");
    std::string_view body;
    const std::string_view value = view(values[i]);
    if (!format::decode_value(value, &r.job, &r.hash, &body)) return undecodable(seq, value);
    if (r.job != job) {
      return status::corruption(record_prefix(seq) + "belongs to job " + std::to_string(r.job) +
                                " but by_job lists it under job " + std::to_string(job));
    }
    r.seq = seq;
    r.body.assign(body);
    if (!visit(r)) {
      *stop = true;
      return status::ok();
    }
  }
  return status::ok();
}

status rocksdb_log::stored_hash(sequence_t seq, chain_hash* out, sequence_t* bad) const {
  rocksdb::PinnableSlice value;
  char key[format::seq_key_size];
  format::encode_seq_key(key, seq);
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), events_, rocksdb::Slice(key, sizeof key), &value);
  if (s.IsNotFound()) {
    *bad = seq;
    return missing(seq);
  }
  if (!s.ok()) return from_rocksdb(s, record_prefix(seq) + "read failed");
  job_id job = 0;
  std::string_view body;
  if (!format::decode_value(view(value), &job, out, &body)) {
    *bad = seq;
    return undecodable(seq, view(value));
  }
  return status::ok();
}

status rocksdb_log::verify(sequence_t from, sequence_t to, sequence_t* first_bad) const {
  if (from == 0) return status::invalid_argument("verify: from must be >= 1");
  const sequence_t last = std::min(to, head());
  if (from > last) return status::ok();
  sequence_t bad = 0;
  // The chain is anchored on the stored hash of the record before `from`; a
  // fault in that record itself shows as a mismatch at `from`.
  chain_hash prev{};
  if (from > 1) {
    status s = stored_hash(from - 1, &prev, &bad);
    if (!s.is_ok()) {
      if (first_bad != nullptr && bad != 0) *first_bad = bad;
      return s;
    }
  }
  sequence_t mismatch = 0;
  status s = scan(from, last, &bad,
                  [&](sequence_t seq, job_id job, const chain_hash& hash, std::string_view body) {
                    if (chain(prev, seq, job, body) != hash) {
                      mismatch = seq;
                      return false;
                    }
                    prev = hash;
                    return true;
                  });
  if (!s.is_ok()) {
    if (first_bad != nullptr && bad != 0) *first_bad = bad;
    return s;
  }
  if (mismatch != 0) {
    if (first_bad != nullptr) *first_bad = mismatch;
    return hash_mismatch(mismatch);
  }
  return status::ok();
}

namespace {

std::string snapshot_index_key(std::string_view name) {
  std::string key(1, format::snapshot_index_mark);
  key += name;
  return key;
}

}  // namespace

status rocksdb_log::put_snapshot(std::string_view name, const snapshot& snap) {
  if (name.starts_with(format::snapshot_index_mark))
    return status::invalid_argument("snapshot names starting with byte 0xff belong to the store");
  {
    std::lock_guard lock(write_mu_);
    if (std::optional<status> r = refuse_write()) return *r;
  }
  // Not under write_mu_ and not through the WAL: a snapshot is large (a
  // hundred MB for millions of jobs) and its write must not hold appends
  // back, nor sit in the WAL for every open after a crash to replay. The
  // flush makes it durable (RocksDB syncs the table file and the manifest)
  // before this returns; a crash before that loses the snapshot and its
  // index entry together (one column family, one memtable).
  const std::string value = format::encode_snapshot_value(snap.covered, snap.bytes);
  char index[format::snapshot_index_size];
  format::put_be64(index, snap.covered);
  format::put_be64(index + 8, snap.bytes.size());
  rocksdb::WriteBatch batch;
  rocksdb::Status s = batch.Put(snapshots_, slice(name), slice(value));
  if (s.ok()) s = batch.Put(snapshots_, slice(snapshot_index_key(name)), rocksdb::Slice(index, sizeof index));
  rocksdb::WriteOptions no_wal;
  no_wal.disableWAL = true;
  if (s.ok()) s = db_->Write(no_wal, &batch);
  if (s.ok()) {
    rocksdb::FlushOptions flush;
    flush.allow_write_stall = true;
    s = db_->Flush(flush, snapshots_);
  }
  if (!s.ok()) {
    std::lock_guard lock(write_mu_);
    return write_failed(s, "put_snapshot " + std::string(name));
  }
  return status::ok();
}

status rocksdb_log::delete_snapshot(std::string_view name) {
  {
    std::lock_guard lock(write_mu_);
    if (std::optional<status> r = refuse_write()) return *r;
  }
  // Like put_snapshot, past the WAL; the next flush makes it durable. A
  // crash before that brings the snapshot back, which costs only space.
  rocksdb::WriteBatch batch;
  rocksdb::Status s = batch.Delete(snapshots_, slice(name));
  if (s.ok()) s = batch.Delete(snapshots_, slice(snapshot_index_key(name)));
  rocksdb::WriteOptions no_wal;
  no_wal.disableWAL = true;
  if (s.ok()) s = db_->Write(no_wal, &batch);
  if (!s.ok()) {
    std::lock_guard lock(write_mu_);
    return write_failed(s, "delete_snapshot " + std::string(name));
  }
  return status::ok();
}

status rocksdb_log::list_snapshots(std::string_view prefix,
                                   std::vector<snapshot_info>* out) const {
  out->clear();
  const std::string from = snapshot_index_key(prefix);
  rocksdb::ReadOptions options;
  // Index keys are the last in the column family: nothing to read past them.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, snapshots_));
  for (it->Seek(slice(from)); it->Valid() && view(it->key()).starts_with(from); it->Next()) {
    const std::string_view key = view(it->key());
    const std::string_view value = view(it->value());
    if (value.size() != format::snapshot_index_size) {
      return status::corruption("snapshot index entry for \"" + std::string(key.substr(1)) +
                                "\" has " + std::to_string(value.size()) + " bytes, not " +
                                std::to_string(format::snapshot_index_size));
    }
    out->push_back(snapshot_info{std::string(key.substr(1)), format::get_be64(value.data()),
                                 format::get_be64(value.data() + 8)});
  }
  if (!it->status().ok()) return from_rocksdb(it->status(), "list_snapshots");
  std::sort(out->begin(), out->end(), [](const snapshot_info& a, const snapshot_info& b) {
    return a.covered != b.covered ? a.covered < b.covered : a.name < b.name;
  });
  return status::ok();
}

status rocksdb_log::get_snapshot(std::string_view name, snapshot* out) const {
  // Read into out->bytes and drop the header in place: one copy of a
  // snapshot of a hundred MB, not two.
  // Without RocksDB's own checksum of the value: a snapshot carries its
  // own (the queue view checks its head and every chunk, on several
  // threads), and RocksDB's CRC of a 100 MB blob, on the reading thread,
  // was a tenth of a restart's profile.
  std::string& value = out->bytes;
  rocksdb::ReadOptions ro;
  ro.verify_checksums = false;
  rocksdb::Status s = db_->Get(ro, snapshots_, slice(name), &value);
  if (s.IsNotFound()) return status::not_found("no snapshot named " + std::string(name));
  if (!s.ok()) return from_rocksdb(s, "get_snapshot " + std::string(name));
  std::string_view bytes;
  if (!format::decode_snapshot_value(view(value), &out->covered, &bytes)) {
    return status::corruption("snapshot " + std::string(name) + ": value of " +
                              std::to_string(value.size()) + " bytes is too short");
  }
  value.erase(0, value.size() - bytes.size());
  return status::ok();
}

status rocksdb_log::put_meta(std::string_view key, std::string_view value) {
  return write_meta(sync_write_, key, value, "put_meta");
}

status rocksdb_log::put_meta_unsynced(std::string_view key, std::string_view value) {
  // sync=false: the record is written to the WAL file (the OS has it when
  // Put returns) and made durable by the next synced write.
  return write_meta(rocksdb::WriteOptions(), key, value, "put_meta_unsynced");
}

status rocksdb_log::write_meta(const rocksdb::WriteOptions& options, std::string_view key,
                               std::string_view value, const char* what) {
  if (key == format::meta_format_key) {
    return status::invalid_argument("meta key \"format\" belongs to the store");
  }
  std::lock_guard lock(write_mu_);
  if (std::optional<status> r = refuse_write()) return *r;
  rocksdb::Status s = db_->Put(options, meta_, slice(key), slice(value));
  if (!s.ok()) return write_failed(s, std::string(what) + " " + std::string(key));
  return status::ok();
}

status rocksdb_log::get_meta(std::string_view key, std::string* value) const {
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, slice(key), value);
  if (s.IsNotFound()) return status::not_found("no meta key " + std::string(key));
  if (!s.ok()) return from_rocksdb(s, "get_meta " + std::string(key));
  return status::ok();
}

std::uint64_t rocksdb_log::size_bytes() const {
  // What the directory occupies: SST files, WAL, MANIFEST and RocksDB's info
  // logs, including obsolete files not yet deleted. Files that vanish during
  // the walk (compaction) are skipped.
  namespace fs = std::filesystem;
  std::error_code ec;
  std::uint64_t total = 0;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;
    const std::uintmax_t n = it->is_regular_file(size_ec) ? it->file_size(size_ec) : 0;
    if (!size_ec) total += n;
  }
  return total;
}

status rocksdb_log::checkpoint(const std::string& target_dir) const {
  // A read-only database cannot flush its memtable, and RocksDB 7.8's
  // checkpoint waits for that flush forever (facebook/rocksdb#11167).
  if (read_only_) return status::refused("log is open read-only: " + dir_ + " (no checkpoint)");
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
  if (!s.ok()) return from_rocksdb(s, "checkpoint " + dir_);
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  // log_size_for_flush = 0: flush every memtable first, so the copy is table
  // files (hard links where target_dir is on the same file system) plus the
  // WAL written since. RocksDB pins the files it lists (file deletions are
  // disabled meanwhile) and cuts the copy at one sequence number, so
  // concurrent appends are either wholly in it or wholly out.
  s = cp->CreateCheckpoint(target_dir, /*log_size_for_flush=*/0);
  if (!s.ok()) return from_rocksdb(s, "checkpoint " + dir_ + " to " + target_dir);
  return status::ok();
}

}  // namespace

status open_rocksdb_log(const std::string& dir, const rocksdb_log_options& opts,
                        std::unique_ptr<event_log>* out, std::string* warning,
                        wal_drop* dropped) {
  if (opts.read_only || !opts.create_if_missing) {
    // RocksDB would create the directory and its info LOG before noticing
    // there is no database: a mistyped path given to an audit tool must not
    // leave a directory behind.
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec)) {
      return status::not_found("open " + dir + ": no log there (no CURRENT file)");
    }
  }
  auto log = std::make_unique<rocksdb_log>(dir, opts.read_only);
  status s = log->open(opts);
  if (!s.is_ok()) return s;  // ~rocksdb_log closes whatever was opened
  if (warning != nullptr) *warning = log->open_warning();
  if (dropped != nullptr) *dropped = log->open_drop();
  *out = std::move(log);
  return status::ok();
}

}  // namespace jobsmith::store
