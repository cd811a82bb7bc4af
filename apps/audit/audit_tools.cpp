#include "apps/audit/audit_tools.hpp"
#include "apps/audit/audit_support.hpp"

#include "actors/recovery.hpp"
#include "events/time_text.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "apps/client/http_client.hpp"
#include "events/codec.hpp"
#include "events/json.hpp"
#include "store/event_log.hpp"
#include "store/rocksdb_log.hpp"

namespace jobsmith::apps::audit {

using nlohmann::json;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

double rate(std::uint64_t n, double seconds) { return seconds > 0 ? n / seconds : 0.0; }

/// 1234567 -> "1,234,567".
std::string grouped(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

/// The sequence a store message names ("record 57: ..."), 0 when none.
sequence_t sequence_named_in(const std::string& message) {
  const auto at = message.find("record ");
  if (at == std::string::npos) return 0;
  sequence_t seq = 0;
  for (std::size_t i = at + 7; i < message.size() && message[i] >= '0' && message[i] <= '9'; ++i)
    seq = seq * 10 + static_cast<sequence_t>(message[i] - '0');
  return seq;
}

int exit_for(const store::status& s) {
  return s.code() == store::status_code::corruption ? exit_damaged : exit_usage;
}

/// Visits the decoded events of the selection (a job's stream or the whole
/// log) with from <= seq <= to, in order; `visit` returns false to stop. A
/// record that does not decode stops the scan with corruption naming it.
store::status visit_events(const store::event_log& log, sequence_t from, sequence_t to,
                           std::optional<job_id> job,
                           const std::function<bool(const store::record&, const event&)>& visit) {
  event ev;
  std::string error;
  store::status bad_body;
  auto on_record = [&](const store::record& r) {
    if (r.seq < from) return true;
    if (r.seq > to) return false;
    if (!decode_record(r, ev, &error)) {
      bad_body = store::status::corruption(error);
      return false;
    }
    return visit(r, ev);
  };
  store::status s = job ? log.read_job(*job, on_record) : log.read(from, to, on_record);
  if (!s.is_ok()) return s;
  return bad_body;
}

/// Resolves a --to bound to a sequence over the selection: the bound itself,
/// or for a time the highest sequence whose event time is <= the time (0 when
/// none is). Wall times need not grow with the sequence (clocks step), so
/// the whole selection from `from` is scanned rather than stopping early.
store::status resolve_upper(const store::event_log& log, sequence_t from, const upper_bound& to,
                            std::optional<job_id> job, sequence_t* out) {
  const sequence_t head = log.head();
  if (!to.is_time) {
    *out = std::min(to.seq, head);
    return store::status::ok();
  }
  sequence_t cut = 0;
  store::status s =
      visit_events(log, from, head, job, [&](const store::record& r, const event& ev) {
        if (ev.time <= to.time) cut = r.seq;
        return true;
      });
  *out = cut;
  return s;
}

void print_error(const char* verb, const std::string& message) {
  std::fprintf(stderr, "jobsmith %s: %s\n", verb, message.c_str());
}

progress_meter::progress_meter(const char* label, std::uint64_t total, bool wanted)
    : label_(label), total_(total), enabled_(wanted && ::isatty(STDERR_FILENO) == 1) {}

progress_meter::~progress_meter() { finish(); }

void progress_meter::redraw(std::uint64_t done) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  drawn_ = true;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double per_s = rate(done, secs);
  char line[160];
  if (total_ > 0) {
    const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
    constexpr int width = 24;
    char bar[width + 1];
    const int filled = static_cast<int>(frac * width);
    for (int i = 0; i < width; ++i) bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    const double eta =
        per_s > 0 ? (static_cast<double>(total_ - std::min(done, total_)) / per_s) : 0.0;
    std::snprintf(line, sizeof line, "\r%s [%s] %5.1f%% %s/%s  %s ev/s  ETA %.1fs  ", label_, bar,
                  frac * 100, grouped(done).c_str(), grouped(total_).c_str(),
                  grouped(static_cast<std::uint64_t>(per_s)).c_str(), eta);
  } else {
    std::snprintf(line, sizeof line, "\r%s %s events  %s ev/s  ", label_, grouped(done).c_str(),
                  grouped(static_cast<std::uint64_t>(per_s)).c_str());
  }
  std::fputs(line, stderr);
}

void progress_meter::finish() {
  if (!drawn_) return;
  drawn_ = false;
  std::fputs("\r\033[K", stderr);  // erase the bar's line
}

store::status open_read_only(const std::string& dir, std::unique_ptr<store::event_log>* out,
                             store::wal_drop* dropped) {
  store::rocksdb_log_options o;
  o.read_only = true;
  o.create_if_missing = false;
  o.tail_verify = 0;
  return store::open_rocksdb_log(dir, o, out, nullptr, dropped);
}


// -- times and bounds ---------------------------------------------------------------

std::optional<std::uint64_t> parse_positive(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v == 0) return std::nullopt;
  return v;
}

