// `jobsmith replay`: folds a data directory's log offline (read-only) into
// the queue view and prints it: the summary now, the queue as it stood at a
// past sequence or time (--at), or one job's whole history (--job).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "actors/recovery.hpp"
#include "apps/audit/audit_tools.hpp"
#include "apps/verbs.hpp"
#include "events/codec.hpp"
#include "events/json.hpp"
#include "events/time_text.hpp"
#include "projections/queue_view.hpp"
#include "store/rocksdb_log.hpp"

namespace jobsmith::apps {

namespace {

using json = nlohmann::json;
using steady = std::chrono::steady_clock;

struct replay_options {
  std::string data_dir = "./data";
  std::string at;  // SEQ or TIME; empty = the head
  bool full = false;  // --at folds from sequence 1, not from a snapshot
  job_id job = 0;
  bool as_json = false;
  std::size_t limit = 20;
};

std::string summary_of(const event& ev) {
  return std::visit(
      [&](const auto& b) -> std::string {
        using body_t = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<body_t, job_submitted>) {
          std::string s = "kind " + b.kind + ", queue " + b.queue;
          if (b.priority != 0) s += ", priority " + std::to_string(b.priority);
          for (const auto& r : b.resources)
            s += std::string(", ") + (r.mode == lock_mode::shared ? "shares " : "locks ") + r.name;
          if (b.review_required) s += ", review required";
          return s;
        } else if constexpr (std::is_same_v<body_t, job_started>) {
          return "attempt " + std::to_string(b.attempt) + " on " + b.worker;
        } else if constexpr (std::is_same_v<body_t, job_progress>) {
          std::string s = b.detail;
          if (b.percent >= 0) s += (s.empty() ? "" : ", ") + std::to_string(b.percent) + "%";
          if (!b.lines.empty())
            s += (s.empty() ? "" : ", ") + std::to_string(b.lines.size()) + " log line" +
                 (b.lines.size() == 1 ? "" : "s");
          return s;
        } else if constexpr (std::is_same_v<body_t, job_succeeded>) {
          return "attempt " + std::to_string(b.attempt) + ", result " + b.result;
        } else if constexpr (std::is_same_v<body_t, job_failed>) {
          return "attempt " + std::to_string(b.attempt) + ": " + b.error +
                 (b.next_run_at > 0 ? ", retry at " + format_time(b.next_run_at)
                                    : std::string(", no retry"));
        } else if constexpr (std::is_same_v<body_t, job_reclaimed>) {
          return "attempt " + std::to_string(b.attempt) + ": " + b.reason +
                 (b.next_run_at > 0 ? ", retry at " + format_time(b.next_run_at)
                                    : std::string(", no retry"));
        } else if constexpr (std::is_same_v<body_t, job_discarded> ||
                             std::is_same_v<body_t, job_cancelled> ||
                             std::is_same_v<body_t, job_expired>) {
          return b.reason;
        } else if constexpr (std::is_same_v<body_t, job_reviewed>) {
          return std::string(b.accepted ? "accepted" : "declined") +
                 (b.comment.empty() ? "" : ": " + b.comment);
        } else if constexpr (std::is_same_v<body_t, job_requested>) {
          return b.what == request_kind::run_now ? "run now" : "retry";
        } else if constexpr (std::is_same_v<body_t, job_cancel_requested>) {
          return "attempt " + std::to_string(b.attempt) + " asked to stop: " + b.reason;
        } else {
          return {};
        }
      },
      ev.body);
}

// -- one job -------------------------------------------------------------------------

int print_job(const store::event_log& log, const replay_options& o, sequence_t last) {
  job_record rec;
  std::vector<event> history;
  std::string error;
  auto s = log.read_job(o.job, [&](const store::record& r) {
    if (r.seq > last) return false;
    event ev;
    if (!decode_record(r, ev, &error)) return false;
    apply(rec, ev);
    history.push_back(std::move(ev));
    return true;
  });
  if (!s.is_ok() || !error.empty()) {
    std::fprintf(stderr, "replay: %s\n", error.empty() ? s.message().c_str() : error.c_str());
    return 1;
  }
  if (history.empty()) {
    std::fprintf(stderr, "replay: job %llu has no events up to sequence %llu\n",
                 static_cast<unsigned long long>(o.job), static_cast<unsigned long long>(last));
    return 1;
  }
  const millis now = history.back().time;
  if (o.as_json) {
    json out;
    out["job"] = to_json(rec, now);
    out["history"] = json::array();
    for (const auto& ev : history) out["history"].push_back(to_json(ev));
    std::printf("%s\n", out.dump(2, ' ', false, json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("job %llu  %s  kind %s  queue %s  attempts %u/%u\n",
              static_cast<unsigned long long>(rec.id),
              std::string(to_string(effective_state(rec, now))).c_str(), rec.spec.kind.c_str(),
              rec.spec.queue.c_str(), rec.attempts, rec.max_attempts);
  std::printf("\n%-10s %-24s %-16s %-20s %s\n", "SEQ", "TIME", "TYPE", "BY", "WHAT");
  for (const auto& ev : history)
    std::printf("%-10llu %-24s %-16s %-20s %s\n", static_cast<unsigned long long>(ev.seq),
                format_time(ev.time).c_str(), std::string(type_name(ev.body)).c_str(),
                ev.principal.c_str(), summary_of(ev).c_str());
  bool any_lines = false;
  for (const auto& ev : history) {
    auto p = std::get_if<job_progress>(&ev.body);
    if (p == nullptr) continue;
    for (const auto& line : p->lines) {
      if (!any_lines) std::printf("\nlog:\n");
      any_lines = true;
      std::printf("  %s %-5s %s\n", format_time(line.time).c_str(),
                  std::string(to_string(line.level)).c_str(), line.text.c_str());
    }
  }
  if (rec.last_end == attempt_end::succeeded) std::printf("\nresult: %s\n", rec.result.c_str());
  if (!rec.last_error.empty()) std::printf("\nlast error: %s\n", rec.last_error.c_str());
  return 0;
}

// -- the whole queue -----------------------------------------------------------------------

json view_to_json(const queue_view& view, millis now, std::size_t limit) {
  json out;
  out["seq"] = view.head();
  out["time"] = view.head_time();
  out["jobs"] = view.jobs();
  json counts = json::object();
  auto c = view.counts(now);
  for (int i = 0; i < job_state_count; ++i)
    counts[std::string(to_string(static_cast<job_state>(i)))] = c[static_cast<std::size_t>(i)];
  out["counts"] = counts;
  out["queues"] = json::array();
  for (const auto& q : view.queues(now)) {
    json by_state = json::object();
    for (int i = 0; i < job_state_count; ++i)
      if (q.by_state[static_cast<std::size_t>(i)] != 0)
        by_state[std::string(to_string(static_cast<job_state>(i)))] =
            q.by_state[static_cast<std::size_t>(i)];
    out["queues"].push_back(
        {{"name", q.name}, {"paused", q.paused}, {"concurrency", q.concurrency}, {"counts", by_state},
         {"retired", q.retired}});
  }
  const auto& names = view.names();
  out["running"] = json::array();
  for (const job_row* r : view.running())
    out["running"].push_back({{"id", r->id},
                              {"kind", names.name(r->kind)},
                              {"queue", names.name(r->queue)},
                              {"worker", names.name(r->worker)},
                              {"lease_token", r->lease_token},
                              {"attempt", r->attempts},
                              {"started_at", r->started_at}});
  out["resources"] = json::array();
  for (const auto& res : view.resources(now)) {
    auto ids = [](const std::vector<std::pair<job_id, lock_mode>>& v) {
      json a = json::array();
      for (auto [id, mode] : v)
        a.push_back({{"job", id}, {"mode", mode == lock_mode::shared ? "shared" : "exclusive"}});
      return a;
    };
    out["resources"].push_back(
        {{"name", res.name}, {"holders", ids(res.holders)}, {"waiters", ids(res.waiters)}});
  }
  out["ready"] = json::array();
  auto ready = view.ready(now);
  for (std::size_t i = 0; i < ready.size() && i < limit; ++i)
    out["ready"].push_back({{"id", ready[i]->id},
                            {"queue", names.name(ready[i]->queue)},
                            {"priority", ready[i]->priority},
                            {"why", view.explain(ready[i]->id, now)}});
  out["ready_total"] = ready.size();
  return out;
}

void print_view(const queue_view& view, millis now, std::size_t limit) {
  const auto& names = view.names();
  std::printf("as of sequence %llu (%s): %llu jobs\n",
              static_cast<unsigned long long>(view.head()), format_time(view.head_time()).c_str(),
              static_cast<unsigned long long>(view.jobs()));
  auto c = view.counts(now);
  std::printf("  ");
  for (int i = 0; i < job_state_count; ++i)
    std::printf("%s %llu%s", std::string(to_string(static_cast<job_state>(i))).c_str(),
                static_cast<unsigned long long>(c[static_cast<std::size_t>(i)]),
                i + 1 < job_state_count ? ", " : "\n");

  std::printf("\nqueues:\n  %-16s %-7s %-5s %9s %9s %9s %9s %9s %9s %9s\n", "NAME", "PAUSED",
              "LIMIT", "SCHEDULED", "QUEUED", "RUNNING", "REVIEW", "DONE", "FAILED", "RETIRED");
  for (const auto& q : view.queues(now)) {
    auto n = [&](job_state s) { return q.by_state[static_cast<std::size_t>(s)]; };
    unsigned long long done = n(job_state::succeeded) + n(job_state::accepted);
    unsigned long long failed = n(job_state::discarded) + n(job_state::declined) +
                                n(job_state::cancelled) + n(job_state::expired);
    std::printf("  %-16s %-7s %-5s %9llu %9llu %9llu %9llu %9llu %9llu %9llu\n", q.name.c_str(),
                q.paused ? "yes" : "no",
                q.concurrency ? std::to_string(q.concurrency).c_str() : "-",
                static_cast<unsigned long long>(n(job_state::scheduled)),
                static_cast<unsigned long long>(n(job_state::queued)),
                static_cast<unsigned long long>(n(job_state::running)),
                static_cast<unsigned long long>(n(job_state::pending_review)), done, failed,
                static_cast<unsigned long long>(q.retired));
  }

  auto running = view.running();
  std::printf("\nrunning (leased): %zu\n", running.size());
  for (std::size_t i = 0; i < running.size() && i < limit; ++i) {
    const job_row* r = running[i];
    std::printf("  job %-8llu %-12s %-10s on %-20s token %-16llu attempt %u since %s\n",
                static_cast<unsigned long long>(r->id), names.name(r->kind).c_str(),
                names.name(r->queue).c_str(), names.name(r->worker).c_str(),
                static_cast<unsigned long long>(r->lease_token), r->attempts,
                format_time(r->started_at).c_str());
  }
  if (running.size() > limit) std::printf("  ... %zu more\n", running.size() - limit);

  auto res = view.resources(now);
  if (!res.empty()) {
    std::printf("\nresources:\n");
    for (const auto& r : res) {
      std::string holders, waiters;
      for (auto [id, mode] : r.holders)
        holders += (holders.empty() ? "" : ", ") + std::to_string(id) +
                   (mode == lock_mode::shared ? " (shared)" : "");
      for (std::size_t i = 0; i < r.waiters.size() && i < limit; ++i)
        waiters += (waiters.empty() ? "" : ", ") + std::to_string(r.waiters[i].first);
      if (r.waiters.size() > limit)
        waiters += " and " + std::to_string(r.waiters.size() - limit) + " more";
      std::printf("  %-20s held by %s%s%s\n", r.name.c_str(),
                  holders.empty() ? "nobody" : ("job " + holders).c_str(),
                  waiters.empty() ? "" : "; waiting: ", waiters.c_str());
    }
  }

  auto ready = view.ready(now);
  std::printf("\nready (due, in start order): %zu\n", ready.size());
  for (std::size_t i = 0; i < ready.size() && i < limit; ++i)
    std::printf("  job %-8llu %-10s priority %-4d %s\n",
                static_cast<unsigned long long>(ready[i]->id),
                names.name(ready[i]->queue).c_str(), ready[i]->priority,
                view.explain(ready[i]->id, now).c_str());
  if (ready.size() > limit) std::printf("  ... %zu more\n", ready.size() - limit);
}

int run_replay(const replay_options& o) {
  std::unique_ptr<store::event_log> log;
  auto opened = audit::open_read_only(o.data_dir, &log);
  if (!opened.is_ok()) {
    std::fprintf(stderr, "replay: %s: %s\n", o.data_dir.c_str(), opened.message().c_str());
    return 2;
  }
  const sequence_t head = log->head();
  sequence_t last = head;
  std::optional<millis> at_time;
  if (!o.at.empty()) {
    // As `audit export --to`: a number below 10^12 is a sequence, anything
    // else a time; the view is the fold of every event up to it.
    std::string error;
    auto bound = audit::parse_upper_bound(o.at, &error);
    if (!bound) {
      std::fprintf(stderr, "replay: --at %s\n", error.c_str());
      return 2;
    }
    if (bound->is_time)
      at_time = bound->time;
    else
      last = std::min<sequence_t>(bound->seq, head);
  }
  if (o.job != 0 && !at_time) return print_job(*log, o, last);

  // Fold the log up to `last`, or up to the last event at or before the
  // time. A point in the past starts from the newest stored snapshot
  // before it (the projector keeps several, spread over the log) unless
  // --full; the plain replay and --full fold from sequence 1.
  auto started = steady::now();
  queue_view view;
  sequence_t start = 0;
  if (!o.at.empty() && !o.full) {
    std::vector<std::string> warnings;
    auto before_time = [&](const store::snapshot_info& info) {
      if (!at_time) return true;
      auto t = record_time(*log, info.covered);
      return t && *t <= *at_time;
    };
    if (auto stored = load_queue_view(*log, last, &warnings, before_time)) {
      view = std::move(stored->view);
      start = stored->covered;
    }
    for (auto& w : warnings)
      std::fprintf(stderr, "replay: %s; passed over (see `jobsmith audit verify --data %s`)\n",
                   w.c_str(), o.data_dir.c_str());
  }
  audit::progress_meter bar("replay", last, true);
  std::string error;
  event ev;
  auto s = start >= last ? store::status::ok()
                         : log->read(start + 1, last, [&](const store::record& r) {
                             if (!decode_record(r, ev, &error)) return false;
                             if (at_time && ev.time > *at_time) return false;
                             view.apply(ev);
                             bar.update(r.seq);
                             return true;
                           });
  bar.finish();
  double secs = std::chrono::duration<double>(steady::now() - started).count();
  if (!s.is_ok() || !error.empty()) {
    std::fprintf(stderr, "replay: %s (see `jobsmith audit verify --data %s`)\n",
                 error.empty() ? s.message().c_str() : error.c_str(), o.data_dir.c_str());
    return 1;
  }
  if (o.job != 0) {
    replay_options job_opts = o;
    return print_job(*log, job_opts, view.head());
  }
  // States are judged at the moment the view stands for: the time asked
  // for, else the time of its last event.
  const millis now = at_time ? *at_time : view.head_time();
  // `secs` counts the snapshot's load too: the time the answer took.
  const sequence_t folded = view.head() - std::min(start, view.head());
  double rate = secs > 0 ? static_cast<double>(folded) / secs : 0;
  if (o.as_json) {
    json out = view_to_json(view, now, o.limit);
    out["replay"] = {{"events", folded},
                     {"from_snapshot", start},
                     {"seconds", secs},
                     {"events_per_second", rate}};
    std::printf("%s\n", out.dump(2, ' ', false, json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("replayed %llu events in %.2f s (%.0f events/s) from %s", static_cast<unsigned long long>(folded),
              secs, rate, o.data_dir.c_str());
  if (start != 0)
    std::printf(", starting from the snapshot at %llu", static_cast<unsigned long long>(start));
  std::printf("\n");
  print_view(view, now, o.limit);
  return 0;
}

}  // namespace

void add_replay_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<replay_options>();
  auto* cmd = app.add_subcommand(
      "replay", "fold a data directory's log offline: the queue now or at a past moment, a job's history");
  cmd->add_option("--data", opts->data_dir, "data directory")->capture_default_str();
  cmd->add_option("--at", opts->at,
                  "the queue as it stood at this sequence number or time (2026-11-22T14:02:00Z)");
  cmd->add_flag("--full", opts->full,
                "with --at: fold from sequence 1 instead of the nearest stored snapshot");
  cmd->add_option("--job", opts->job, "print this job's whole history as a timeline");
  cmd->add_flag("--json", opts->as_json, "machine-readable output");
  cmd->add_option("--limit", opts->limit, "rows per list")->capture_default_str();
  cmd->callback([opts, &exit_code] { exit_code = run_replay(*opts); });
}

}  // namespace jobsmith::apps
