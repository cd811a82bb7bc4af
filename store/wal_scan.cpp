#include "store/wal_scan.hpp"

#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <vector>

namespace jobsmith::store {

namespace {

constexpr std::size_t block_size = 32768;
constexpr std::size_t legacy_header = 7;
constexpr std::size_t recyclable_header = 11;

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven: only
// the failure path of an open reads WAL files this way.
const std::array<std::uint32_t, 256>& crc_table() {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

std::uint32_t crc32c(const unsigned char* p, std::size_t n) {
  const auto& t = crc_table();
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) c = t[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// RocksDB stores CRCs masked (rotated and offset), so that a CRC of data
// holding CRCs is not trivially related to them.
std::uint32_t unmask(std::uint32_t masked) {
  std::uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

std::uint32_t le32(const unsigned char* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}

bool is_recyclable(unsigned type) { return type >= 5 && type <= 8; }
bool starts_a_write(unsigned type) { return type == 1 || type == 2 || type == 5 || type == 6; }
bool is_full(unsigned type) { return type == 1 || type == 5; }
bool is_middle(unsigned type) { return type == 3 || type == 7; }
bool is_last(unsigned type) { return type == 4 || type == 8; }

/// The WAL files of `dir` (names of digits ending in .log), oldest first.
std::vector<std::filesystem::path> wal_files(const std::string& dir, std::string* error) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::uint64_t, fs::path>> found;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    auto name = e.path().filename().string();
    if (e.path().extension() != ".log") continue;
    auto stem = e.path().stem().string();
    if (stem.empty() || stem.find_first_not_of("0123456789") != std::string::npos) continue;
    found.emplace_back(std::stoull(stem), e.path());
  }
  if (ec) *error = "list " + dir + ": " + ec.message();
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

}  // namespace

wal_scan_result scan_wal_files(const std::string& dir) {
  wal_scan_result r;
  auto files = wal_files(dir, &r.error);
  std::vector<unsigned char> block(block_size);
  std::string current;      // the payload of the write being read, up to the first damage
  bool collecting = false;  // the damaged write goes on in the records that follow
  for (std::size_t fi = 0; fi < files.size() && r.error.empty(); ++fi) {
    std::ifstream in(files[fi], std::ios::binary);
    if (!in) {
      r.error = "cannot read " + files[fi].string();
      break;
    }
    const bool last_file = fi + 1 == files.size();
    for (std::uint64_t block_start = 0;; block_start += block_size) {
      in.read(reinterpret_cast<char*>(block.data()), block_size);
      const auto n = static_cast<std::size_t>(in.gcount());
      if (n == 0) break;
      const bool file_ends_here = n < block_size || in.peek() == std::char_traits<char>::eof();
      std::size_t pos = 0;
      while (pos + legacy_header <= n) {
        const unsigned char* h = block.data() + pos;
        const std::size_t length = std::size_t{h[4]} | std::size_t{h[5]} << 8;
        const unsigned type = h[6];
        if (type == 0 && length == 0) break;  // preallocated or padding: the block ends
        const std::size_t header = is_recyclable(type) ? recyclable_header : legacy_header;
        const bool fits = pos + header + length <= n;
        bool intact = false;
        if (fits) intact = unmask(le32(h)) == crc32c(h + 6, header - 6 + length);
        if (!fits && last_file && file_ends_here && pos + header + length <= block_size) {
          break;  // cut short by the end of the log: a torn write, not damage
        }
        const auto payload = [&] {
          return std::string_view(reinterpret_cast<const char*>(h + header), length);
        };
        if (collecting) {  // the fragments after the damaged one, whatever their CRC
          collecting = fits && (is_middle(type) || is_last(type));
          if (collecting) r.damaged_write.append(payload());
          if (collecting && is_last(type)) {
            r.damaged_write_whole = true;
            collecting = false;
          }
        }
        if (!intact) {
          if (!r.damaged) {
            r.damaged = true;
            r.file = files[fi].filename().string();
            r.offset = block_start + pos;
            // The write it belongs to, by the type its header claims.
            if (fits && (starts_a_write(type) || is_middle(type) || is_last(type))) {
              if (!starts_a_write(type)) r.damaged_write = current;
              r.damaged_write.append(payload());
              r.damaged_write_whole = is_full(type) || is_last(type);
              collecting = !r.damaged_write_whole;
            }
            current.clear();
          }
          if (!fits) break;  // the length is damaged too: go on at the next block
        } else if (r.damaged && starts_a_write(type)) {
          ++r.writes_after;
        } else if (!r.damaged) {
          if (starts_a_write(type)) current.assign(payload());
          else if (is_middle(type) || is_last(type)) current.append(payload());
        }
        pos += header + length;
      }
      if (n < block_size) break;
    }
  }
  return r;
}

write_records records_in_write(const std::string& payload, std::uint32_t events_cf) {
  struct collect final : rocksdb::WriteBatch::Handler {
    std::uint32_t cf;
    write_records r;
    explicit collect(std::uint32_t c) : cf(c) {}
    rocksdb::Status PutCF(std::uint32_t id, const rocksdb::Slice& key,
                          const rocksdb::Slice&) override {
      if (id != cf || key.size() != 8) return rocksdb::Status::OK();
      std::uint64_t seq = 0;
      for (std::size_t i = 0; i < 8; ++i) seq = seq << 8 | static_cast<unsigned char>(key[i]);
      if (r.first == 0 || seq < r.first) r.first = seq;
      r.last = std::max(r.last, seq);
      return rocksdb::Status::OK();
    }
    // The log writes nothing else; anything else decodes and is passed over.
    rocksdb::Status DeleteCF(std::uint32_t, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status SingleDeleteCF(std::uint32_t, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteRangeCF(std::uint32_t, const rocksdb::Slice&,
                                  const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status MergeCF(std::uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
  } handler(events_cf);
  const rocksdb::WriteBatch batch(payload);
  handler.r.whole = batch.Iterate(&handler).ok();
  return handler.r;
}

}  // namespace jobsmith::store