std::optional<upper_bound> parse_upper_bound(std::string_view text, std::string* error) {
  constexpr std::uint64_t epoch_ms_floor = 1'000'000'000'000;  // 2001-09-09T01:46:40Z
  upper_bound b;
  if (text.size() > 2 && text.substr(text.size() - 2) == "ms") {
    if (auto v = parse_positive(text.substr(0, text.size() - 2))) {
      b.is_time = true;
      b.time = static_cast<millis>(*v);
      return b;
    }
  } else if (auto v = parse_positive(text)) {
    if (*v >= epoch_ms_floor) {
      b.is_time = true;
      b.time = static_cast<millis>(*v);
    } else {
      b.seq = *v;
    }
    return b;
  } else if (auto t = parse_time(text)) {
    b.is_time = true;
    b.time = *t;
    return b;
  }
  if (error != nullptr)
    *error = std::string(text) +
             ": expected a sequence number, epoch milliseconds, or an ISO-8601 UTC time "
             "such as 2026-11-22T14:02:00Z";
  return std::nullopt;
}

// -- export ---------------------------------------------------------------------------

int run_export(const export_options& o) {
  std::unique_ptr<store::event_log> log;
  store::status s = open_read_only(o.data_dir, &log);
  if (!s.is_ok()) {
    print_error("audit export", s.to_string());
    return exit_for(s);
  }
  const sequence_t from = std::max<sequence_t>(o.from, 1);
  sequence_t to = 0;
  s = resolve_upper(*log, from, o.to, o.job, &to);
  if (!s.is_ok()) {
    print_error("audit export", s.to_string());
    return exit_for(s);
  }

  std::FILE* out = stdout;
  if (!o.out_file.empty()) {
    out = std::fopen(o.out_file.c_str(), "w");
    if (out == nullptr) {
      print_error("audit export", "cannot write " + o.out_file + ": " + std::strerror(errno));
      return exit_usage;
    }
  }
  // Set before the first output, as setvbuf requires; static because stdout
  // keeps using it until the process exits.
  static char buffer[1 << 20];
  std::setvbuf(out, buffer, _IOFBF, sizeof buffer);

  const auto start = clock_type::now();
  std::uint64_t written = 0;
  progress_meter meter("export", !o.job && to >= from ? to - from + 1 : 0, o.progress);
  std::string line;
  if (to >= from) {
    s = visit_events(*log, from, to, o.job, [&](const store::record& r, const event& ev) {
      json j = to_json(ev);
      j["hash"] = store::to_hex(r.hash);
      line = j.dump(-1, ' ', false, json::error_handler_t::replace);
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), out);
      meter.update(++written);
      return true;
    });
  }
  meter.finish();
  const bool write_failed = std::fflush(out) != 0 || std::ferror(out) != 0;
  if (out != stdout && std::fclose(out) != 0) {
    print_error("audit export", "cannot write " + o.out_file + ": " + std::strerror(errno));
    return exit_usage;
  }
  if (write_failed) {
    print_error("audit export", "writing the output failed: " + std::string(std::strerror(errno)));
    return exit_usage;
  }
  const double secs = seconds_since(start);
  if (!s.is_ok()) {
    print_error("audit export", s.to_string() + " (the " + std::to_string(written) +
                                    " events before it were written)");
    return exit_for(s);
  }
  std::fprintf(stderr, "exported %s events in %.2f s (%s events/s)\n", grouped(written).c_str(),
               secs, grouped(static_cast<std::uint64_t>(rate(written, secs))).c_str());
  return exit_ok;
}

// -- stats -------------------------------------------------------------------------------

