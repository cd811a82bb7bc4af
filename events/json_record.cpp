// Job records as the API shows them (events/json.hpp): the nlohmann form and
// the direct text writer of the hot answers, and compact JSON text.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "events/json.hpp"
#include "events/json_fields.hpp"

namespace jobsmith {

using namespace json_detail;

namespace {

// The keys of a job as the API shows it, for both writers below. In key
// order: text_writer then finds them sorted (any order gives the same text).
template <class Io>
void record_fields(Io& io, const job_record& job, millis now) {
  io("attempts", job.attempts);
  io("cancel_requested_at", job.cancel_requested_at);
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
