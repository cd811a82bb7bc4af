// An in-memory event_log for tests: the same contracts as the RocksDB log
// (tests/store/log_conformance_test.cpp runs one suite against both), nothing
// survives destruction.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/event_log.hpp"

namespace jobsmith::store {

class memory_log final : public event_log {
 public:
  memory_log();

  status append(std::span<const record_input> batch, sequence_t* first_seq) override;
  sequence_t head() const override;
  chain_hash head_hash() const override;
  status read(sequence_t from, sequence_t to, const record_visitor& visit) const override;
  status read_job(job_id job, const record_visitor& visit) const override;
  status verify(sequence_t from, sequence_t to, sequence_t* first_bad) const override;
  status put_snapshot(std::string_view name, const snapshot& snap) override;
  status get_snapshot(std::string_view name, snapshot* out) const override;
  status list_snapshots(std::string_view prefix, std::vector<snapshot_info>* out) const override;
  status delete_snapshot(std::string_view name) override;
  status put_meta(std::string_view key, std::string_view value) override;
  status get_meta(std::string_view key, std::string* value) const override;
  std::uint64_t size_bytes() const override { return 0; }
  /// Nothing of a failed write is ever stored here, so this succeeds unless
  /// fail_writes() holds a failure.
  status resume() override;

  /// Test hook: the next non-empty append stores nothing and returns `s`, as
  /// a failed disk write would; from then on the log refuses writes exactly
  /// like the RocksDB log after a failed write. REQUIRES: !s.is_ok().
  void fail_next_append(status s);
  /// Test hook: a disk that keeps failing. Until heal(), every non-empty
  /// write stores nothing and returns `s` (then the log refuses), and
  /// resume() returns `s`. REQUIRES: !s.is_ok().
  void fail_writes(status s);
  void heal();

 private:
  // The injected failure a write meets now, if any (consumes fail_next_);
  // sets refusal_ when there is one. REQUIRES: mu_ held.
  std::optional<status> inject_failure(sequence_t seq);
  // Pointers to the records in [from, to], taken under mu_.
  std::vector<const record*> collect(sequence_t from, sequence_t to) const;

  mutable std::mutex mu_;
  // Everything below is guarded by mu_. Records are never changed or removed
  // once appended and std::deque::push_back keeps references valid, so
  // readers collect pointers under the lock and call visitors outside it
  // (a visitor may call back into the log).
  std::deque<record> records_;  // records_[i].seq == i + 1
  std::map<job_id, std::vector<sequence_t>> by_job_;
  std::map<std::string, snapshot, std::less<>> snapshots_;
  std::map<std::string, std::string, std::less<>> meta_;
  std::optional<status> fail_next_;
  std::optional<status> failing_;  // fail_writes() until heal()
  std::optional<status> refusal_;  // set once a write failed
};

/// A new, empty in-memory log.
std::unique_ptr<event_log> make_memory_log();

}  // namespace jobsmith::store
