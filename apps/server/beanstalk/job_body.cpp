#include "apps/server/beanstalk/job_body.hpp"

#include <array>
#include <limits>
#include <nlohmann/json.hpp>

#include "events/json.hpp"

namespace jobsmith::server::beanstalk {

namespace {

using json = nlohmann::json;

constexpr std::string_view text_key = "$beanstalk_text";
constexpr std::string_view base64_key = "$beanstalk_base64";

/// Nesting depth of JSON text outside strings, counting stops past `limit`
/// (the parser is not run on text nested deeper than the server allows:
/// the HTTP API refuses such bodies too).
std::size_t depth_of(std::string_view text, std::size_t limit) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

/// An object of exactly one member, an envelope key with a string value.
const json* envelope_content(const json& j, bool* is_base64) {
  if (!j.is_object() || j.size() != 1) return nullptr;
  auto it = j.begin();
  if (!it.value().is_string()) return nullptr;
  if (it.key() == text_key)
    *is_base64 = false;
  else if (it.key() == base64_key)
    *is_base64 = true;
  else
    return nullptr;
  return &it.value();
}

/// Cheap test before parsing: an envelope names its key near the start.
bool may_be_envelope(std::string_view text) {
  return text.find("$beanstalk_") != std::string_view::npos;
}

std::string envelope(std::string_view key, std::string value) {
  json j = json::object();
  j[std::string{key}] = std::move(value);
  return j.dump();  // valid UTF-8 in, so the strict handler never throws
}

}  // namespace

std::string payload_of(std::string_view body, std::size_t max_depth) {
  if (depth_of(body, max_depth) <= max_depth) {
    // The engine's own test of a payload is nlohmann's accept(); the HTTP
    // API also refuses duplicate keys, so a body with them is not stored
    // as JSON either: every consumer would read one of the values.
    bool stored_as_is = json::accept(body);
    if (stored_as_is && may_be_envelope(body)) {
      auto parsed = parse_json_unique(body);
      bool ignored = false;
      stored_as_is = parsed && envelope_content(*parsed, &ignored) == nullptr;
    } else if (stored_as_is && body.find('{') != std::string_view::npos) {
      stored_as_is = parse_json_unique(body).has_value();
    }
    if (stored_as_is) return std::string{body};
  }
  if (is_utf8(body)) return envelope(text_key, std::string{body});
  return envelope(base64_key, base64_encode(body));
}

std::string body_of(const std::string& payload) {
  if (!may_be_envelope(payload)) return payload;
  auto parsed = json::parse(payload, nullptr, false);
  if (parsed.is_discarded()) return payload;
  bool is_base64 = false;
  const json* content = envelope_content(parsed, &is_base64);
  if (content == nullptr) return payload;
  const auto& text = content->get_ref<const std::string&>();
  if (!is_base64) return text;
  auto bytes = base64_decode(text);
  // Malformed base64 (an HTTP producer's mistake) comes out as it is.
  return bytes ? std::move(*bytes) : payload;
}

std::int32_t priority_of(std::uint32_t pri) {
  constexpr std::int64_t floor = std::numeric_limits<std::int32_t>::min();
  return static_cast<std::int32_t>(std::max<std::int64_t>(-static_cast<std::int64_t>(pri), floor));
}

std::uint32_t pri_of(std::int32_t priority) {
  if (priority >= 0) return 0;
  return static_cast<std::uint32_t>(-static_cast<std::int64_t>(priority));
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = (std::uint8_t(bytes[i]) << 16) | (std::uint8_t(bytes[i + 1]) << 8) |
                      std::uint8_t(bytes[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (auto left = bytes.size() - i; left > 0) {
    std::uint32_t v = std::uint8_t(bytes[i]) << 16;
    if (left == 2) v |= std::uint8_t(bytes[i + 1]) << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += left == 2 ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    int pad = 0;
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (c == '=') {
        // Padding only at the end: "xx==" or "xxx=".
        if (i + 4 != text.size() || k < 2) return std::nullopt;
        ++pad;
        v <<= 6;
        continue;
      }
      if (pad > 0) return std::nullopt;
      int d = value(c);
      if (d < 0) return std::nullopt;
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    out += static_cast<char>((v >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

bool is_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<std::uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0)
      n = 1, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
      n = 2, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
      n = 3, cp = c & 0x07;
    else
      return false;
    if (i + n >= s.size()) return false;  // cut short
    for (std::size_t k = 1; k <= n; ++k) {
      auto d = static_cast<std::uint8_t>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static constexpr std::array<std::uint32_t, 4> min_cp{0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace jobsmith::server::beanstalk
