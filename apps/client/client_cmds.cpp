// The client verbs over the HTTP API (docs/api.md, docs/cli.md): submit,
// status, list, cancel, run-now, retry, review, queues, pause, resume,
// schedules, unschedule, tail;
// plus the registration of `jobsmith work` and the hidden `bench-worker`.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <thread>

#include "apps/client/bench_url.hpp"
#include "apps/client/verb_support.hpp"
#include "apps/client/worker.hpp"
#include "apps/verbs.hpp"

namespace jobsmith::apps {

namespace {

using json = nlohmann::json;

/// Prints the answer raw (--json) or calls `human`; returns the exit code.
template <class Human>
int answer(const http::response& r, const connection_options& o, std::string_view verb,
           Human&& human) {
  if (int code = report_failure(r, o, verb); code != exit_ok) return code;
  auto j = r.json();
  if (o.json || j.is_discarded()) {
    std::printf("%s\n", r.body.c_str());
    return exit_ok;
  }
  human(j);
  return exit_ok;
}

// -- submit -------------------------------------------------------------------

struct submit_options {
  connection_options conn;
  std::string kind;
  std::string queue;
  std::string payload;
  std::int32_t priority = 0;
  bool priority_set = false;
  std::int64_t delay = 0;
  bool delay_set = false;
  std::string run_at;
  std::uint32_t max_attempts = 0;
  std::int64_t retry_initial = -1;
  double retry_backoff = 0;
  std::int64_t retry_max_interval = -1;
  std::int64_t timeout_start = -1;
  std::int64_t timeout_run = -1;
  std::int64_t heartbeat = -1;
  std::int64_t timeout_stop = -1;
  std::vector<std::string> resources;
  std::string unique_key;
  bool review = false;
  std::int64_t every = 0;
};

/// The payload argument: JSON text, @file, or - for stdin.
bool read_payload(const std::string& arg, json& out, std::string& error) {
  std::string text = arg;
  if (arg == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else if (!arg.empty() && arg.front() == '@') {
    std::ifstream in(arg.substr(1), std::ios::binary);
    if (!in) {
      error = "cannot read " + arg.substr(1);
      return false;
    }
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  out = json::parse(text, nullptr, false);
  if (out.is_discarded()) {
    error = "the payload is not JSON: " + text.substr(0, 80);
    return false;
  }
  return true;
}

int run_submit(const submit_options& o) {
  auto usage = [](const std::string& m) {
    std::fprintf(stderr, "jobsmith submit: %s\n", m.c_str());
    return exit_usage;
  };
  json s = {{"kind", o.kind}};
  if (!o.queue.empty()) s["queue"] = o.queue;
  if (!o.payload.empty()) {
    json payload;
    std::string error;
    if (!read_payload(o.payload, payload, error)) return usage(error);
    s["payload"] = std::move(payload);
  }
  if (o.priority_set) s["priority"] = o.priority;
  if (!o.run_at.empty()) {
    std::int64_t at = 0;
    if (!parse_time(o.run_at, at))
      return usage("--run-at: expected ms since the epoch or 2026-01-31T12:00:00Z");
    s["run_at"] = at;
  }
  if (o.delay_set) s["delay"] = o.delay;  // the server judges negative values
  json retry = json::object();
  if (o.max_attempts > 0) retry["max_attempts"] = o.max_attempts;
  if (o.retry_initial >= 0) retry["initial_interval"] = o.retry_initial;
  if (o.retry_backoff > 0) retry["backoff_coefficient"] = o.retry_backoff;
  if (o.retry_max_interval >= 0) retry["max_interval"] = o.retry_max_interval;
  if (!retry.empty()) s["retry"] = retry;
  json timeouts = json::object();
  if (o.timeout_start >= 0) timeouts["to_start"] = o.timeout_start;
  if (o.timeout_run >= 0) timeouts["to_run"] = o.timeout_run;
  if (o.heartbeat >= 0) timeouts["heartbeat"] = o.heartbeat;
  if (o.timeout_stop >= 0) timeouts["to_stop"] = o.timeout_stop;
  if (!timeouts.empty()) s["timeouts"] = timeouts;
  if (!o.resources.empty()) {
    json rs = json::array();
    for (auto& r : o.resources) {
      // "db:charts" names may hold ':'; only a trailing :shared / :exclusive is a mode.
      std::string name = r;
      std::string mode = "exclusive";
      for (std::string m : {"shared", "exclusive"}) {
        auto suffix = ":" + m;
        if (name.size() > suffix.size() && name.ends_with(suffix)) {
          name.resize(name.size() - suffix.size());
          mode = m;
          break;
        }
      }
      rs.push_back({{"name", name}, {"mode", mode}});
    }
    s["resources"] = rs;
  }
  if (!o.unique_key.empty()) s["unique_key"] = o.unique_key;
  if (o.review) s["review_required"] = true;
  if (o.every > 0) s["recurrence"] = {{"interval", o.every}};
  auto c = make_client(o.conn, "submit");
  if (!c) return exit_usage;
  return answer(c->post("/v1/jobs", s), o.conn, "submit",
                [](const json& j) { std::printf("%s\n", text_of(j, "id").c_str()); });
}

// -- status -------------------------------------------------------------------

/// One line about what an event says, beyond its type.
std::string event_summary(const json& ev) {
  auto type = text_of(ev, "type");
  const json& b = ev.contains("body") ? ev["body"] : json::object();
  if (type == "job.submitted")
    return "kind " + text_of(b, "kind") + ", queue " + text_of(b, "queue");
  if (type == "job.started")
    return "attempt " + text_of(b, "attempt") + " on " + text_of(b, "worker");
  if (type == "job.progress") {
    std::string s;
    if (!text_of(b, "detail").empty()) s += text_of(b, "detail");
    if (int_of(b, "percent") >= 0) s += (s.empty() ? "" : ", ") + text_of(b, "percent") + "%";
    if (b.contains("lines") && b["lines"].is_array() && !b["lines"].empty())
      s += (s.empty() ? "" : ", ") + std::to_string(b["lines"].size()) + " log lines";
    return s;
  }
  json rest = b;
  if (rest.is_object()) rest.erase("attempt");
  return rest.empty() ? "" : compact(rest);
}

int run_status(const connection_options& conn, std::uint64_t id) {
  auto c = make_client(conn, "status");
  if (!c) return exit_usage;
  return answer(c->get("/v1/jobs/" + std::to_string(id)), conn, "status", [](const json& a) {
    const json& job = a["job"];
    const json& spec = job.contains("spec") ? job["spec"] : json::object();
    std::vector<std::vector<std::string>> rows = {
        {"job", text_of(job, "id")},
        {"state", text_of(job, "state")},
        {"kind", text_of(spec, "kind")},
        {"queue", text_of(spec, "queue")},
        {"priority", text_of(spec, "priority")},
        {"attempts", text_of(job, "attempts") + " of " + text_of(job, "max_attempts")},
        {"submitted", format_time(int_of(job, "submitted_at"))},
        {"due", format_time(int_of(job, "due_at"))},
        {"started", format_time(int_of(job, "started_at"))},
        {"finished", format_time(int_of(job, "finished_at"))},
    };
    auto add = [&](const char* label, const std::string& v) {
      if (!v.empty()) rows.push_back({label, v});
    };
    add("worker", text_of(job, "worker"));
    add("payload", text_of(spec, "payload"));
    add("result", job.contains("result") && !job["result"].is_null() ? text_of(job, "result") : "");
    add("last end", text_of(job, "last_end") == "none" ? "" : text_of(job, "last_end"));
    add("last error", text_of(job, "last_error"));
    add("detail", text_of(job, "detail"));
    if (int_of(job, "percent") >= 0 && job.contains("percent"))
      add("percent", text_of(job, "percent"));
    add("reviewer", text_of(job, "reviewer"));
    add("review", text_of(job, "review_comment"));
    if (a.contains("explanation") && a["explanation"].is_object()) {
      auto& e = a["explanation"];
      auto phase = text_of(e, "phase");
      auto text = text_of(e, "text");
      add("why", phase + (text.empty() ? "" : ": " + text));
      if (e.contains("lock_waits") && e["lock_waits"].is_array())
        for (auto& w : e["lock_waits"]) {
          std::string holders;
          if (w.contains("holders"))
            for (auto& h : w["holders"]) holders += (holders.empty() ? "" : ",") + compact(h);
          rows.push_back({"waits for", text_of(w, "resource") + " (" + text_of(w, "mode") +
                                           ") held by " + (holders.empty() ? "-" : holders)});
        }
    }
    for (auto& r : rows) r[0] += ":";
    print_table(rows);

    std::vector<std::vector<std::string>> history = {{"SEQ", "TIME", "EVENT", "BY", "DETAIL"}};
    std::vector<std::vector<std::string>> log = {{"TIME", "LEVEL", "TEXT"}};
    if (a.contains("history") && a["history"].is_array())
      for (auto& ev : a["history"]) {
        history.push_back({text_of(ev, "seq"), format_time(int_of(ev, "time")), text_of(ev, "type"),
                           text_of(ev, "principal"), event_summary(ev)});
        if (text_of(ev, "type") == "job.progress" && ev["body"].contains("lines"))
          for (auto& l : ev["body"]["lines"])
            log.push_back(
                {format_time(int_of(l, "time")), text_of(l, "level"), text_of(l, "text")});
      }
    std::printf("\nhistory:\n");
    print_table(history);
    if (log.size() > 1) {
      std::printf("\nlog:\n");
      print_table(log);
    }
  });
}

// -- list ---------------------------------------------------------------------

struct list_options {
  connection_options conn;
  std::string state, not_state, queue, kind, error;
  std::string attempts_min, attempts_max;  // as given: the server checks them
  std::uint32_t limit = 0;
  std::string after;
};

int run_list(const list_options& o) {
  std::string q;
  auto param = [&](const char* name, const std::string& v) {
    if (!v.empty()) q += (q.empty() ? "?" : "&") + std::string(name) + "=" + query_escape(v);
  };
  param("state", o.state);
  param("not_state", o.not_state);
  param("queue", o.queue);
  param("kind", o.kind);
  param("error", o.error);
  param("attempts_min", o.attempts_min);
  param("attempts_max", o.attempts_max);
  param("limit", o.limit ? std::to_string(o.limit) : "");
  param("after", o.after);
  auto c = make_client(o.conn, "list");
  if (!c) return exit_usage;
  return answer(c->get("/v1/jobs" + q), o.conn, "list", [](const json& a) {
    std::vector<std::vector<std::string>> rows = {
        {"ID", "STATE", "KIND", "QUEUE", "ATTEMPTS", "SUBMITTED", "FINISHED", "LAST ERROR"}};
    if (a.contains("jobs"))
      for (auto& job : a["jobs"]) {
        const json& spec = job.contains("spec") ? job["spec"] : json::object();
        auto error = text_of(job, "last_error");
        if (error.size() > 60) error = error.substr(0, 57) + "...";
        rows.push_back({text_of(job, "id"), text_of(job, "state"), text_of(spec, "kind"),
                        text_of(spec, "queue"), text_of(job, "attempts"),
                        format_time(int_of(job, "submitted_at")),
                        format_time(int_of(job, "finished_at")), error});
      }
    print_table(rows);
    auto next = text_of(a, "next");
    if (!next.empty()) std::printf("(more: --after %s)\n", next.c_str());
  });
}

// -- job actions --------------------------------------------------------------

int run_job_action(const connection_options& conn, const char* verb, std::uint64_t id,
                   const std::string& action, const json& body) {
  auto c = make_client(conn, verb);
  if (!c) return exit_usage;
  auto r = c->post("/v1/jobs/" + std::to_string(id) + "/" + action, body);
  return answer(r, conn, verb, [](const json& a) {
    const json& job = a.contains("job") ? a["job"] : json::object();
    // A running job asked to stop stays running until its worker reports.
    const bool stopping = job.value("state", "") == "running" &&
                          job.value("cancel_requested_at", std::int64_t{0}) != 0;
    std::printf("job %s: %s%s\n", text_of(job, "id").c_str(), text_of(job, "state").c_str(),
                stopping ? " (cancel requested; the worker was asked to stop)" : "");
  });
}

// -- queues -------------------------------------------------------------------

int run_queues(const connection_options& conn) {
  auto c = make_client(conn, "queues");
  if (!c) return exit_usage;
  return answer(c->get("/v1/queues"), conn, "queues", [](const json& a) {
    std::vector<std::vector<std::string>> rows = {
        {"QUEUE", "PAUSED", "CONCURRENCY", "SCHEDULED", "READY", "LOCKING", "RUNNING", "COUNTS"}};
    if (a.contains("queues"))
      for (auto& q : a["queues"]) {
        std::string counts;
        if (q.contains("counts") && q["counts"].is_object())
          for (auto& [k, v] : q["counts"].items())
            if (!(v.is_number() && v.get<double>() == 0))  // zeros are noise
              counts += (counts.empty() ? "" : " ") + k + "=" + compact(v);
        auto conc = int_of(q, "concurrency");
        rows.push_back({text_of(q, "name"), q.value("paused", false) ? "yes" : "no",
                        conc == 0 ? "unlimited" : std::to_string(conc), text_of(q, "scheduled"),
                        text_of(q, "ready"), text_of(q, "locking"), text_of(q, "running"), counts});
      }
    print_table(rows);
  });
}

int run_queue_action(const connection_options& conn, const char* verb, const std::string& queue,
                     const std::string& action) {
  auto c = make_client(conn, verb);
  if (!c) return exit_usage;
  auto r = c->post("/v1/queues/" + query_escape(queue) + "/" + action, json::object());
  return answer(r, conn, verb, [&](const json& a) {
    const json& q = a.contains("queue") ? a["queue"] : json::object();
    std::printf("queue %s: %s\n", queue.c_str(), q.value("paused", false) ? "paused" : "running");
  });
}

// -- recurring schedules ------------------------------------------------------

int run_schedules(const connection_options& conn) {
  auto c = make_client(conn, "schedules");
  if (!c) return exit_usage;
  return answer(c->get("/v1/schedules"), conn, "schedules", [](const json& a) {
    std::vector<std::vector<std::string>> rows = {
        {"SCHEDULE", "KIND", "QUEUE", "EVERY_MS", "LAST_RUN", "ENDED", "FAILURES"}};
    if (a.contains("schedules"))
      for (auto& sc : a["schedules"]) {
        const json& spec = sc.contains("spec") ? sc["spec"] : json::object();
        const json& rec = spec.contains("recurrence") ? spec["recurrence"] : json::object();
        rows.push_back({text_of(sc, "id"), text_of(spec, "kind"), text_of(spec, "queue"),
                        text_of(rec, "interval"), text_of(sc, "last_run"),
                        sc.value("last_run_ended", false) ? "yes" : "no",
                        text_of(sc, "consecutive_failures")});
      }
    print_table(rows);
  });
}

int run_unschedule(const connection_options& conn, std::uint64_t id) {
  auto c = make_client(conn, "unschedule");
  if (!c) return exit_usage;
  auto r = c->request("DELETE", "/v1/schedules/" + std::to_string(id));
  return answer(r, conn, "unschedule", [id](const json&) {
    std::printf("schedule %llu: deleted (a run in progress goes on; no further run)\n",
                static_cast<unsigned long long>(id));
  });
}

// -- tail ---------------------------------------------------------------------

struct tail_options {
  connection_options conn;
  std::uint64_t from = 0;  // 0 = new events only
  std::uint64_t job = 0;
  std::string queue;
  std::string type;
  std::uint64_t count = 0;  // stop after this many events; 0 = follow forever
};

int run_tail(const tail_options& o) {
  std::string q;
  auto param = [&](const char* name, const std::string& v) {
    if (!v.empty()) q += (q.empty() ? "?" : "&") + std::string(name) + "=" + query_escape(v);
  };
  if (o.from > 0) param("from", std::to_string(o.from));
  if (o.job > 0) param("job", std::to_string(o.job));
  param("queue", o.queue);
  param("type", o.type);
  auto c = make_client(o.conn, "tail", std::chrono::seconds(10));
  if (!c) return exit_usage;
  std::string last_id;
  std::uint64_t seen = 0;
  bool said_lost = false;
  bool connected_once = false;
  auto retry_delay = std::chrono::milliseconds(250);
  for (;;) {
    http::headers extra;
    if (!last_id.empty()) extra.emplace_back("Last-Event-ID", last_id);
    bool got_any = false;
    auto r = c->stream(
        "/v1/events/stream" + q, extra,
        [&](const http::sse_event& e) {
          got_any = true;
          if (!e.id.empty()) last_id = e.id;
          if (o.conn.json) {
            std::printf("%s\n", e.data.c_str());
          } else {
            auto ev = json::parse(e.data, nullptr, false);
            if (ev.is_discarded()) {
              std::printf("%s %s\n", e.type.c_str(), e.data.c_str());
            } else {
              auto job = int_of(ev, "job");
              std::printf("%s  %s  %-15s %s  by %s  %s\n", text_of(ev, "seq").c_str(),
                          format_time(int_of(ev, "time")).c_str(), text_of(ev, "type").c_str(),
                          job ? ("job " + std::to_string(job)).c_str() : "-",
                          text_of(ev, "principal").c_str(), event_summary(ev).c_str());
            }
          }
          std::fflush(stdout);
          return o.count == 0 || ++seen < o.count;
        },
        std::chrono::seconds(45));  // the server sends a keepalive every 15 s
    if (o.count > 0 && seen >= o.count) return exit_ok;
    // 503 and 429 say "try later" (a server still recovering after its
    // restart answers 503): once streaming, they are waited out like a
    // refused connection.
    bool try_later = r.status == 503 || r.status == 429;
    if (r.status != 200 && r.status != 0 && !(try_later && connected_once))
      return report_failure(r, o.conn, "tail");
    // Unreachable from the start: say so and stop; once streaming, keep trying.
    if (r.status == 0 && !connected_once) return report_failure(r, o.conn, "tail");
    connected_once = true;
    // The stream dropped (server restart, network, idle): resume after the
    // last event seen, backing off while the server stays unreachable.
    if (got_any) retry_delay = std::chrono::milliseconds(250), said_lost = false;
    if (!said_lost) {
      std::fprintf(stderr, "jobsmith tail: stream lost (%s); reconnecting%s\n",
                   try_later               ? ("HTTP " + std::to_string(r.status)).c_str()
                   : r.transport_error.empty() ? "closed by the server"
                                               : r.transport_error.c_str(),
                   last_id.empty() ? "" : (" after event " + last_id).c_str());
      said_lost = true;
    }
    std::this_thread::sleep_for(retry_delay);
    retry_delay = std::min(retry_delay * 2, std::chrono::milliseconds(5000));
  }
}

}  // namespace

void add_client_commands(CLI::App& app, int& exit_code) {
  int* code = &exit_code;

  {
    auto o = std::make_shared<submit_options>();
    auto* cmd = app.add_subcommand("submit", "submit a job; prints its id");
    add_connection_options(cmd, o->conn);
    cmd->add_option("--kind", o->kind, "job kind")->required();
    cmd->add_option("--queue", o->queue, "queue (server default: default)");
    cmd->add_option("--payload", o->payload, "JSON payload, @FILE, or - for stdin");
    auto* priority = cmd->add_option("--priority", o->priority, "higher runs first");
    auto* delay = cmd->add_option("--delay", o->delay, "ms from now until it is due");
    cmd->add_option("--run-at", o->run_at, "due time: ms since the epoch or 2026-01-31T12:00:00Z");
    cmd->add_option("--max-attempts", o->max_attempts, "attempts before it is discarded");
    cmd->add_option("--retry-initial", o->retry_initial, "ms before the first retry");
    cmd->add_option("--retry-backoff", o->retry_backoff, "retry interval growth factor");
    cmd->add_option("--retry-max-interval", o->retry_max_interval, "ms cap of the retry interval");
    cmd->add_option("--timeout-start", o->timeout_start, "ms from due to started, else expired");
    cmd->add_option("--timeout-run", o->timeout_run, "ms from start to outcome, else reclaimed");
    cmd->add_option("--heartbeat", o->heartbeat, "lease length in ms (heartbeat timeout)");
    cmd->add_option("--timeout-stop", o->timeout_stop,
                    "ms a running job has to stop once cancelled (0 = cancel at once)");
    cmd->add_option("--resource", o->resources, "NAME[:shared|:exclusive], repeatable");
    cmd->add_option("--unique-key", o->unique_key, "at most one live job per key");
    cmd->add_flag("--review", o->review, "require review after success");
    cmd->add_option("--every", o->every, "recurring: ms between runs");
    cmd->callback([o, code, priority, delay] {
      o->priority_set = priority->count() > 0;
      o->delay_set = delay->count() > 0;
      *code = run_submit(*o);
    });
  }
  {
    auto conn = std::make_shared<connection_options>();
    auto id = std::make_shared<std::uint64_t>(0);
    auto* cmd = app.add_subcommand("status", "a job's state, history, log and result");
    add_connection_options(cmd, *conn);
    cmd->add_option("id", *id, "job id")->required();
    cmd->callback([conn, id, code] { *code = run_status(*conn, *id); });
  }
  {
    auto o = std::make_shared<list_options>();
    auto* cmd = app.add_subcommand("list", "list jobs, oldest first");
    add_connection_options(cmd, o->conn);
    cmd->add_option("--state", o->state, "states, comma-separated (queued,running)");
    cmd->add_option("--not-state", o->not_state, "states to leave out, comma-separated");
    cmd->add_option("--queue", o->queue, "queue");
    cmd->add_option("--kind", o->kind, "kind");
    cmd->add_option("--error", o->error, "text contained in the last error");
    cmd->add_option("--attempts-min", o->attempts_min, "at least this many attempts started");
    cmd->add_option("--attempts-max", o->attempts_max, "at most this many attempts started");
    cmd->add_option("--limit", o->limit, "jobs per page (server default 100, max 1000)");
    cmd->add_option("--after", o->after, "the cursor printed after the previous page");
    cmd->callback([o, code] { *code = run_list(*o); });
  }
  struct job_action {
    const char* verb;
    const char* help;
  };
  for (auto [verb, help] :
       {job_action{"cancel", "cancel a job"}, job_action{"run-now", "make a scheduled job due now"},
        job_action{"retry", "give a discarded, expired or declined job new attempts"}}) {
    auto conn = std::make_shared<connection_options>();
    auto id = std::make_shared<std::uint64_t>(0);
    auto reason = std::make_shared<std::string>();
    auto at_once = std::make_shared<bool>(false);
    auto* cmd = app.add_subcommand(verb, help);
    add_connection_options(cmd, *conn);
    cmd->add_option("id", *id, "job id")->required();
    std::string action = verb;
    if (action == "cancel") {
      cmd->add_option("--reason", *reason, "why (recorded in the event)");
      cmd->add_flag("--at-once", *at_once,
                    "end a running job now instead of asking its worker to stop");
    }
    cmd->callback([=] {
      json body = json::object();
      if (!reason->empty()) body["reason"] = *reason;
      if (*at_once) body["at_once"] = true;
      *code = run_job_action(*conn, verb, *id, action, body);
    });
  }
  {
    auto conn = std::make_shared<connection_options>();
    auto id = std::make_shared<std::uint64_t>(0);
    auto accept = std::make_shared<bool>(false);
    auto decline = std::make_shared<bool>(false);
    auto comment = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("review", "accept or decline a job pending review");
    add_connection_options(cmd, *conn);
    cmd->add_option("id", *id, "job id")->required();
    auto* a = cmd->add_flag("--accept", *accept, "accept the result");
    auto* d = cmd->add_flag("--decline", *decline, "decline the result");
    a->excludes(d);
    cmd->add_option("--comment", *comment, "the reviewer's comment");
    cmd->callback([=] {
      if (!*accept && !*decline) {
        std::fprintf(stderr, "jobsmith review: say --accept or --decline\n");
        *code = exit_usage;
        return;
      }
      json body = {{"accept", *accept}};
      if (!comment->empty()) body["comment"] = *comment;
      *code = run_job_action(*conn, "review", *id, "review", body);
    });
  }
  {
    auto conn = std::make_shared<connection_options>();
    auto* cmd = app.add_subcommand("queues", "queues with their counts");
    add_connection_options(cmd, *conn);
    cmd->callback([conn, code] { *code = run_queues(*conn); });
  }
  for (auto [verb, help] : {job_action{"pause", "stop starting jobs of a queue"},
                            job_action{"resume", "start jobs of a paused queue again"}}) {
    auto conn = std::make_shared<connection_options>();
    auto queue = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand(verb, help);
    add_connection_options(cmd, *conn);
    cmd->add_option("queue", *queue, "queue name")->required();
    cmd->callback([=] { *code = run_queue_action(*conn, verb, *queue, verb); });
  }
  {
    auto conn = std::make_shared<connection_options>();
    auto* cmd = app.add_subcommand("schedules", "recurring schedules");
    add_connection_options(cmd, *conn);
    cmd->callback([conn, code] { *code = run_schedules(*conn); });
  }
  {
    auto conn = std::make_shared<connection_options>();
    auto id = std::make_shared<std::uint64_t>(0);
    auto* cmd = app.add_subcommand("unschedule", "end a recurring schedule (no further runs)");
    add_connection_options(cmd, *conn);
    cmd->add_option("id", *id, "schedule id (its first run's job id)")->required();
    cmd->callback([=] { *code = run_unschedule(*conn, *id); });
  }
  {
    auto o = std::make_shared<tail_options>();
    auto* cmd = app.add_subcommand("tail", "follow the event stream, one line per event");
    add_connection_options(cmd, o->conn);
    cmd->add_option("--from", o->from, "start at this sequence (default: new events only)");
    cmd->add_option("--job", o->job, "only this job's events");
    cmd->add_option("--queue", o->queue, "only this queue's events");
    cmd->add_option("--type", o->type, "only these types, comma-separated (job.failed,...)");
    cmd->add_option("--count", o->count, "exit after this many events");
    cmd->callback([o, code] { *code = run_tail(*o); });
  }
  add_work_command(app, exit_code);
  add_bench_worker_command(app, exit_code);
}

}  // namespace jobsmith::apps
