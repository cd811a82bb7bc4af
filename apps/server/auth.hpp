// Tokens and roles of the HTTP API (docs/api.md, Conventions; the file's
// format is in docs/operations.md):
//   {"tokens": [{"name": "alice", "token": "s3cret", "role": "admin"}, ...]}
// Roles: admin (everything), producer (submit + act on jobs + read), worker
// (lease, heartbeat, complete, fail + read), read (GET only).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jobsmith::server {

enum class role : std::uint8_t { read = 0, worker = 1, producer = 2, admin = 3 };

std::string_view to_string(role r);
std::optional<role> parse_role(std::string_view name);

/// What a call needs; admin may do everything.
enum class permission : std::uint8_t { read, produce, work, administer };

bool allows(role r, permission p);

struct principal {
  std::string name;
  role who = role::read;
};

class token_table {
 public:
  /// Parses the tokens file's text. Returns "" or what is wrong (names the
  /// entry). Names and tokens must be non-empty, names unique.
  std::string load_json(std::string_view text);
  /// Reads and parses a file.
  std::string load_file(const std::string& path);
  /// Adds one token (tests, configuration in code).
  void add(std::string name, std::string_view token, role r);

  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }

  /// The token's principal, or nothing. Compares SHA-256 digests with a
  /// constant-time compare and always looks at every entry, so timing says
  /// nothing about which bytes matched.
  std::optional<principal> find(std::string_view token) const;

 private:
  struct entry {
    std::array<std::uint8_t, 32> digest;
    principal who;
  };
  std::vector<entry> entries_;
};

}  // namespace jobsmith::server
