// The JSON mapping (events/json.hpp): exact round trips, the shapes clients
// read, and clear refusals of malformed events and submissions.
#include "events/json.hpp"

#include <boost/test/unit_test.hpp>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "events/job_state.hpp"

namespace jobsmith::test {
std::vector<event> sample_events();
}

using namespace jobsmith;
using nlohmann::json;

namespace {

std::string event_error(const json& j) {
  event out;
  out.principal = "untouched";
  std::string error;
  BOOST_TEST_REQUIRE(!from_json(j, out, &error));
  BOOST_TEST(out.principal == "untouched");
  return error;
}

std::string spec_error(const json& j) {
  job_submitted out;
  out.kind = "untouched";
  std::string error;
  BOOST_TEST_REQUIRE(!spec_from_json(j, out, &error));
  BOOST_TEST(out.kind == "untouched");
  return error;
}

job_submitted parse_spec(const json& j) {
  job_submitted out;
  std::string error;
  BOOST_TEST_REQUIRE(spec_from_json(j, out, &error), error);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(json_mapping)

BOOST_AUTO_TEST_CASE(every_type_round_trips_through_json) {
  for (const auto& ev : test::sample_events()) {
    BOOST_TEST_CONTEXT(type_name(ev.body)) {
      const json j = to_json(ev);
      event out;
      std::string error;
      BOOST_TEST_REQUIRE(from_json(j, out, &error), error);
      BOOST_TEST((out == ev));

      // As an export file holds it: text, one line per event.
      const std::string line = j.dump();
      BOOST_TEST(line.find('\n') == std::string::npos);
      event from_text;
      BOOST_TEST_REQUIRE(from_json(json::parse(line), from_text, &error), error);
      BOOST_TEST((from_text == ev));
    }
  }
}

BOOST_AUTO_TEST_CASE(every_type_round_trips_at_defaults) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (
        [&] {
          event ev;
          ev.body.emplace<I>();
          event out;
          std::string error;
          BOOST_TEST_REQUIRE(from_json(to_json(ev), out, &error), error);
          BOOST_TEST((out == ev), type_name(ev.body));
        }(),
        ...);
  }
  (std::make_index_sequence<event_type_count>{});
}

BOOST_AUTO_TEST_CASE(event_envelope_has_the_documented_keys) {
  const auto ev = test::sample_events()[1];  // job.started
  const json j = to_json(ev);
  BOOST_TEST(j["seq"] == ev.seq);
  BOOST_TEST(j["job"] == ev.job);
  BOOST_TEST(j["time"] == ev.time);
  BOOST_TEST(j["principal"] == "user:alice");
  BOOST_TEST(j["type"] == "job.started");
  BOOST_TEST(j["version"] == 1);
  BOOST_TEST(j["body"]["attempt"] == 3);
  BOOST_TEST(j["body"]["worker"] == "worker:w1");
  BOOST_TEST(j["body"]["lease_token"] == 0xfedcba9876543210ULL);
  BOOST_TEST(j.size() == 7u);
}

BOOST_AUTO_TEST_CASE(json_text_fields_are_embedded_as_values) {
  const auto samples = test::sample_events();
  const json submitted = to_json(samples[0])["body"];
  BOOST_TEST(submitted["payload"].is_object());
  BOOST_TEST(submitted["payload"]["rows"][1] == 2.5);
  BOOST_TEST(submitted["payload"]["unicode"] == "été");
  const json succeeded = to_json(samples[3])["body"];
  BOOST_TEST(succeeded["result"]["rows"] == 300);
  const json failed = to_json(samples[4])["body"];
  BOOST_TEST(failed["handover"]["cursor"] == 17);
}

