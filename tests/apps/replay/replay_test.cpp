// `jobsmith replay` over a data directory a real engine wrote: the queue at
// a chosen sequence is what the live engine reported at that moment (who
// runs, who holds a lock and who waits for it, a paused queue, the counts),
// the queue at the end is the engine's final state, and --job prints the
// timeline.
#define BOOST_TEST_MODULE apps_replay
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <memory>

#include <nlohmann/json.hpp>

#include "actors/engine.hpp"
#include "events/time_text.hpp"
#include "tests/test_support.hpp"

using namespace jobsmith;
using namespace jobsmith::test;
using json = nlohmann::json;

namespace {

command_result replay(std::vector<std::string> args) {
  args.insert(args.begin(), {JOBSMITH_BINARY, "replay"});
  return run_command(args);
}

json replay_json(std::vector<std::string> args) {
  args.push_back("--json");
  auto r = replay(args);
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, "replay failed: " << r.err);
  return json::parse(r.out);
}

job_id submit(engine& eng, job_submitted s) {
  auto id = eng.submit(std::move(s));
  BOOST_REQUIRE_MESSAGE(id.ok(), why(id));
  return *id;
}

millis wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

job_state state_of(engine& eng, job_id id) {
  auto v = eng.get(id);
  BOOST_REQUIRE_MESSAGE(v.ok(), why(v));
  return effective_state(v->job, std::numeric_limits<millis>::max());
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_queue_at_a_past_sequence_is_what_the_engine_reported_then) {
  temp_dir dir;
  gate release;
  engine_options opts;
  opts.data_dir = dir.sub("data");
  opts.worker_threads = 2;
  opts.handlers.add("chart", [&](job_context&) {
    release.wait();
    return outcome::success(R"({"rows":3})");
  });
  opts.handlers.add("mail", [](job_context&) { return outcome::success(); });
  auto opened = engine::open(std::move(opts));
  BOOST_REQUIRE_MESSAGE(opened.ok(), why(opened));
  auto& eng = **opened;

  job_submitted chart;
  chart.kind = "chart";
  chart.resources = {{"db:charts", lock_mode::exclusive}};
  const job_id holder = submit(eng, chart);
  BOOST_REQUIRE(wait_until([&] { return state_of(eng, holder) == job_state::running; }));
  const job_id waiter = submit(eng, chart);
  BOOST_REQUIRE(eng.pause("mail").ok());
  job_submitted mail;
  mail.kind = "mail";
  mail.queue = "mail";
  const job_id held_back = submit(eng, mail);
  BOOST_REQUIRE(wait_until([&] {
    auto e = eng.explain(waiter);
    return e.ok() && e->phase == "locking";
  }));

  // The moment to compare: nothing moves while the holder waits at the gate.
  const sequence_t then = eng.metrics().head;
  auto live_counts = eng.counts();
  BOOST_REQUIRE(live_counts.ok());

  release.open();
  BOOST_REQUIRE(wait_until([&] { return state_of(eng, waiter) == job_state::succeeded; }));
  eng.close();

  json at = replay_json({"--data", dir.sub("data"), "--at", std::to_string(then)});
  BOOST_TEST(at["seq"].get<sequence_t>() == then);
  for (int i = 0; i < job_state_count; ++i) {
    auto name = std::string(to_string(static_cast<job_state>(i)));
    BOOST_TEST(at["counts"][name].get<std::size_t>() == (*live_counts)[static_cast<std::size_t>(i)],
               name);
  }
  BOOST_REQUIRE_EQUAL(at["running"].size(), 1u);
  BOOST_TEST(at["running"][0]["id"].get<job_id>() == holder);
  BOOST_TEST(at["running"][0]["worker"].get<std::string>().empty() == false);
  BOOST_REQUIRE_EQUAL(at["resources"].size(), 1u);
  BOOST_TEST(at["resources"][0]["name"] == "db:charts");
  BOOST_TEST(at["resources"][0]["holders"][0]["job"].get<job_id>() == holder);
  BOOST_TEST(at["resources"][0]["waiters"][0]["job"].get<job_id>() == waiter);
  std::map<job_id, std::string> why_ready;
  for (auto& r : at["ready"]) why_ready[r["id"].get<job_id>()] = r["why"].get<std::string>();
  BOOST_TEST(why_ready[waiter] == "waiting for db:charts held by job " + std::to_string(holder));
  BOOST_TEST(why_ready[held_back] == "queue 'mail' is paused");

  // At the head: both charts done, the mail job still held back.
  json now = replay_json({"--data", dir.sub("data")});
  BOOST_TEST(now["counts"]["succeeded"].get<int>() == 2);
  BOOST_TEST(now["counts"]["queued"].get<int>() == 1);
  BOOST_TEST(now["running"].empty());

  // Before the first event: nothing.
  json before = replay_json({"--data", dir.sub("data"), "--at", "2001-01-01T00:00:00Z"});
  BOOST_TEST(before["jobs"].get<int>() == 0);

  // One job's timeline, as text and as JSON.
  auto text = replay({"--data", dir.sub("data"), "--job", std::to_string(waiter)});
  BOOST_REQUIRE_MESSAGE(text.exit_code == 0, text.err);
  for (const char* type : {"job.submitted", "job.started", "job.succeeded"})
    BOOST_TEST(text.out.find(type) != std::string::npos, type << " in\n" << text.out);
  BOOST_TEST(text.out.find("locks db:charts") != std::string::npos, text.out);
  json job = replay_json({"--data", dir.sub("data"), "--job", std::to_string(holder)});
  BOOST_TEST(job["job"]["state"] == "succeeded");
  BOOST_TEST(job["job"]["result"]["rows"].get<int>() == 3);
  BOOST_TEST(job["history"].size() == 3u);
}

