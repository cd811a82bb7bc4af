#include "apps/server/beanstalk/command_reader.hpp"

#include <array>
#include <charconv>
#include <vector>

namespace jobsmith::server::beanstalk {

namespace {

constexpr std::string_view bad_format = "BAD_FORMAT";
constexpr std::string_view unknown_command = "UNKNOWN_COMMAND";

struct verb_spec {
  std::string_view name;
  verb what;
  std::size_t args;  // words after the name
};

// Order does not matter: names are compared whole.
constexpr std::array<verb_spec, verb_count> verbs{{
    {"put", verb::put, 4},
    {"use", verb::use, 1},
    {"reserve", verb::reserve, 0},
    {"reserve-with-timeout", verb::reserve_with_timeout, 1},
    {"delete", verb::delete_job, 1},
    {"release", verb::release, 3},
    {"bury", verb::bury, 2},
    {"kick", verb::kick, 1},
    {"kick-job", verb::kick_job, 1},
    {"touch", verb::touch, 1},
    {"watch", verb::watch, 1},
    {"ignore", verb::ignore, 1},
    {"peek", verb::peek, 1},
    {"peek-ready", verb::peek_ready, 0},
    {"peek-delayed", verb::peek_delayed, 0},
    {"peek-buried", verb::peek_buried, 0},
    {"stats-job", verb::stats_job, 1},
    {"stats-tube", verb::stats_tube, 1},
    {"stats", verb::stats, 0},
    {"list-tubes", verb::list_tubes, 0},
    {"list-tube-used", verb::list_tube_used, 0},
    {"list-tubes-watched", verb::list_tubes_watched, 0},
    {"pause-tube", verb::pause_tube, 2},
    {"quit", verb::quit, 0},
    {"auth", verb::auth, 1},
}};

/// Words separated by one or more spaces (beanstalkd skips runs of spaces).
std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    if (i == line.size()) break;
    auto end = line.find(' ', i);
    if (end == std::string_view::npos) end = line.size();
    out.push_back(line.substr(i, end - i));
    i = end;
  }
  return out;
}

/// Unsigned decimal, digits only, within `max`.
template <class T>
bool read_number(std::string_view word, T& out) {
  if (word.empty() || word.size() > 20) return false;
  for (char c : word)
    if (c < '0' || c > '9') return false;
  T v{};
  auto [p, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
  if (ec != std::errc{} || p != word.data() + word.size()) return false;
  out = v;
  return true;
}

}  // namespace

std::string_view to_string(verb v) {
  for (auto& s : verbs)
    if (s.what == v) return s.name;
  return "?";
}

bool valid_tube_name(std::string_view name) {
  if (name.empty() || name.size() > 200 || name.front() == '-') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok && std::string_view{"-+/;.$_()"}.find(c) == std::string_view::npos) return false;
  }
  return true;
}

void command_reader::feed(std::string_view bytes) {
  compact();
  buf_.append(bytes);
}

void command_reader::compact() {
  if (pos_ == 0) return;
  if (pos_ >= buf_.size()) {
    buf_.clear();
  } else {
    buf_.erase(0, pos_);
  }
  pos_ = 0;
}

std::optional<input_item> command_reader::next() {
  for (;;) {
    const std::size_t avail = buf_.size() - pos_;
    if (skip_ > 0) {
      auto n = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, avail));
      pos_ += n;
      skip_ -= n;
      if (skip_ > 0) return std::nullopt;
      continue;
    }
    if (discarding_line_) {
      auto nl = buf_.find('\n', pos_);
      if (nl == std::string::npos) {
        pos_ = buf_.size();
        return std::nullopt;
      }
      pos_ = nl + 1;
      discarding_line_ = false;
      continue;
    }
    if (put_) return take_body();
    // A command line.
    std::string_view rest{buf_.data() + pos_, avail};
    auto crlf = rest.find("\r\n");
    if (crlf == std::string_view::npos || crlf + 2 > max_line_bytes) {
      if (avail < max_line_bytes && crlf == std::string_view::npos) return std::nullopt;
      // Too long: refuse once and throw the line away up to its "\n".
      discarding_line_ = true;
      return input_item{std::nullopt, bad_format};
    }
    auto line = rest.substr(0, crlf);
    pos_ += crlf + 2;
    auto item = parse_line(line);
    if (item.cmd && item.cmd->what == verb::put) {
      put_ = std::move(item.cmd);
      continue;
    }
    return item;
  }
}