BOOST_AUTO_TEST_CASE(enums_are_names_and_submission_has_one_shape) {
  const auto samples = test::sample_events();
  const json body = to_json(samples[0])["body"];
  BOOST_TEST(body["resources"][0]["mode"] == "shared");
  BOOST_TEST(body["resources"][1]["mode"] == "exclusive");
  BOOST_TEST(body["recurrence"]["interval"] == 3'600'000);
  BOOST_TEST(body["schedule"] == 42);
  BOOST_TEST(body["retry"]["jitter"] == 0.25);
  BOOST_TEST(body["timeouts"]["to_stop"] == 2'500);
  BOOST_TEST(!body.contains("recur"));
  // The body is the submission shape plus "schedule" and, when set,
  // "follows".
  BOOST_TEST(body["follows"] == 41);
  json without_schedule = body;
  without_schedule.erase("schedule");
  without_schedule.erase("follows");
  BOOST_TEST(without_schedule == spec_to_json(std::get<job_submitted>(samples[0].body)));

  BOOST_TEST(to_json(samples[2])["body"]["lines"][0]["level"] == "warn");
  BOOST_TEST(to_json(samples[9])["body"]["what"] == "retry");
}

BOOST_AUTO_TEST_CASE(empty_handover_is_omitted_and_read_back_empty) {
  event ev;
  ev.body = job_failed{1, "boom", true, 5, ""};
  const json j = to_json(ev);
  BOOST_TEST(!j["body"].contains("handover"));
  event out;
  std::string error;
  BOOST_TEST_REQUIRE(from_json(j, out, &error), error);
  BOOST_TEST((out == ev));
}

BOOST_AUTO_TEST_CASE(non_compact_payload_comes_back_compact) {
  event ev;
  job_submitted s;
  s.kind = "k";
  s.payload = "{ \"b\" : 1,\n \"a\" : [ ] }";
  ev.body = s;
  event out;
  std::string error;
  BOOST_TEST_REQUIRE(from_json(to_json(ev), out, &error), error);
  BOOST_TEST(std::get<job_submitted>(out.body).payload == R"({"a":[],"b":1})");
}

BOOST_AUTO_TEST_CASE(missing_fields_take_the_struct_defaults) {
  event out;
  std::string error;
  BOOST_TEST_REQUIRE(
      from_json(json{{"type", "job.failed"}, {"body", {{"error", "x"}}}}, out, &error), error);
  const auto& failed = std::get<job_failed>(out.body);
  BOOST_TEST(failed.error == "x");
  BOOST_TEST(failed.retryable);
  BOOST_TEST(failed.attempt == 0u);
  BOOST_TEST(out.seq == 0u);

  BOOST_TEST_REQUIRE(from_json(json{{"type", "job.submitted"}}, out, &error), error);
  BOOST_TEST((std::get<job_submitted>(out.body) == job_submitted{}));
}

BOOST_AUTO_TEST_CASE(malformed_events_are_refused_naming_the_field) {
  const json base = to_json(test::sample_events()[0]);
  auto with = [&](const json::json_pointer& at, json value) {
    json j = base;
    j[at] = std::move(value);
    return j;
  };
  BOOST_TEST(event_error(with("/body/priority"_json_pointer, "high")) ==
             "body.priority: expected integer");
  BOOST_TEST(event_error(with("/body/priority"_json_pointer, 1.5)) ==
             "body.priority: expected integer");
  BOOST_TEST(event_error(with("/body/priority"_json_pointer, 3'000'000'000LL)) ==
             "body.priority: integer out of range [-2147483648, 2147483647]");
  BOOST_TEST(event_error(with("/body/retry/max_attempts"_json_pointer, -1)) ==
             "body.retry.max_attempts: integer out of range [0, 4294967295]");
  BOOST_TEST(event_error(with("/body/retry/jitter"_json_pointer, "x")) ==
             "body.retry.jitter: expected number");
  BOOST_TEST(event_error(with("/body/review_required"_json_pointer, 1)) ==
             "body.review_required: expected boolean");
  BOOST_TEST(event_error(with("/body/resources/1/mode"_json_pointer, "both")) ==
             R"(body.resources[1].mode: expected "shared" or "exclusive")");
  BOOST_TEST(event_error(with("/body/resources"_json_pointer, "db")) ==
             "body.resources: expected array");
  BOOST_TEST(event_error(with("/body/timeouts"_json_pointer, 5)) ==
             "body.timeouts: expected object");
  BOOST_TEST(event_error(with("/body/priorty"_json_pointer, 1)) == "unknown field 'body.priorty'");
  BOOST_TEST(event_error(with("/body/retry/tries"_json_pointer, 1)) ==
             "unknown field 'body.retry.tries'");
  BOOST_TEST(event_error(with("/extra"_json_pointer, 1)) == "unknown field 'extra'");
  BOOST_TEST(event_error(with("/seq"_json_pointer, -4)) ==
             "seq: integer out of range [0, 18446744073709551615]");
  BOOST_TEST(event_error(with("/principal"_json_pointer, 7)) == "principal: expected string");
  BOOST_TEST(event_error(with("/body"_json_pointer, json::array())) == "body: expected object");
  BOOST_TEST(event_error(with("/type"_json_pointer, "job.exploded")) ==
             "type: unknown event type 'job.exploded'");
  BOOST_TEST(event_error(with("/version"_json_pointer, 7)) ==
             "job.submitted version 7 is newer than this reader (3)");
  BOOST_TEST(event_error(with("/version"_json_pointer, 0)) ==
             "job.submitted version 0 is older than the oldest this reader can read (1)");

  json no_type = base;
  no_type.erase("type");
  BOOST_TEST(event_error(no_type) == "type: missing");
  BOOST_TEST(event_error(json::array()) == "event: expected a JSON object");
}

BOOST_AUTO_TEST_CASE(invalid_utf8_in_a_built_value_is_refused_not_thrown) {
  json j = to_json(test::sample_events()[0]);
  j["body"]["payload"] = std::string("\xff\xfe");
  BOOST_TEST(!event_error(j).empty());
}

BOOST_AUTO_TEST_CASE(submission_as_a_client_sends_it) {
  const json j = json::parse(R"({
    "kind": "import.charts", "queue": "imports",
    "payload": {"file": "a.csv", "rows": [1, 2]},
    "priority": 5, "run_at": 1700000000000,
    "retry": {"max_attempts": 5, "initial_interval": 100, "backoff_coefficient": 3,
              "max_interval": 9000, "jitter": 0},
    "timeouts": {"to_start": 1, "to_run": 2, "heartbeat": 3},
    "resources": ["db:charts", {"name": "disk", "mode": "shared"}],
    "unique_key": "u1", "review_required": true,
    "recurrence": {"interval": 60000, "failure_backoff": 2.5, "max_interval": 600000,
                   "failure_limit": 3}
  })");
  const job_submitted s = parse_spec(j);
  BOOST_TEST(s.kind == "import.charts");
  BOOST_TEST(s.queue == "imports");
  BOOST_TEST(s.payload == R"({"file":"a.csv","rows":[1,2]})");
  BOOST_TEST(s.priority == 5);
  BOOST_TEST(s.run_at == 1'700'000'000'000);
  BOOST_TEST((s.retry == retry_policy{5, 100, 3.0, 9000, 0.0}));
  BOOST_TEST((s.timeouts == phase_timeouts{1, 2, 3}));
  BOOST_TEST_REQUIRE(s.resources.size() == 2u);
  BOOST_TEST((s.resources[0] == resource_claim{"db:charts", lock_mode::exclusive}));
  BOOST_TEST((s.resources[1] == resource_claim{"disk", lock_mode::shared}));
  BOOST_TEST(s.unique_key == "u1");
  BOOST_TEST(s.review_required);
  BOOST_TEST((s.recur == recurrence{60'000, 2.5, 600'000, 3}));
  BOOST_TEST(s.schedule == 0u);
}

BOOST_AUTO_TEST_CASE(submission_defaults_and_any_payload_value) {
  const job_submitted s = parse_spec(json{{"kind", "k"}});
  job_submitted expected;
  expected.kind = "k";
  BOOST_TEST((s == expected));
  BOOST_TEST(parse_spec(json{{"kind", "k"}, {"payload", "text"}}).payload == R"("text")");
  BOOST_TEST(parse_spec(json{{"kind", "k"}, {"payload", 3}}).payload == "3");
  BOOST_TEST(parse_spec(json{{"kind", "k"}, {"payload", nullptr}}).payload == "null");
  BOOST_TEST(parse_spec(json{{"kind", "k"}, {"retry", {{"max_attempts", 7}}}}).retry.jitter ==
             retry_policy{}.jitter);
}

BOOST_AUTO_TEST_CASE(malformed_submissions_are_refused_naming_the_field) {
  BOOST_TEST(spec_error(json{{"kind", "k"}, {"priorty", 1}}) == "unknown field 'priorty'");
  BOOST_TEST(spec_error(json{{"kind", "k"}, {"schedule", 1}}) == "unknown field 'schedule'");
  BOOST_TEST(spec_error(json{{"kind", "k"}, {"recur", json::object()}}) == "unknown field 'recur'");
  BOOST_TEST(spec_error(json{{"kind", 5}}) == "kind: expected string");
  BOOST_TEST(spec_error(json{{"priority", "high"}}) == "priority: expected integer");
  BOOST_TEST(spec_error(json{{"retry", {{"max_attempts", "3"}}}}) ==
             "retry.max_attempts: expected integer");
  BOOST_TEST(spec_error(json{{"retry", {{"max_atempts", 3}}}}) ==
             "unknown field 'retry.max_atempts'");
  BOOST_TEST(spec_error(json{{"timeouts", 30}}) == "timeouts: expected object");
  BOOST_TEST(spec_error(json{{"resources", {{{"name", "a"}, {"mode", "read"}}}}}) ==
             R"(resources[0].mode: expected "shared" or "exclusive")");
  BOOST_TEST(spec_error(json{{"resources", {"a", 5}}}) == "resources[1]: expected object");
  BOOST_TEST(spec_error(json{{"review_required", "yes"}}) == "review_required: expected boolean");
  BOOST_TEST(spec_error(json{{"recurrence", {{"interval", 1.5}}}}) ==
             "recurrence.interval: expected integer");
  BOOST_TEST(spec_error(json::array()) == "submission: expected a JSON object");
}

BOOST_AUTO_TEST_CASE(spec_to_json_reads_back_equal) {
  job_submitted s = std::get<job_submitted>(test::sample_events()[0].body);
  s.schedule = 0;  // engine-owned; not part of a submission
  s.follows = 0;
  const json j = spec_to_json(s);
  BOOST_TEST(!j.contains("schedule"));
  BOOST_TEST(!j.contains("follows"));
  BOOST_TEST((parse_spec(j) == s));
  BOOST_TEST((parse_spec(json::parse(j.dump())) == s));
}

BOOST_AUTO_TEST_CASE(job_record_shows_the_effective_state_and_every_field) {
  job_record job;
  job.id = 12;
  job.state = job_state::scheduled;
  job.spec.kind = "k";
  job.due_at = 1000;
  job.attempts = 1;
  job.max_attempts = 3;
  job.last_end = attempt_end::failed;
  job.last_error = "boom";
  job.result = R"({"n":1})";
  job.handover = R"({"cursor":4})";
  job.lease_token = 99;
  job.last_seq = 40;
  job.event_count = 4;

  BOOST_TEST(to_json(job, 999)["state"] == "scheduled");
  const json j = to_json(job, 1000);
  BOOST_TEST(j["state"] == "queued");
  BOOST_TEST(j["id"] == 12);
  BOOST_TEST(j["spec"]["kind"] == "k");
  BOOST_TEST(j["spec"]["payload"].is_object());
  BOOST_TEST(j["due_at"] == 1000);
  BOOST_TEST(j["attempts"] == 1);
  BOOST_TEST(j["max_attempts"] == 3);
  BOOST_TEST(j["last_end"] == "failed");
  BOOST_TEST(j["last_error"] == "boom");
  BOOST_TEST(j["result"]["n"] == 1);
  BOOST_TEST(j["handover"]["cursor"] == 4);
  BOOST_TEST(j["lease_token"] == 99);
  BOOST_TEST(j["percent"] == -1);
  BOOST_TEST(j["last_seq"] == 40);
  BOOST_TEST(j["event_count"] == 4);
  for (const char* key : {"submitted_at", "started_at", "finished_at", "worker", "detail",
                          "review_comment", "reviewer", "requested_at", "cancel_requested_at"})
    BOOST_TEST(j.contains(key), key);

  job.handover.clear();
  BOOST_TEST(!to_json(job, 0).contains("handover"));
}

BOOST_AUTO_TEST_SUITE_END()

// to_json_text writes a job without building the JSON tree; it must be the
// very bytes the tree dumps to. Jobs folded from every sample event, then
// with strings that need escaping, non-ASCII, invalid UTF-8, JSON text that
// is not compact (or not JSON at all) and extreme numbers.
BOOST_AUTO_TEST_CASE(job_text_is_byte_for_byte_the_dumped_tree) {
  auto dumped = [](const job_record& job, millis now) {
    return to_json(job, now).dump(-1, ' ', false, json::error_handler_t::replace);
  };
  job_record job;
  for (const auto& ev : test::sample_events()) {
    apply(job, ev);
    for (millis now : {millis{0}, millis{1'800'000'000'000}})
      BOOST_TEST(to_json_text(job, now) == dumped(job, now));
  }
  const std::vector<std::string> strings = {
      "",
      "plain",
      "quote \" back\\slash / tab\t nl\n cr\r",
      std::string("nul\0x", 5),
      "\x01\x1f\x7f",
      "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80",
      "bad \xff\xfe utf8 \xc3",
  };
  // Compact text in the canonical subset is copied, the rest re-dumped: both
  // kinds, and texts one step outside the subset (unsorted or repeated keys,
  // "-0", leading zeros, 19 digits, escapes, floats, spaces, truncation).
  const std::vector<std::string> json_texts = {
      "null",
      "{ \"b\" : [1, 2.50, true] , \"a\":{}}",
      "\"text\"",
      "not json {",
      "-0.0",
      "1e400",
      R"({"a":1,"b":[1,-2,"x",{},[]],"c":{"d":null,"e":false,"f":true}})",
      "[]",
      "{}",
      "0",
      "-7",
      R"({"b":1,"a":2})",
      R"({"a":1,"a":2})",
      "-0",
      "007",
      "123456789012345678",
      "1234567890123456789",
      "-999999999999999999",
      R"({"a":"q\"uote"})",
      R"(["\u0041"])",
      "1.5",
      "2e3",
      R"({"a":1} )",
      R"({"a":)",
      "[1,]",
      R"({"":0,"a":1})",
      "{\"k\":\"h\xc3\xa9\"}",
      "tru",
      "[1 ,2]",
      R"({"a":1,})",
      "\"unterminated"};
  std::mt19937_64 rng(3);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  for (int i = 0; i < 500; ++i) {
    job_record j;
    j.id = rng();
    j.state = static_cast<job_state>(pick(job_state_count));
    j.spec.kind = strings[pick(strings.size())];
    j.spec.queue = strings[pick(strings.size())];
    j.spec.payload = json_texts[pick(json_texts.size())];
    j.spec.priority = static_cast<std::int32_t>(rng());
    j.spec.run_at = static_cast<millis>(rng());
    j.spec.retry.backoff_coefficient = static_cast<double>(rng() % 1000) / 7.0;
    j.spec.retry.jitter = pick(2) ? 0.1 : 0.0;
    j.spec.recur.failure_backoff = 1e300;
    for (std::size_t r = 0, n = pick(3); r < n; ++r)
      j.spec.resources.push_back(
          {strings[pick(strings.size())], pick(2) ? lock_mode::shared : lock_mode::exclusive});
    j.spec.unique_key = strings[pick(strings.size())];
    j.spec.review_required = pick(2);
    j.submitted_at = static_cast<millis>(rng());
    j.due_at = static_cast<millis>(rng() % 4'000'000'000'000);
    j.requested_at = pick(2) ? 0 : static_cast<millis>(rng() % 4'000'000'000'000);
    j.attempts = static_cast<std::uint32_t>(rng());
    j.worker = strings[pick(strings.size())];
    j.lease_token = rng();
    j.cancel_requested_at = pick(2) ? 0 : static_cast<millis>(rng() % 4'000'000'000'000);
    j.last_end = static_cast<attempt_end>(pick(6));
    j.last_error = strings[pick(strings.size())];
    j.result = json_texts[pick(json_texts.size())];
    j.handover = pick(2) ? std::string() : json_texts[pick(json_texts.size())];
    j.detail = strings[pick(strings.size())];
    j.percent = static_cast<std::int32_t>(pick(102)) - 1;
    j.review_comment = strings[pick(strings.size())];
    j.reviewer = strings[pick(strings.size())];
    j.last_seq = rng();
    j.event_count = rng();
    auto now = static_cast<millis>(rng() % 4'000'000'000'000);
    BOOST_TEST(to_json_text(j, now) == dumped(j, now));
  }
}

