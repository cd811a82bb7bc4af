// The beanstalkd commands that read or act on jobs by state or by id
// without holding them: peeks, stats, list-tubes, kick, kick-job and
// pause-tube. Each runs on a call-pool thread (the facade's reads and
// by-id changes block); what it needs of the connection is copied first.
//
// beanstalkd states from jobsmith's (effective) states:
//   ready    = queued                  delayed = scheduled, or held by held_jobs
//   reserved = running (not held)      buried  = discarded or expired
// Other states (succeeded, cancelled, pending_review, ...) are gone to a
// beanstalkd client: NOT_FOUND.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "apps/server/beanstalk/connection.hpp"
#include "apps/server/beanstalk/job_body.hpp"

namespace jobsmith::server::beanstalk {

namespace {

/// Jobs a peek-ready/-delayed/-buried or kick looks at, in id order. The
/// facade lists by id only; the scheduler's order is not exposed to it.
constexpr std::size_t scan_limit = 1000;

/// "OK <bytes>\r\n<yaml>\r\n"
std::string ok(const std::string& yaml) {
  return "OK " + std::to_string(yaml.size()) + "\r\n" + yaml + "\r\n";
}

struct yaml_map {
  std::string text = "---\n";
  template <class T>
  void add(std::string_view key, const T& value) {
    text += key;
    text += ": ";
    if constexpr (std::is_convertible_v<T, std::string_view>)
      text += std::string_view{value};
    else
      text += std::to_string(value);
    text += '\n';
  }
};

std::string yaml_list(const std::vector<std::string>& names) {
  std::string text = "---\n";
  for (auto& n : names) text += "- " + n + "\n";
  return text;
}

std::string found(job_id id, const std::string& payload) {
  auto body = body_of(payload);
  std::string out = "FOUND " + std::to_string(id) + " " + std::to_string(body.size()) + "\r\n";
  out += body;
  out += "\r\n";
  return out;
}

/// The beanstalkd state of a job, "" when a client cannot see it.
std::string_view state_of(const job_record& job, millis now) {
  switch (effective_state(job, now)) {
    case job_state::queued:
      return "ready";
    case job_state::scheduled:
      return "delayed";
    case job_state::running:
      return "reserved";
    case job_state::discarded:
    case job_state::expired:
      return "buried";
    default:
      return "";
  }
}

std::int64_t seconds_until(millis at, millis now) { return at > now ? (at - now + 999) / 1000 : 0; }

std::int64_t seconds_until(std::chrono::steady_clock::time_point at) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(at - std::chrono::steady_clock::now());
  return left.count() > 0 ? (left.count() + 999) / 1000 : 0;
}

result<std::vector<job_record>> jobs_in(engine& eng, const std::string& tube,
                                        std::vector<job_state> states, std::size_t limit) {
  job_filter f;
  f.states_in = std::move(states);
  f.queue = tube;
  f.limit = limit;
  return eng.list(f);
}

std::string stats_job(service& svc, job_id id,
                      std::optional<std::chrono::steady_clock::time_point> mine) {
  auto view = svc.eng().get(id);
  if (!view) return line(refusal_of(view.error()));
  const auto& job = view->job;
  const millis now = system_wall_now();
  auto held = svc.holds().find(id);
  std::string_view state = held ? "delayed" : state_of(job, now);
  if (state.empty()) return line("NOT_FOUND");
  std::uint64_t reserves = 0, timeouts = 0, releases = 0, buries = 0, kicks = 0;
  for (auto& ev : view->history) {
    if (std::holds_alternative<job_started>(ev.body))
      ++reserves;
    else if (std::holds_alternative<job_reclaimed>(ev.body))
      ++timeouts;
    else if (auto* f = std::get_if<job_failed>(&ev.body))
      ++(f->next_run_at > 0 ? releases : buries);
    else if (std::holds_alternative<job_discarded>(ev.body))
      ++buries;
    else if (std::holds_alternative<job_requested>(ev.body))
      ++kicks;
  }
  if (held) ++releases;  // its job.failed is written when the delay is over
  const millis ttr_ms = job.spec.timeouts.heartbeat;
  std::int64_t time_left = 0;
  if (held)
    time_left = seconds_until(held->due);
  else if (state == "reserved")
    time_left = mine ? seconds_until(*mine) : seconds_until(job.started_at + ttr_ms, now);
  else if (state == "delayed")
    time_left = seconds_until(job.due_at, now);
  const millis put_delay =
      job.spec.run_at > job.submitted_at ? job.spec.run_at - job.submitted_at : 0;
  yaml_map y;
  y.add("id", job.id);
  y.add("tube", job.spec.queue);
  y.add("state", state);
  y.add("pri", pri_of(job.spec.priority));
  y.add("age", std::max<millis>(0, now - job.submitted_at) / 1000);
  y.add("delay", held ? static_cast<millis>(held->delay_s) : (put_delay + 500) / 1000);
  y.add("ttr", ttr_ms / 1000);
  y.add("time-left", time_left);
  y.add("file", 0);
  y.add("reserves", reserves);
  y.add("timeouts", timeouts);
  y.add("releases", releases);
  y.add("buries", buries);
  y.add("kicks", kicks);
  return ok(y.text);
}

std::string stats_tube(service& svc, const std::string& tube) {
  auto rows = svc.eng().queue_counts();
  if (!rows) return line(refusal_of(rows.error()));
  auto presence = svc.presence(tube);
  auto row = std::find_if(rows->begin(), rows->end(), [&](auto& r) { return r.name == tube; });
  if (row == rows->end() && presence.using_it == 0 && presence.watching == 0 && tube != "default")
    return line("NOT_FOUND");
  auto n = [&](job_state s) -> std::uint64_t {
    return row == rows->end() ? 0 : row->by_state[static_cast<std::size_t>(s)];
  };
  const std::uint64_t held = svc.holds().count_in(tube);
  const std::uint64_t running = n(job_state::running);
  std::uint64_t total = 0;
  for (int s = 0; s < job_state_count; ++s) total += n(static_cast<job_state>(s));
  auto pause = svc.pause_of(tube);
  yaml_map y;
  y.add("name", tube);
  y.add("current-jobs-urgent", 0);  // not counted: docs/beanstalk.md
  y.add("current-jobs-ready", n(job_state::queued));
  y.add("current-jobs-reserved", running - std::min(running, held));
  y.add("current-jobs-delayed", n(job_state::scheduled) + held);
  y.add("current-jobs-buried", n(job_state::discarded) + n(job_state::expired));
  y.add("total-jobs", total);
  y.add("current-using", presence.using_it);
  y.add("current-watching", presence.watching);
  y.add("current-waiting", presence.waiting);
  y.add("cmd-delete", svc.tube_deletes(tube));
  y.add("cmd-pause-tube", svc.tube_pauses(tube));
  y.add("pause", pause ? pause->seconds : 0);
  y.add("pause-time-left", pause ? seconds_until(pause->until) : 0);
  return ok(y.text);
}

std::string server_stats(service& svc) {
  auto counts = svc.eng().counts();
  if (!counts) return line(refusal_of(counts.error()));
  auto totals = svc.eng().totals();
  if (!totals) return line(refusal_of(totals.error()));
  auto queues = svc.eng().queue_counts();
  auto n = [&](job_state s) -> std::uint64_t { return (*counts)[static_cast<std::size_t>(s)]; };
  const std::uint64_t held = svc.holds().size();
  const std::uint64_t running = n(job_state::running);
  yaml_map y;
  y.add("current-jobs-urgent", 0);
  y.add("current-jobs-ready", n(job_state::queued));
  y.add("current-jobs-reserved", running - std::min(running, held));
  y.add("current-jobs-delayed", n(job_state::scheduled) + held);
  y.add("current-jobs-buried", n(job_state::discarded) + n(job_state::expired));
  for (std::size_t v = 0; v < verb_count; ++v) {
    auto what = static_cast<verb>(v);
    if (what == verb::quit || what == verb::auth) continue;
    y.add("cmd-" + std::string{to_string(what)}, svc.count_of(what));
  }
  y.add("job-timeouts", totals->reclaimed);
  y.add("total-jobs", totals->submitted);
  y.add("max-job-size", svc.opts().max_job_bytes);
  y.add("current-tubes", queues ? queues->size() : 0);
  y.add("current-connections", svc.open_connections());
  y.add("current-producers", svc.producers());
  y.add("current-workers", svc.workers());
  y.add("current-waiting", svc.waiting_connections());
  y.add("total-connections", svc.total_connections());
  y.add("pid", static_cast<long>(::getpid()));
  y.add("version", "\"jobsmith\"");
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& t) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld.%06ld", static_cast<long>(t.tv_sec),
                  static_cast<long>(t.tv_usec));
    return std::string{buf};
  };
  y.add("rusage-utime", secs(ru.ru_utime));
  y.add("rusage-stime", secs(ru.ru_stime));
  y.add("uptime", std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::steady_clock::now() - svc.started())
                      .count());
  y.add("draining", svc.stopping() ? "true" : "false");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  y.add("hostname", std::string{host});
  return ok(y.text);
}

