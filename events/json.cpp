#include "events/json.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "events/codec.hpp"

#include "events/json_fields.hpp"

namespace jobsmith {

using namespace json_detail;

namespace {

std::optional<lock_mode> parse_enum(std::string_view s, lock_mode*) { return parse_lock_mode(s); }
std::optional<log_level> parse_enum(std::string_view s, log_level*) { return parse_log_level(s); }
std::optional<request_kind> parse_enum(std::string_view s, request_kind*) {
  return parse_request_kind(s);
}

constexpr std::string_view enum_choices(lock_mode*) { return R"("shared" or "exclusive")"; }
constexpr std::string_view enum_choices(log_level*) { return R"("info", "warn" or "error")"; }
constexpr std::string_view enum_choices(request_kind*) { return R"("run_now" or "retry")"; }

// -- reader ---------------------------------------------------------------------

// Reads the keys of one JSON object into a struct. Missing keys leave the
// field as it is (the caller starts from the struct defaults); after the
// fields, check_unknown() refuses keys no field asked for. The first failure
// sticks; `prefix` makes messages name the full path ("body.retry.jitter").
class json_reader {
 public:
  json_reader(const json& obj, std::string prefix) : obj_(obj), prefix_(std::move(prefix)) {}

  bool failed = false;
  std::string error;

  template <class T>
  void operator()(const char* name, T& v) {
    known_.push_back(name);
    if (failed) return;
    if (auto it = obj_.find(name); it != obj_.end()) get(*it, prefix_ + name, v);
  }

  void json_text(const char* name, std::string& text) {
    known_.push_back(name);
    if (failed) return;
    if (auto it = obj_.find(name); it != obj_.end()) text = it->dump();
  }
  void json_text_or_empty(const char* name, std::string& text) { json_text(name, text); }
  void id_if_set(const char* name, job_id& id) { (*this)(name, id); }

  /// Accepts key `name` without reading it (the caller reads it).
  void allow(const char* name) { known_.push_back(name); }

  void check_unknown() {
    if (failed) return;
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      bool known = false;
      for (std::string_view k : known_) known = known || k == it.key();
      if (!known) return fail("unknown field '" + prefix_ + it.key() + "'");
    }
  }

  void fail(std::string message) {
    if (failed) return;
    failed = true;
    error = std::move(message);
  }

 private:
  void type_error(const std::string& path, std::string_view expected) {
    fail(path + ": expected " + std::string(expected));
  }

  void get(const json& j, const std::string& path, std::string& v) {
    if (!j.is_string()) return type_error(path, "string");
    v = j.get<std::string>();
  }

  void get(const json& j, const std::string& path, bool& v) {
    if (!j.is_boolean()) return type_error(path, "boolean");
    v = j.get<bool>();
  }

  void get(const json& j, const std::string& path, double& v) {
    if (!j.is_number()) return type_error(path, "number");
    v = j.get<double>();
  }

  template <std::integral T>
  void get(const json& j, const std::string& path, T& v) {
    if (!j.is_number_integer()) return type_error(path, "integer");
    using lim = std::numeric_limits<T>;
    // The parser stores non-negative integers as unsigned, negative ones as
    // signed; compare within the matching type.
    if (j.is_number_unsigned()) {
      const auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(lim::max())) return out_of_range<T>(path);
      v = static_cast<T>(u);
    } else {
      const auto s = j.get<std::int64_t>();
      if (s < static_cast<std::int64_t>(lim::min()) ||
          (s > 0 && static_cast<std::uint64_t>(s) > static_cast<std::uint64_t>(lim::max())))
        return out_of_range<T>(path);
      v = static_cast<T>(s);
    }
  }

  template <class T>
  void out_of_range(const std::string& path) {
    using lim = std::numeric_limits<T>;
    fail(path + ": integer out of range [" + std::to_string(lim::min()) + ", " +
         std::to_string(lim::max()) + "]");
  }

  template <class E>
  requires std::is_enum_v<E>
  void get(const json& j, const std::string& path, E& v) {
    const auto expected = enum_choices(static_cast<E*>(nullptr));
    if (!j.is_string()) return type_error(path, expected);
    const auto parsed = parse_enum(j.get<std::string>(), static_cast<E*>(nullptr));
    if (!parsed) return type_error(path, expected);
    v = *parsed;
  }

  template <class T>
  void get(const json& j, const std::string& path, std::vector<T>& v) {
    if (!j.is_array()) return type_error(path, "array");
    std::vector<T> items;
    items.reserve(j.size());
    for (std::size_t i = 0; i < j.size() && !failed; ++i)
      get(j[i], path + "[" + std::to_string(i) + "]", items.emplace_back());
    if (!failed) v = std::move(items);
  }

