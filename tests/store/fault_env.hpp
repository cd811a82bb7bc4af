// A RocksDB Env whose writable files fail on demand, to test what the log
// does when the disk refuses a write. While failing, Append/Sync/Flush
// return IOError and write nothing, like a device that has gone away, or
// IOError with subcode kNoSpace (Status::NoSpace, what RocksDB makes of
// ENOSPC), like a full file system.
#pragma once

#include <rocksdb/env.h>

#include <atomic>
#include <memory>
#include <ostream>
#include <string>

namespace jobsmith::store::test {

class fault_env : public rocksdb::EnvWrapper {
 public:
  fault_env() : rocksdb::EnvWrapper(rocksdb::Env::Default()) {}

  const char* Name() const override { return "jobsmith_fault_env"; }

  enum class failure { io_error, no_space };

  /// While on, every write to a file opened through this env fails, as
  /// `kind` says.
  void fail_writes(bool on, failure kind = failure::io_error) {
    no_space_.store(kind == failure::no_space);
    failing_.store(on);
  }
  /// Writes (Append, PositionedAppend) refused so far.
  int refused_writes() const { return refused_.load(); }

  /// A full file system has no free space: RocksDB's own recovery from a
  /// no-space error (its SstFileManager) polls this before it tries again.
  rocksdb::Status GetFreeSpace(const std::string& path, uint64_t* diskfree) override {
    if (failing_.load() && no_space_.load()) {
      *diskfree = 0;
      return rocksdb::Status::OK();
    }
    return target()->GetFreeSpace(path, diskfree);
  }

  rocksdb::Status NewWritableFile(const std::string& f, std::unique_ptr<rocksdb::WritableFile>* r,
                                  const rocksdb::EnvOptions& o) override {
    rocksdb::Status s = target()->NewWritableFile(f, r, o);
    if (s.ok()) *r = std::make_unique<file>(std::move(*r), this);
    return s;
  }
  rocksdb::Status ReopenWritableFile(const std::string& f,
                                     std::unique_ptr<rocksdb::WritableFile>* r,
                                     const rocksdb::EnvOptions& o) override {
    rocksdb::Status s = target()->ReopenWritableFile(f, r, o);
    if (s.ok()) *r = std::make_unique<file>(std::move(*r), this);
    return s;
  }
  rocksdb::Status ReuseWritableFile(const std::string& f, const std::string& old,
                                    std::unique_ptr<rocksdb::WritableFile>* r,
                                    const rocksdb::EnvOptions& o) override {
    rocksdb::Status s = target()->ReuseWritableFile(f, old, r, o);
    if (s.ok()) *r = std::make_unique<file>(std::move(*r), this);
    return s;
  }

 private:
  class file : public rocksdb::WritableFileWrapper {
   public:
    file(std::unique_ptr<rocksdb::WritableFile> t, fault_env* env)
        : rocksdb::WritableFileWrapper(t.get()), owned_(std::move(t)), env_(env) {}

    rocksdb::Status Append(const rocksdb::Slice& d) override {
      if (env_->refuse()) return injected();
      return WritableFileWrapper::Append(d);
    }
    rocksdb::Status Append(const rocksdb::Slice& d,
                           const rocksdb::DataVerificationInfo& v) override {
      if (env_->refuse()) return injected();
      return WritableFileWrapper::Append(d, v);
    }
    rocksdb::Status PositionedAppend(const rocksdb::Slice& d, uint64_t off) override {
      if (env_->refuse()) return injected();
      return WritableFileWrapper::PositionedAppend(d, off);
    }
    rocksdb::Status PositionedAppend(const rocksdb::Slice& d, uint64_t off,
                                     const rocksdb::DataVerificationInfo& v) override {
      if (env_->refuse()) return injected();
      return WritableFileWrapper::PositionedAppend(d, off, v);
    }
    rocksdb::Status Flush() override {
      if (env_->failing()) return injected();
      return WritableFileWrapper::Flush();
    }
    rocksdb::Status Sync() override {
      if (env_->failing()) return injected();
      return WritableFileWrapper::Sync();
    }
    rocksdb::Status Fsync() override {
      if (env_->failing()) return injected();
      return WritableFileWrapper::Fsync();
    }

   private:
    rocksdb::Status injected() const {
      if (env_->no_space_.load()) return rocksdb::Status::NoSpace("injected: no space left on device");
      return rocksdb::Status::IOError("injected write failure");
    }
    std::unique_ptr<rocksdb::WritableFile> owned_;
    fault_env* env_;
  };

  bool failing() const { return failing_.load(); }
  bool refuse() {
    if (!failing_.load()) return false;
    refused_.fetch_add(1);
    return true;
  }

  std::atomic<bool> failing_{false};
  std::atomic<bool> no_space_{false};
  std::atomic<int> refused_{0};
};

inline std::ostream& operator<<(std::ostream& os, fault_env::failure f) {
  return os << (f == fault_env::failure::no_space ? "no_space" : "io_error");
}

}  // namespace jobsmith::store::test
