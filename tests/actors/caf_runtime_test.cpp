#define BOOST_TEST_MODULE caf_runtime
#include "actors/caf_runtime.hpp"

#include <boost/test/unit_test.hpp>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

using namespace jobsmith;
using namespace std::chrono_literals;

namespace {

/// Polls `done` for at most 5 s: an actor's end reaches the clock just
/// after the actor stops counting as running.
template <class F>
bool eventually(F done) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!done() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  return done();
}

/// The engine's runtime: the lean policy with the quiet clock.
struct system_fixture {
  system_fixture() : sys{(cfg.set("scheduler.policy", caf::atom("sharing")),
                          use_quiet_clock_scheduler(cfg, "lean"), cfg)} {}
  caf::actor_system_config cfg;
  caf::actor_system sys;
};

/// Threads of this process with the given name.
int threads_named(const std::string& name) {
  int n = 0;
  for (auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm{entry.path() / "comm"};
    std::string line;
    if (std::getline(comm, line) && line == name) ++n;
  }
  return n;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(actors_without_timers_end_without_waking_the_timer_thread, system_fixture) {
  auto before = quiet_clock_totals();
  constexpr int actors = 1000;
  // Spawned with an argument: CAF 0.17's spawn without one trips UBSan
  // inside CAF (scripts/ubsan.supp).
  for (int i = 0; i < actors; ++i)
    sys.spawn([](caf::event_based_actor* self, int) { self->quit(); }, i);
  // Fails when CAF ignored the module (its own clock would see these ends).
  BOOST_TEST(eventually([&] {
    return quiet_clock_totals().skipped - before.skipped >= static_cast<unsigned long long>(actors);
  }));
  BOOST_TEST(quiet_clock_totals().passed == before.passed);
}

BOOST_FIXTURE_TEST_CASE(idle_timeouts_and_delayed_messages_still_fire, system_fixture) {
  caf::scoped_actor me{sys};
  auto before = quiet_clock_totals();
  sys.spawn(
      [](caf::event_based_actor* self, caf::actor reply_to) -> caf::behavior {
        return {
            [](int) {},
            caf::after(20ms) >>
                [self, reply_to] {
                  self->send(reply_to, caf::atom("idle"));
                  self->quit();
                },
        };
      },
      caf::actor{me});
  bool idle = false;
  me->receive([&](caf::atom_value v) { idle = v == caf::atom("idle"); },
              caf::after(10s) >> [] {});
  BOOST_TEST(idle, "the idle timeout never fired");

  me->delayed_send(me, 20ms, caf::atom("later"));
  bool later = false;
  me->receive([&](caf::atom_value v) { later = v == caf::atom("later"); },
              caf::after(10s) >> [] {});
  BOOST_TEST(later, "the delayed message never arrived");
  // The idle actor armed a timeout: its end (just after its message) is
  // passed on to CAF's clock.
  BOOST_TEST(eventually([&] { return quiet_clock_totals().passed > before.passed; }));
}

BOOST_FIXTURE_TEST_CASE(requests_with_a_timeout_still_time_out, system_fixture) {
  caf::scoped_actor me{sys};
  // Keeps every promise so none is answered and none is broken.
  auto kept = std::make_shared<std::vector<caf::response_promise>>();
  auto silent = sys.spawn(
      [](caf::event_based_actor* self,
         std::shared_ptr<std::vector<caf::response_promise>> kept) -> caf::behavior {
        return {[self, kept](int) -> caf::result<int> {
          kept->push_back(self->make_response_promise());
          return caf::delegated<int>{};
        }};
      },
      kept);
  sys.spawn(
      [](caf::event_based_actor* self, caf::actor silent, caf::actor reply_to) {
        self->request(silent, 30ms, 1).then([](int) {},
                                            [self, reply_to](caf::error& err) {
                                              self->send(reply_to, err == caf::sec::request_timeout);
                                            });
      },
      silent, caf::actor{me});
  bool timed_out = false;
  me->receive([&](bool v) { timed_out = v; }, caf::after(10s) >> [] {});
  BOOST_TEST(timed_out, "the request did not end with request_timeout");
  caf::anon_send_exit(silent, caf::exit_reason::user_shutdown);
}

// The lean policy's workers share one queue: actors that message each other
// across both threads, and that yield after a few messages (max-throughput
// 4: resume_later puts them back), all get every message; the system then
// stops while some still have mail.
BOOST_AUTO_TEST_CASE(the_lean_policy_runs_every_message_and_stops_with_mail_left) {
  auto delivered = std::make_shared<std::atomic<long>>(0);
  constexpr int ring = 50;
  constexpr int hops = 20'000;
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 2);
    cfg.set("scheduler.max-throughput", 4);
    use_quiet_clock_scheduler(cfg, "lean");
    caf::actor_system sys{cfg};
    // CAF's own workers would be named caf.multiplexer. A worker names
    // itself once its thread runs.
    BOOST_TEST(eventually([] { return threads_named("caf.worker") == 2; }));

    // Each member passes a counter on to the next until it reaches `hops`.
    // 10 counters start at the same member and travel bunched up, so
    // mailboxes hold more than max-throughput messages.
    auto next = std::make_shared<std::vector<caf::actor>>();
    for (int i = 0; i < ring; ++i)
      next->push_back(sys.spawn(
          [](caf::event_based_actor* self, int index,
             std::shared_ptr<std::vector<caf::actor>> ring_members,
             std::shared_ptr<std::atomic<long>> count) -> caf::behavior {
            return {[=](int hop) {
              count->fetch_add(1);
              if (hop < hops)
                self->send((*ring_members)[(index + 1) % ring_members->size()], hop + 1);
            }};
          },
          i, next, delivered));
    for (int c = 0; c < 10; ++c) caf::anon_send((*next)[0], 1);
    BOOST_TEST(eventually([&] { return delivered->load() == 10L * hops; }),
               delivered->load() << " of " << 10L * hops << " messages delivered");

    // Mail left at shutdown: the system's end must not hang on it.
    for (int c = 0; c < 10; ++c) caf::anon_send((*next)[c], 1);
    // The members hold the ring (and so each other) until they exit.
    for (auto& a : *next) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }  // ~actor_system stops the workers
  BOOST_TEST(threads_named("caf.worker") == 0);
}
