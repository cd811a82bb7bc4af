#include "actors/lease_clock.hpp"

#include "events/binary_io.hpp"

namespace jobsmith {

namespace {
constexpr std::uint64_t leases_version = 1;
}

std::string encode_leases(const std::vector<saved_lease>& leases) {
  std::string out;
  binary::writer w(out);
  w.put_varint(leases_version);
  w.put_varint(leases.size());
  for (const auto& l : leases) {
    w.put_varint(l.id);
    w.put_varint(l.token);
    w.put_varint(l.remaining_ms);
  }
  return out;
}

std::optional<std::vector<saved_lease>> decode_leases(std::string_view bytes) {
  binary::reader r(bytes);
  std::uint64_t version = 0, count = 0;
  if (!r.get_varint(version) || version != leases_version) return std::nullopt;
  if (!r.get_varint(count) || count > r.left() / 3) return std::nullopt;  // 3 bytes an entry at least
  std::vector<saved_lease> out(static_cast<std::size_t>(count));
  for (auto& l : out)
    if (!r.get_varint(l.id) || !r.get_varint(l.token) || !r.get_varint(l.remaining_ms))
      return std::nullopt;
  if (r.left() != 0) return std::nullopt;
  return out;
}

}  // namespace jobsmith
