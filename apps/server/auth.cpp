#include "apps/server/auth.hpp"

#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "events/json.hpp"

namespace jobsmith::server {

namespace {

std::array<std::uint8_t, 32> digest_of(std::string_view text) {
  std::array<std::uint8_t, 32> out{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out.data());
  return out;
}

}  // namespace

std::string_view to_string(role r) {
  switch (r) {
    case role::read: return "read";
    case role::worker: return "worker";
    case role::producer: return "producer";
    case role::admin: return "admin";
  }
  return "read";
}

std::optional<role> parse_role(std::string_view name) {
  for (auto r : {role::read, role::worker, role::producer, role::admin})
    if (to_string(r) == name) return r;
  return std::nullopt;
}

bool allows(role r, permission p) {
  switch (p) {
    case permission::read: return true;
    case permission::produce: return r == role::producer || r == role::admin;
    case permission::work: return r == role::worker || r == role::admin;
    case permission::administer: return r == role::admin;
  }
  return false;
}

void token_table::add(std::string name, std::string_view token, role r) {
  entries_.push_back(entry{digest_of(token), principal{std::move(name), r}});
}

std::string token_table::load_json(std::string_view text) {
  // A key named twice ("role" twice in one entry) is refused, not resolved.
  jobsmith::json_refusal why;
  auto parsed = jobsmith::parse_json_unique(text, &why);
  if (!parsed) return why.duplicate_key ? "tokens file: " + why.message : "tokens file is not JSON";
  auto& doc = *parsed;
  if (!doc.is_object() || !doc.contains("tokens") || !doc["tokens"].is_array())
    return "tokens file: expected {\"tokens\": [...]}";
  std::vector<entry> loaded;
  std::set<std::string> names;
  std::set<std::array<std::uint8_t, 32>> digests;
  std::size_t i = 0;
  for (auto& t : doc["tokens"]) {
    auto where = "tokens[" + std::to_string(i++) + "]";
    if (!t.is_object()) return where + ": expected an object";
    for (auto& [key, value] : t.items())
      if (key != "name" && key != "token" && key != "role") return where + ": unknown field '" + key + "'";
    auto str = [&](const char* key) -> std::string {
      auto it = t.find(key);
      return it != t.end() && it->is_string() ? it->get<std::string>() : std::string{};
    };
    auto name = str("name"), token = str("token"), role_name = str("role");
    if (name.empty()) return where + ": \"name\" must be a non-empty string";
    if (token.empty()) return where + ": \"token\" must be a non-empty string";
    auto r = parse_role(role_name);
    if (!r) return where + ": \"role\" must be admin, producer, worker or read";
    if (!names.insert(name).second) return where + ": name '" + name + "' appears twice";
    // One token, two principals: which role would it get? Refused, not guessed.
    auto digest = digest_of(token);
    if (!digests.insert(digest).second)
      return where + ": the token of '" + name + "' is also another entry's token";
    loaded.push_back(entry{digest, principal{name, *r}});
  }
  // An empty table means "no auth" to the server: a file that lists no
  // tokens must not silently make every caller admin.
  if (loaded.empty())
    return "tokens file lists no tokens: give at least one, or leave out --tokens to serve "
           "without auth on loopback only";
  entries_ = std::move(loaded);
  return {};
}

std::string token_table::load_file(const std::string& path) {
  std::ifstream in{path};
  if (!in) return "cannot read tokens file " + path;
  std::stringstream buf;
  buf << in.rdbuf();
  auto err = load_json(buf.str());
  return err.empty() ? err : path + ": " + err;
}

std::optional<principal> token_table::find(std::string_view token) const {
  auto d = digest_of(token);
  const entry* match = nullptr;
  for (auto& e : entries_)
    if (CRYPTO_memcmp(e.digest.data(), d.data(), d.size()) == 0) match = &e;
  if (!match) return std::nullopt;
  return match->who;
}

}  // namespace jobsmith::server
