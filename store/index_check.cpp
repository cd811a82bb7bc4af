#include "store/index_check.hpp"

#include <rocksdb/db.h>

#include <array>
#include <limits>
#include <memory>
#include <random>
#include <string_view>
#include <vector>

#include "store/record_format.hpp"

namespace jobsmith::store {

namespace {

// Entries or records looked up per MultiGet by the locating pass.
constexpr std::size_t lookup_chunk = 256;
constexpr std::size_t scan_readahead = 2 << 20;

std::string_view view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

/// SipHash-2-4 of the two words (job, seq) under `key`: a keyed PRF, so
/// the digest below cannot be matched by damage made without the key.
std::uint64_t sip_pair(const std::array<std::uint64_t, 2>& key, std::uint64_t a,
                       std::uint64_t b) {
  std::uint64_t v0 = key[0] ^ 0x736f6d6570736575ull;
  std::uint64_t v1 = key[1] ^ 0x646f72616e646f6dull;
  std::uint64_t v2 = key[0] ^ 0x6c7967656e657261ull;
  std::uint64_t v3 = key[1] ^ 0x7465646279746573ull;
  auto round = [&] {
    v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);
    v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;
    v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;
    v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);
  };
  for (std::uint64_t m : {a, b, std::uint64_t{16} << 56}) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

/// An order-free digest of a set of (job, seq) pairs: two lanes of summed
/// SipHash values under independent random keys.
class pair_digest {
 public:
  explicit pair_digest(const std::array<std::uint64_t, 4>& keys)
      : k0_{keys[0], keys[1]}, k1_{keys[2], keys[3]} {}
  void add(job_id job, sequence_t seq) {
    lane0_ += sip_pair(k0_, job, seq);
    lane1_ += sip_pair(k1_, job, seq);
  }
  bool operator==(const pair_digest& o) const { return lane0_ == o.lane0_ && lane1_ == o.lane1_; }

 private:
  std::array<std::uint64_t, 2> k0_, k1_;
  std::uint64_t lane0_ = 0, lane1_ = 0;
};

std::array<std::uint64_t, 4> random_keys() {
  std::random_device rd;
  std::array<std::uint64_t, 4> k{};
  for (auto& w : k) w = (std::uint64_t{rd()} << 32) ^ rd();
  return k;
}

/// Releases a RocksDB snapshot when the check ends.
class snapshot_guard {
 public:
  explicit snapshot_guard(rocksdb::DB& db) : db_(db), snap_(db.GetSnapshot()) {}
  snapshot_guard(const snapshot_guard&) = delete;
  snapshot_guard& operator=(const snapshot_guard&) = delete;
  ~snapshot_guard() {
    if (snap_ != nullptr) db_.ReleaseSnapshot(snap_);
  }
  const rocksdb::Snapshot* get() const { return snap_; }

 private:
  rocksdb::DB& db_;
  const rocksdb::Snapshot* snap_;
};

class checker {
 public:
  checker(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* events, rocksdb::ColumnFamilyHandle* by_job,
          sequence_t from, sequence_t to, index_report* out)
      : db_(db), events_(events), by_job_(by_job), from_(from), to_(to), out_(out), snap_(db) {}

  status run() {
    *out_ = {};
    const auto keys = random_keys();
    pair_digest records(keys), entries(keys);
    status s = scan_events([&](job_id job, sequence_t seq) {
      records.add(job, seq);
      ++out_->records;
      return status::ok();
    });
    if (s.is_ok()) s = scan_index([&](job_id job, sequence_t seq) {
      entries.add(job, seq);
      ++out_->entries;
      return status::ok();
    });
    if (!s.is_ok() || (out_->records == out_->entries && records == entries)) return s;
    // They differ: name the first entry at fault, else the first record.
    s = locate_bad_entry();
    if (!s.is_ok()) return s;
    s = locate_missing_entry();
    if (!s.is_ok()) return s;
    return problem("index_mismatch", 0, 0,
                   "by_job: its entries and the records differ, but no single one was found "
                   "at fault (were records appended during the check?)");
  }

 private:
  rocksdb::ReadOptions scan_options() const {
    rocksdb::ReadOptions ro;
    ro.snapshot = snap_.get();
    ro.fill_cache = false;  // one pass over everything: do not evict hot blocks
    ro.readahead_size = scan_readahead;
    ro.total_order_seek = true;  // by_job has a prefix extractor; walk all of it
    return ro;
  }

  status problem(const char* what, sequence_t seq, job_id job, std::string message) {
    out_->problem = what;
    out_->seq = seq;
    out_->job = job;
    return status::corruption(std::move(message));
  }

  status read_failed(const rocksdb::Status& s, std::string_view family, sequence_t seq = 0) {
    out_->problem = "read_error";
    out_->seq = seq;
    std::string m = std::string(family) + ": read failed: " + s.ToString();
    return s.IsCorruption() ? status::corruption(std::move(m)) : status::io_error(std::move(m));
  }

  /// f(job, seq) -> status for each record in [from, to]. A record whose
  /// value does not decode has no job to check: it is passed over here
  /// (verify's chain check names it) and its entry then shows as a mismatch.
  template <class F>
  status scan_events(F&& f) {
    rocksdb::ReadOptions ro = scan_options();
    char lower[format::seq_key_size], upper[format::seq_key_size];
    format::encode_seq_key(lower, from_);
    rocksdb::Slice upper_slice;
    if (to_ < std::numeric_limits<sequence_t>::max()) {
      format::encode_seq_key(upper, to_ + 1);
      upper_slice = rocksdb::Slice(upper, sizeof upper);
      ro.iterate_upper_bound = &upper_slice;
    }
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(ro, events_));
    for (it->Seek(rocksdb::Slice(lower, sizeof lower)); it->Valid(); it->Next()) {
      sequence_t seq = 0;
      job_id job = 0;
      chain_hash hash;
      std::string_view body;
      if (!format::decode_seq_key(view(it->key()), &seq) ||
          !format::decode_value(view(it->value()), &job, &hash, &body))
        continue;
      status s = f(job, seq);
      if (!s.is_ok()) return s;
    }
    if (!it->status().ok()) return read_failed(it->status(), "events");
    return status::ok();
  }