std::string list_tubes(service& svc) {
  auto rows = svc.eng().queue_counts();
  if (!rows) return line(refusal_of(rows.error()));
  std::set<std::string> names{"default"};
  // Queues named over HTTP with characters a tube name may not have are
  // left out: a client could not name them back.
  for (auto& r : *rows)
    if (valid_tube_name(r.name)) names.insert(r.name);
  for (auto& t : svc.present_tubes()) names.insert(t);
  return ok(yaml_list({names.begin(), names.end()}));
}

/// peek-ready: the job a reserve would take first among those looked at
/// (kicked or run-now jobs by request time, then priority, then due time,
/// then id: the scheduler's order, actors/ready_index.hpp).
std::string peek_ready(service& svc, const std::string& tube) {
  auto jobs = jobs_in(svc.eng(), tube, {job_state::queued}, scan_limit);
  if (!jobs) return line(refusal_of(jobs.error()));
  auto best = std::min_element(jobs->begin(), jobs->end(), [](auto& a, auto& b) {
    if ((a.requested_at == 0) != (b.requested_at == 0)) return a.requested_at != 0;
    if (a.requested_at != b.requested_at) return a.requested_at < b.requested_at;
    if (a.spec.priority != b.spec.priority) return a.spec.priority > b.spec.priority;
    if (a.due_at != b.due_at) return a.due_at < b.due_at;
    return a.id < b.id;
  });
  if (best == jobs->end()) return line("NOT_FOUND");
  return found(best->id, best->spec.payload);
}

