#define BOOST_TEST_MODULE actors_kinds
#include <boost/test/unit_test.hpp>

// Registered kinds through the embedding facade, over a real RocksDB log:
// an accepted review submits the kind's on-accept follow-up in the same
// commit, exactly once; a payload that breaks its kind's schema is refused
// and writes nothing; the settings survive restarts (full replay and
// snapshot).

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/engine.hpp"
#include "tests/actors/print.hpp"
#include "tests/test_support.hpp"

using namespace jobsmith;
using namespace jobsmith::test;

namespace {

/// What the "publish" handler saw: payloads by the job that ran them.
struct published {
  std::mutex mu;
  std::map<job_id, std::string> payloads;
  std::size_t size() {
    std::lock_guard lock(mu);
    return payloads.size();
  }
};

struct hook_switch {
  bool fail_next = false;
};

/// "import" jobs succeed with {"rows":3} and need review; "publish" jobs
/// record their payload.
std::unique_ptr<engine> open_engine(const temp_dir& dir, published& seen, hook_switch* hook = nullptr,
                                    std::uint64_t snapshot_every = 0) {
  engine_options opts;
  opts.data_dir = dir.path();
  opts.snapshot_every = snapshot_every;
  accept_hook on_accept;
  if (hook)
    on_accept = [hook](job_id, const std::string&, const std::string&) {
      if (hook->fail_next) {
        hook->fail_next = false;
        throw std::runtime_error("staging area locked");
      }
    };
  opts.handlers.add(
      "import", [](job_context&) { return outcome::success(R"({"rows":3})"); }, on_accept);
  opts.handlers.add("publish", [&seen](job_context& ctx) {
    std::lock_guard lock(seen.mu);
    seen.payloads[ctx.id()] = ctx.payload();
    return outcome::success();
  });
  auto opened = engine::open(std::move(opts));
  BOOST_REQUIRE_MESSAGE(opened.ok(), why(opened));
  return std::move(opened.value());
}

void register_follow_up(engine& eng) {
  auto set = eng.configure_kind(kind_configured{"import", "publish", ""}, "user:admin");
  BOOST_REQUIRE_MESSAGE(set.ok(), why(set));
}

job_view view_of(engine& eng, job_id id) {
  auto view = eng.get(id);
  BOOST_REQUIRE_MESSAGE(view.ok(), why(view));
  return *view;
}

/// An import job, pending review when this returns.
job_id pending_import(engine& eng, const std::string& payload = R"({"file":"a.csv"})") {
  job_submitted spec;
  spec.kind = "import";
  spec.queue = "imports";
  spec.priority = 4;
  spec.payload = payload;
  spec.review_required = true;
  auto id = eng.submit(spec);
  BOOST_REQUIRE_MESSAGE(id.ok(), why(id));
  BOOST_REQUIRE(wait_until([&] { return view_of(eng, *id).job.state == job_state::pending_review; }));
  return *id;
}

/// The job the acceptance of `reviewed` submitted (from its job.reviewed).
job_id follow_up_of(engine& eng, job_id reviewed) {
  for (const auto& ev : view_of(eng, reviewed).history)
    if (auto r = std::get_if<job_reviewed>(&ev.body)) return r->follow_up;
  return 0;
}

std::size_t job_count(engine& eng) {
  auto all = eng.list(job_filter{});
  BOOST_REQUIRE_MESSAGE(all.ok(), why(all));
  return all->size();
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_accept_submits_the_follow_up_with_the_acceptance_and_it_runs_once) {
  temp_dir dir;
  published seen;
  auto eng = open_engine(dir, seen);
  register_follow_up(*eng);
  auto id = pending_import(*eng);
  auto accepted = eng->review(id, true, "rows look right", "user:ana");
  BOOST_REQUIRE_MESSAGE(accepted.ok(), why(accepted));

  auto follow = follow_up_of(*eng, id);
  BOOST_REQUIRE(follow != 0);
  auto reviewed = view_of(*eng, id);
  auto submitted = view_of(*eng, follow);
  // One commit: the acceptance and the follow-up's submission are
  // neighbours in the log, at the same time, by the same principal.
  const auto& review_ev = reviewed.history.back();
  const auto& submit_ev = submitted.history.front();
  BOOST_TEST(std::holds_alternative<job_reviewed>(review_ev.body));
  BOOST_TEST(submit_ev.seq == review_ev.seq + 1);
  BOOST_TEST(submit_ev.time == review_ev.time);
  BOOST_TEST(submit_ev.principal == "user:ana");

  const auto& spec = submitted.job.spec;
  BOOST_TEST(spec.kind == "publish");
  BOOST_TEST(spec.queue == "imports");
  BOOST_TEST(spec.priority == 4);
  BOOST_TEST(spec.follows == id);
  BOOST_TEST(spec.unique_key == "on-accept:" + std::to_string(id));
  auto payload = nlohmann::json::parse(spec.payload);
  BOOST_TEST(payload["job"] == id);
  BOOST_TEST(payload["payload"] == nlohmann::json::parse(R"({"file":"a.csv"})"));
  BOOST_TEST(payload["result"] == nlohmann::json::parse(R"({"rows":3})"));

  BOOST_REQUIRE(wait_until([&] { return view_of(*eng, follow).job.state == job_state::succeeded; }));
  BOOST_TEST(seen.size() == 1u);
  // A second accept is refused: the job is accepted already.
  BOOST_TEST(!eng->review(id, true).ok());
  BOOST_TEST(job_count(*eng) == 2u);
}

BOOST_AUTO_TEST_CASE(a_decline_submits_nothing) {
  temp_dir dir;
  published seen;
  auto eng = open_engine(dir, seen);
  register_follow_up(*eng);
  auto id = pending_import(*eng);
  auto declined = eng->review(id, false, "wrong rows");
  BOOST_REQUIRE_MESSAGE(declined.ok(), why(declined));
  BOOST_TEST(follow_up_of(*eng, id) == 0u);
  BOOST_TEST(job_count(*eng) == 1u);
}

BOOST_AUTO_TEST_CASE(a_kind_without_a_follow_up_submits_nothing_on_accept) {
  temp_dir dir;
  published seen;
  auto eng = open_engine(dir, seen);
  auto id = pending_import(*eng);
  BOOST_REQUIRE(eng->review(id, true).ok());
  BOOST_TEST(follow_up_of(*eng, id) == 0u);
  BOOST_TEST(job_count(*eng) == 1u);
}

BOOST_AUTO_TEST_CASE(a_hook_that_throws_submits_no_follow_up_and_a_later_accept_submits_one) {
  temp_dir dir;
  published seen;
  hook_switch hook;
  auto eng = open_engine(dir, seen, &hook);
  register_follow_up(*eng);
  auto id = pending_import(*eng);
  hook.fail_next = true;
  auto refused = eng->review(id, true);
  BOOST_REQUIRE(!refused.ok());
  BOOST_TEST(refused.error().code == engine_errc::rejected);
  BOOST_TEST(job_count(*eng) == 1u);
  // The follow-up's key was given back: the next accept submits it.
  auto accepted = eng->review(id, true);
  BOOST_REQUIRE_MESSAGE(accepted.ok(), why(accepted));
  auto follow = follow_up_of(*eng, id);
  BOOST_TEST(follow != 0u);
  BOOST_TEST(job_count(*eng) == 2u);
}

BOOST_AUTO_TEST_CASE(kind_settings_survive_restarts_by_replay_and_by_snapshot) {
  temp_dir dir;
  published seen;
  // In the compact form the engine stores JSON in (keys sorted).
  const std::string schema = R"({"required":["file"],"type":"object"})";
  {
    auto eng = open_engine(dir, seen);
    auto set = eng->configure_kind(kind_configured{"import", "publish", schema});
    BOOST_REQUIRE_MESSAGE(set.ok(), why(set));
  }
  for (std::uint64_t snapshot_every : {0u, 1u}) {
    BOOST_TEST_CONTEXT("snapshot_every " << snapshot_every) {
      auto eng = open_engine(dir, seen, nullptr, snapshot_every);
      if (snapshot_every == 0) BOOST_TEST(eng->recovered().snapshot_seq == 0u);
      auto kinds = eng->kinds();
      BOOST_REQUIRE(kinds.count("import") == 1u);
      BOOST_TEST(kinds.at("import").on_accept == "publish");
      BOOST_TEST(kinds.at("import").schema == schema);
      job_submitted bad;
      bad.kind = "import";
      bad.payload = R"({"rows":1})";
      BOOST_TEST(!eng->submit(bad).ok());
      auto id = pending_import(*eng);
      BOOST_REQUIRE(eng->review(id, true).ok());
      BOOST_TEST(follow_up_of(*eng, id) != 0u);
    }
  }
  // The second open wrote a snapshot at close: the third starts from it.
  auto eng = open_engine(dir, seen, nullptr, 1);
  BOOST_TEST(eng->recovered().snapshot_seq != 0u);
  BOOST_TEST(eng->kinds().at("import").on_accept == "publish");
  auto id = pending_import(*eng);
  BOOST_REQUIRE(eng->review(id, true).ok());
  BOOST_TEST(follow_up_of(*eng, id) != 0u);
}

BOOST_AUTO_TEST_CASE(a_payload_that_breaks_its_schema_is_refused_naming_where_and_why) {
  temp_dir dir;
  published seen;
  auto eng = open_engine(dir, seen);
  auto set = eng->configure_kind(kind_configured{
      "import", "",
      R"({"type":"object","properties":{"builder":{"type":"string"}},"required":["builder"]})"});
  BOOST_REQUIRE_MESSAGE(set.ok(), why(set));
  auto head = eng->head();

  job_submitted spec;
  spec.kind = "import";
  spec.payload = R"({"builder":42})";
  auto refused = eng->submit(spec);
  BOOST_REQUIRE(!refused.ok());
  BOOST_TEST(refused.error().code == engine_errc::invalid_argument);
  BOOST_TEST(refused.error().message.find("schema of kind 'import'") != std::string::npos,
             refused.error().message);
  BOOST_TEST(refused.error().message.find("at /builder") != std::string::npos,
             refused.error().message);
  BOOST_TEST(refused.error().message.find("type") != std::string::npos, refused.error().message);

  spec.payload = R"("not an object")";
  BOOST_TEST(!eng->submit(spec).ok());
  // A batch is all or nothing: one bad payload refuses the good one too.
  job_submitted good = spec;
  good.payload = R"({"builder":"linux"})";
  auto batch = eng->submit_many({good, spec});
  BOOST_REQUIRE(!batch.ok());
  BOOST_TEST(batch.error().message.find("jobs[1]") != std::string::npos, batch.error().message);
  BOOST_TEST(eng->head() == head);

  auto ok = eng->submit(good);
  BOOST_TEST(ok.ok(), why(ok));
  // Other kinds are not checked.
  job_submitted other;
  other.kind = "publish";
  other.payload = R"("anything")";
  BOOST_TEST(eng->submit(other).ok());
}

BOOST_AUTO_TEST_CASE(a_schema_that_does_not_compile_is_refused_when_the_kind_is_configured) {
  temp_dir dir;
  published seen;
  auto eng = open_engine(dir, seen);
  auto head = eng->head();
  for (const std::string schema :
       {R"({"type":"no-such-type"})", R"([1,2])", R"({"$ref":"http://example.com/s.json"})",
        R"({"minLength":-1})", "{not json"}) {
    BOOST_TEST_CONTEXT(schema) {
      auto refused = eng->configure_kind(kind_configured{"import", "", schema});
      BOOST_REQUIRE(!refused.ok());
      BOOST_TEST(refused.error().code == engine_errc::invalid_argument);
    }
  }
  // An on-accept kind with no handler here (allow_unknown_kinds is off).
  auto unknown = eng->configure_kind(kind_configured{"import", "no-handler", ""});
  BOOST_REQUIRE(!unknown.ok());
  BOOST_TEST(unknown.error().code == engine_errc::unknown_kind);
  BOOST_TEST(eng->head() == head);
  BOOST_TEST(eng->kinds().empty());
}

BOOST_AUTO_TEST_CASE(unregistering_a_kind_drops_its_schema_and_follow_up) {
  temp_dir dir;
  published seen;
  auto eng = open_engine(dir, seen);
  BOOST_REQUIRE(eng->configure_kind(kind_configured{"import", "publish", R"({"type":"object"})"}).ok());
  BOOST_REQUIRE(eng->configure_kind(kind_configured{"import", "", ""}).ok());
  BOOST_TEST(eng->kinds().empty());
  job_submitted spec;
  spec.kind = "import";
  spec.payload = "7";
  BOOST_TEST(eng->submit(spec).ok());
  auto id = pending_import(*eng);
  BOOST_REQUIRE(eng->review(id, true).ok());
  BOOST_TEST(follow_up_of(*eng, id) == 0u);
}

// valijson matches `pattern` and `format` with std::regex, which recursed
// once per character and overflowed the stack on a 30 KB string (the
// process died). Such strings are refused instead, and shorter ones are
// checked as usual.
BOOST_AUTO_TEST_CASE(a_long_string_under_a_pattern_is_refused_not_matched) {
  temp_dir dir;
  published seen;
  auto eng = open_engine(dir, seen);
  auto set = eng->configure_kind(
      kind_configured{"import", "", R"({"properties":{"s":{"pattern":"^(a|b)*$"}}})"});
  BOOST_REQUIRE_MESSAGE(set.ok(), why(set));
  job_submitted spec;
  spec.kind = "import";
  spec.payload = R"({"s":")" + std::string(30'000, 'a') + R"("})";
  auto refused = eng->submit(spec);
  BOOST_REQUIRE(!refused.ok());
  BOOST_TEST(refused.error().message.find("at /s: a string longer than 4096 bytes") !=
                 std::string::npos,
             refused.error().message);
  spec.payload = R"({"s":")" + std::string(4'000, 'a') + R"("})";
  BOOST_TEST(eng->submit(spec).ok());
  spec.payload = R"({"s":")" + std::string(4'000, 'c') + R"("})";
  BOOST_TEST(!eng->submit(spec).ok());
}
