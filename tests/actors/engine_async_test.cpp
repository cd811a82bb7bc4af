#define BOOST_TEST_MODULE actors_engine_async
#include <boost/test/unit_test.hpp>

// The engine facade's callback calls (actors/engine.hpp: submit_many_async,
// heartbeat_async, fail_async), which the HTTP server uses so that no thread
// waits for a commit: what they answer, that what they acknowledge is in the
// log after a restart, and which refusals come back before the call returns.

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "actors/engine.hpp"
#include "tests/actors/print.hpp"
#include "tests/test_support.hpp"

using namespace jobsmith;
using namespace std::chrono_literals;
using namespace jobsmith::test;

namespace {

engine_options remote_options(const temp_dir& dir) {
  engine_options opts;
  opts.data_dir = dir.path();
  opts.allow_unknown_kinds = true;  // no handlers: jobs are leased
  return opts;
}

std::unique_ptr<engine> open_engine(engine_options opts) {
  auto opened = engine::open(std::move(opts));
  BOOST_REQUIRE(opened.ok());
  return std::move(opened.value());
}

job_submitted spec_of(std::string kind, std::string payload = "{}") {
  job_submitted s;
  s.kind = std::move(kind);
  s.payload = std::move(payload);
  s.retry.initial_interval = 1;
  s.retry.jitter = 0;
  return s;
}

/// The answer of an async call, with the thread it came on.
template <class T>
struct answer {
  result<T> value = engine_error{engine_errc::closed, "never answered"};
  std::thread::id thread;
};

template <class T>
struct waiter {
  std::promise<answer<T>> promise;
  std::future<answer<T>> future = promise.get_future();
  engine::callback<T> callback() {
    return [this](result<T> r) { promise.set_value({std::move(r), std::this_thread::get_id()}); };
  }
  answer<T> get() {
    BOOST_REQUIRE(future.wait_for(10s) == std::future_status::ready);
    return future.get();
  }
};

job_record lease_one(engine& eng, const std::string& worker) {
  lease_request req;
  req.worker = worker;
  auto leased = eng.lease(req);
  BOOST_REQUIRE(leased.ok());
  BOOST_REQUIRE_EQUAL(leased->size(), 1u);
  return leased->front();
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_async_submit_is_durable_when_it_answers) {
  temp_dir dir;
  std::vector<job_id> ids;
  {
    auto eng = open_engine(remote_options(dir));
    waiter<std::vector<job_id>> w;
    std::vector<job_submitted> specs{spec_of("a", R"({ "n" : 1 })"), spec_of("b")};
    eng->submit_many_async(std::move(specs), {}, w.callback());
    auto got = w.get();
    BOOST_REQUIRE(got.value.ok());
    ids = *got.value;
    BOOST_REQUIRE_EQUAL(ids.size(), 2u);
    BOOST_TEST(ids[0] != ids[1]);
  }
  // Reopened: both jobs are there, queued, the payload compacted.
  auto eng = open_engine(remote_options(dir));
  auto first = eng->get(ids[0]);
  BOOST_REQUIRE(first.ok());
  BOOST_TEST(first->job.spec.kind == "a");
  BOOST_TEST(first->job.spec.payload == R"({"n":1})");
  BOOST_TEST(effective_state(first->job, first->job.due_at) == job_state::queued);
  BOOST_TEST(eng->get(ids[1]).ok());
}

BOOST_AUTO_TEST_CASE(a_refused_async_submit_answers_before_it_returns_and_writes_nothing) {
  temp_dir dir;
  auto opts = remote_options(dir);
  opts.max_inflight_submits = 2;
  auto eng = open_engine(opts);
  auto head = eng->head();
  {
    waiter<std::vector<job_id>> w;
    eng->submit_many_async({spec_of("a", "{not json")}, {}, w.callback());
    BOOST_REQUIRE(w.future.wait_for(0s) == std::future_status::ready);  // answered already
    auto got = w.get();
    BOOST_REQUIRE(!got.value.ok());
    BOOST_TEST(got.value.error().code == engine_errc::invalid_argument);
    BOOST_TEST(got.thread == std::this_thread::get_id());
  }
  {
    waiter<std::vector<job_id>> w;
    eng->submit_many_async({spec_of("a"), spec_of("a"), spec_of("a")}, {}, w.callback());
    auto got = w.get();
    BOOST_REQUIRE(!got.value.ok());
    BOOST_TEST(got.value.error().code == engine_errc::overloaded);
  }
  BOOST_TEST(eng->head() == head);
  // Refusals do not stay counted as in flight: two jobs are admitted now.
  waiter<std::vector<job_id>> w;
  eng->submit_many_async({spec_of("a"), spec_of("a")}, {}, w.callback());
  BOOST_TEST(w.get().value.ok());
}

BOOST_AUTO_TEST_CASE(async_heartbeat_and_fail_act_on_the_lease_and_refuse_a_stale_token) {
  temp_dir dir;
  auto eng = open_engine(remote_options(dir));
  auto id = eng->submit(spec_of("a"));
  BOOST_REQUIRE(id.ok());
  auto job = lease_one(*eng, "w1");

  {
    waiter<heartbeat_reply> w;
    heartbeat_request hb;
    hb.id = *id;
    hb.lease_token = job.lease_token;
    hb.percent = 40;
    eng->heartbeat_async(hb, w.callback());
    auto got = w.get();
    BOOST_REQUIRE(got.value.ok());
    BOOST_TEST(!got.value->cancel_requested);
    BOOST_TEST(got.value->lease_ms > 0);
  }
  {
    waiter<job_record> w;
    eng->fail_async(*id, job.lease_token + 1, "boom", true, "", "", w.callback());
    auto got = w.get();
    BOOST_REQUIRE(!got.value.ok());
    BOOST_TEST(got.value.error().code == engine_errc::stale_token);
  }
  waiter<job_record> w;
  eng->fail_async(*id, job.lease_token, "boom", true, "robot", R"({"step": 2})", w.callback());
  auto got = w.get();
  BOOST_REQUIRE(got.value.ok());
  // Back to waiting for its retry, the error and the handover kept.
  BOOST_TEST(got.value->state == job_state::scheduled);
  BOOST_TEST(got.value->last_error == "boom");
  BOOST_TEST(got.value->handover == R"({"step": 2})");
  auto view = eng->get(*id);
  BOOST_REQUIRE(view.ok());
  BOOST_TEST(view->history.back().principal == "robot");
}

BOOST_AUTO_TEST_CASE(async_calls_after_close_answer_closed_at_once) {
  temp_dir dir;
  auto eng = open_engine(remote_options(dir));
  eng->close();
  waiter<std::vector<job_id>> s;
  eng->submit_many_async({spec_of("a")}, {}, s.callback());
  BOOST_TEST(s.get().value.error().code == engine_errc::closed);
  waiter<heartbeat_reply> h;
  eng->heartbeat_async({}, h.callback());
  BOOST_TEST(h.get().value.error().code == engine_errc::closed);
  waiter<job_record> f;
  eng->fail_async(1, 1, "", true, "", "", f.callback());
  BOOST_TEST(f.get().value.error().code == engine_errc::closed);
}

BOOST_AUTO_TEST_CASE(a_callback_that_makes_the_next_call_does_not_hold_up_close) {
  // A server chains calls from callbacks (a complete that also leases). When
  // close() stops the actors, waiting long polls are answered; their
  // callbacks' next calls must be answered `closed`, not wait for close(),
  // which waits for those very callbacks.
  temp_dir dir;
  auto eng = open_engine(remote_options(dir));
  constexpr int polls = 4;
  std::vector<std::shared_ptr<waiter<std::vector<job_id>>>> chained;
  std::atomic<int> answered{0};
  // Called from a thread that ends before close(): CAF's ~actor_system waits
  // for every other thread that called into it to exit.
  std::thread caller{[&] {
    for (int i = 0; i < polls; ++i) {
      auto next = std::make_shared<waiter<std::vector<job_id>>>();
      chained.push_back(next);
      lease_request req;
      req.worker = "w" + std::to_string(i);
      req.wait = 60'000;
      eng->lease_async(req, [&, next](result<std::vector<job_record>>) {
        ++answered;
        eng->submit_many_async({spec_of("after")}, {}, next->callback());
      });
    }
  }};
  caller.join();
  auto started = std::chrono::steady_clock::now();
  eng->close();
  BOOST_TEST((std::chrono::steady_clock::now() - started < 20s));
  BOOST_TEST(answered.load() == polls);
  for (auto& w : chained) BOOST_TEST(w->get().value.error().code == engine_errc::closed);
}

BOOST_AUTO_TEST_CASE(a_subscriber_on_the_engine_threads_sees_every_commit_in_order) {
  temp_dir dir;
  auto eng = open_engine(remote_options(dir));
  std::mutex mu;
  std::vector<sequence_t> seen;
  auto sub = eng->subscribe(
      [&](const event& ev) {
        std::lock_guard<std::mutex> guard{mu};
        seen.push_back(ev.seq);
      },
      engine::subscriber_thread::engine);
  auto from = eng->head() + 1;
  constexpr int jobs = 200;
  std::vector<std::shared_ptr<waiter<std::vector<job_id>>>> answers;
  std::thread caller{[&] {
    for (int i = 0; i < jobs; ++i) {
      answers.push_back(std::make_shared<waiter<std::vector<job_id>>>());
      eng->submit_many_async({spec_of("a")}, {}, answers.back()->callback());
    }
  }};
  caller.join();
  for (auto& a : answers) BOOST_REQUIRE(a->get().value.ok());
  auto head = eng->head();
  BOOST_REQUIRE(wait_until([&] {
    std::lock_guard<std::mutex> guard{mu};
    return !seen.empty() && seen.back() >= head;
  }));
  std::lock_guard<std::mutex> guard{mu};
  std::vector<sequence_t> expected;
  for (auto s = from; s <= head; ++s) expected.push_back(s);
  BOOST_TEST(seen == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(once_cancel_returns_a_subscriber_is_neither_running_nor_called) {
  // What a subscriber's function touches may go as soon as cancel() returns
  // (a server stopped over an engine that stays open), on either thread.
  for (auto where : {engine::subscriber_thread::own, engine::subscriber_thread::engine}) {
    temp_dir dir;
    auto eng = open_engine(remote_options(dir));
    std::atomic<bool> inside{false}, cancelled{false};
    std::atomic<int> calls_after_cancel{0};
    auto sub = eng->subscribe(
        [&](const event&) {
          inside = true;
          if (cancelled) calls_after_cancel.fetch_add(1);
          std::this_thread::sleep_for(50ms);  // long enough for cancel() to land meanwhile
          inside = false;
        },
        where);
    BOOST_REQUIRE(eng->submit(spec_of("a")).ok());
    BOOST_REQUIRE(wait_until([&] { return inside.load(); }));
    sub.cancel();
    const bool running_after_cancel = inside.load();
    cancelled = true;
    for (int i = 0; i < 5; ++i) BOOST_REQUIRE(eng->submit(spec_of("a")).ok());
    std::this_thread::sleep_for(200ms);
    BOOST_TEST(!running_after_cancel);
    BOOST_TEST(calls_after_cancel.load() == 0);
  }
}
