// The job state machine's test harness, shared by the events tests: runs
// commands as the job actor does (decide, then apply what was decided).
#pragma once

#include <boost/test/unit_test.hpp>
#include <ostream>
#include <string>

#include "events/job_state.hpp"

namespace jobsmith {
// Lets BOOST_TEST print states in failure messages.
inline std::ostream& operator<<(std::ostream& os, job_state s) { return os << to_string(s); }
}  // namespace jobsmith

namespace jobsmith::test {

inline constexpr job_id the_job = 12;

// A deterministic retry policy: 1s, 2s, 4s, ... capped at 10s, no jitter.
inline job_submitted make_spec() {
  job_submitted s;
  s.kind = "import";
  s.retry = retry_policy{3, 1000, 2.0, 10'000, 0.0};
  return s;
}

// Runs commands the way the job actor does: decide, then apply each event as
// committed with the next sequence number and the decision time.
struct job_harness {
  job_record job;
  sequence_t seq = 0;

  decision run(const job_command& cmd, millis now, const std::string& principal = "user:alice") {
    decision d = decide(job, cmd, now);
    BOOST_TEST((d.ok() || d.events.empty()), "a refusal produced events");
    for (const auto& body : d.events) apply(job, event{++seq, the_job, now, principal, body});
    return d;
  }

  // Submits `spec` at time `now` and checks it was accepted.
  void submit(const job_submitted& spec, millis now) {
    BOOST_TEST_REQUIRE(run(cmd_submit{spec}, now).ok());
  }
  void start(std::uint64_t token, millis now) {
    const decision d = run(cmd_start{"worker:w1", token}, now);
    BOOST_TEST_REQUIRE(d.ok(), d.error->message);
  }
};

// By value: the decision is usually a temporary.
template <class T>
inline T only_event(const decision& d) {
  BOOST_TEST_REQUIRE(d.ok(), d.error->message);
  BOOST_TEST_REQUIRE(d.events.size() == 1u);
  BOOST_TEST_REQUIRE(std::holds_alternative<T>(d.events[0]));
  return std::get<T>(d.events[0]);
}

inline void expect_refusal(const decision& d, job_errc code, const std::string& message) {
  BOOST_TEST_REQUIRE(!d.ok());
  BOOST_TEST(d.events.empty());
  BOOST_TEST(to_string(d.error->code) == to_string(code));
  BOOST_TEST(d.error->message == message);
}

inline void expect_refusal(const decision& d, job_errc code) {
  BOOST_TEST_REQUIRE(!d.ok());
  BOOST_TEST(d.events.empty());
  BOOST_TEST(to_string(d.error->code) == to_string(code));
}

inline void expect_nothing(const decision& d) {
  BOOST_TEST_REQUIRE(d.ok(), d.error->message);
  BOOST_TEST(d.events.empty());
}

}  // namespace jobsmith::test
