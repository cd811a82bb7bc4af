// A RocksDB Env whose writable files fail on demand, to test what the log
// does when the disk refuses a write. While failing, Append/Sync/Flush
// return IOError and write nothing, like a device that has gone away.
#pragma once

#include <rocksdb/env.h>

#include <atomic>
#include <memory>
#include <string>

namespace jobsmith::store::test {

class fault_env : public rocksdb::EnvWrapper {
 public:
  fault_env() : rocksdb::EnvWrapper(rocksdb::Env::Default()) {}

  const char* Name() const override { return "jobsmith_fault_env"; }

  /// While on, every write to a file opened through this env fails.
  void fail_writes(bool on) { failing_.store(on); }
  /// Writes (Append, PositionedAppend) refused so far.
  int refused_writes() const { return refused_.load(); }

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
    static rocksdb::Status injected() { return rocksdb::Status::IOError("injected write failure"); }
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
  std::atomic<int> refused_{0};
};

}  // namespace jobsmith::store::test