// The compact-form check behind the fast paths of to_json_text and
// validate(): what it accepts must dump to itself; near misses are left to
// the parser.
BOOST_AUTO_TEST_CASE(canonical_json_is_recognized_only_when_it_dumps_to_itself) {
  for (const std::string text :
       {R"({"a":1,"b":[1,-2,"x",{},[]],"c":{"d":null,"e":false,"f":true}})", "[]", "{}", "0", "-7",
        "123456789012345678", "-999999999999999999", R"({"":0,"a":1})", R"("a/b")", "true"}) {
    BOOST_TEST(is_canonical_json(text), text);
    BOOST_TEST(json::parse(text).dump() == text);
  }
  for (const std::string& text :
       std::vector<std::string>{R"({"b":1,"a":2})",
                                R"({"a":1,"a":2})",
                                "-0",
                                "007",
                                "1234567890123456789",
                                "1.5",
                                "2e3",
                                R"({"a":"q\"uote"})",
                                R"(["\u0041"])",
                                R"({"a":1} )",
                                " 1",
                                R"({"a":)",
                                "[1,]",
                                "{\"k\":\"h\xc3\xa9\"}",
                                "tru",
                                "[1 ,2]",
                                R"({"a":1,})",
                                "\"unterminated",
                                "",
                                "-",
                                "nul",
                                "{\"a\" :1}",
                                "\"tab\there\"",
                                std::string(65, '[') + std::string(65, ']')})
    BOOST_TEST(!is_canonical_json(text), text);
  // Random compact dumps of random trees: accepted ones dump to themselves.
  std::mt19937_64 rng(11);
  std::function<json(int)> random_value = [&](int depth) -> json {
    switch (rng() % (depth > 3 ? 5 : 7)) {
      case 0:
        return nullptr;
      case 1:
        return rng() % 2 == 0;
      case 2:
        return static_cast<std::int64_t>(rng()) >> (rng() % 64);
      case 3:
        return std::string(1 + rng() % 3, static_cast<char>(' ' + rng() % 95));
      case 4:
        return static_cast<double>(rng() % 1000) / 8;
      case 5: {
        json a = json::array();
        for (auto n = rng() % 4; n > 0; --n) a.push_back(random_value(depth + 1));
        return a;
      }
      default: {
        json o = json::object();
        for (auto n = rng() % 4; n > 0; --n)
          o[std::string(1, static_cast<char>('a' + rng() % 26))] = random_value(depth + 1);
        return o;
      }
    }
  };
  int accepted = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto text = random_value(0).dump();
    if (!is_canonical_json(text)) continue;
    ++accepted;
    BOOST_TEST(json::parse(text).dump() == text);
  }
  BOOST_TEST(accepted > 500);  // the check is not trivially false
}

// The form the log keeps JSON text in: compact text comes back as it is,
// other JSON compacted, anything else refused.
BOOST_AUTO_TEST_CASE(compact_json_keeps_compact_text_and_compacts_the_rest) {
  BOOST_TEST(compact_json(R"({"a":[1,2],"b":null})").value() == R"({"a":[1,2],"b":null})");
  BOOST_TEST(compact_json("null").value() == "null");
  BOOST_TEST(compact_json(R"( { "b" : 2.50, "a" : "\u0041" } )").value() == R"({"a":"A","b":2.5})");
  BOOST_TEST(!compact_json("not json {").has_value());
  BOOST_TEST(!compact_json("").has_value());
}
