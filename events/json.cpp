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

namespace jobsmith {

using nlohmann::json;

// Outside the anonymous namespace (as in codec.cpp): clang reports an
// internal variable template used only in a discarded `if constexpr` branch
// as unused (-Wunused-const-variable).
template <class>
inline constexpr bool always_false = false;

namespace {

// -- field lists ----------------------------------------------------------------

// The submission fields of job_submitted, in the order of the header comment.
template <class Io, class B>
void spec_fields(Io& io, B& b) {
  io("kind", b.kind);
  io("queue", b.queue);
  io.json_text("payload", b.payload);
  io("priority", b.priority);
  io("run_at", b.run_at);
  io("retry", b.retry);
  io("timeouts", b.timeouts);
  io("resources", b.resources);
  io("unique_key", b.unique_key);
  io("review_required", b.review_required);
  io("recurrence", b.recur);
}

// The JSON keys of every struct, shared by the writer and the reader.
// `B` is const-qualified for the writer.
template <class Io, class B>
void json_fields(Io& io, B& b) {
  using T = std::remove_const_t<B>;
  if constexpr (std::is_same_v<T, retry_policy>) {
    io("max_attempts", b.max_attempts);
    io("initial_interval", b.initial_interval);
    io("backoff_coefficient", b.backoff_coefficient);
    io("max_interval", b.max_interval);
    io("jitter", b.jitter);
  } else if constexpr (std::is_same_v<T, phase_timeouts>) {
    io("to_start", b.to_start);
    io("to_run", b.to_run);
    io("heartbeat", b.heartbeat);
  } else if constexpr (std::is_same_v<T, recurrence>) {
    io("interval", b.interval);
    io("failure_backoff", b.failure_backoff);
    io("max_interval", b.max_interval);
    io("failure_limit", b.failure_limit);
  } else if constexpr (std::is_same_v<T, resource_claim>) {
    io("name", b.name);
    io("mode", b.mode);
  } else if constexpr (std::is_same_v<T, log_line>) {
    io("level", b.level);
    io("time", b.time);
    io("text", b.text);
  } else if constexpr (std::is_same_v<T, job_submitted>) {
    spec_fields(io, b);
    io("schedule", b.schedule);
    io.id_if_set("follows", b.follows);
  } else if constexpr (std::is_same_v<T, job_started>) {
    io("attempt", b.attempt);
    io("worker", b.worker);
    io("lease_token", b.lease_token);
  } else if constexpr (std::is_same_v<T, job_progress>) {
    io("attempt", b.attempt);
    io("detail", b.detail);
    io("percent", b.percent);
    io("lines", b.lines);
  } else if constexpr (std::is_same_v<T, job_succeeded>) {
    io("attempt", b.attempt);
    io.json_text("result", b.result);
  } else if constexpr (std::is_same_v<T, job_failed>) {
    io("attempt", b.attempt);
    io("error", b.error);
    io("retryable", b.retryable);
    io("next_run_at", b.next_run_at);
    io.json_text_or_empty("handover", b.handover);
  } else if constexpr (std::is_same_v<T, job_reclaimed>) {
    io("attempt", b.attempt);
    io("reason", b.reason);
    io("next_run_at", b.next_run_at);
  } else if constexpr (std::is_same_v<T, job_discarded> || std::is_same_v<T, job_cancelled> ||
                       std::is_same_v<T, job_expired>) {
    io("reason", b.reason);
  } else if constexpr (std::is_same_v<T, job_reviewed>) {
    io("accepted", b.accepted);
    io("comment", b.comment);
    io.id_if_set("follow_up", b.follow_up);
  } else if constexpr (std::is_same_v<T, job_requested>) {
    io("what", b.what);
  } else if constexpr (std::is_same_v<T, queue_paused> || std::is_same_v<T, queue_resumed>) {
    io("queue", b.queue);
  } else if constexpr (std::is_same_v<T, queue_configured>) {
    io("queue", b.queue);
    io("concurrency", b.concurrency);
  } else if constexpr (std::is_same_v<T, schedule_created>) {
    io("id", b.id);
    io("first_job", b.first_job);
  } else if constexpr (std::is_same_v<T, schedule_deleted>) {
    io("id", b.id);
    io("reason", b.reason);
  } else if constexpr (std::is_same_v<T, engine_started>) {
    io("engine_version", b.engine_version);
    io("recovered_events", b.recovered_events);
    io("reclaimed_jobs", b.reclaimed_jobs);
  } else if constexpr (std::is_same_v<T, kind_configured>) {
    io("kind", b.kind);
    io("on_accept", b.on_accept);
    io.json_text_or_empty("schema", b.schema);
  } else {
    static_assert(always_false<T>, "add the type's JSON fields");
  }
}

std::optional<lock_mode> parse_enum(std::string_view s, lock_mode*) { return parse_lock_mode(s); }
std::optional<log_level> parse_enum(std::string_view s, log_level*) { return parse_log_level(s); }
std::optional<request_kind> parse_enum(std::string_view s, request_kind*) {
  return parse_request_kind(s);
}

constexpr std::string_view enum_choices(lock_mode*) { return R"("shared" or "exclusive")"; }
constexpr std::string_view enum_choices(log_level*) { return R"("info", "warn" or "error")"; }
constexpr std::string_view enum_choices(request_kind*) { return R"("run_now" or "retry")"; }

// JSON text as a JSON value; text that does not parse is kept as a string
// rather than lost (see the header).
json embed(const std::string& text) {
  json v = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return json(text);
  return v;
}

// -- writer ---------------------------------------------------------------------

class json_writer {
 public:
  explicit json_writer(json& obj) : obj_(obj) {}

