// GET /metrics: the Prometheus text of the engine, the event hub and the
// server's own counters (docs/operations.md lists every series).
#include <cstdio>
#include <string>

#include "apps/server/api.hpp"
#include "apps/server/api_internal.hpp"
#include "apps/server/log_limiter.hpp"

namespace jobsmith::server {

// -- metrics -----------------------------------------------------------------------------

std::optional<stream_request> get_metrics(request_context& rt) {
  // The engine's metrics() blocks until the engine answers: on the pool.
  rt.on_pool([](request_context& r) {
    http_reply out;
    out.content_type = "text/plain; version=0.0.4; charset=utf-8";
    out.body = r.self.metrics_text();
    r.reply(std::move(out));
  });
  return std::nullopt;
}

std::string api::metrics_text() {
  std::string out;
  out.reserve(8192);
  auto gauge = [&](const std::string& name, const std::string& help, const char* type) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto line = [&](const std::string& name, double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), " %.17g\n", v);
    out += name + buf;
  };
  auto label_escape = [](const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == '\\' || c == '"') o += '\\';
      if (c == '\n') {
        o += "\\n";
        continue;
      }
      o += c;
    }
    return o;
  };

  auto counts = hub_.counts_by_queue();
  gauge("jobsmith_jobs", "Jobs by queue and effective state.", "gauge");
  for (auto& q : counts)
    for (int s = 0; s < job_state_count; ++s)
      line("jobsmith_jobs{queue=\"" + label_escape(q.name) + "\",state=\"" +
               std::string{to_string(static_cast<job_state>(s))} + "\"}",
           static_cast<double>(q.by_state[static_cast<std::size_t>(s)]));

  gauge("jobsmith_jobs_retired", "Finished jobs past their queue's retention, by queue.", "gauge");
  for (auto& q : counts)
    line("jobsmith_jobs_retired{queue=\"" + label_escape(q.name) + "\"}",
         static_cast<double>(q.retired));

  if (auto rows = eng_.rows()) {
    gauge("jobsmith_view_row_slots",
          "Rows the queue view holds in memory (in blocks, and kept apart).",
          "gauge");
    line("jobsmith_view_row_slots", static_cast<double>(rows->slots));
    gauge("jobsmith_view_rows_released", "Retired jobs whose rows the queue view let go of.",
          "gauge");
    line("jobsmith_view_rows_released", static_cast<double>(rows->released));
  }

  auto t = hub_.totals();
  auto counter = [&](const char* name, const char* help, std::uint64_t v) {
    gauge(name, help, "counter");
    line(name, static_cast<double>(v));
  };
  counter("jobsmith_jobs_submitted_total", "Jobs submitted (whole log).", t.submitted);
  counter("jobsmith_jobs_started_total", "Attempts started (whole log).", t.started);
  counter("jobsmith_jobs_succeeded_total", "Attempts that succeeded (whole log).", t.succeeded);
  counter("jobsmith_jobs_failed_total", "Attempts that failed (whole log).", t.failed);
  counter("jobsmith_jobs_reclaimed_total", "Attempts reclaimed (whole log).", t.reclaimed);
  counter("jobsmith_jobs_cancelled_total", "Jobs cancelled (whole log).", t.cancelled);
  counter("jobsmith_jobs_expired_total", "Jobs expired (whole log).", t.expired);
  counter("jobsmith_events_total", "Committed events (whole log).", t.events);

  lease_seconds_.write(out, "jobsmith_lease_seconds",
                       "Time a lease call took, long-poll wait included.");
  hub_.run_seconds().write(out, "jobsmith_job_run_seconds",
                           "Time from an attempt's start to its outcome.");

  auto m = eng_.metrics();
  counter("jobsmith_journal_batches_total", "Group-commit batches written.", m.journal_batches);
  counter("jobsmith_journal_events_total", "Events written by the journal since start.",
          m.journal_events);
  gauge("jobsmith_journal_batch_events_max", "Largest batch since start.", "gauge");
  line("jobsmith_journal_batch_events_max", static_cast<double>(m.journal_max_batch));
  gauge("jobsmith_journal_batch_events_mean", "Mean events per batch since start.", "gauge");
  line("jobsmith_journal_batch_events_mean",
       m.journal_batches ? static_cast<double>(m.journal_events) / m.journal_batches : 0);
  gauge("jobsmith_journal_write_seconds_mean", "Mean time of one synced batch write (fsync).",
        "gauge");
  line("jobsmith_journal_write_seconds_mean", m.journal_mean_write_ms / 1000.0);
  gauge("jobsmith_journal_write_seconds_max", "Longest synced batch write (fsync).", "gauge");
  line("jobsmith_journal_write_seconds_max", m.journal_max_write_ms / 1000.0);
  counter("jobsmith_journal_refused_overloaded_total", "Appends the journal refused as overloaded.",
          m.refused_overloaded);
  counter("jobsmith_journal_write_failures_total",
          "Batches whose write failed (nothing of them was acknowledged).",
          m.journal_write_failures);
  counter("jobsmith_journal_resumes_total", "Times writes resumed after a failed write.",
          m.journal_resumes);
  auto refusal = eng_.write_refusal();
  gauge("jobsmith_writes_refused",
        "1 while the engine refuses writes after a failed disk write, else 0.", "gauge");
  line("jobsmith_writes_refused", refusal ? 1 : 0);
  gauge("jobsmith_writes_refused_no_space", "1 while writes are refused because the disk is full.",
        "gauge");
  line("jobsmith_writes_refused_no_space",
       refusal && refusal->code == engine_errc::no_space ? 1 : 0);
  gauge("jobsmith_log_bytes", "Approximate size of the event log on disk.", "gauge");
  line("jobsmith_log_bytes", static_cast<double>(m.log_bytes));
  gauge("jobsmith_log_head", "Highest committed sequence number.", "gauge");
  line("jobsmith_log_head", static_cast<double>(m.head));

  counter("jobsmith_http_requests_total", "HTTP requests received.", counters_.requests.load());
  counter("jobsmith_http_connection_errors_total",
          "Connections the HTTP layer closed on a read, parse or write error (since the process "
          "started).",
          http_error_log().seen());
  counter("jobsmith_http_connection_errors_unlogged_total",
          "Of those, the ones not written to the log (rate limit: 20 at once, then 1 a second).",
          http_error_log().suppressed());
  counter("jobsmith_http_client_errors_total", "Answers with a 4xx status.",
          counters_.client_errors.load());
  counter("jobsmith_http_server_errors_total", "Answers with a 5xx status.",
          counters_.server_errors.load());
  counter("jobsmith_http_refused_busy_total", "429s because a server bound was reached.",
          counters_.refused_busy.load());
  counter("jobsmith_http_refused_overloaded_total", "429s because the engine was overloaded.",
          counters_.refused_overloaded.load());
  counter("jobsmith_http_refused_memory_total",
          "503s to submits while resident memory was over the budget.",
          counters_.refused_memory.load());
  gauge("jobsmith_http_connections", "Open HTTP connections.", "gauge");
  line("jobsmith_http_connections",
       open_connections_ != nullptr ? static_cast<double>(open_connections_->load()) : 0.0);
  gauge("jobsmith_http_inflight_body_bytes", "Bytes of request bodies being handled now.", "gauge");
  line("jobsmith_http_inflight_body_bytes", static_cast<double>(inflight_bytes_.load()));
  gauge("jobsmith_process_resident_bytes", "Resident memory of the server, as last sampled.",
        "gauge");
  line("jobsmith_process_resident_bytes", static_cast<double>(resident_bytes_.load()));
  gauge("jobsmith_memory_budget_bytes", "The configured memory budget (0 = none).", "gauge");
  line("jobsmith_memory_budget_bytes", static_cast<double>(config_.limits.memory_budget_bytes));
  counter("jobsmith_leased_jobs_total", "Jobs handed to workers by lease calls.",
          counters_.leased_jobs.load());
  gauge("jobsmith_long_polls", "Lease calls waiting for work now.", "gauge");
  line("jobsmith_long_polls", static_cast<double>(counters_.long_polls.load()));
  gauge("jobsmith_event_streams", "Open event streams.", "gauge");
  line("jobsmith_event_streams", static_cast<double>(open_streams_.load()));
  gauge("jobsmith_call_queue", "Engine calls waiting for a server thread.", "gauge");
  line("jobsmith_call_queue", static_cast<double>(pool_.queued()));
  return out;
}

}  // namespace jobsmith::server
