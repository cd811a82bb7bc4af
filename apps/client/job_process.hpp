// `jobsmith work`: one leased job's command as a child process (split out of
// apps/client/worker.cpp, which leases, heartbeats and reports).
//
// Contracts:
// - start_group_guardian() is called once, before any thread starts; every
//   job_process then registers its group with the guardian, which SIGKILLs
//   the groups still running when the worker dies.
// - job_process runs one command (posix_spawn, its own process group, the
//   worker's JOBSMITH_* variables replaced by the job's), writes the payload
//   on its stdin and gathers its stdout/stderr as log lines for the caller
//   to ship. It never blocks longer than pump()'s timeout and never throws
//   past a failed spawn (spawn() says why).
// - The handover (docs/cli.md, "work"): the command finds the job's current
//   handover in the file JOBSMITH_HANDOVER_FILE names (unset when there is
//   none) and may leave one for the next attempt in the file
//   JOBSMITH_HANDOVER_OUT names. Both live in a directory of the job's own,
//   removed with the job_process.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "apps/client/worker.hpp"

namespace jobsmith::apps {

/// Forks the guardian of the commands' process groups (see group_guardian in
/// job_process.cpp); false (and no guardian) when it cannot.
/// `max_groups`: the most commands at once.
bool start_group_guardian(std::size_t max_groups);

/// The job fields a run needs, read from a leased job.
struct leased_job {
  std::uint64_t id = 0;
  std::uint64_t token = 0;
  std::string kind, queue, payload;
  std::string handover;  // compact JSON text; empty = none
  std::uint32_t attempt = 0;
  std::int64_t heartbeat_ms = 30'000;
  std::int64_t to_stop_ms = 10'000;  // SIGTERM to SIGKILL after a cancel request

  /// From a slim leased job (Prefer: return=minimal: the spec's fields at
  /// the top, "attempt") or, from a server that sends whole jobs, from the
  /// job ("spec", "attempts"). Defined in worker.cpp.
  static bool from(const nlohmann::json& j, leased_job& out);
};

/// Lines as they arrive on a child's stdout or stderr.
struct line_splitter {
  std::string partial;
  /// Appends the complete lines in `bytes` to `out`.
  template <class Out>
  void feed(std::string_view bytes, Out&& out) {
    partial.append(bytes);
    std::size_t pos = 0;
    for (auto nl = partial.find('\n'); nl != std::string::npos; nl = partial.find('\n', pos)) {
      out(std::string_view(partial).substr(pos, nl - pos));
      pos = nl + 1;
    }
    partial.erase(0, pos);
  }
  template <class Out>
  void finish(Out&& out) {
    if (!partial.empty()) out(std::string_view(partial));
    partial.clear();
  }
};

/// One job's command, from spawn to reaped. `o` and `job` must outlive it.
class job_process {
 public:
  job_process(const work_options& o, const leased_job& job) : o_(o), job_(job) {}
  ~job_process();
  job_process(const job_process&) = delete;
  job_process& operator=(const job_process&) = delete;

  /// Starts the command; false with `error` set (the job's fail message)
  /// when it cannot.
  bool spawn(std::string& error);

  /// True while stdout or stderr is still open.
  bool outputs_open() const { return stdout_fd_ >= 0 || stderr_fd_ >= 0; }
  /// Reaps the child if it has exited (status() then holds its status).
  bool try_reap() { return wait_child(status_, /*block=*/false); }
  /// One poll of at most `timeout_ms`: writes payload, reads output. True
  /// when the outputs were open at the start and the child has exited (it is
  /// reaped and what it left is read).
  bool pump(int timeout_ms);
  /// SIGKILLs the command's group, reaps it, closes the pipes.
  void kill_child();
  /// Sends `sig` to the command's group (a child not yet reaped).
  void signal_group(int sig);
  void close_pipes();
  int status() const { return status_; }

  /// The output lines not yet shipped, with a note about dropped lines
  /// added; lines_sent() once the server has them.
  nlohmann::json& lines_to_send();
  void lines_sent() { pending_ = nlohmann::json::array(); }
  std::size_t pending_lines() const { return pending_.size(); }
  const std::string& last_stdout() const { return last_stdout_; }
  const std::string& last_stderr() const { return last_stderr_; }

  /// The handover the command left in JOBSMITH_HANDOVER_OUT; nullopt when it
  /// left none (no file, an empty one), or (with a warning log line added)
  /// when the file is not JSON or is over max_handover_bytes.
  std::optional<nlohmann::json> handover_out();
  /// Adds a line of the worker's own to the job's log.
  void note(const char* level, std::string text);

  static constexpr std::size_t max_handover_bytes = 1024 * 1024;

 private:
  bool make_scratch_dir(std::string& error);
  bool wait_child(int& status, bool block);
  static void close_fd(int& fd);
  void drain_all();
  void drain(int fd);

  static constexpr std::size_t max_pending_lines = 1000;

  const work_options& o_;
  const leased_job& job_;
  pid_t pid_ = -1;
  int status_ = 0;
  std::size_t written_ = 0;
  int stdin_fd_ = -1, stdout_fd_ = -1, stderr_fd_ = -1;
  line_splitter out_lines_, err_lines_;
  nlohmann::json pending_ = nlohmann::json::array();
  std::size_t dropped_ = 0;
  std::string last_stdout_, last_stderr_;
  std::string scratch_dir_;  // the handover files' directory; empty until spawn()
};

}  // namespace jobsmith::apps
