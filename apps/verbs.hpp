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

/// `jobsmith audit export|verify|stats` and `jobsmith backup`: offline
/// tools over a data directory (apps/audit/audit_cmds.cpp).
void add_audit_commands(CLI::App& app, int& exit_code);

/// `jobsmith replay`: rebuild the views offline, the queue at any past
/// moment, a job's timeline (apps/audit/replay_cmd.cpp).
void add_replay_command(CLI::App& app, int& exit_code);

}  // namespace jobsmith::apps