  template <class T>
  void operator()(const char* name, const T& v) {
    obj_[name] = value(v);
  }
  void json_text(const char* name, const std::string& text) { obj_[name] = embed(text); }
  void json_text_or_empty(const char* name, const std::string& text) {
    if (!text.empty()) obj_[name] = embed(text);
  }
  /// A job id that is mostly 0 ("none"): written only when set.
  void id_if_set(const char* name, job_id id) {
    if (id != 0) obj_[name] = id;
  }

  static json value(const std::string& s) { return s; }
  static json value(bool b) { return b; }
  static json value(double d) { return d; }
  template <std::integral T>
  static json value(T v) {
    return v;
  }
  template <class E>
  requires std::is_enum_v<E>
  static json value(E e) { return std::string(to_string(e)); }
  template <class T>
  static json value(const std::vector<T>& v) {
    json a = json::array();
    for (const auto& e : v) a.push_back(value(e));
    return a;
  }
  template <class T>
  requires std::is_class_v<T>
  static json value(const T& s) {
    json o = json::object();
    json_writer w(o);
    json_fields(w, s);
    return o;
  }

 private:
  json& obj_;
};

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

namespace {

// The keys of a job as the API shows it, for both writers below. In key
// order: text_writer then finds them sorted (any order gives the same text).
template <class Io>
void record_fields(Io& io, const job_record& job, millis now) {
  io("attempts", job.attempts);
  io("detail", job.detail);
  io("due_at", job.due_at);
  io("event_count", job.event_count);
  io("finished_at", job.finished_at);
  io.json_text_or_empty("handover", job.handover);
  io("id", job.id);
  io("last_end", job.last_end);
  io("last_error", job.last_error);
  io("last_seq", job.last_seq);
  io("lease_token", job.lease_token);
  io("max_attempts", job.max_attempts);
  io("percent", job.percent);
  io("requested_at", job.requested_at);
  io.json_text("result", job.result);
  io("review_comment", job.review_comment);
  io("reviewer", job.reviewer);
  io("spec", job.spec);
  io("started_at", job.started_at);
  io("state", effective_state(job, now));
  io("submitted_at", job.submitted_at);
  io("worker", job.worker);
}

// True when `s` needs no escaping and is valid UTF-8 as it stands: printable
// ASCII without '"' or '\'. nlohmann dumps such a string as is, in quotes.
bool plain_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  return true;
}

// Checks that `text` is JSON in the form nlohmann's compact dump gives it,
// for a subset that is cheap to recognize: no whitespace; strings of
// plain_ascii characters; object keys strictly increasing (std::map order,
// no duplicates); integers of at most 18 digits without leading zeros or
// "-0"; true, false, null; nesting up to 64 deep. Such text parses and dumps
// to itself, so it can be copied. Anything else (floats, escapes, non-ASCII,
// other spacing) is left to the parser: false does not mean invalid.
class canonical_check {
 public:
  explicit canonical_check(std::string_view text) : s_(text) {}

  bool ok() { return value(0) && i_ == s_.size(); }

 private:
  bool value(int depth) {
    if (i_ >= s_.size() || depth >= 64) return false;  // 64 levels at most
    switch (s_[i_]) {
      case '{':
        return object(depth);
      case '[':
        return array(depth);
      case '"':
        return string(nullptr);
      case 't':
        return word("true");
      case 'f':
        return word("false");
      case 'n':
        return word("null");
      default:
        return integer();
    }
  }

  bool object(int depth) {
    ++i_;  // '{'
    if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
    std::string_view previous;
    for (bool first = true;; first = false) {
      std::string_view key;
      if (!string(&key)) return false;
      if (!first && !(previous < key)) return false;
      previous = key;
      if (i_ >= s_.size() || s_[i_++] != ':') return false;
      if (!value(depth + 1)) return false;
      if (i_ >= s_.size()) return false;
      const char c = s_[i_++];
      if (c == '}') return true;
      if (c != ',') return false;
    }
  }

  bool array(int depth) {
    ++i_;  // '['
    if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
    for (;;) {
      if (!value(depth + 1)) return false;
      if (i_ >= s_.size()) return false;
      const char c = s_[i_++];
      if (c == ']') return true;
      if (c != ',') return false;
    }
  }