int run_stats(const stats_options& o) {
  std::unique_ptr<store::event_log> log;
  store::status s = open_read_only(o.data_dir, &log);
  if (!s.is_ok()) {
    print_error("audit stats", s.to_string());
    return exit_for(s);
  }
  const sequence_t head = log->head();
  const auto start = clock_type::now();
  std::map<std::string, std::uint64_t> by_type;
  std::map<std::string, std::uint64_t> by_day;
  std::unordered_set<job_id> jobs;
  std::uint64_t events = 0;
  millis first_time = 0, last_time = 0;
  progress_meter meter("stats", head, o.progress);
  // Events mostly arrive in time order: look the day up only when it changes.
  millis current_day = 0;
  std::uint64_t* day_count = nullptr;
  s = visit_events(*log, 1, head, std::nullopt, [&](const store::record& r, const event& ev) {
    if (events == 0) first_time = ev.time;
    last_time = ev.time;
    ++events;
    ++by_type[std::string(type_name(ev.body))];
    const millis day = ev.time >= 0 ? ev.time / 86'400'000 : (ev.time + 1) / 86'400'000 - 1;
    if (day_count == nullptr || day != current_day) {
      day_count = &by_day[format_time(ev.time).substr(0, 10)];
      current_day = day;
    }
    ++*day_count;
    if (r.job != 0) jobs.insert(r.job);
    meter.update(events);
    return true;
  });
  meter.finish();
  if (!s.is_ok()) {
    print_error("audit stats", s.to_string());
    return exit_for(s);
  }
  const double secs = seconds_since(start);
  const std::uint64_t size = log->size_bytes();
  // Every stored snapshot (the projector's queue views), from the index.
  std::vector<store::snapshot_info> snapshots;
  s = log->list_snapshots("", &snapshots);
  if (!s.is_ok()) {
    print_error("audit stats", s.to_string());
    return exit_for(s);
  }
  if (o.json) {
    json snaps = json::array();
    for (const auto& sn : snapshots)
      snaps.push_back({{"name", sn.name}, {"covered", sn.covered}, {"size_bytes", sn.size}});
    json j = {{"data", o.data_dir}, {"head", head},       {"events", events}, {"jobs", jobs.size()},
              {"size_bytes", size}, {"by_type", by_type}, {"by_day", by_day}, {"seconds", secs},
              {"snapshots", snaps}};
    if (events > 0) {
      j["first_time"] = format_time(first_time);
      j["last_time"] = format_time(last_time);
      j["first_time_ms"] = first_time;
      j["last_time_ms"] = last_time;
    }
    std::printf("%s\n", j.dump().c_str());
    return exit_ok;
  }
  std::printf("data       %s\n", o.data_dir.c_str());
  std::printf("head       %" PRIu64 "\n", head);
  std::printf("events     %s\n", grouped(events).c_str());
  std::printf("jobs       %s\n", grouped(jobs.size()).c_str());
  std::printf("size       %s bytes (%.1f MiB)\n", grouped(size).c_str(), size / 1048576.0);
  if (events > 0) {
    std::printf("first      %s (record 1)\n", format_time(first_time).c_str());
    std::printf("last       %s (record %" PRIu64 ")\n", format_time(last_time).c_str(), head);
  }
  std::printf("\nby type\n");
  for (const auto& [type, n] : by_type)
    std::printf("  %-18s %12s\n", type.c_str(), grouped(n).c_str());
  std::printf("\nby day (UTC)\n");
  for (const auto& [day, n] : by_day)
    std::printf("  %-18s %12s\n", day.c_str(), grouped(n).c_str());
  std::printf("\nsnapshots (covered sequence, size)\n");
  if (snapshots.empty()) std::printf("  none\n");
  for (const auto& sn : snapshots)
    std::printf("  %-28s %12s %14s bytes\n", sn.name.c_str(), grouped(sn.covered).c_str(),
                grouped(sn.size).c_str());
  std::fprintf(stderr, "read %s events in %.2f s\n", grouped(events).c_str(), secs);
  return exit_ok;
}

// -- backup --------------------------------------------------------------------------------