  /// f(job, seq) -> status for each by_job entry with seq in [from, to].
  template <class F>
  status scan_index(F&& f) {
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(scan_options(), by_job_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      job_id job = 0;
      sequence_t seq = 0;
      if (!format::decode_job_key(view(it->key()), &job, &seq)) {
        return problem("index_mismatch", 0, 0,
                       "by_job: a key of " + std::to_string(it->key().size()) + " bytes, not " +
                           std::to_string(format::job_key_size));
      }
      if (seq < from_ || seq > to_) continue;
      status s = f(job, seq);
      if (!s.is_ok()) return s;
    }
    if (!it->status().ok()) return read_failed(it->status(), "by_job");
    return status::ok();
  }

  /// Looks the records of a chunk of entries up; the first that is missing,
  /// undecodable or of another job is an index_mismatch.
  status check_entries(const std::vector<std::pair<job_id, sequence_t>>& chunk) {
    const std::size_t n = chunk.size();
    std::vector<std::string> key_bytes(n);
    std::vector<rocksdb::Slice> keys(n);
    for (std::size_t i = 0; i < n; ++i) {
      key_bytes[i] = format::seq_key(chunk[i].second);
      keys[i] = key_bytes[i];
    }
    std::vector<rocksdb::PinnableSlice> values(n);
    std::vector<rocksdb::Status> statuses(n);
    rocksdb::ReadOptions ro;
    ro.snapshot = snap_.get();
    db_.MultiGet(ro, events_, n, keys.data(), values.data(), statuses.data());
    for (std::size_t i = 0; i < n; ++i) {
      const auto [job, seq] = chunk[i];
      const std::string lists = "by_job: job " + std::to_string(job) + " lists record " +
                                std::to_string(seq) + ", ";
      if (statuses[i].IsNotFound())
        return problem("index_mismatch", seq, job, lists + "which is missing");
      if (!statuses[i].ok()) return read_failed(statuses[i], "events", seq);
      job_id owner = 0;
      chain_hash hash;
      std::string_view body;
      if (!format::decode_value(view(values[i]), &owner, &hash, &body))
        return problem("index_mismatch", seq, job, lists + "which does not decode");
      if (owner != job) {
        return problem("index_mismatch", seq, job,
                       lists + "which belongs to job " + std::to_string(owner));
      }
    }
    return status::ok();
  }

  /// Looks the entries of a chunk of records up; the first absent one is an
  /// index_missing.
  status check_records(const std::vector<std::pair<job_id, sequence_t>>& chunk) {
    const std::size_t n = chunk.size();
    std::vector<std::string> key_bytes(n);
    std::vector<rocksdb::Slice> keys(n);
    for (std::size_t i = 0; i < n; ++i) {
      key_bytes[i] = format::job_key(chunk[i].first, chunk[i].second);
      keys[i] = key_bytes[i];
    }
    std::vector<rocksdb::PinnableSlice> values(n);
    std::vector<rocksdb::Status> statuses(n);
    rocksdb::ReadOptions ro;
    ro.snapshot = snap_.get();
    db_.MultiGet(ro, by_job_, n, keys.data(), values.data(), statuses.data());
    for (std::size_t i = 0; i < n; ++i) {
      const auto [job, seq] = chunk[i];
      if (statuses[i].IsNotFound()) {
        return problem("index_missing", seq, job,
                       "by_job: record " + std::to_string(seq) + " of job " +
                           std::to_string(job) + " has no entry (read_job does not see it)");
      }
      if (!statuses[i].ok()) return read_failed(statuses[i], "by_job", seq);
    }
    return status::ok();
  }

  template <class Scan, class Check>
  status locate(Scan&& scan, Check&& check) {
    std::vector<std::pair<job_id, sequence_t>> chunk;
    chunk.reserve(lookup_chunk);
    status s = scan([&](job_id job, sequence_t seq) {
      chunk.emplace_back(job, seq);
      if (chunk.size() < lookup_chunk) return status::ok();
      status c = check(chunk);
      chunk.clear();
      return c;
    });
    if (s.is_ok() && !chunk.empty()) s = check(chunk);
    return s;
  }

  status locate_bad_entry() {
    return locate([&](auto&& f) { return scan_index(f); },
                  [&](const auto& chunk) { return check_entries(chunk); });
  }

  status locate_missing_entry() {
    return locate([&](auto&& f) { return scan_events(f); },
                  [&](const auto& chunk) { return check_records(chunk); });
  }

  rocksdb::DB& db_;
  rocksdb::ColumnFamilyHandle* events_;
  rocksdb::ColumnFamilyHandle* by_job_;
  const sequence_t from_, to_;
  index_report* out_;
  snapshot_guard snap_;  // both families read as of one moment
};

}  // namespace

status check_job_index(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* events,
                       rocksdb::ColumnFamilyHandle* by_job, sequence_t from, sequence_t to,
                       index_report* out) {
  return checker(db, events, by_job, from, to, out).run();
}

}  // namespace jobsmith::store