  bool string(std::string_view* out) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    const auto begin = ++i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c < 0x20 || c > 0x7e || c == '\\') return false;
      ++i_;
    }
    if (i_ >= s_.size()) return false;
    if (out) *out = s_.substr(begin, i_ - begin);
    ++i_;  // '"'
    return true;
  }

  bool word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }

  bool integer() {
    const bool negative = i_ < s_.size() && s_[i_] == '-';
    if (negative) ++i_;
    const auto begin = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    const auto digits = i_ - begin;
    if (digits == 0 || digits > 18) return false;
    if (s_[begin] == '0' && (digits > 1 || negative)) return false;  // "007", "-0"
    // A fraction or exponent makes it a float: not in the subset.
    return i_ >= s_.size() || (s_[i_] != '.' && s_[i_] != 'e' && s_[i_] != 'E');
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

// Writes JSON text directly, byte for byte what json_writer's value would
// dump (keys in std::map order, leaves dumped by nlohmann with invalid
// UTF-8 replaced), without building the std::map-based tree: a job's tree
// is ~45 map nodes, and building then dumping them was most of a lease
// answer's cost. Values go to one buffer as they come; finish() puts the
// members in key order. Plain strings, integers and JSON text already in
// canonical form are written without nlohmann.
class text_writer {
 public:
  text_writer() {
    members_.reserve(24);
    values_.reserve(512);
  }

  template <class T>
  void operator()(const char* name, const T& v) {
    const auto begin = values_.size();
    append(values_, v);
    members_.push_back({name, begin, values_.size()});
  }
  void json_text(const char* name, const std::string& t) {
    const auto begin = values_.size();
    append_json_text(values_, t);
    members_.push_back({name, begin, values_.size()});
  }
  void json_text_or_empty(const char* name, const std::string& t) {
    if (!t.empty()) json_text(name, t);
  }
  void id_if_set(const char* name, job_id id) {
    if (id != 0) (*this)(name, id);
  }

  /// Appends the object to `out`.
  void finish(std::string& out) {
    // Insertion sort: at most ~20 members, often in order already.
    for (std::size_t i = 1; i < members_.size(); ++i)
      for (std::size_t j = i; j > 0 && key_less(members_[j].key, members_[j - 1].key); --j)
        std::swap(members_[j], members_[j - 1]);
    out.reserve(out.size() + values_.size() + members_.size() * 24 + 2);
    out += '{';
    for (std::size_t i = 0; i < members_.size(); ++i) {
      const auto& m = members_[i];
      if (i != 0) out += ',';
      out += '"';
      out += m.key;  // keys are plain identifiers: nothing to escape
      out += "\":";
      out.append(values_, m.begin, m.end - m.begin);
    }
    out += '}';
  }

  static void dump_to(std::string& out, const json& j) {
    out += j.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  static void append_json_text(std::string& out, const std::string& t) {
    if (!t.empty() && is_canonical_json(t))
      out += t;
    else
      dump_to(out, embed(t));
  }
  static void append(std::string& out, std::string_view s) {
    if (plain_ascii(s)) {
      out += '"';
      out += s;
      out += '"';
    } else {
      dump_to(out, json(s));
    }
  }
  static void append(std::string& out, const std::string& s) { append(out, std::string_view(s)); }
  static void append(std::string& out, bool b) { out += b ? "true" : "false"; }
  static void append(std::string& out, double d) { dump_to(out, json(d)); }
  template <std::integral T>
  static void append(std::string& out, T v) {
    char digits[24];
    const auto r = std::to_chars(digits, digits + sizeof digits, v);
    out.append(digits, r.ptr);
  }
  template <class E>
  requires std::is_enum_v<E>
  static void append(std::string& out, E e) { append(out, std::string_view(to_string(e))); }
  template <class T>
  static void append(std::string& out, const std::vector<T>& v) {
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i != 0) out += ',';
      append(out, v[i]);
    }
    out += ']';
  }
  template <class T>
  requires std::is_class_v<T>
  static void append(std::string& out, const T& s) {
    text_writer w;
    json_fields(w, s);
    w.finish(out);
  }

 private:
  // std::map's order for the plain ASCII keys: bytewise, a prefix first.
  // Keys mostly differ in their first bytes, so a loop beats memcmp calls.
  static bool key_less(const char* a, const char* b) {
    while (*a != '\0' && *a == *b) ++a, ++b;
    return static_cast<unsigned char>(*a) < static_cast<unsigned char>(*b);
  }

  struct member {
    const char* key;
    std::size_t begin = 0;  // the value is values_[begin, end)
    std::size_t end = 0;
  };
  std::vector<member> members_;
  std::string values_;
};

}  // namespace

json to_json(const job_record& job, millis now) {
  json j = json::object();
  json_writer w(j);
  record_fields(w, job, now);
  return j;
}

bool is_canonical_json(std::string_view text) { return canonical_check(text).ok(); }

std::optional<std::string> compact_json(std::string text) {
  if (is_canonical_json(text)) return text;
  auto parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return std::nullopt;
  return parsed.dump();
}

void append_json_text(std::string& out, const job_record& job, millis now) {
  text_writer w;
  record_fields(w, job, now);
  w.finish(out);
}

std::string to_json_text(const job_record& job, millis now) {
  std::string out;
  append_json_text(out, job, now);
  return out;
}

}  // namespace jobsmith