  // A resource is an object or, for convenience, a bare name (exclusive).
  void get(const json& j, const std::string& path, resource_claim& v) {
    if (j.is_string()) {
      v = resource_claim{j.get<std::string>(), lock_mode::exclusive};
      return;
    }
    get_object(j, path, v);
  }

  template <class T>
  requires std::is_class_v<T>
  void get(const json& j, const std::string& path, T& v) { get_object(j, path, v); }

  template <class T>
  void get_object(const json& j, const std::string& path, T& v) {
    if (!j.is_object()) return type_error(path, "object");
    json_reader child(j, path + ".");
    json_fields(child, v);
    child.check_unknown();
    if (child.failed) fail(std::move(child.error));
  }

  const json& obj_;
  std::string prefix_;
  std::vector<const char*> known_;
};

bool set_error(std::string* error, std::string message) {
  if (error) *error = std::move(message);
  return false;
}

// Reads one body of alternative I from `j` (an object or null for "all
// defaults") into `body`.
template <std::size_t I>
bool read_body(const json* j, event_body& body, std::string& error) {
  auto& b = body.emplace<I>();
  if (!j) return true;
  if (!j->is_object()) {
    error = "body: expected object";
    return false;
  }
  json_reader r(*j, "body.");
  json_fields(r, b);
  r.check_unknown();
  if (r.failed) error = std::move(r.error);
  return !r.failed;
}

struct body_type {
  std::string_view name;
  std::uint16_t current;
  std::uint16_t oldest;
  bool (*read)(const json*, event_body&, std::string&);
};

template <std::size_t... I>
constexpr std::array<body_type, sizeof...(I)> make_body_types(std::index_sequence<I...>) {
  return {body_type{std::variant_alternative_t<I, event_body>::type_name,
                    std::variant_alternative_t<I, event_body>::version,
                    oldest_readable_version<std::variant_alternative_t<I, event_body>>,
                    &read_body<I>}...};
}

constexpr auto body_types = make_body_types(std::make_index_sequence<event_type_count>{});

}  // namespace

json to_json(const event& ev) {
  json j = json::object();
  j["seq"] = ev.seq;
  j["job"] = ev.job;
  j["time"] = ev.time;
  j["principal"] = ev.principal;
  j["type"] = std::string(type_name(ev.body));
  j["version"] = schema_version(ev.body);
  j["body"] = std::visit([](const auto& b) { return json_writer::value(b); }, ev.body);
  return j;
}

bool from_json(const json& j, event& out, std::string* error) {
  try {
    if (!j.is_object()) return set_error(error, "event: expected a JSON object");

    // Header fields, read with the same rules as body fields.
    event tmp;
    std::string type;
    std::uint64_t version = 0;
    json_reader header(j, "");
    header("seq", tmp.seq);
    header("job", tmp.job);
    header("time", tmp.time);
    header("principal", tmp.principal);
    header("type", type);
    header("version", version);
    header.allow("body");  // read below, once the type is known
    header.check_unknown();
    if (header.failed) return set_error(error, header.error);

    if (!j.contains("type")) return set_error(error, "type: missing");
    const int index = type_index(type);
    if (index < 0) return set_error(error, "type: unknown event type '" + type + "'");
    const body_type& bt = body_types[static_cast<std::size_t>(index)];

    if (j.contains("version")) {
      if (version > bt.current)
        return set_error(error, type + " version " + std::to_string(version) +
                                    " is newer than this reader (" + std::to_string(bt.current) +
                                    ")");
      if (version < bt.oldest)
        return set_error(error, type + " version " + std::to_string(version) +
                                    " is older than the oldest this reader can read (" +
                                    std::to_string(bt.oldest) + ")");
    }

    const auto body_it = j.find("body");
    std::string body_error;
    if (!bt.read(body_it == j.end() ? nullptr : &*body_it, tmp.body, body_error))
      return set_error(error, std::move(body_error));

    out = std::move(tmp);
    return true;
  } catch (const json::exception& e) {
    // dump() refuses strings that are not UTF-8 in a hand-built json value.
    return set_error(error, std::string("event: ") + e.what());
  }
}

bool spec_from_json(const json& j, job_submitted& out, std::string* error) {
  try {
    if (!j.is_object()) return set_error(error, "submission: expected a JSON object");
    job_submitted tmp;
    json_reader r(j, "");
    spec_fields(r, tmp);
    r.check_unknown();
    if (r.failed) return set_error(error, std::move(r.error));
    out = std::move(tmp);
    return true;
  } catch (const json::exception& e) {
    return set_error(error, std::string("submission: ") + e.what());
  }
}

json spec_to_json(const job_submitted& spec) {
  json o = json::object();
  json_writer w(o);
  spec_fields(w, spec);
  return o;
}

}  // namespace jobsmith
