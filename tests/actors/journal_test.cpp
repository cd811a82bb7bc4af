#define BOOST_TEST_MODULE actors_journal
#include <boost/test/unit_test.hpp>

// The journal's commit delay on real threads: the journal is detached and
// sleeps while it gathers, so CAF's test coordinator cannot drive it. Only
// lower bounds on time are asserted (a slow machine makes waits longer,
// never shorter), and upper bounds are half of a 10 s delay.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "actors/engine_actors.hpp"
#include "store/memory_log.hpp"

using namespace jobsmith;
using namespace std::chrono_literals;

namespace {

using steady = std::chrono::steady_clock;

struct journal_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::unique_ptr<store::event_log> log = store::make_memory_log();
  std::shared_ptr<journal_metrics> metrics = std::make_shared<journal_metrics>();
  journal_actor journal;
  caf::scoped_actor self{sys};

  explicit journal_fixture(std::chrono::microseconds delay, std::size_t delay_below = 256) {
    journal_config config;
    config.commit_delay = delay;
    config.commit_delay_below = delay_below;
    journal = sys.spawn<caf::detached>(jobsmith::journal, log.get(), config, metrics);
  }

  ~journal_fixture() { self->send_exit(journal, caf::exit_reason::user_shutdown); }

  static std::vector<event> events(job_id job, std::size_t n) {
    std::vector<event> out(n);
    for (auto& ev : out) {
      ev.job = job;
      ev.principal = "user:test";
      ev.body = job_progress{1, "step", 50, {}};
    }
    return out;
  }

  /// Appends and waits for the answer; the first sequence number.
  sequence_t append(std::vector<event> evs) {
    sequence_t first = 0;
    self->request(journal, caf::infinite, atom::append::value, std::move(evs))
        .receive([&](sequence_t seq) { first = seq; },
                 [&](caf::error& err) { BOOST_FAIL("append failed: " << caf::to_string(err)); });
    return first;
  }

  std::uint64_t batches() const { return metrics->batches.load(); }
};

double seconds_since(steady::time_point t) {
  return std::chrono::duration<double>(steady::now() - t).count();
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_append_after_a_quiet_spell_commits_at_once) {
  journal_fixture f{10s};
  auto t = steady::now();
  f.append(journal_fixture::events(1, 1));
  // No commit before it: nothing to wait for. (Bound: half the delay, so a
  // slow sanitizer build cannot fail it while a wait always would.)
  BOOST_TEST(seconds_since(t) < 5.0);
  BOOST_TEST(f.batches() == 1u);
}

BOOST_AUTO_TEST_CASE(appends_close_behind_a_commit_wait_and_share_one) {
  journal_fixture f{1500ms};
  auto first_commit = steady::now();
  f.append(journal_fixture::events(1, 1));
  BOOST_REQUIRE(f.batches() == 1u);

  // Three appends sent together right behind the first commit: they wait
  // until 1.5 s after it started and then commit as one batch.
  using handle = decltype(f.self->request(f.journal, caf::infinite, atom::append::value,
                                          std::vector<event>{}));
  std::vector<handle> handles;
  std::vector<sequence_t> firsts;
  for (job_id job = 2; job <= 4; ++job)
    handles.push_back(f.self->request(f.journal, caf::infinite, atom::append::value,
                                      journal_fixture::events(job, 2)));
  for (auto& h : handles)
    h.receive([&](sequence_t seq) { firsts.push_back(seq); },
              [&](caf::error& err) { BOOST_FAIL("append failed: " << caf::to_string(err)); });
  BOOST_TEST(seconds_since(first_commit) >= 1.4);
  BOOST_TEST(f.batches() == 2u);
  BOOST_TEST(firsts.size() == 3u);
  BOOST_TEST(f.log->head() == 7u);  // 1 + 3 x 2 events, gap-free
}

BOOST_AUTO_TEST_CASE(a_large_batch_does_not_wait) {
  journal_fixture f{10s, 100};
  f.append(journal_fixture::events(1, 1));
  auto t = steady::now();
  // 100 events reach commit_delay_below: committed at once although the
  // previous commit was just now.
  f.append(journal_fixture::events(2, 100));
  BOOST_TEST(seconds_since(t) < 5.0);
  BOOST_TEST(f.batches() == 2u);
}

BOOST_AUTO_TEST_CASE(without_a_delay_every_flush_commits_at_once) {
  journal_fixture f{0us};
  auto t = steady::now();
  for (job_id job = 1; job <= 5; ++job) f.append(journal_fixture::events(job, 1));
  BOOST_TEST(seconds_since(t) < 5.0);
  BOOST_TEST(f.batches() == 5u);  // sequential appends: one commit each
}
