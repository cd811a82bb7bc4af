// The bounds one submission may ask for (events/job_state.hpp, "bounds on a
// submission"): each just inside passes and just outside is refused with a
// message naming the field and the bound; and JSON text with a key twice in
// one object is refused (parse_json_unique, events/json.hpp).
#define BOOST_TEST_MODULE events_limits_test
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "events/job_state.hpp"
#include "events/json.hpp"

using namespace jobsmith;
using nlohmann::json;

namespace {

using change_fn = std::function<void(job_submitted&)>;

job_submitted changed(const change_fn& change) {
  job_submitted s;
  s.kind = "import";
  change(s);
  return s;
}

// The message validate() gives, or "" when it accepts.
std::string verdict(const change_fn& change) {
  const auto err = validate(changed(change));
  if (!err) return "";
  BOOST_TEST((err->code == job_errc::invalid_argument));
  return err->message;
}

constexpr millis above_2_53 = millis{1} << 53;
const std::string ten_years = "must be at most 315360000000 ms (10 years)";

}  // namespace

BOOST_AUTO_TEST_SUITE(submission_bounds)

BOOST_AUTO_TEST_CASE(the_bounds_are_what_the_docs_say) {
  // 9999-12-31T23:59:59.999Z, and 10 years of 365 days.
  BOOST_TEST(max_timestamp == 253'402'300'799'999);
  BOOST_TEST(max_duration == 10LL * 365 * 24 * 3600 * 1000);
  BOOST_TEST(min_recurrence_interval == 1000);
  BOOST_TEST(max_attempts_limit == 10'000u);
  BOOST_TEST(max_resources_per_job == 64u);
}

BOOST_AUTO_TEST_CASE(run_at_stops_at_year_9999) {
  BOOST_TEST(verdict([](job_submitted& s) { s.run_at = max_timestamp; }) == "");
  BOOST_TEST(verdict([](job_submitted& s) { s.run_at = max_timestamp + 1; }) ==
             "run_at must be at most 253402300799999 (9999-12-31T23:59:59.999Z)");
  BOOST_TEST(verdict([](job_submitted& s) {
               s.run_at = std::numeric_limits<millis>::max();
             }) != "");
}

BOOST_AUTO_TEST_CASE(max_attempts_stops_at_10000) {
  BOOST_TEST(verdict([](job_submitted& s) { s.retry.max_attempts = max_attempts_limit; }) == "");
  BOOST_TEST(verdict([](job_submitted& s) { s.retry.max_attempts = max_attempts_limit + 1; }) ==
             "retry.max_attempts must be at most 10000");
  BOOST_TEST(verdict([](job_submitted& s) {
               s.retry.max_attempts = std::numeric_limits<std::uint32_t>::max();
             }) == "retry.max_attempts must be at most 10000");
}

BOOST_AUTO_TEST_CASE(retry_intervals_stop_at_ten_years) {
  BOOST_TEST(verdict([](job_submitted& s) {
               s.retry.initial_interval = max_duration;
               s.retry.max_interval = max_duration;
             }) == "");
  BOOST_TEST(verdict([](job_submitted& s) {
               s.retry.initial_interval = max_duration + 1;
               s.retry.max_interval = max_duration + 1;
             }) == "retry.initial_interval " + ten_years);
  BOOST_TEST(verdict([](job_submitted& s) { s.retry.max_interval = max_duration + 1; }) ==
             "retry.max_interval " + ten_years);
  BOOST_TEST(verdict([](job_submitted& s) {
               s.retry.max_interval = std::numeric_limits<millis>::max();
             }) == "retry.max_interval " + ten_years);
}

BOOST_AUTO_TEST_CASE(timeouts_stop_at_ten_years) {
  using field = millis phase_timeouts::*;
  const std::vector<std::pair<field, std::string>> fields = {
      {&phase_timeouts::to_start, "timeouts.to_start"},
      {&phase_timeouts::to_run, "timeouts.to_run"},
      {&phase_timeouts::heartbeat, "timeouts.heartbeat"},
  };
  for (const auto& [f, name] : fields) {
    BOOST_TEST(verdict([f = f](job_submitted& s) { s.timeouts.*f = max_duration; }) == "", name);
    BOOST_TEST(verdict([f = f](job_submitted& s) { s.timeouts.*f = max_duration + 1; }) ==
               name + " " + ten_years);
  }
}

BOOST_AUTO_TEST_CASE(a_recurrence_interval_is_0_or_1_s_to_10_years) {
  BOOST_TEST(verdict([](job_submitted& s) { s.recur.interval = 0; }) == "");
  BOOST_TEST(verdict([](job_submitted& s) { s.recur.interval = min_recurrence_interval; }) == "");
  const std::string too_short =
      "recurrence.interval must be 0 (not recurring) or at least 1000 ms";
  BOOST_TEST(verdict([](job_submitted& s) { s.recur.interval = min_recurrence_interval - 1; }) ==
             too_short);
  BOOST_TEST(verdict([](job_submitted& s) { s.recur.interval = 1; }) == too_short);
  BOOST_TEST(verdict([](job_submitted& s) {
               s.recur.interval = max_duration;
               s.recur.max_interval = max_duration;
             }) == "");
  BOOST_TEST(verdict([](job_submitted& s) {
               s.recur.interval = max_duration + 1;
               s.recur.max_interval = max_duration + 1;
             }) == "recurrence.interval " + ten_years);
  BOOST_TEST(verdict([](job_submitted& s) { s.recur.max_interval = max_duration + 1; }) ==
             "recurrence.max_interval " + ten_years);
}

BOOST_AUTO_TEST_CASE(an_embedder_may_lower_the_recurrence_minimum) {
  const job_submitted fast = changed([](job_submitted& s) { s.recur.interval = 5; });
  BOOST_TEST(validate(fast).has_value());
  BOOST_TEST(!validate(fast, 1).has_value());
  BOOST_TEST(!validate(fast, 5).has_value());
  const auto err = validate(fast, 6);
  BOOST_TEST_REQUIRE(err.has_value());
  BOOST_TEST(err->message == "recurrence.interval must be 0 (not recurring) or at least 6 ms");
}

BOOST_AUTO_TEST_CASE(a_job_claims_at_most_64_resources) {
  auto claims = [](std::size_t n) {
    return [n](job_submitted& s) {
      for (std::size_t i = 0; i < n; ++i) s.resources.push_back({"r" + std::to_string(i)});
    };
  };
  BOOST_TEST(verdict(claims(max_resources_per_job)) == "");
  BOOST_TEST(verdict(claims(max_resources_per_job + 1)) ==
             "resources must list at most 64 resources (got 65)");
  BOOST_TEST(verdict(claims(10'000)) == "resources must list at most 64 resources (got 10000)");
}

BOOST_AUTO_TEST_CASE(the_engine_refuses_what_validate_refuses) {
  // decide(cmd_submit) is the state machine's side of engine::submit.
  const decision d = decide(job_record{}, cmd_submit{changed([](job_submitted& s) {
                              s.run_at = max_timestamp + 1;
                            })},
                            0);
  BOOST_TEST_REQUIRE(!d.ok());
  BOOST_TEST((d.error->code == job_errc::invalid_argument));
  BOOST_TEST(d.events.empty());
}

BOOST_AUTO_TEST_CASE(times_derived_from_the_largest_valid_submission_stay_below_2_53) {
  // The dashboard holds times in JavaScript numbers, exact up to 2^53.
  job_submitted s = changed([](job_submitted& x) {
    x.run_at = max_timestamp;
    x.retry = retry_policy{max_attempts_limit, max_duration, 1e300, max_duration, 1.0};
    x.recur = recurrence{max_duration, 1e300, max_duration, 0};
    x.timeouts = phase_timeouts{max_duration, max_duration, max_duration};
  });
  BOOST_TEST_REQUIRE(!validate(s).has_value());
  // The largest jitter draw lands just below +100%.
  const millis retry_due = max_timestamp + retry_delay(s.retry, max_attempts_limit, 0.999999);
  BOOST_TEST(retry_due < above_2_53);
  BOOST_TEST(next_recurrence(s.recur, max_timestamp, 4'000'000'000u) < above_2_53);
  BOOST_TEST(max_timestamp + s.timeouts.to_start + s.timeouts.to_run < above_2_53);
}

BOOST_AUTO_TEST_SUITE_END()

// -- duplicate keys ---------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(duplicate_keys)

namespace {

// parse_json_unique's refusal of `text`, which must be for a duplicate key.
std::string duplicate_in(const std::string& text) {
  json_refusal why;
  const auto parsed = parse_json_unique(text, &why);
  BOOST_TEST_REQUIRE(!parsed.has_value(), text);
  BOOST_TEST(why.duplicate_key, text);
  return why.message;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_duplicate_at_the_top_level_is_refused) {
  BOOST_TEST(duplicate_in(R"({"kind":"a","kind":"b"})") ==
             "duplicate key 'kind' in the top-level object");
  BOOST_TEST(duplicate_in(R"({"kind":"a","queue":"q","kind":"a"})") ==
             "duplicate key 'kind' in the top-level object");
  // The same key spelt with an escape is the same key.
  BOOST_TEST(duplicate_in(R"({"kind":1, "ki\u006ed":2})") ==
             "duplicate key 'kind' in the top-level object");
}

BOOST_AUTO_TEST_CASE(a_duplicate_at_any_depth_is_refused_and_located) {
  BOOST_TEST(duplicate_in(R"({"retry":{"max_attempts":1,"max_attempts":2}})") ==
             "duplicate key 'max_attempts' in retry");
  BOOST_TEST(
      duplicate_in(R"({"jobs":[{"kind":"a"},{"kind":"b","retry":{"jitter":0,"jitter":1}}]})") ==
      "duplicate key 'jitter' in jobs[1].retry");
  BOOST_TEST(duplicate_in(R"({"payload":{"a":{"b":[1,[2,{"c":1,"c":1}]]}}})") ==
             "duplicate key 'c' in payload.a.b[1][1]");
  BOOST_TEST(duplicate_in(R"([{"a":1},{"a":2,"a":3}])") == "duplicate key 'a' in [1]");
  const std::string long_key(100, 'k');
  BOOST_TEST(duplicate_in("{\"" + long_key + "\":1,\"" + long_key + "\":2}") ==
             "duplicate key '" + std::string(64, 'k') + "...' in the top-level object");
}

BOOST_AUTO_TEST_CASE(the_same_key_in_different_objects_is_fine) {
  for (const std::string text : {
           R"([{"a":1},{"a":2}])",
           R"({"a":{"a":{"a":1}}})",
           R"({"x":{"k":1},"y":{"k":1},"k":[{"k":1},{"k":2}]})",
           R"({"jobs":[{"kind":"a","retry":{"jitter":0}},{"kind":"b","retry":{"jitter":0}}]})",
       }) {
    json_refusal why;
    const auto parsed = parse_json_unique(text, &why);
    BOOST_TEST_REQUIRE(parsed.has_value(), text << ": " << why.message);
    BOOST_TEST(*parsed == json::parse(text), text);
  }
}

BOOST_AUTO_TEST_CASE(the_tree_is_the_one_json_parse_builds) {
  for (const std::string text : {
           R"(null)", R"(true)", R"(-12)", R"(18446744073709551615)", R"(1.5e300)", R"("x\n\u00e9")",
           R"([])", R"({})", R"( {"b":[1,2.25,-3,"s",null,false,{}],"a":{"z":[[]]}} )",
           R"({"payload":{"image":"cat.png","sizes":[64,128]},"kind":"resize"})",
       }) {
    const auto parsed = parse_json_unique(text);
    BOOST_TEST_REQUIRE(parsed.has_value(), text);
    const json expected = json::parse(text);
    BOOST_TEST(*parsed == expected, text);
    BOOST_TEST(parsed->dump() == expected.dump(), text);
    BOOST_TEST((parsed->type() == expected.type()), text);
  }
}

BOOST_AUTO_TEST_CASE(text_that_is_not_json_is_refused_as_such) {
  for (const std::string text : {"", " ", "{", R"({"a":1,})", "{}x", "[1,]", R"({"a" 1})", "nul"}) {
    json_refusal why;
    BOOST_TEST(!parse_json_unique(text, &why).has_value(), text);
    BOOST_TEST(!why.duplicate_key, text);
    BOOST_TEST(why.message.find("parse_error") != std::string::npos, text << ": " << why.message);
  }
}

BOOST_AUTO_TEST_CASE(deep_nesting_does_not_recurse) {
  // 100,000 levels: a recursive parser or check would overflow the stack.
  const std::size_t depth = 100'000;
  const std::string arrays = std::string(depth, '[') + std::string(depth, ']');
  BOOST_TEST(parse_json_unique(arrays).has_value());
  std::string objects;
  for (std::size_t i = 0; i < depth; ++i) objects += "{\"a\":";
  objects += "{\"b\":1,\"b\":2}";
  objects += std::string(depth, '}');
  json_refusal why;
  BOOST_TEST(!parse_json_unique(objects, &why).has_value());
  BOOST_TEST(why.duplicate_key);
  BOOST_TEST(why.message.starts_with("duplicate key 'b' in a.a.a."));
}

BOOST_AUTO_TEST_SUITE_END()
