// The RocksDB log's by_job index checked against its events
// (event_log::verify_index), kept apart from rocksdb_log.cpp.
//
// The two column families sort differently (events by sequence, by_job by
// job then sequence), so they cannot be merged in one walk, and looking
// every record up in the other family costs a random read per record.
// Instead each family is read once, in key order, into an order-free digest
// of its (job, sequence) pairs: a sum of SipHash-2-4 values under a key
// drawn at random for each check, two lanes of 64 bits. Equal counts and
// digests mean the two sets are equal, except with a chance of about
// 2^-128 (and a key nobody knows beforehand, so damage cannot be shaped to
// match). Only when they differ does a second, slower pass look entries
// and records up in chunks to name the first one at fault. Memory is a
// chunk of keys, whatever the log's size.
#pragma once

#include "store/event_log.hpp"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
}  // namespace rocksdb

namespace jobsmith::store {

/// See event_log::verify_index. `events` and `by_job` are the families of
/// store/record_format.hpp.
status check_job_index(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* events,
                       rocksdb::ColumnFamilyHandle* by_job, sequence_t from, sequence_t to,
                       index_report* out);

}  // namespace jobsmith::store
