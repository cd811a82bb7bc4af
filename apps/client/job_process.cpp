// One leased job's command as a child process: spawned with posix_spawn in
// a process group of its own (ended by a guardian process if the worker
// dies: group_guardian), the payload fed on stdin, stdout/stderr collected
// as lines. Contracts: apps/client/job_process.hpp.
#include "apps/client/job_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

extern char** environ;

namespace jobsmith::apps {

namespace {

using json = nlohmann::json;

/// Ends the commands' process groups when the worker dies in any way,
/// SIGKILL included (a command runs in a group of its own, so nothing else
/// would: it ran on, unreported, while its job ran again elsewhere). A
/// child process forked before any thread holds the read end of a pipe
/// whose write end only the worker holds (close-on-exec, so commands do not
/// inherit it); the worker writes each command's group id when it starts
/// (positive) and once it is reaped (negative). At end of file, the worker
/// being gone, the guardian SIGKILLs every group still listed. A command
/// that dies with the worker between its spawn and that write, or that
/// leaves its group, is not covered.
class group_guardian {
 public:
  /// Forks the guardian; false (and no guardian) when it cannot.
  /// `max_groups`: the most commands at once.
  bool start(std::size_t max_groups) {
    std::vector<pid_t> groups;
    groups.reserve(max_groups);  // the child must not allocate (see below)
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      return false;
    }
    if (pid == 0) {
      // The guardian: async-signal-safe calls only (the worker may have
      // threads), and no allocation: `groups` never grows past its capacity.
      ::close(fds[1]);
      ::signal(SIGINT, SIG_IGN);  // a terminal's Ctrl-C is for the worker
      ::signal(SIGTERM, SIG_IGN);
      ::signal(SIGHUP, SIG_IGN);
      for (;;) {
        pid_t v = 0;
        const ssize_t r = ::read(fds[0], &v, sizeof v);
        if (r < 0 && errno == EINTR) continue;
        if (r != static_cast<ssize_t>(sizeof v)) break;  // EOF: the worker is gone
        if (v > 0 && groups.size() < groups.capacity()) {
          groups.push_back(v);
        } else if (v < 0) {
          auto it = std::find(groups.begin(), groups.end(), -v);
          if (it != groups.end()) groups.erase(it);
        }
      }
      for (pid_t g : groups) ::kill(-g, SIGKILL);
      ::_exit(0);
    }
    ::close(fds[0]);
    fd_ = fds[1];
    return true;
  }
  void started(pid_t group) { send(group); }
  void ended(pid_t group) { send(-group); }

 private:
  void send(pid_t v) {
    if (fd_ < 0) return;
    // 4 bytes: atomic on a pipe, so job threads need no lock.
    while (::write(fd_, &v, sizeof v) < 0 && errno == EINTR) {
    }
  }
  int fd_ = -1;
};

group_guardian guardian;

}  // namespace

bool start_group_guardian(std::size_t max_groups) { return guardian.start(max_groups); }

namespace {

/// A line's level set by its prefix (docs/cli.md, "work"), as GitHub
/// Actions' workflow commands spell them.
struct level_prefix {
  std::string_view prefix;
  const char* level;
};
constexpr level_prefix level_prefixes[] = {
    {"::error::", "error"}, {"::warning::", "warn"}, {"::notice::", "info"}, {"::info::", "info"}};

constexpr const char* handover_in_name = "/handover.json";
constexpr const char* handover_out_name = "/handover-out.json";

}  // namespace

job_process::~job_process() {
  if (scratch_dir_.empty()) return;
  std::error_code ec;  // a directory the command made unremovable stays
  std::filesystem::remove_all(scratch_dir_, ec);
}

/// The job's directory for its handover files, under $TMPDIR (or /tmp),
/// with the current handover written in it when there is one.
bool job_process::make_scratch_dir(std::string& error) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                        "/jobsmith-job-" + std::to_string(job_.id) + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    error = "worker: cannot make the job's handover directory " + pattern + ": " +
            std::strerror(errno);
    return false;
  }
  scratch_dir_ = pattern;
  if (job_.handover.empty()) return true;
  std::ofstream out(scratch_dir_ + handover_in_name, std::ios::binary);
  out << job_.handover;
  if (!out.flush()) {
    error = "worker: cannot write the job's handover in " + scratch_dir_;
    return false;
  }
  return true;
}

bool job_process::spawn(std::string& error) {
  if (!make_scratch_dir(error)) return false;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    error = "worker: pipe: " + std::string(std::strerror(errno));
    return false;
  }
  // The worker's own JOBSMITH_* variables stay out, its token above all:
  // the token may lease and complete any job, the command runs one.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "JOBSMITH_", 9) != 0) env_strings.emplace_back(*e);
  env_strings.push_back("JOBSMITH_JOB_ID=" + std::to_string(job_.id));
  env_strings.push_back("JOBSMITH_KIND=" + job_.kind);
  env_strings.push_back("JOBSMITH_QUEUE=" + job_.queue);
  env_strings.push_back("JOBSMITH_ATTEMPT=" + std::to_string(job_.attempt));
  env_strings.push_back("JOBSMITH_LEASE_TOKEN=" + std::to_string(job_.token));
  env_strings.push_back("JOBSMITH_URL=" + o_.conn.url);
  env_strings.push_back("JOBSMITH_HANDOVER_OUT=" + scratch_dir_ + handover_out_name);
  if (!job_.handover.empty())
    env_strings.push_back("JOBSMITH_HANDOVER_FILE=" + scratch_dir_ + handover_in_name);
  std::vector<char*> envp, argv;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = o_.command;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group: a terminal's Ctrl-C reaches the worker, which
  // lets the child finish; a kill reaches everything the command started.
  sigset_t defaults, none;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  int rc = ::posix_spawnp(&pid_, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    error = "cannot run " + o_.command[0] + ": " + std::strerror(rc);
    return false;
  }
  guardian.started(pid_);  // its group id is its pid (setpgroup 0)
  stdin_fd_ = in[1];
  stdout_fd_ = out[0];
  stderr_fd_ = err[0];
  for (int fd : {stdin_fd_, stdout_fd_, stderr_fd_})
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (job_.payload.empty()) close_fd(stdin_fd_);
  return true;
}

