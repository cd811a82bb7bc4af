// Writes the seed corpora of the fuzz targets from real encodings:
//   <dir>/fuzz_event_decoder/     every event type, encoded (events/codec.hpp)
//   <dir>/fuzz_snapshot_decoder/  queue view snapshots of folded runs
// The API target's seeds are hand-written requests (tests/fuzz/corpus/
// fuzz_api_request/). The committed corpus is what this wrote once; rerun it
// only to refresh the seeds after a format change:
//   cmake --build build-fuzz --target fuzz_make_seeds
//   build-fuzz/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "events/codec.hpp"
#include "events/job_state.hpp"
#include "projections/queue_view.hpp"

namespace jobsmith::test {
std::vector<event> sample_events();  // tests/events/sample_events.cpp
}

namespace {

using namespace jobsmith;
namespace fs = std::filesystem;

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::vector<event> edge_events() {
  std::vector<event> out;
  auto add = [&](event_body body, millis time, std::string principal) {
    event ev;
    ev.time = time;
    ev.principal = std::move(principal);
    ev.body = std::move(body);
    out.push_back(std::move(ev));
  };
  // Every type with default fields.
  for (std::size_t i = 0; i < event_type_count; ++i) {
    event_body body;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((I == i ? (void)body.emplace<I>() : (void)0), ...);
    }(std::make_index_sequence<event_type_count>{});
    add(std::move(body), 0, "");
  }
  // Extremes: largest and smallest integers, a NaN and an infinity.
  job_submitted big;
  big.kind = "k";
  big.priority = std::numeric_limits<std::int32_t>::min();
  big.run_at = std::numeric_limits<millis>::max();
  big.retry = retry_policy{std::numeric_limits<std::uint32_t>::max(), -1,
                           std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<millis>::min(),
                           std::numeric_limits<double>::infinity()};
  big.schedule = std::numeric_limits<std::uint64_t>::max();
  big.resources.assign(3, resource_claim{"r", lock_mode::exclusive});
  add(big, std::numeric_limits<millis>::min(), std::string(300, 'p'));
  add(job_started{std::numeric_limits<std::uint32_t>::max(), "w",
                  std::numeric_limits<std::uint64_t>::max()},
      -1, "worker:w");
  add(job_progress{1, "", -1, {{log_level::info, 0, ""}, {log_level::error, -1, "x"}}}, 1, "w");
  return out;
}

// A deterministic run folded into a queue view; snapshots along the way.
void snapshots(const fs::path& dir) {
  std::mt19937_64 rng(20261123);
  auto pick = [&](std::uint64_t n) {
    return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng);
  };
  queue_view view;
  std::map<job_id, job_record> jobs;
  sequence_t seq = 0;
  millis now = 1'790'000'000'000;
  int written = 0;
  write(dir, "empty", view.encode());
  auto fold = [&](job_id id, event_body body) {
    event ev{++seq, id, now, "seed", std::move(body)};
    if (id != 0) apply(jobs[id], ev);
    view.apply(ev);
  };
  static const char* queues[] = {"default", "mail", "reports"};
  static const char* resources[] = {"db:charts", "db:users", "s3:bucket"};
  for (int step = 0; step < 400; ++step) {
    now += static_cast<millis>(pick(2000));
    const auto roll = pick(20);
    if (roll < 5 || jobs.empty()) {
      job_submitted s;
      s.kind = pick(2) ? "resize" : "email";
      s.queue = queues[pick(3)];
      s.priority = static_cast<std::int32_t>(pick(5)) - 2;
      s.run_at = pick(3) == 0 ? now + static_cast<millis>(pick(10'000)) : 0;
      s.retry.max_attempts = static_cast<std::uint32_t>(1 + pick(3));
      s.review_required = pick(5) == 0;
      for (int i = 0, n = static_cast<int>(pick(3)); i < n; ++i)
        s.resources.push_back({resources[pick(3)], pick(2) ? lock_mode::shared : lock_mode::exclusive});
      if (pick(8) == 0) s.schedule = 1 + pick(3);
      // Mostly dense ids, a few far ones (the view keeps those apart).
      const job_id id = pick(15) == 0 ? 1'000'000'000 + jobs.size() : jobs.size() + 1;
      fold(id, s);
    } else if (roll == 5) {
      switch (pick(5)) {
        case 0: fold(0, queue_paused{queues[pick(3)]}); break;
        case 1: fold(0, queue_resumed{queues[pick(3)]}); break;
        case 2: fold(0, queue_configured{queues[pick(3)], static_cast<std::uint32_t>(pick(3))}); break;
        case 3: fold(0, schedule_created{1 + pick(3), jobs.begin()->first}); break;
        default: fold(0, schedule_deleted{1 + pick(3), "gone"}); break;
      }
    } else {
      auto it = jobs.begin();
      std::advance(it, static_cast<long>(pick(jobs.size())));
      job_record& rec = it->second;
      job_command cmd;
      switch (pick(6)) {
        case 0: cmd = cmd_start{"worker-" + std::to_string(pick(3)), 1 + pick(1u << 20)}; break;
        case 1: cmd = cmd_succeed{rec.lease_token, "{\"ok\":true}"}; break;
        case 2: cmd = cmd_fail{rec.lease_token, "boom", pick(3) != 0, "", 0.5}; break;
        case 3: cmd = cmd_reclaim{"heartbeat missed", 0.5}; break;
        case 4: cmd = cmd_cancel{"by hand"}; break;
        default: cmd = cmd_review{pick(2) == 0, "ok"}; break;
      }
      auto d = decide(rec, cmd, now);
      if (d.ok())
        for (auto& body : d.events) fold(rec.id, std::move(body));
    }
    if (step == 1 || step == 3 || step == 10 || step % 60 == 30)
      write(dir, "run-" + std::to_string(++written), view.encode());
  }
  write(dir, "run-final", view.encode());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR\n");
    return 2;
  }
  const fs::path root = argv[1];
  int n = 0;
  for (const auto& ev : test::sample_events())
    write(root / "fuzz_event_decoder", "sample-" + std::to_string(++n), encode(ev));
  n = 0;
  for (const auto& ev : edge_events())
    write(root / "fuzz_event_decoder", "edge-" + std::to_string(++n), encode(ev));
  snapshots(root / "fuzz_snapshot_decoder");
  return 0;
}
