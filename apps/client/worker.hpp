// `jobsmith work`: a worker process that leases jobs over HTTP and runs a
// command per job (docs/cli.md).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "apps/client/verb_support.hpp"

namespace jobsmith::apps {

struct work_options {
  connection_options conn;
  std::vector<std::string> queues;   // empty = every queue
  std::uint32_t concurrency = 1;     // children at once
  std::string name;                  // worker name; default host:pid
  int permanent_exit_code = 100;     // this exit code fails the job for good
  std::int64_t wait_ms = 5000;       // long-poll wait per lease call
  std::vector<std::string> command;  // argv; run without a shell
};

/// Runs until SIGTERM/SIGINT, then lets running children finish, reports
/// them, and returns 0. Returns 2 at once on bad options or when the server
/// refuses the token.
int run_work(const work_options& o);

void add_work_command(CLI::App& app, int& exit_code);

}  // namespace jobsmith::apps