BOOST_AUTO_TEST_CASE(the_queue_at_any_point_is_the_same_from_a_snapshot_as_from_sequence_1) {
  temp_dir dir;
  std::vector<std::pair<sequence_t, millis>> moments;  // (head, its time) along the run
  {
    engine_options opts;
    opts.data_dir = dir.sub("data");
    opts.snapshot_every = 25;
    opts.snapshots_kept = 4;
    opts.handlers.add("ok", [](job_context& ctx) {
      return ctx.attempt() < 2 ? outcome::retry("first try fails") : outcome::success();
    });
    auto opened = engine::open(std::move(opts));
    BOOST_REQUIRE_MESSAGE(opened.ok(), why(opened));
    auto& eng = **opened;
    job_submitted later;
    later.kind = "ok";
    later.run_at = wall_now_ms() + 3'600'000;
    submit(eng, later);
    for (int round = 0; round < 6; ++round) {
      std::vector<job_id> ids;
      for (int i = 0; i < 8; ++i) {
        job_submitted s;
        s.kind = "ok";
        s.retry.max_attempts = 3;
        s.retry.initial_interval = 1;
        ids.push_back(submit(eng, s));
      }
      for (auto id : ids)
        BOOST_REQUIRE(wait_until([&] { return state_of(eng, id) == job_state::succeeded; }));
      moments.push_back({eng.metrics().head, wall_now_ms()});
    }
  }
  // Snapshot or not, every point reads the same (but how it was folded).
  bool used_a_snapshot = false;
  for (auto [seq, time] : moments) {
    for (std::string at : {std::to_string(seq), std::to_string(seq - 3), format_time(time)}) {
      json fast = replay_json({"--data", dir.sub("data"), "--at", at});
      json full = replay_json({"--data", dir.sub("data"), "--at", at, "--full"});
      BOOST_TEST(full["replay"]["from_snapshot"].get<sequence_t>() == 0u);
      used_a_snapshot |= fast["replay"]["from_snapshot"].get<sequence_t>() != 0;
      fast.erase("replay");
      full.erase("replay");
      BOOST_TEST(fast == full, "--at " << at << ":\n" << fast.dump() << "\n" << full.dump());
    }
  }
  BOOST_TEST(used_a_snapshot);
}

