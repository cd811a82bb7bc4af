// The timing rules of events/job_state.hpp: retry delays with their
// backoff, cap and jitter; recurrences with their failure backoff; and how a
// run's end moves its schedule's failure streak.
#define BOOST_TEST_MODULE events_timing_test
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "events/job_state.hpp"

using namespace jobsmith;

// -- timing functions -------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(timing)

BOOST_AUTO_TEST_CASE(retry_delay_grows_then_caps) {
  const retry_policy p{10, 1000, 2.0, 10'000, 0.0};
  BOOST_TEST(retry_delay(p, 1, 0.5) == 1000);
  BOOST_TEST(retry_delay(p, 2, 0.5) == 2000);
  BOOST_TEST(retry_delay(p, 3, 0.5) == 4000);
  BOOST_TEST(retry_delay(p, 4, 0.5) == 8000);
  BOOST_TEST(retry_delay(p, 5, 0.5) == 10'000);
  BOOST_TEST(retry_delay(p, 4'000'000'000u, 0.5) == 10'000);  // no overflow on the way
  BOOST_TEST(retry_delay(retry_policy{3, 1000, 1.0, 5000, 0.0}, 30, 0.5) == 1000);
}

BOOST_AUTO_TEST_CASE(retry_delay_stays_within_the_jitter_band) {
  const retry_policy p{10, 1000, 2.0, 10'000, 0.1};
  BOOST_TEST(retry_delay(p, 2, 0.0) == 1800);
  BOOST_TEST(retry_delay(p, 2, 0.5) == 2000);
  BOOST_TEST(retry_delay(p, 2, 0.75) == 2100);
  millis lowest = std::numeric_limits<millis>::max();
  millis highest = 0;
  for (int i = 0; i < 1000; ++i) {
    const millis d = retry_delay(p, 5, i / 1000.0);  // capped base 10s
    lowest = std::min(lowest, d);
    highest = std::max(highest, d);
  }
  BOOST_TEST(lowest == 9000);
  BOOST_TEST(highest <= 11'000);
  BOOST_TEST(highest >= 10'990);
  // A draw outside [0, 1) is held to the band.
  BOOST_TEST(retry_delay(p, 2, 7.0) == 2200);
  BOOST_TEST(retry_delay(p, 2, -3.0) == 1800);
  BOOST_TEST(retry_delay(p, 2, std::nan("")) == 1800);
}

BOOST_AUTO_TEST_CASE(retry_delay_is_never_negative_or_overflowing) {
  const retry_policy full_jitter{3, 0, 2.0, 0, 1.0};
  BOOST_TEST(retry_delay(full_jitter, 1, 0.0) == 0);
  const retry_policy huge{3, std::numeric_limits<millis>::max(), 3.0,
                          std::numeric_limits<millis>::max(), 1.0};
  BOOST_TEST(retry_delay(huge, 60, 0.999) == std::numeric_limits<millis>::max());
  BOOST_TEST(retry_delay(huge, 60, 0.0) == 0);
}

BOOST_AUTO_TEST_CASE(next_recurrence_backs_off_after_failures) {
  const recurrence r{60'000, 2.0, 300'000, 0};
  BOOST_TEST(next_recurrence(r, 1000, 0) == 61'000);
  BOOST_TEST(next_recurrence(r, 1000, 1) == 121'000);
  BOOST_TEST(next_recurrence(r, 1000, 2) == 241'000);
  BOOST_TEST(next_recurrence(r, 1000, 3) == 301'000);  // capped
  BOOST_TEST(next_recurrence(r, 1000, 4'000'000'000u) == 301'000);
  // A cap below the interval never shortens the interval.
  BOOST_TEST(next_recurrence(recurrence{60'000, 2.0, 10, 0}, 0, 3) == 60'000);
  BOOST_TEST(next_recurrence(r, std::numeric_limits<millis>::max() - 5, 0) ==
             std::numeric_limits<millis>::max());
}

BOOST_AUTO_TEST_CASE(a_schedules_failure_streak_follows_how_its_run_ended) {
  for (auto s : {job_state::succeeded, job_state::accepted, job_state::declined})
    BOOST_TEST(streak_after(4, s) == 0u);
  for (auto s : {job_state::discarded, job_state::expired}) BOOST_TEST(streak_after(4, s) == 5u);
  BOOST_TEST(streak_after(4, job_state::cancelled) == 4u);
}

BOOST_AUTO_TEST_SUITE_END()