/// peek-delayed: the delayed job due first (held releases included).
std::string peek_delayed(service& svc, const std::string& tube) {
  auto held = svc.holds().in_tube(tube, 1);
  auto jobs = jobs_in(svc.eng(), tube, {job_state::scheduled}, scan_limit);
  if (!jobs) return line(refusal_of(jobs.error()));
  auto best = std::min_element(jobs->begin(), jobs->end(), [](auto& a, auto& b) {
    return a.due_at != b.due_at ? a.due_at < b.due_at : a.id < b.id;
  });
  job_id id = 0;
  if (!held.empty() && (best == jobs->end() || held.front().due_wall <= best->due_at))
    id = held.front().id;
  else if (best != jobs->end())
    return found(best->id, best->spec.payload);
  if (id == 0) return line("NOT_FOUND");
  auto view = svc.eng().get(id);
  if (!view) return line(refusal_of(view.error()));
  return found(id, view->job.spec.payload);
}

/// peek-buried: the job buried first.
std::string peek_buried(service& svc, const std::string& tube) {
  auto jobs = jobs_in(svc.eng(), tube, {job_state::discarded, job_state::expired}, scan_limit);
  if (!jobs) return line(refusal_of(jobs.error()));
  auto best = std::min_element(jobs->begin(), jobs->end(), [](auto& a, auto& b) {
    return a.finished_at != b.finished_at ? a.finished_at < b.finished_at : a.id < b.id;
  });
  if (best == jobs->end()) return line("NOT_FOUND");
  return found(best->id, best->spec.payload);
}

/// kick-job: a buried job is retried, a delayed one made due now.
std::string kick_job(service& svc, job_id id, const std::string& principal) {
  auto& eng = svc.eng();
  if (auto token = svc.holds().take(id)) {
    auto r = eng.fail(id, *token, "kicked", true, principal);
    return line(r ? "KICKED" : refusal_of(r.error()));
  }
  auto view = eng.get(id);
  if (!view) return line(refusal_of(view.error()));
  switch (effective_state(view->job, system_wall_now())) {
    case job_state::discarded:
    case job_state::expired: {
      auto r = eng.retry(id, principal);
      return line(r ? "KICKED" : refusal_of(r.error()));
    }
    case job_state::scheduled: {
      auto r = eng.run_now(id, principal);
      return line(r ? "KICKED" : refusal_of(r.error()));
    }
    default:
      return line("NOT_FOUND");
  }
}

