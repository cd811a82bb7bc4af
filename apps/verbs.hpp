// The jobsmith binary's verb groups. Each group adds its subcommands to the
// app; a subcommand's callback runs the verb and stores its exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace jobsmith::apps {

/// `jobsmith serve` (apps/server/serve_cmd.cpp).
void add_serve_command(CLI::App& app, int& exit_code);

/// The client verbs over the HTTP API (submit, status, list, cancel, run-now,
/// retry, review, queues, pause, resume, tail) and `jobsmith work`
/// (apps/client/client_cmds.cpp).
void add_client_commands(CLI::App& app, int& exit_code);

}  // namespace jobsmith::apps
