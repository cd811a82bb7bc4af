// A service that embeds jobsmith (docs/embedding.md): it registers two
// kinds, one with an on-accept hook, opens a data directory, subscribes to
// what the engine commits, submits one job of each, reviews the one that
// waits for review, and serves the HTTP API and dashboard over the same
// engine.
//
//   jobsmith-embedded [DATA_DIR] [--serve]
//
// Exits 0 when every step went as expected (the hook ran exactly once),
// else 1 with what it saw. With --serve it then serves http://127.0.0.1:7879
// until stdin closes (Enter or Ctrl-D); without it, it starts the server on
// a free port and stops it at once, and the engine goes on after that.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <variant>

#include <jobsmith/actors/engine.hpp>
#include <jobsmith/apps/server/server.hpp>

namespace {

using namespace std::chrono_literals;

/// Polls the engine until job `id` is in state `want` (10 s at most).
bool wait_for(jobsmith::engine& eng, jobsmith::job_id id, jobsmith::job_state want) {
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(5ms)) {
    auto view = eng.get(id);
    if (view && view->job.state == want) return true;
  }
  return false;
}

std::string state_of(jobsmith::engine& eng, jobsmith::job_id id) {
  auto view = eng.get(id);
  return view ? std::string{jobsmith::to_string(view->job.state)} : view.error().to_string();
}

int fail(const std::string& what) {
  std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data_dir = "./embedded-data";
  bool serve = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--serve") serve = true;
    else data_dir = arg;
  }

  jobsmith::engine_options opts;
  opts.data_dir = data_dir;

  // A handler per kind runs on the engine's worker threads: it gets the
  // payload, may log and report progress, and returns a result (JSON) or
  // a failure (retried by the job's retry policy).
  opts.handlers.add("thumbnail", [](jobsmith::job_context& ctx) {
    ctx.info("resizing " + ctx.payload());
    ctx.progress(50, "scaled");
    return jobsmith::outcome::success(R"({"width":128,"height":128})");
  });
  // A kind with an on-accept hook: it runs when a reviewer accepts a job
  // of this kind, before the acceptance is recorded (it must be idempotent:
  // docs/embedding.md).
  std::atomic<int> hook_runs{0};
  opts.handlers.add(
      "publish",
      [](jobsmith::job_context& ctx) {
        ctx.info("staged " + ctx.payload());
        return jobsmith::outcome::success(R"({"staged":true})");
      },
      [&hook_runs](jobsmith::job_id id, const std::string& payload, const std::string& result) {
        hook_runs.fetch_add(1);
        std::printf("on-accept hook: job %llu, payload %s, result %s\n",
                    static_cast<unsigned long long>(id), payload.c_str(), result.c_str());
      });

  auto opened = jobsmith::engine::open(std::move(opts));  // recovers from the log
  if (!opened) return fail("cannot open " + data_dir + ": " + opened.error().to_string());
  auto& eng = **opened;
  std::printf("engine open on %s: %llu event(s) replayed\n", data_dir.c_str(),
              static_cast<unsigned long long>(eng.recovered().events_replayed));

  // Every event committed from now on, in sequence order, on a thread of
  // the subscription's own.
  std::atomic<int> finished{0};
  auto subscription = eng.subscribe([&finished](const jobsmith::event& ev) {
    if (std::holds_alternative<jobsmith::job_succeeded>(ev.body)) finished.fetch_add(1);
  });

  jobsmith::job_submitted thumb;
  thumb.kind = "thumbnail";
  thumb.payload = R"({"image":"cat.png"})";
  jobsmith::job_submitted publish;
  publish.kind = "publish";
  publish.payload = R"({"article":42})";
  publish.review_required = true;  // waits in pending_review once it succeeded

  auto thumb_id = eng.submit(thumb);  // returns once the submission is fsynced
  auto publish_id = eng.submit(publish);
  if (!thumb_id || !publish_id)
    return fail("submit: " + (thumb_id ? publish_id.error() : thumb_id.error()).to_string());
  std::printf("submitted thumbnail job %llu and publish job %llu\n",
              static_cast<unsigned long long>(*thumb_id),
              static_cast<unsigned long long>(*publish_id));

  if (!wait_for(eng, *thumb_id, jobsmith::job_state::succeeded))
    return fail("thumbnail job is " + state_of(eng, *thumb_id) + ", not succeeded");
  if (!wait_for(eng, *publish_id, jobsmith::job_state::pending_review))
    return fail("publish job is " + state_of(eng, *publish_id) + ", not pending_review");
  std::printf("thumbnail job: %s; publish job: %s\n", state_of(eng, *thumb_id).c_str(),
              state_of(eng, *publish_id).c_str());
  if (hook_runs.load() != 0)
    return fail("the hook ran " + std::to_string(hook_runs.load()) + " time(s) before the review");

  auto reviewed = eng.review(*publish_id, /*accept=*/true, "looks right", "editor");
  if (!reviewed) return fail("review: " + reviewed.error().to_string());
  std::printf("publish job reviewed: %s\n", std::string{jobsmith::to_string(reviewed->state)}.c_str());
  if (reviewed->state != jobsmith::job_state::accepted)
    return fail("the reviewed job is not accepted");
  if (hook_runs.load() != 1)
    return fail("the hook ran " + std::to_string(hook_runs.load()) + " time(s), not once");

  // Events reach a subscriber just after they are committed.
  for (int i = 0; i < 2000 && finished.load() < 2; ++i) std::this_thread::sleep_for(5ms);
  if (finished.load() != 2)
    return fail("the subscription saw " + std::to_string(finished.load()) +
                " job.succeeded event(s), not 2");
  std::printf("the subscription saw both job.succeeded events\n");

  // The publish job's whole history, as the log holds it.
  auto view = eng.get(*publish_id);
  if (!view) return fail("get: " + view.error().to_string());
  for (const auto& ev : view->history)
    std::printf("  seq %-3llu %-14s by %s\n", static_cast<unsigned long long>(ev.seq),
                std::string{jobsmith::type_name(ev.body)}.c_str(), ev.principal.c_str());

  // The HTTP API and dashboard over the same engine, in-process: jobs
  // submitted over HTTP run on the handlers above.
  jobsmith::server::server_config cfg;
  cfg.port = serve ? 7879 : 0;  // 0: any free port
  {
    jobsmith::server::server http{cfg, eng};
    if (auto err = http.start(); !err.empty()) return fail("serve: " + err);
    std::printf("serving http://127.0.0.1:%u/\n", static_cast<unsigned>(http.port()));
    if (serve) {
      std::printf("press Enter to stop\n");
      std::string line;
      std::getline(std::cin, line);
    }
  }  // stop(): the engine stays open

  auto after = eng.submit(thumb);
  if (!after || !wait_for(eng, *after, jobsmith::job_state::succeeded))
    return fail("the engine did not run a job after the server stopped");
  std::printf("after the server stopped, job %llu: %s\n",
              static_cast<unsigned long long>(*after), state_of(eng, *after).c_str());
  std::printf("ok: the on-accept hook ran once\n");
  return 0;  // the engine closes as `opened` goes
}
