// `jobsmith demo`: an embedded engine running a few hundred jobs of several
// kinds (retries, locks, review, a poison job, a recurring job) on a data
// directory, printing what happened.
#pragma once

#include <string>

namespace jobsmith::apps {

struct demo_options {
  std::string data_dir = "./data";
  int jobs = 300;
};

int run_demo(const demo_options& options);

}  // namespace jobsmith::apps