namespace {

/// Opens the finished copy read-only and verifies all of it.
int check_backup(const backup_options& o, json* report) {
  std::unique_ptr<store::event_log> copy;
  store::status s = open_read_only(o.target, &copy);
  if (!s.is_ok()) {
    print_error("backup", "the copy in " + o.target + " does not open: " + s.to_string());
    return exit_damaged;
  }
  (*report)["head"] = copy->head();
  (*report)["head_hash"] = store::to_hex(copy->head_hash());
  if (!o.verify) return exit_ok;
  const verify_outcome v = verify_range(*copy, 1, copy->head(), o.progress);
  (*report)["verified"] = v.checked;
  (*report)["verify_seconds"] = v.seconds;
  if (!v.problem.empty()) {
    print_error("backup", "the copy in " + o.target + " fails verification: " + v.message);
    return exit_damaged;
  }
  return exit_ok;
}

}  // namespace

int run_backup(const backup_options& o) {
  if (o.target.empty()) {
    print_error("backup", "--to DIR is required");
    return exit_usage;
  }
  if (o.data_dir.empty() == o.url.empty()) {
    print_error("backup", "say either --data DIR (no engine running there) or --url URL");
    return exit_usage;
  }
  std::error_code ec;
  const std::filesystem::path target = std::filesystem::absolute(o.target, ec);
  if (ec || std::filesystem::exists(target, ec)) {
    print_error("backup", o.target + " already exists; a backup goes into a new directory");
    return exit_usage;
  }
  backup_options with_target = o;
  with_target.target = target.string();
  const auto start = clock_type::now();
  json report = {{"to", with_target.target}};

  if (!o.data_dir.empty()) {
    // Read-write: taking RocksDB's LOCK proves no engine has the directory.
    std::unique_ptr<store::event_log> log;
    store::rocksdb_log_options lo;
    lo.create_if_missing = false;
    store::status s = store::open_rocksdb_log(o.data_dir, lo, &log);
    if (!s.is_ok()) {
      if (s.code() == store::status_code::io_error &&
          s.message().find("LOCK") != std::string::npos) {
        print_error("backup", o.data_dir +
                                  " is held by a running engine (RocksDB's LOCK). Ask the engine "
                                  "to write the checkpoint: jobsmith backup --url URL --to " +
                                  o.target);
      } else {
        print_error("backup", s.to_string());
      }
      return exit_for(s);
    }
    report["from"] = o.data_dir;
    s = log->checkpoint(with_target.target);
    if (!s.is_ok()) {
      print_error("backup", s.to_string());
      return exit_usage;
    }
  } else {
    std::string error;
    auto base = http::url::parse(o.url, &error);
    if (!base) {
      print_error("backup", "--url " + o.url + ": " + error);
      return exit_usage;
    }
    http::client client(*base, o.token, std::chrono::minutes(10));
    http::response r = client.post("/v1/admin/backup", json{{"to", with_target.target}});
    if (r.status == 0) {
      print_error("backup", o.url + ": " + r.transport_error);
      return exit_usage;
    }
    if (r.status == 404 || r.status == 405) {
      print_error("backup", o.url +
                                " has no POST /v1/admin/backup (a server without online "
                                "backups?): " +
                                std::to_string(r.status) + " " + r.body);
      return exit_usage;
    }
    if (r.status / 100 != 2) {
      print_error("backup", o.url + " answered " + std::to_string(r.status) + ": " + r.body);
      return exit_usage;
    }
    report["from"] = o.url;
    report["server"] = r.json();
    // The server wrote the copy on its host; check it when it is visible here.
    if (!std::filesystem::exists(target / "CURRENT", ec)) {
      report["checked"] = false;
      std::printf("%s\n", o.json ? report.dump().c_str()
                                 : ("backup written by the server to " + with_target.target +
                                    " (not visible from this host: not verified here)")
                                       .c_str());
      return exit_ok;
    }
  }
  report["checkpoint_seconds"] = seconds_since(start);
  const int checked = check_backup(with_target, &report);
  report["seconds"] = seconds_since(start);
  if (checked != exit_ok) return checked;
  if (o.json) {
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("backup of %s in %s: head %" PRIu64 ", chain hash %s\n",
                report["from"].get<std::string>().c_str(), with_target.target.c_str(),
                report["head"].get<sequence_t>(), report["head_hash"].get<std::string>().c_str());
    if (o.verify)
      std::printf("verified %s events of the copy; took %.2f s in all\n",
                  grouped(report["verified"].get<std::uint64_t>()).c_str(),
                  report["seconds"].get<double>());
  }
  return exit_ok;
}

}  // namespace jobsmith::apps::audit