std::optional<input_item> command_reader::take_body() {
  // A put whose line was read: wait for <bytes> + CRLF.
  const std::size_t size = static_cast<std::size_t>(put_->bound);
  if (buf_.size() - pos_ < size + 2) return std::nullopt;
  std::string_view body{buf_.data() + pos_, size};
  bool crlf_ok = buf_.compare(pos_ + size, 2, "\r\n") == 0;
  pos_ += size + 2;
  command cmd = std::move(*put_);
  put_.reset();
  if (!crlf_ok) return input_item{std::nullopt, "EXPECTED_CRLF"};
  cmd.body.assign(body);
  cmd.bound = 0;
  return input_item{std::move(cmd), {}};
}

input_item command_reader::parse_line(std::string_view line) {
  auto w = words(line);
  const verb_spec* spec = nullptr;
  for (auto& s : verbs)
    if (!w.empty() && s.name == w[0]) spec = &s;
  // beanstalkd finds a command by the start of the line: "delete " with its
  // space, "reserve" and "stats" without. So a bare "delete" is unknown,
  // while "stats-job" and "reservex" are malformed "stats" and "reserve".
  if (spec == nullptr || (spec->args > 0 && w.size() == 1 && line.back() != ' ')) {
    for (auto& s : verbs)
      if (s.args == 0 && line.substr(0, s.name.size()) == s.name) return {std::nullopt, bad_format};
    return {std::nullopt, unknown_command};
  }
  // A trailing space is malformed too ("put 1 0 1 1 " is refused).
  if (w.size() != spec->args + 1 || line.back() == ' ') return {std::nullopt, bad_format};
  command c;
  c.what = spec->what;
  bool ok = true;
  switch (spec->what) {
    case verb::put: {
      ok = read_number(w[1], c.pri) && read_number(w[2], c.seconds) && read_number(w[3], c.ttr) &&
           read_number(w[4], c.bound);
      if (!ok) break;
      if (c.bound > max_job_bytes_) {
        // Answered now; the body is skipped as it arrives.
        skip_ = std::uint64_t{c.bound} + 2;
        return {std::nullopt, "JOB_TOO_BIG"};
      }
      break;
    }
    case verb::use:
    case verb::watch:
    case verb::ignore:
    case verb::stats_tube:
      c.name.assign(w[1]);
      ok = valid_tube_name(c.name);
      break;
    case verb::pause_tube:
      c.name.assign(w[1]);
      ok = valid_tube_name(c.name) && read_number(w[2], c.seconds);
      break;
    case verb::reserve_with_timeout:
      ok = read_number(w[1], c.seconds);
      break;
    case verb::delete_job:
    case verb::touch:
    case verb::peek:
    case verb::kick_job:
    case verb::stats_job:
      ok = read_number(w[1], c.id);
      break;
    case verb::release:
      ok = read_number(w[1], c.id) && read_number(w[2], c.pri) && read_number(w[3], c.seconds);
      break;
    case verb::bury:
      ok = read_number(w[1], c.id) && read_number(w[2], c.pri);
      break;
    case verb::kick:
      ok = read_number(w[1], c.bound);
      break;
    case verb::auth:
      c.name.assign(w[1]);
      break;
    default:
      break;
  }
  if (!ok) return {std::nullopt, bad_format};
  return {std::move(c), {}};
}

}  // namespace jobsmith::server::beanstalk