bool job_process::pump(int timeout_ms) {
  std::vector<pollfd> fds;
  if (stdin_fd_ >= 0) fds.push_back({stdin_fd_, POLLOUT, 0});
  if (stdout_fd_ >= 0) fds.push_back({stdout_fd_, POLLIN, 0});
  if (stderr_fd_ >= 0) fds.push_back({stderr_fd_, POLLIN, 0});
  bool was_open = outputs_open();
  ::poll(fds.data(), fds.size(), timeout_ms);
  for (auto& p : fds) {
    if (p.revents == 0) continue;
    if (p.fd == stdin_fd_) {
      auto n = ::write(stdin_fd_, job_.payload.data() + written_, job_.payload.size() - written_);
      if (n > 0) written_ += static_cast<std::size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written_ == job_.payload.size())
        close_fd(stdin_fd_);  // EPIPE: the command does not read its stdin
    } else {
      drain(p.fd);
    }
  }
  if (was_open && wait_child(status_, false)) {
    drain_all();
    return true;
  }
  return false;
}

bool job_process::wait_child(int& status, bool block) {
  for (;;) {
    auto r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (r == pid_) {
      guardian.ended(pid_);
      return true;
    }
    if (r < 0 && errno == EINTR) continue;
    return false;
  }
}

void job_process::kill_child() {
  ::kill(-pid_, SIGKILL);
  int status = 0;
  wait_child(status, true);
  close_pipes();
}

void job_process::signal_group(int sig) {
  if (pid_ > 0) ::kill(-pid_, sig);
}

void job_process::close_pipes() {
  close_fd(stdin_fd_);
  close_fd(stdout_fd_);
  close_fd(stderr_fd_);
}

void job_process::close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void job_process::drain_all() {
  if (stdout_fd_ >= 0) drain(stdout_fd_);
  if (stderr_fd_ >= 0) drain(stderr_fd_);
}

/// Reads what `fd` has now; closes it at EOF.
void job_process::drain(int fd) {
  bool is_err = fd == stderr_fd_;
  auto& splitter = is_err ? err_lines_ : out_lines_;
  auto take = [&](std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // Unprefixed, the stream says the level; a prefix says it for either
    // stream, and is not part of the text. A prefixed stdout line is a log
    // line only, never the result.
    const char* level = is_err ? "warn" : "info";
    bool prefixed = false;
    for (const auto& p : level_prefixes)
      if (line.starts_with(p.prefix)) {
        level = p.level;
        line.remove_prefix(p.prefix.size());
        prefixed = true;
        break;
      }
    std::string text(line.substr(0, 4000));
    if (!is_err && !prefixed && !text.empty()) last_stdout_ = text;
    if (is_err && !text.empty()) last_stderr_ = text;
    if (pending_.size() < max_pending_lines)
      pending_.push_back({{"level", level}, {"text", std::move(text)}});
    else
      ++dropped_;
  };
  char buf[8192];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      splitter.feed(std::string_view(buf, static_cast<std::size_t>(n)), take);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    splitter.finish(take);
    if (is_err)
      close_fd(stderr_fd_);
    else
      close_fd(stdout_fd_);
    return;
  }
}

std::optional<json> job_process::handover_out() {
  if (scratch_dir_.empty()) return std::nullopt;
  std::ifstream in(scratch_dir_ + handover_out_name, std::ios::binary);
  if (!in) return std::nullopt;  // the command left none
  std::string text;
  text.resize(max_handover_bytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.empty()) return std::nullopt;
  if (text.size() > max_handover_bytes) {
    note("warn", "jobsmith work: JOBSMITH_HANDOVER_OUT holds more than " +
                     std::to_string(max_handover_bytes) + " bytes; no handover sent");
    return std::nullopt;
  }
  auto value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    note("warn", "jobsmith work: JOBSMITH_HANDOVER_OUT is not JSON; no handover sent");
    return std::nullopt;
  }
  return value;
}

void job_process::note(const char* level, std::string text) {
  pending_.push_back({{"level", level}, {"text", std::move(text)}});
}

json& job_process::lines_to_send() {
  if (dropped_ > 0) {
    pending_.push_back({{"level", "warn"},
                        {"text", "jobsmith work: " + std::to_string(dropped_) +
                                     " output lines dropped (more than " +
                                     std::to_string(max_pending_lines) + " per heartbeat)"}});
    dropped_ = 0;
  }
  return pending_;
}

}  // namespace jobsmith::apps
