// An example of embedding jobsmith in a service: register a handler per
// kind, open a data directory, subscribe to events, submit jobs, wait for
// them, read a job's history. Built as `jobsmith-example`.
//
//   build/apps/jobsmith-example ./example-data
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>

#include "actors/engine.hpp"
#include "events/json.hpp"

int main(int argc, char** argv) {
  using namespace jobsmith;
  engine_options opts;
  opts.data_dir = argc > 1 ? argv[1] : "./example-data";

  // A handler gets the payload, logs for people, reports progress and
  // returns a result (JSON) or a failure (retried by the job's policy).
  opts.handlers.add("thumbnail", [](job_context& ctx) {
    ctx.info("resizing " + ctx.payload());
    ctx.progress(50, "scaled");
    if (ctx.attempt() == 1 && ctx.payload().find("flaky") != std::string::npos)
      return outcome::retry("storage briefly unavailable");
    return outcome::success(R"({"width":128,"height":128})");
  });

  auto opened = engine::open(std::move(opts));
  if (!opened) {
    std::fprintf(stderr, "cannot open: %s\n", opened.error().to_string().c_str());
    return 1;
  }
  auto& eng = *opened.value();

  std::mutex mu;
  std::condition_variable cv;
  std::set<job_id> done;
  auto sub = eng.subscribe([&](const event& ev) {
    if (std::holds_alternative<job_succeeded>(ev.body)) {
      std::lock_guard<std::mutex> g{mu};
      done.insert(ev.job);
      cv.notify_all();
    }
  });

  std::vector<job_submitted> jobs(2);
  jobs[0].kind = jobs[1].kind = "thumbnail";
  jobs[0].payload = R"({"image":"cat.png"})";
  jobs[1].payload = R"({"image":"flaky.png"})";
  jobs[1].retry.initial_interval = 10;
  auto ids = eng.submit_many(jobs);  // returns once both are fsynced
  if (!ids) {
    std::fprintf(stderr, "submit: %s\n", ids.error().to_string().c_str());
    return 1;
  }
  {
    std::unique_lock<std::mutex> lock{mu};
    cv.wait_for(lock, std::chrono::seconds(10), [&] {
      return done.count(ids->at(0)) && done.count(ids->at(1));
    });
  }
  sub.cancel();

  for (auto id : *ids) {
    auto view = eng.get(id);
    if (!view) continue;
    std::printf("job %llu: %s after %u attempt(s), result %s\n",
                static_cast<unsigned long long>(id), std::string{to_string(view->job.state)}.c_str(),
                view->job.attempts, view->job.result.c_str());
    for (auto& ev : view->history) std::printf("  %s\n", to_json(ev).dump().c_str());
  }
  return 0;
}
