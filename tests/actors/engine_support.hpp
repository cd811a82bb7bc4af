// Helpers of the tests that drive the embedding facade (actors/engine.hpp)
// on real threads over a real RocksDB log.
#pragma once

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "actors/engine.hpp"
#include "tests/actors/print.hpp"
#include "tests/test_support.hpp"

namespace jobsmith::test {

using namespace std::chrono_literals;

inline std::unique_ptr<engine> open_engine(engine_options opts) {
  auto opened = engine::open(std::move(opts));
  BOOST_REQUIRE_MESSAGE(opened.ok(), why(opened));
  return std::move(opened.value());
}

inline engine_options options_in(const temp_dir& dir) {
  engine_options opts;
  opts.data_dir = dir.path();
  opts.progress_flush = 5ms;
  return opts;
}

inline job_submitted spec_of(std::string kind, std::string queue = "default") {
  job_submitted s;
  s.kind = std::move(kind);
  s.queue = std::move(queue);
  s.retry.initial_interval = 5;
  s.retry.jitter = 0;
  return s;
}

inline job_id submit_ok(engine& eng, job_submitted spec, const submit_options& o = {}) {
  auto id = eng.submit(std::move(spec), o);
  BOOST_REQUIRE_MESSAGE(id.ok(), why(id));
  return *id;
}

inline job_record record_of(engine& eng, job_id id) {
  auto view = eng.get(id);
  BOOST_REQUIRE_MESSAGE(view.ok(), why(view));
  return view->job;
}

inline std::vector<event> history_of(engine& eng, job_id id) {
  auto view = eng.get(id);
  BOOST_REQUIRE_MESSAGE(view.ok(), why(view));
  return view->history;
}

inline bool reaches(engine& eng, job_id id, job_state want, std::chrono::milliseconds limit = 10s) {
  return wait_until(
      [&] {
        auto view = eng.get(id);
        return view.ok() && view->job.state == want;
      },
      limit);
}

#define REQUIRE_STATE(eng, id, want)                                                   \
  BOOST_REQUIRE_MESSAGE(reaches(eng, id, want),                                        \
                        "job " << (id) << " is " << to_string(record_of(eng, id).state) \
                               << ", expected " << to_string(want))

}  // namespace jobsmith::test
