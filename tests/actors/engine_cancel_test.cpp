#define BOOST_TEST_MODULE actors_engine_cancel
#include <boost/test/unit_test.hpp>

// Cancelling a job an in-process handler runs, through the embedding facade
// on real threads over a real RocksDB log: the handler sees cancelled() at
// once, and its return (or the end of the job's time to stop) cancels the
// job. The simulated-clock version of the timing is tests/actors/stop_test.cpp.

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "actors/engine.hpp"
#include "tests/actors/engine_support.hpp"

using namespace jobsmith;
using namespace jobsmith::test;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(a_handler_sees_the_cancel_and_its_return_cancels_the_job) {
  temp_dir dir;
  std::atomic<bool> running{false};
  std::atomic<bool> saw_cancel{false};
  std::atomic<bool> returned{false};
  auto opts = options_in(dir);
  opts.worker_threads = 1;  // the follow-up job runs after the cancelled handler returned
  opts.handlers.add("long", [&](job_context& ctx) {
    running = true;
    wait_until([&] { return ctx.cancelled(); });
    saw_cancel = ctx.cancelled();
    returned = true;
    return outcome::success(R"({"finished":"anyway"})");
  });
  opts.handlers.add("short", [](job_context&) { return outcome::success(); });
  auto eng = open_engine(std::move(opts));
  auto id = submit_ok(*eng, spec_of("long"));
  BOOST_REQUIRE(wait_until([&] { return running.load(); }));
  REQUIRE_STATE(*eng, id, job_state::running);

  auto asked = eng->cancel(id, "not needed", "user:carol");
  BOOST_REQUIRE_MESSAGE(asked.ok(), why(asked));
  BOOST_TEST(asked->state == job_state::running);  // asked to stop, not stopped yet
  BOOST_TEST(asked->cancel_requested_at > 0);
  BOOST_REQUIRE(wait_until([&] { return returned.load(); }));
  BOOST_TEST(saw_cancel.load());
  REQUIRE_STATE(*eng, id, job_state::cancelled);
  auto job = record_of(*eng, id);
  BOOST_TEST(job.result == "null");  // the stopped attempt's success is not its result
  auto history = history_of(*eng, id);
  BOOST_TEST(bodies_of<job_succeeded>(history).empty());
  BOOST_REQUIRE_EQUAL(bodies_of<job_cancel_requested>(history).size(), 1u);
  auto cancels = bodies_of<job_cancelled>(history);
  BOOST_REQUIRE_EQUAL(cancels.size(), 1u);
  BOOST_TEST(cancels[0].reason == "cancelled on request; attempt 1 ended: the worker reported success");
  // The only runner is free again.
  auto next = submit_ok(*eng, spec_of("short"));
  REQUIRE_STATE(*eng, next, job_state::succeeded);
}

BOOST_AUTO_TEST_CASE(a_handler_that_ignores_the_cancel_is_cut_off_after_its_time_to_stop) {
  temp_dir dir;
  std::atomic<bool> running{false};
  std::atomic<bool> release{false};
  auto opts = options_in(dir);
  opts.handlers.add("stubborn", [&](job_context&) {
    running = true;
    wait_until([&] { return release.load(); }, 30s);
    return outcome::retry("finished late");
  });
  auto eng = open_engine(std::move(opts));
  auto spec = spec_of("stubborn");
  spec.timeouts.to_stop = 300;
  auto id = submit_ok(*eng, spec);
  BOOST_REQUIRE(wait_until([&] { return running.load(); }));
  REQUIRE_STATE(*eng, id, job_state::running);
  BOOST_REQUIRE(eng->cancel(id).ok());
  REQUIRE_STATE(*eng, id, job_state::cancelled);
  auto history = history_of(*eng, id);
  const event* asked = nullptr;
  const event* ended = nullptr;
  for (const auto& ev : history) {
    if (std::holds_alternative<job_cancel_requested>(ev.body)) asked = &ev;
    if (std::holds_alternative<job_cancelled>(ev.body)) ended = &ev;
  }
  BOOST_REQUIRE(asked);
  BOOST_REQUIRE(ended);
  BOOST_TEST(std::get<job_cancelled>(ended->body).reason ==
             "cancelled on request; attempt 1 did not stop within its time to stop (300 ms)");
  BOOST_TEST(ended->principal == "engine");
  BOOST_TEST(ended->time - asked->time >= 300);
  // Its late return is refused and changes nothing.
  release = true;
  std::this_thread::sleep_for(200ms);
  BOOST_TEST(history_of(*eng, id).size() == history.size());
  BOOST_TEST(record_of(*eng, id).state == job_state::cancelled);
}

BOOST_AUTO_TEST_CASE(a_cancel_at_once_ends_the_job_without_waiting_for_the_handler) {
  temp_dir dir;
  std::atomic<bool> running{false};
  std::atomic<bool> saw_cancel{false};
  auto opts = options_in(dir);
  opts.handlers.add("long", [&](job_context& ctx) {
    running = true;
    wait_until([&] { return ctx.cancelled(); });
    saw_cancel = ctx.cancelled();
    return outcome::success();
  });
  auto eng = open_engine(std::move(opts));
  auto id = submit_ok(*eng, spec_of("long"));
  BOOST_REQUIRE(wait_until([&] { return running.load(); }));
  REQUIRE_STATE(*eng, id, job_state::running);
  auto ended = eng->cancel(id, "operator", "user:ops", /*at_once=*/true);
  BOOST_REQUIRE_MESSAGE(ended.ok(), why(ended));
  BOOST_TEST(ended->state == job_state::cancelled);
  BOOST_REQUIRE(wait_until([&] { return saw_cancel.load(); }));
  BOOST_TEST(bodies_of<job_cancel_requested>(history_of(*eng, id)).empty());
}
