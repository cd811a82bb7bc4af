// One event of every type with every field away from its default, shared by
// the binary and JSON codec tests: a field a codec forgets cannot survive a
// round trip unnoticed. JSON text fields are in compact dump() form (keys
// sorted), as the engine stores them.
#include <vector>

#include "events/event.hpp"

namespace jobsmith::test {

std::vector<event> sample_events() {
  job_submitted submitted;
  submitted.kind = "import.charts";
  submitted.queue = "imports";
  submitted.payload = R"({"file":"a.csv","rows":[1,2.5,-3],"unicode":"été"})";
  submitted.priority = -7;
  submitted.run_at = 1'700'000'123'456;
  submitted.retry = retry_policy{9, 250, 1.5, 60'000, 0.25};
  submitted.timeouts = phase_timeouts{5'000, 120'000, 10'000, 2'500};
  submitted.resources = {{"db:charts", lock_mode::shared}, {"disk:/tmp", lock_mode::exclusive}};
  submitted.unique_key = "charts-2024";
  submitted.review_required = true;
  submitted.recur = recurrence{3'600'000, 3.0, 7'200'000, 4};
  submitted.schedule = 42;
  submitted.follows = 41;

  job_progress progress;
  progress.attempt = 2;
  progress.detail = "row 100 of 300";
  progress.percent = 33;
  progress.lines = {{log_level::warn, 1'700'000'000'001, "slow disk"},
                    {log_level::error, -5, "line\nwith newline"}};

  const std::vector<event_body> bodies = {
      submitted,
      job_started{3, "worker:w1", 0xfedcba9876543210ULL},
      progress,
      job_succeeded{4, R"({"ok":true,"rows":300})"},
      job_failed{5, "disk full", false, 1'700'000'999'000, R"({"cursor":17})"},
      job_reclaimed{6, "heartbeat missed", 1'700'001'000'000},
      job_discarded{"obsolete"},
      job_cancelled{"user asked"},
      job_reviewed{true, "looks right", 77},
      job_requested{request_kind::retry},
      job_expired{"not started within 5s"},
      queue_paused{"imports"},
      queue_resumed{"exports"},
      queue_configured{"imports", 8},
      schedule_created{11, 1234},
      schedule_deleted{12, "replaced"},
      engine_started{"0.1.0", 123'456, 7},
      kind_configured{"import.charts", "publish.charts",
                      R"({"properties":{"file":{"type":"string"}},"required":["file"]})"},
      job_cancel_requested{3, "user asked to stop"},
      queue_retention{"imports", 86'400'000, 604'800'000},
  };

  std::vector<event> out;
  sequence_t seq = 100;
  for (const auto& body : bodies) {
    event ev;
    ev.seq = ++seq;
    ev.job = 9000 + seq;
    ev.time = 1'700'000'000'000 + static_cast<millis>(seq);
    ev.principal = "user:alice";
    ev.body = body;
    out.push_back(std::move(ev));
  }
  return out;
}

}  // namespace jobsmith::test