BOOST_AUTO_TEST_CASE(retired_jobs_leave_the_replayed_queue_when_they_left_the_live_one) {
  temp_dir dir;
  constexpr millis hour = 3'600'000;
  auto offset = std::make_shared<std::atomic<millis>>(0);  // the engine's clock, moved by hand
  millis half_way = 0, after = 0;
  std::vector<std::size_t> live_half_way, live_after;
  std::uint64_t retired_after = 0;
  job_id first = 0;
  {
    engine_options opts;
    opts.data_dir = dir.sub("data");
    opts.clock = [offset] { return wall_now_ms() + offset->load(); };
    opts.retention = retention_policy{hour, 2 * hour};
    opts.handlers.add("ok", [](job_context&) { return outcome::success(); });
    opts.handlers.add("bad", [](job_context&) { return outcome::permanent("no"); });
    auto opened = engine::open(std::move(opts));
    BOOST_REQUIRE_MESSAGE(opened.ok(), why(opened));
    auto& eng = **opened;
    job_submitted ok;
    ok.kind = "ok";
    job_submitted bad;
    bad.kind = "bad";
    first = submit(eng, ok);
    const job_id failed = submit(eng, bad);
    BOOST_REQUIRE(wait_until([&] {
      return state_of(eng, first) == job_state::succeeded &&
             state_of(eng, failed) == job_state::discarded;
    }));
    offset->fetch_add(hour / 2);
    half_way = wall_now_ms() + offset->load();
    live_half_way = *eng.counts();
    offset->fetch_add(hour);  // the success is retired, the failure not yet
    after = wall_now_ms() + offset->load();
    live_after = *eng.counts();
    auto queues = eng.queue_counts();
    BOOST_REQUIRE(queues.ok() && queues->size() == 1u);
    retired_after = queues->front().retired;
    auto gone = eng.get(first);
    BOOST_REQUIRE(!gone.ok());
    BOOST_TEST(to_string(gone.error().code) == "retired");
    BOOST_TEST(eng.get(failed).ok());
    eng.close();
  }
  BOOST_TEST(live_half_way[static_cast<std::size_t>(job_state::succeeded)] == 1u);
  BOOST_TEST(live_after[static_cast<std::size_t>(job_state::succeeded)] == 0u);
  BOOST_TEST(live_after[static_cast<std::size_t>(job_state::discarded)] == 1u);
  BOOST_TEST(retired_after == 1u);
  for (auto [moment, live] : {std::pair{half_way, live_half_way}, std::pair{after, live_after}}) {
    json at = replay_json({"--data", dir.sub("data"), "--at", format_time(moment)});
    for (int i = 0; i < job_state_count; ++i) {
      auto name = std::string(to_string(static_cast<job_state>(i)));
      BOOST_TEST(at["counts"][name].get<std::size_t>() == live[static_cast<std::size_t>(i)],
                 name << " at " << format_time(moment));
    }
  }
  json at = replay_json({"--data", dir.sub("data"), "--at", format_time(after)});
  BOOST_TEST(at["queues"][0]["retired"] == 1);
  // The retired job's whole timeline is still one command.
  json job = replay_json({"--data", dir.sub("data"), "--job", std::to_string(first)});
  BOOST_TEST(job["job"]["state"] == "succeeded");
  BOOST_TEST(job["history"].size() == 3u);
}

BOOST_AUTO_TEST_CASE(bad_arguments_get_a_clear_error) {
  temp_dir dir;
  auto missing = replay({"--data", dir.sub("nothing-here")});
  BOOST_TEST(missing.exit_code == 2);
  BOOST_TEST(missing.err.find("nothing-here") != std::string::npos, missing.err);

  {
    engine_options opts;
    opts.data_dir = dir.sub("data");
    auto eng = engine::open(std::move(opts));
    BOOST_REQUIRE(eng.ok());
  }
  auto bad_at = replay({"--data", dir.sub("data"), "--at", "last tuesday"});
  BOOST_TEST(bad_at.exit_code == 2);
  BOOST_TEST(bad_at.err.find("--at last tuesday: expected a sequence number") != std::string::npos,
             bad_at.err);
  auto no_job = replay({"--data", dir.sub("data"), "--job", "12345"});
  BOOST_TEST(no_job.exit_code == 1);
  BOOST_TEST(no_job.err.find("job 12345 has no events") != std::string::npos, no_job.err);
}
