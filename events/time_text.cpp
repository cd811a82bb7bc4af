#include "events/time_text.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <string>
#include <utility>

namespace jobsmith {

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil), so parsing needs neither timegm nor the TZ setting.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool read_digits(std::string_view& s, std::size_t n, int& out) {
  if (s.size() < n) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  s.remove_prefix(n);
  return true;
}

bool eat(std::string_view& s, char c) {
  if (s.empty() || s.front() != c) return false;
  s.remove_prefix(1);
  return true;
}

}  // namespace

std::string format_time(millis t) {
  std::time_t secs = static_cast<std::time_t>(t >= 0 ? t / 1000 : (t - 999) / 1000);
  int ms = static_cast<int>(t - static_cast<millis>(secs) * 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[96];  // room for any int the compiler can imagine in each field
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

std::optional<millis> parse_time(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (text.find_first_not_of("0123456789") == std::string_view::npos) {
    millis v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return v;
  }
  std::string_view s = text;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, ms = 0;
  if (!read_digits(s, 4, y) || !eat(s, '-') || !read_digits(s, 2, mo) || !eat(s, '-') ||
      !read_digits(s, 2, d))
    return std::nullopt;
  if (!s.empty()) {
    if (!eat(s, 'T') && !eat(s, ' ')) return std::nullopt;
    if (!read_digits(s, 2, h) || !eat(s, ':') || !read_digits(s, 2, mi)) return std::nullopt;
    if (eat(s, ':')) {
      if (!read_digits(s, 2, sec)) return std::nullopt;
      if (eat(s, '.')) {
        int frac = 0;
        std::size_t n = 0;
        while (!s.empty() && s.front() >= '0' && s.front() <= '9' && n < 3) {
          frac = frac * 10 + (s.front() - '0');
          s.remove_prefix(1);
          ++n;
        }
        if (n == 0) return std::nullopt;
        while (n++ < 3) frac *= 10;
        while (!s.empty() && s.front() >= '0' && s.front() <= '9') s.remove_prefix(1);
        ms = frac;
      }
    }
    if (!eat(s, 'Z') && s == "+00:00") s = {};
    if (!s.empty()) return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  static constexpr int month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > month_days[mo - 1] || (mo == 2 && d == 29 && !leap)) return std::nullopt;
  const std::int64_t days =
      days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 24 + h) * 60 + mi) * 60'000 + static_cast<millis>(sec) * 1000 + ms;
}

std::optional<millis> parse_duration(std::string_view text) {
  if (text == "0") return 0;
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 16) return std::nullopt;
  std::int64_t n = 0;
  std::from_chars(text.data(), text.data() + digits, n);
  const std::string_view unit = text.substr(digits);
  std::int64_t scale = 0;
  if (unit == "ms") scale = 1;
  else if (unit == "s") scale = 1'000;
  else if (unit == "m") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  else if (unit == "d") scale = 86'400'000;
  else return std::nullopt;
  constexpr std::int64_t limit = std::int64_t{1} << 53;
  if (n > limit / scale) return std::nullopt;
  return n * scale;
}

std::string format_duration(millis d) {
  if (d == 0) return "0";
  for (auto [scale, unit] : {std::pair<millis, const char*>{86'400'000, "d"}, {3'600'000, "h"},
                             {60'000, "m"}, {1'000, "s"}})
    if (d % scale == 0) return std::to_string(d / scale) + unit;
  return std::to_string(d) + "ms";
}

}  // namespace jobsmith
