// The RocksDB log on a real, small file system that fills up (a 2 MB tmpfs):
// the write that meets ENOSPC answers no_space and acknowledges nothing, the
// log keeps reading and refusing (and the process does not abort: RocksDB's
// own info logger did, see rocksdb_log.cpp), and once space returns
// resume() lets appends continue without a gap; a reopen verifies the chain.
//
// Mounting needs root (CAP_SYS_ADMIN). Where mount is not permitted (CI
// containers) the executable prints why and exits 77, which CTest reports as
// skipped (SKIP_RETURN_CODE in tests/store/CMakeLists.txt). The fault-injected
// tests in rocksdb_log_test.cpp cover the same paths everywhere.
#define BOOST_TEST_MODULE store_disk_full
#define BOOST_TEST_NO_MAIN
#include <sys/mount.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/event_log.hpp"
#include "store/rocksdb_log.hpp"

namespace js = jobsmith::store;
using jobsmith::sequence_t;

namespace {

std::string mount_point;  // set by main

std::unique_ptr<js::event_log> open_log(const std::string& dir) {
  std::unique_ptr<js::event_log> log;
  js::status s = js::open_rocksdb_log(dir, {}, &log);
  BOOST_REQUIRE_MESSAGE(s.is_ok(), s.to_string());
  return log;
}

std::vector<js::record_input> batch_from(sequence_t next, int n) {
  std::vector<js::record_input> b;
  for (int i = 0; i < n; ++i) {
    const sequence_t seq = next + i;
    b.push_back({1 + seq % 3, std::to_string(seq) + ":" + std::string(1000, 'x')});
  }
  return b;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_full_file_system_gives_no_space_and_the_log_resumes_once_space_is_freed) {
  const std::string dir = mount_point + "/log";
  const std::string filler = mount_point + "/filler";
  sequence_t acknowledged = 0;
  {
    auto log = open_log(dir);
    {
      // Space to free later: 512 KB of the 2 MB.
      std::ofstream f(filler, std::ios::binary);
      const std::string block(64 * 1024, 'f');
      for (int i = 0; i < 8; ++i) f << block;
      BOOST_REQUIRE(f.good());
    }
    // Append 16 KB batches until the file system is full.
    js::status failed;
    for (int i = 0; i < 1000 && failed.is_ok(); ++i) {
      failed = log->append(batch_from(log->head() + 1, 16), nullptr);
    }
    BOOST_TEST_MESSAGE("full after " << log->head() << " records: " << failed);
    BOOST_TEST_REQUIRE(!failed.is_ok());
    BOOST_TEST(failed.code() == js::status_code::no_space, failed.to_string());
    acknowledged = log->head();
    BOOST_TEST(acknowledged > 0u);
    js::status refused = log->append(batch_from(acknowledged + 1, 1), nullptr);
    BOOST_TEST(refused.code() == js::status_code::refused, refused.to_string());
    BOOST_TEST(refused.is_no_space(), refused.to_string());
    BOOST_TEST(log->head() == acknowledged);
    sequence_t count = 0;
    BOOST_TEST(log->read(1, acknowledged, [&](const js::record&) { return ++count > 0; }).is_ok());
    BOOST_TEST(count == acknowledged);
    BOOST_TEST(!log->resume().is_ok());

    // Space returns: the filler goes, and the file system grows past what
    // RocksDB waits for before it resumes (free space of at least its
    // largest memtable, 128 MB: "required disk buffer" in its LOG). Growing
    // a tmpfs costs no memory until written.
    std::filesystem::remove(filler);
    BOOST_TEST_REQUIRE(
        mount("tmpfs", mount_point.c_str(), "tmpfs", MS_REMOUNT, "size=200m") == 0,
        std::strerror(errno));
    const auto start = std::chrono::steady_clock::now();
    js::status resumed = log->resume();
    while (!resumed.is_ok() && resumed.code() != js::status_code::refused &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      resumed = log->resume();
    }
    BOOST_TEST_MESSAGE(
        "resume after freeing space: "
        << resumed << " after "
        << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
        << " s");
    if (!resumed.is_ok()) {
      // What RocksDB's recovery said (its info LOG).
      std::ifstream info(dir + "/LOG");
      for (std::string line; std::getline(info, line);) {
        if (line.find("space") != std::string::npos || line.find("rror") != std::string::npos)
          BOOST_TEST_MESSAGE("LOG: " << line);
      }
    }
    BOOST_TEST_REQUIRE(resumed.is_ok(), resumed.to_string());
    sequence_t first = 0;
    BOOST_TEST(log->append(batch_from(acknowledged + 1, 4), &first).is_ok());
    BOOST_TEST(first == acknowledged + 1);
    acknowledged = log->head();
  }
  auto log = open_log(dir);
  BOOST_TEST(log->head() == acknowledged);
  sequence_t bad = 0;
  js::status v = log->verify(1, acknowledged, &bad);
  BOOST_TEST(v.is_ok(), v.to_string());
  std::string body;
  BOOST_TEST(log->read(acknowledged, acknowledged, [&](const js::record& r) {
                  body = r.body;
                  return true;
                }).is_ok());
  BOOST_TEST(body.starts_with(std::to_string(acknowledged) + ":"));
}

int main(int argc, char* argv[]) {
  char tmpl[] = "/tmp/jobsmith-disk-full-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  mount_point = tmpl;
  if (mount("tmpfs", tmpl, "tmpfs", 0, "size=2m") != 0) {
    const int err = errno;
    std::printf("SKIPPED: cannot mount a 2 MB tmpfs on %s (%s); needs root and a kernel that "
                "allows it here. rocksdb_log_test's fault_injection suite covers the same "
                "paths.\n",
                tmpl, std::strerror(err));
    rmdir(tmpl);
    return 77;
  }
  const int rc = boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
  if (umount2(tmpl, MNT_DETACH) != 0) std::perror("umount");
  rmdir(tmpl);
  return rc;
}
