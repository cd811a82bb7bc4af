// Letting go of retired jobs' rows (projections/row_store.hpp,
// queue_view::release_retired): whole blocks go back to the system, the
// few rows still needed stay, and every answer is what a view that kept
// every row gives, before and after a snapshot.
#define BOOST_TEST_MODULE projections_released_rows
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "projections/queue_view.hpp"

using namespace jobsmith;

namespace {

constexpr millis t0 = 1'790'000'000'000;
constexpr job_id per_block = row_store::block_rows;

/// The same events folded into two views: `kept` never lets rows go.
struct twins {
  queue_view view;
  queue_view kept;
  sequence_t seq = 0;

  void at(millis time, job_id job, const event_body& body) {
    event ev{++seq, job, time, "test", body};
    view.apply(ev);
    kept.apply(ev);
  }
  void submit(millis time, job_id job, const std::string& queue = "q") {
    job_submitted s;
    s.kind = "k";
    s.queue = queue;
    at(time, job, s);
  }
  void start(millis time, job_id job) { at(time, job, job_started{1, "w", 7}); }
  void succeed(millis time, job_id job) {
    start(time, job);
    at(time, job, job_succeeded{1, "null"});
  }

  /// Every query the server makes answers alike from both views at `now`.
  void same_answers(millis now) const {
    job_filter all;
    all.limit = 1'000'000;
    BOOST_TEST(view.match(all, now) == kept.match(all, now));
    job_filter page;
    page.limit = 10;
    page.after = per_block - 5;
    BOOST_TEST(view.match(page, now) == kept.match(page, now));
    BOOST_TEST(view.counts(now) == kept.counts(now));
    auto a = view.queues(now), b = kept.queues(now);
    BOOST_TEST_REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      BOOST_TEST(a[i].name == b[i].name);
      BOOST_TEST(a[i].by_state == b[i].by_state);
      BOOST_TEST(a[i].retired == b[i].retired, a[i].name);
    }
    BOOST_TEST(view.jobs() == kept.jobs());
    BOOST_TEST(view.max_job() == kept.max_job());
    BOOST_TEST((view.totals() == kept.totals()));
  }
};

std::vector<job_id> listed(const queue_view& v, millis now) {
  job_filter all;
  all.limit = 1'000'000;
  return v.match(all, now);
}

}  // namespace

