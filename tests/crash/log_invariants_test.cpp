// The kill loop's log invariants (tests/crash/log_invariants.hpp) on
// made-up logs: each invariant reports its violation, and the legal
// interleavings next to it report nothing.
#define BOOST_TEST_MODULE log_invariants
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "tests/crash/log_invariants.hpp"

using json = nlohmann::json;
using jobsmith::crash::log_invariants;

namespace {

struct log_builder {
  std::vector<json> events;
  std::uint64_t seq = 0;

  log_builder& add(const std::string& type, std::uint64_t job, json body = json::object(),
                   const std::string& principal = "p") {
    events.push_back({{"seq", ++seq}, {"type", type}, {"job", job}, {"principal", principal},
                      {"body", std::move(body)}});
    return *this;
  }
  log_builder& submit(std::uint64_t job, json body = json::object()) {
    return add("job.submitted", job, std::move(body));
  }
  log_builder& start(std::uint64_t job) { return add("job.started", job); }
  log_builder& succeed(std::uint64_t job) { return add("job.succeeded", job); }

  /// Every report the fold makes.
  std::vector<std::string> check(std::map<std::string, std::set<std::string>> principals = {}) {
    std::vector<std::string> out;
    log_invariants inv(
        [&](std::uint64_t job, const std::string& what) {
          out.push_back("job " + std::to_string(job) + ": " + what);
        },
        std::move(principals));
    for (auto& e : events) inv.fold(e);
    return out;
  }
};

json claims(std::vector<std::pair<std::string, std::string>> list) {
  json r = json::array();
  for (auto& [name, mode] : list) r.push_back({{"name", name}, {"mode", mode}});
  return {{"resources", r}};
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += x + "\n";
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(legal_interleavings_report_nothing) {
  log_builder l;
  // Two shared holders at once, then an exclusive one after both ended.
  l.submit(1, claims({{"r", "shared"}})).submit(2, claims({{"r", "shared"}}));
  l.submit(3, claims({{"r", "exclusive"}}));
  l.start(1).start(2).succeed(1).add("job.failed", 2, {{"next_run_at", 0}}).start(3);
  // A job pending review holds nothing: the next exclusive holder may start.
  json review = claims({{"q", "exclusive"}});
  review["review_required"] = true;
  l.submit(4, review);
  l.submit(5, claims({{"q", "exclusive"}}));
  l.start(4).succeed(4).start(5).add("job.reviewed", 4, {{"accepted", true}});
  // A reclaim ends the attempt; a retry's next attempt holds again.
  l.add("job.reclaimed", 5, {{"next_run_at", 123}}).start(5).succeed(5);
  // A unique key is free again once its job is terminal.
  l.submit(6, {{"unique_key", "u"}}).add("job.cancelled", 6).submit(7, {{"unique_key", "u"}});
  // A schedule's runs one after the other.
  l.submit(8, {{"schedule", 8}}).start(8).add("job.failed", 8, {{"next_run_at", 0}});
  l.submit(9, {{"schedule", 8}});
  // A past run retried by hand runs beside the schedule's live run.
  l.add("job.requested", 8, {{"what", "retry"}}).start(8).succeed(8);
  auto r = l.check();
  BOOST_TEST(r.empty(), joined(r));
}

BOOST_AUTO_TEST_CASE(an_exclusive_resource_held_twice_is_reported) {
  log_builder l;
  l.submit(1, claims({{"a", "shared"}, {"r", "exclusive"}})).submit(2, claims({{"r", "shared"}}));
  l.start(1).start(2);
  auto r = l.check();
  BOOST_TEST_REQUIRE(r.size() == 1u, joined(r));
  BOOST_TEST(r[0] == "job 2: seq 4: started holding r (shared) while job 1 held it (exclusive) since seq 3");
}

BOOST_AUTO_TEST_CASE(a_second_live_job_with_a_unique_key_is_reported_also_after_a_retry) {
  log_builder l;
  l.submit(1, {{"unique_key", "u"}}).submit(2, {{"unique_key", "u"}});
  auto r = l.check();
  BOOST_TEST_REQUIRE(r.size() == 1u, joined(r));
  BOOST_TEST(r[0] == "job 2: seq 2: submitted with unique key 'u' while job 1 with that key is live");

  log_builder retried;
  retried.submit(1, {{"unique_key", "u"}}).add("job.discarded", 1);
  retried.submit(2, {{"unique_key", "u"}}).add("job.requested", 1, {{"what", "retry"}});
  r = retried.check();
  BOOST_TEST_REQUIRE(r.size() == 1u, joined(r));
  BOOST_TEST(r[0] == "job 1: seq 4: retried with unique key 'u' while job 2 with that key is live");
}

BOOST_AUTO_TEST_CASE(two_live_runs_of_a_schedule_are_reported) {
  log_builder l;
  l.submit(5, {{"schedule", 5}}).start(5).submit(6, {{"schedule", 5}});
  auto r = l.check();
  BOOST_TEST_REQUIRE(r.size() == 1u, joined(r));
  BOOST_TEST(r[0] == "job 6: seq 3: submitted as a run of schedule 5 while its run 5 is live");
}

BOOST_AUTO_TEST_CASE(a_wrong_principal_and_an_event_of_an_unknown_job_are_reported) {
  log_builder l;
  l.add("job.submitted", 1, json::object(), "mallory").start(2);
  auto r = l.check({{"job.submitted", {"alice", "engine"}}});
  BOOST_TEST_REQUIRE(r.size() == 2u, joined(r));
  BOOST_TEST(r[0] == "job 1: seq 1: job.submitted recorded as principal 'mallory', expected alice or engine");
  BOOST_TEST(r[1] == "job 2: seq 2: job.started before the job's job.submitted");
}