/// kick <bound>: buried jobs of the tube if it has any, else delayed ones.
std::string kick(service& svc, const std::string& tube, std::uint32_t bound,
                 const std::string& principal) {
  auto& eng = svc.eng();
  const std::size_t limit = std::min<std::size_t>(bound, scan_limit);
  std::uint64_t kicked = 0;
  if (limit == 0) return line("KICKED 0");
  auto buried = jobs_in(eng, tube, {job_state::discarded, job_state::expired}, limit);
  if (!buried) return line(refusal_of(buried.error()));
  if (!buried->empty()) {
    for (auto& job : *buried)
      if (eng.retry(job.id, principal)) ++kicked;
    return "KICKED " + std::to_string(kicked) + "\r\n";
  }
  for (auto& h : svc.holds().in_tube(tube, limit))
    if (auto token = svc.holds().take(h.id))
      if (eng.fail(h.id, *token, "kicked", true, principal)) ++kicked;
  if (kicked < limit) {
    auto delayed = jobs_in(eng, tube, {job_state::scheduled}, limit - kicked);
    if (delayed)
      for (auto& job : *delayed)
        if (eng.run_now(job.id, principal)) ++kicked;
  }
  return "KICKED " + std::to_string(kicked) + "\r\n";
}

std::string pause_tube(service& svc, const std::string& tube, std::uint32_t seconds,
                       const std::string& principal) {
  auto rows = svc.eng().queue_counts();
  if (!rows) return line(refusal_of(rows.error()));
  auto presence = svc.presence(tube);
  bool exists = tube == "default" || presence.using_it > 0 || presence.watching > 0 ||
                std::any_of(rows->begin(), rows->end(), [&](auto& r) { return r.name == tube; });
  if (!exists) return line("NOT_FOUND");
  auto r = svc.pause_tube(tube, seconds, principal);
  return line(r ? "PAUSED" : refusal_of(r.error()));
}

}  // namespace

void connection::run_report(command& c, const started& s) {
  // Copies of what the pool thread needs; the connection's own state
  // stays on its strand.
  service* svc = &svc_;
  const std::string principal = principal_;
  const std::string tube =
      c.what == verb::stats_tube || c.what == verb::pause_tube ? c.name : used_;
  const job_id id = c.id;
  switch (c.what) {
    case verb::list_tubes_watched:
      return finish(s, ok(yaml_list(watched_)));
    case verb::peek:
      return on_pool(s, [svc, id] {
        auto view = svc->eng().get(id);
        if (!view) return line(refusal_of(view.error()));
        bool visible = svc->holds().find(id) || !state_of(view->job, system_wall_now()).empty();
        return visible ? found(id, view->job.spec.payload) : line("NOT_FOUND");
      });
    case verb::peek_ready:
      return on_pool(s, [svc, tube] { return peek_ready(*svc, tube); });
    case verb::peek_delayed:
      return on_pool(s, [svc, tube] { return peek_delayed(*svc, tube); });
    case verb::peek_buried:
      return on_pool(s, [svc, tube] { return peek_buried(*svc, tube); });
    case verb::stats_job: {
      std::optional<steady::time_point> mine;
      if (auto it = reserved_.find(id); it != reserved_.end()) mine = it->second.deadline;
      return on_pool(s, [svc, id, mine] { return stats_job(*svc, id, mine); });
    }
    case verb::stats_tube:
      return on_pool(s, [svc, tube] { return stats_tube(*svc, tube); });
    case verb::stats:
      return on_pool(s, [svc] { return server_stats(*svc); });
    case verb::list_tubes:
      return on_pool(s, [svc] { return list_tubes(*svc); });
    case verb::kick:
    case verb::kick_job:
      if (!allows(who_, permission::produce)) return finish(s, line("FORBIDDEN"));
      if (c.what == verb::kick_job)
        return on_pool(s, [svc, id, principal] { return kick_job(*svc, id, principal); });
      return on_pool(s, [svc, tube, bound = c.bound, principal] {
        return kick(*svc, tube, bound, principal);
      });
    case verb::pause_tube:
      if (!allows(who_, permission::administer)) return finish(s, line("FORBIDDEN"));
      return on_pool(s, [svc, tube, seconds = c.seconds, principal] {
        return pause_tube(*svc, tube, seconds, principal);
      });
    default:
      return finish(s, line("UNKNOWN_COMMAND"));
  }
}

}  // namespace jobsmith::server::beanstalk
