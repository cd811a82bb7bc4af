// The job index's filters: state in / not in, queue, kind, time ranges,
// error text, paging.
#define BOOST_TEST_MODULE job_index
#include <boost/test/unit_test.hpp>

#include "projections/job_index.hpp"

using namespace jobsmith;

namespace {

sequence_t next_seq = 1;

event make(job_id job, millis time, event_body body) {
  return event{next_seq++, job, time, "test", std::move(body)};
}

/// Jobs 1..4: 1 and 2 submitted at t=100 in queue a, 3 at t=200 in queue b
/// (kind "other"), 4 at t=300. 1 failed for good at t=150 ("disk full"),
/// 3 succeeded at t=250; 2 and 4 wait.
job_index sample() {
  job_index idx;
  job_submitted a;
  a.kind = "resize";
  a.queue = "a";
  idx.apply(make(1, 100, a));
  idx.apply(make(2, 100, a));
  job_submitted b = a;
  b.queue = "b";
  b.kind = "other";
  idx.apply(make(3, 200, b));
  idx.apply(make(4, 300, a));
  idx.apply(make(1, 120, job_started{1, "w", 11}));
  idx.apply(make(1, 150, job_failed{1, "disk full on /var", false, 0, ""}));
  idx.apply(make(3, 220, job_started{1, "w", 12}));
  idx.apply(make(3, 250, job_succeeded{1, "null"}));
  return idx;
}

std::vector<job_id> ids(const std::vector<job_record>& recs) {
  std::vector<job_id> out;
  for (auto& r : recs) out.push_back(r.id);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(submitted_range_is_inclusive) {
  auto idx = sample();
  job_filter f;
  f.submitted_from = 100;
  f.submitted_to = 200;
  BOOST_TEST(ids(idx.query(f, 1000)) == (std::vector<job_id>{1, 2, 3}), boost::test_tools::per_element());
  f.submitted_from = 201;
  f.submitted_to = 0;
  BOOST_TEST(ids(idx.query(f, 1000)) == (std::vector<job_id>{4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(finished_range_matches_only_finished_jobs) {
  auto idx = sample();
  job_filter f;
  f.finished_from = 1;
  BOOST_TEST(ids(idx.query(f, 1000)) == (std::vector<job_id>{1, 3}), boost::test_tools::per_element());
  f.finished_from = 200;
  f.finished_to = 260;
  BOOST_TEST(ids(idx.query(f, 1000)) == (std::vector<job_id>{3}), boost::test_tools::per_element());
  f.finished_from = 0;
  f.finished_to = 149;
  BOOST_TEST(idx.query(f, 1000).empty());
}

BOOST_AUTO_TEST_CASE(error_text_is_a_substring_match) {
  auto idx = sample();
  job_filter f;
  f.error_contains = "disk full";
  BOOST_TEST(ids(idx.query(f, 1000)) == (std::vector<job_id>{1}), boost::test_tools::per_element());
  f.error_contains = "network";
  BOOST_TEST(idx.query(f, 1000).empty());
}

BOOST_AUTO_TEST_CASE(filters_combine_with_states_and_paging) {
  auto idx = sample();
  job_filter f;
  f.queue = "a";
  f.states_not_in = {job_state::discarded};
  f.submitted_from = 50;
  f.limit = 1;
  auto page = idx.query(f, 1000);
  BOOST_TEST(ids(page) == (std::vector<job_id>{2}), boost::test_tools::per_element());
  f.after = page.back().id;
  BOOST_TEST(ids(idx.query(f, 1000)) == (std::vector<job_id>{4}), boost::test_tools::per_element());
  job_filter k;
  k.kind = "other";
  k.states_in = {job_state::succeeded};
  BOOST_TEST(ids(idx.query(k, 1000)) == (std::vector<job_id>{3}), boost::test_tools::per_element());
}
