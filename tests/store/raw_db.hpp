// The RocksDB database under a closed log, opened with plain RocksDB, so a
// test can damage it the way a disk or an intruder would: flip a byte of a
// record, delete one, move an index entry, push everything into table files.
// Boost.Test assertions: include after <boost/test/unit_test.hpp>.
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/record_format.hpp"

namespace jobsmith::test {

class raw_db {
 public:
  explicit raw_db(const std::string& dir) {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (std::string_view name :
         {std::string_view(rocksdb::kDefaultColumnFamilyName), store::format::cf_events,
          store::format::cf_by_job, store::format::cf_snapshots, store::format::cf_meta}) {
      cfs.emplace_back(std::string(name), rocksdb::ColumnFamilyOptions());
    }
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(rocksdb::DBOptions(), dir, cfs, &handles_, &db);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    db_.reset(db);
  }
  raw_db(const raw_db&) = delete;
  raw_db& operator=(const raw_db&) = delete;
  ~raw_db() {
    for (auto* h : handles_) BOOST_CHECK(db_->DestroyColumnFamilyHandle(h).ok());
    BOOST_CHECK(db_->Close().ok());
  }

  std::string get_event(sequence_t seq) {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), events(), store::format::seq_key(seq), &v);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    return v;
  }
  void put_event(sequence_t seq, const std::string& value) {
    BOOST_REQUIRE(db_->Put(sync(), events(), store::format::seq_key(seq), value).ok());
  }
  void delete_event(sequence_t seq) {
    BOOST_REQUIRE(db_->Delete(sync(), events(), store::format::seq_key(seq)).ok());
  }
  void flip_event_byte(sequence_t seq, std::size_t offset) {
    std::string v = get_event(seq);
    BOOST_REQUIRE_LT(offset, v.size());
    v[offset] = static_cast<char>(v[offset] ^ 0x01);
    put_event(seq, v);
  }
  void put_index(job_id job, sequence_t seq) {
    BOOST_REQUIRE(db_->Put(sync(), by_job(), store::format::job_key(job, seq), "").ok());
  }
  void delete_index(job_id job, sequence_t seq) {
    BOOST_REQUIRE(db_->Delete(sync(), by_job(), store::format::job_key(job, seq)).ok());
  }
  void put_meta(const std::string& key, const std::string& value) {
    BOOST_REQUIRE(db_->Put(sync(), handles_[4], key, value).ok());
  }
  /// The table files of column family `cf`, as paths.
  std::vector<std::string> table_files(std::string_view cf) {
    std::vector<rocksdb::LiveFileMetaData> files;
    db_->GetLiveFilesMetaData(&files);
    std::vector<std::string> out;
    for (const auto& f : files)
      if (f.column_family_name == cf) out.push_back(f.db_path + f.name);
    return out;
  }
  /// Moves everything from the memtables (and WAL) into table files.
  void flush() { BOOST_REQUIRE(db_->Flush(rocksdb::FlushOptions(), handles_).ok()); }

 private:
  rocksdb::ColumnFamilyHandle* events() { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* by_job() { return handles_[2]; }
  static rocksdb::WriteOptions sync() {
    rocksdb::WriteOptions w;
    w.sync = true;
    return w;
  }
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

}  // namespace jobsmith::test