BOOST_AUTO_TEST_CASE(retired_rows_go_in_whole_blocks_and_answers_stay_the_same) {
  twins f;
  f.at(t0, 0, queue_retention{"", 1'000, 1'000});
  // Three full blocks and a few more ids. Job 5 is still running and job
  // per_block + 1 is in a queue that keeps its jobs: those rows stay.
  f.at(t0, 0, queue_retention{"keep", 0, 0});
  const job_id n = 3 * per_block + 10;
  for (job_id id = 1; id <= n; ++id) f.submit(t0, id, id == per_block + 1 ? "keep" : "q");
  for (job_id id = 1; id <= n; ++id) {
    if (id == 5)
      f.start(t0 + 10, id);
    else
      f.succeed(t0 + 10, id);
  }
  BOOST_TEST(f.view.row_slots() == n);  // rows are built as ids come

  // Nothing is retired before t0 + 1,010: nothing goes.
  BOOST_TEST(f.view.release_retired(t0 + 1'009) == 0u);
  BOOST_TEST(f.view.row_slots() == n);

  // The three full blocks go; the last one (ids still to come) stays.
  const std::size_t let_go = f.view.release_retired(t0 + 1'010);
  BOOST_TEST(let_go == 3 * per_block - 2);
  BOOST_TEST(f.view.released() == 3 * per_block - 2);
  BOOST_TEST(f.view.row_slots() == n - 3 * per_block + 2);
  BOOST_TEST(f.view.find(1) == nullptr);
  BOOST_TEST(f.view.retired_at(1, t0 + 1'010) == -1);
  BOOST_TEST(f.kept.retired_at(1, t0 + 1'010) == t0 + 1'010);
  BOOST_TEST(f.view.retired_at(5, t0 + 1'010) == 0);
  BOOST_TEST((f.view.find(5)->state == job_state::running));
  BOOST_TEST((f.view.find(per_block + 1)->state == job_state::succeeded));
  BOOST_TEST(listed(f.view, t0 + 1'010) == (std::vector<job_id>{5, per_block + 1}));
  for (millis now : {t0 + 1'010, t0 + 5'000}) f.same_answers(now);
  auto queues = f.view.queues(t0 + 1'010);
  BOOST_TEST_REQUIRE(queues.size() == 2u);
  BOOST_TEST(queues[1].name == "q");
  BOOST_TEST(queues[1].retired == n - 2);  // all but jobs 5 and per_block + 1

  // The job left running ends and retires; its row goes at the next pass.
  f.succeed(t0 + 2'000, 5);
  f.same_answers(t0 + 2'999);
  BOOST_TEST(f.view.release_retired(t0 + 3'000) == 1u);
  BOOST_TEST(f.view.find(5) == nullptr);
  f.same_answers(t0 + 3'000);
}

BOOST_AUTO_TEST_CASE(a_block_with_more_than_a_quarter_of_its_jobs_needed_stays) {
  twins f;
  f.at(t0, 0, queue_retention{"", 1'000, 1'000});
  const job_id n = 2 * per_block;
  const job_id live = per_block / 4 + 1;  // one too many to move aside
  for (job_id id = 1; id <= n; ++id) f.submit(t0, id);
  for (job_id id = 1; id <= n; ++id)
    if (id > live) f.succeed(t0, id);
  BOOST_TEST(f.view.release_retired(t0 + 1'000) == per_block);  // only the second block
  BOOST_TEST(f.view.row_slots() == per_block);
  f.same_answers(t0 + 1'000);
  // One of them ends: now a quarter at most stay, and the block goes.
  f.succeed(t0 + 1'000, 1);
  BOOST_TEST(f.view.release_retired(t0 + 2'000) == per_block - live + 1);
  BOOST_TEST(f.view.row_slots() == live - 1);
  for (job_id id = 2; id <= live; ++id) BOOST_TEST_REQUIRE(f.view.find(id) != nullptr);
  f.same_answers(t0 + 2'000);
}

BOOST_AUTO_TEST_CASE(events_of_a_retired_job_change_nothing_whether_its_row_went_or_not) {
  twins f;
  f.at(t0, 0, queue_retention{"", 1'000, 1'000});
  for (job_id id = 1; id <= per_block; ++id) f.submit(t0, id);
  for (job_id id = 1; id <= per_block; ++id) f.at(t0, id, job_discarded{"no"});
  f.submit(t0, per_block + 1);
  BOOST_TEST(f.view.release_retired(t0 + 1'000) == per_block);
  // A retry and a start of jobs retired (and let go in one view): both
  // views ignore them.
  f.at(t0 + 1'500, 7, job_requested{request_kind::retry});
  f.at(t0 + 1'500, 8, job_started{1, "w", 9});
  BOOST_TEST((f.kept.find(7)->state == job_state::discarded));
  BOOST_TEST(f.view.find(7) == nullptr);
  f.same_answers(t0 + 1'500);
  // An event just before a job's retirement still applies.
  queue_view v;
  sequence_t seq = 0;
  v.apply(event{++seq, 0, t0, "t", queue_retention{"", 1'000, 1'000}});
  job_submitted s;
  s.kind = "k";
  s.queue = "q";
  v.apply(event{++seq, 1, t0, "t", s});
  v.apply(event{++seq, 1, t0, "t", job_discarded{"no"}});
  v.apply(event{++seq, 1, t0 + 999, "t", job_requested{request_kind::retry}});
  BOOST_TEST((v.find(1)->state == job_state::scheduled));
}

BOOST_AUTO_TEST_CASE(an_id_never_submitted_in_a_released_block_can_still_be) {
  twins f;
  f.at(t0, 0, queue_retention{"", 1'000, 1'000});
  const job_id gap = 100;  // reserved, its submission not committed yet
  for (job_id id = 1; id <= per_block + 1; ++id)
    if (id != gap) f.submit(t0, id);
  for (job_id id = 1; id <= per_block; ++id)
    if (id != gap) f.succeed(t0, id);
  BOOST_TEST(f.view.release_retired(t0 + 1'000) == per_block - 1);
  f.submit(t0 + 1'200, gap);
  BOOST_TEST(listed(f.view, t0 + 1'200) == (std::vector<job_id>{gap, per_block + 1}));
  f.same_answers(t0 + 1'200);
  f.succeed(t0 + 1'300, gap);
  f.same_answers(t0 + 2'299);
  f.same_answers(t0 + 2'300);
}

BOOST_AUTO_TEST_CASE(a_snapshot_keeps_what_was_let_go) {
  twins f;
  f.at(t0, 0, queue_retention{"", 1'000, 1'000});
  const job_id n = 2 * per_block;
  for (job_id id = 1; id <= n; ++id) f.submit(t0, id, id % 2 == 0 ? "even" : "odd");
  for (job_id id = 1; id <= n; ++id)
    if (id != 3) f.succeed(t0, id);
  BOOST_TEST(f.view.release_retired(t0 + 1'000) == n - 1);
  BOOST_TEST(f.view.row_slots() == 1u);

  std::string error;
  auto back = queue_view::decode(f.view.encode(), &error);
  BOOST_TEST_REQUIRE(back.has_value(), error);
  BOOST_TEST(back->row_slots() == 1u);
  BOOST_TEST(back->released() == n - 1);
  BOOST_TEST(back->max_job() == n);
  BOOST_TEST((back->find(3)->state == job_state::scheduled));
  BOOST_TEST(back->retired_at(4, t0 + 1'000) == -1);
  // Folding on from the snapshot: ids go on from the highest, events of
  // jobs let go change nothing, and the answers match the kept view's.
  twins g;
  g.view = std::move(*back);
  g.kept = f.kept;
  g.seq = f.seq;
  g.at(t0 + 1'500, 4, job_requested{request_kind::retry});
  g.submit(t0 + 1'500, n + 1, "odd");
  g.same_answers(t0 + 1'500);
  BOOST_TEST(g.view.queues(t0 + 1'500).size() == 2u);

  // A view whose every row went still knows the highest job id.
  twins h;
  h.at(t0, 0, queue_retention{"", 1'000, 1'000});
  for (job_id id = 1; id <= per_block; ++id) h.submit(t0, id);
  for (job_id id = 1; id <= per_block; ++id) h.succeed(t0, id);
  BOOST_TEST(h.view.release_retired(t0 + 1'000) == per_block);
  auto empty = queue_view::decode(h.view.encode(), &error);
  BOOST_TEST_REQUIRE(empty.has_value(), error);
  BOOST_TEST(empty->max_job() == per_block);
  BOOST_TEST(empty->row_slots() == 0u);
  BOOST_TEST(empty->queues(t0 + 1'000).at(0).retired == per_block);
}

BOOST_AUTO_TEST_CASE(a_resource_set_is_kept_once_however_many_jobs_name_it) {
  queue_view v;
  sequence_t seq = 0;
  for (job_id id = 1; id <= 1000; ++id) {
    job_submitted s;
    s.kind = "k";
    s.resources = {{"db", lock_mode::exclusive}, {id % 2 ? "s3" : "s4", lock_mode::shared}};
    v.apply(event{++seq, id, t0, "t", s});
  }
  BOOST_TEST(v.resource_set_count() == 2u);
  BOOST_TEST(v.names().name(v.resources_of(*v.find(3))[1].first) == "s3");
  BOOST_TEST(v.names().name(v.resources_of(*v.find(4))[1].first) == "s4");
  std::string error;
  auto back = queue_view::decode(v.encode(), &error);
  BOOST_TEST_REQUIRE(back.has_value(), error);
  BOOST_TEST(back->resource_set_count() == 2u);
  job_submitted again;
  again.kind = "k";
  again.resources = {{"db", lock_mode::exclusive}, {"s4", lock_mode::shared}};
  back->apply(event{++seq, 1001, t0, "t", again});
  BOOST_TEST(back->resource_set_count() == 2u);
}
