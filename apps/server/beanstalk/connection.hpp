// One beanstalkd client connection.
//
// Threading: everything a connection owns is touched only on its strand
// (the socket's executor). Engine callbacks and call-pool tasks hand their
// results back with asio::post onto that strand; no thread ever waits for
// the engine here.
//
// Pipelining: every command read gets an answer slot, in order. Commands
// start as soon as they are read, and an answer that is ready early waits
// in its slot until every answer before it was written: answers go out
// strictly in command order. What may overlap is limited so that a
// pipeline means what it would mean to beanstalkd, which runs one command
// after the other:
//   * put, use, watch, ignore, list-tube-used, list-tubes-watched, auth and
//     refusals of malformed input start at once;
//   * a command naming a job (delete, release, bury, touch, peek, kick-job,
//     stats-job) waits for the commands before it that name the same job;
//   * the others (reserve, reserve-with-timeout, kick, peek-ready/-delayed/
//     -buried, stats, stats-tube, list-tubes, pause-tube, quit) read or
//     depend on what the commands before them did: each waits until those
//     are answered, and the commands after it wait for it.
// Puts that start in one pump() round go to the engine in one submit.
// Flow control: at most options.max_unanswered commands are read and not
// yet written back; at the bound no more are parsed, and past one job's
// worth of buffered input the socket is not read, until answers drain: a
// client that never reads its answers holds a bounded amount of memory.
//
// Reservations belong to the connection, as in beanstalkd: jobs are leased
// under the worker name "beanstalk:<n>" and their lease tokens are kept
// here. A command on a job this connection does not hold answers NOT_FOUND
// (delete of a job no one holds is the exception: it cancels it). When the
// connection closes, every job it holds is released at once (retryable
// failure, no delay; while the server stops, a little later: service.hpp,
// begin_stop()).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <restinio/asio_include.hpp>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "apps/server/auth.hpp"
#include "apps/server/beanstalk/command_reader.hpp"
#include "apps/server/beanstalk/service.hpp"

namespace jobsmith::server::beanstalk {

class connection : public std::enable_shared_from_this<connection> {
 public:
  using tcp = asio::ip::tcp;
  using steady = std::chrono::steady_clock;

  /// `number` comes from service::admit(); the connection gives it back.
  connection(tcp::socket socket, service& svc, std::uint32_t number);
  ~connection();

  /// Starts reading. Call once, right after construction.
  void start();
  /// Closes the connection from any thread (the listener's stop): its held
  /// jobs are released; `closed` (may be empty) runs on the strand after,
  /// also when the connection had closed already.
  void shut(std::function<void()> closed);

 private:
  /// A command that started and is not answered yet: what it blocks.
  struct started {
    std::uint64_t slot = 0;
    job_id job = 0;        // the job it names, 0 = none
    bool barrier = false;  // waits for everything before it; everything after waits for it
  };
  struct answer_slot {
    bool ready = false;
    bool close_after = false;  // quit
    std::string text;
  };
  struct reservation {
    std::uint64_t token = 0;
    std::string tube;
    millis ttr_ms = 0;
    steady::time_point deadline;  // when the lease runs out unless touched
  };

  // -- I/O and ordering (connection.cpp) --------------------------------------------
  void read_more();
  void on_read(const asio::error_code& ec, std::size_t n);
  /// Starts what was read as far as ordering and the bound allow, then
  /// reads more when nothing read is left.
  void pump();
  void flush();
  void on_written(const asio::error_code& ec, std::size_t answers);
  void close_now();
  /// After EOF: closes once everything read was answered and written.
  void close_if_done();
  /// The commands started and unanswered that block `c` from starting.
  bool may_start(const input_item& item) const;
  void begin(input_item item);
  /// Fills the slot of `s`, updates what it blocked, writes, reads on.
  void finish(const started& s, std::string text, bool close_after = false);
  /// Runs `fn` on this connection's strand.
  template <class Fn>
  void on_strand(Fn&& fn) {
    asio::post(socket_.get_executor(), std::forward<Fn>(fn));
  }
  /// Gives back a job this connection holds (retryable failure, no delay).
  void release_now(job_id id, std::uint64_t token, const char* why);

  // -- commands (commands.cpp) --------------------------------------------------------
  /// Runs one command; answers through finish(s, ...) now or later.
  void run(command& c, const started& s);
  void run_put(command& c, const started& s);
  /// Submits the puts run_put() gathered, in one engine call.
  void submit_puts();
  void run_reserve(const started& s, std::optional<steady::time_point> deadline);
  /// One lease call, waiting at most a poll slice.
  void reserve_round(const started& s, std::optional<steady::time_point> deadline);
  void on_leased(const started& s, std::optional<steady::time_point> deadline,
                 result<std::vector<job_record>> leased);
  void run_held(command& c, const started& s);  // delete/release/bury/touch of a held job
  void run_delete_other(command& c, const started& s);
  /// Runs `work` on a pool thread and answers with what it returns.
  void on_pool(const started& s, std::function<std::string()> work);
  void run_report(command& c, const started& s);  // reports.cpp: peeks, stats, lists, kicks
  void watch(const std::string& tube);
  void ignore(const std::string& tube, const started& s);
  void use(const std::string& tube);

  // Constant after construction.
  service& svc_;
  const std::uint32_t number_;
  const std::string worker_;  // "beanstalk:<number>"

  // Owned by the strand.
  tcp::socket socket_;
  command_reader reader_;
  std::array<char, 16 * 1024> in_{};
  bool reading_ = false;
  bool pumping_ = false;
  bool closing_ = false;
  /// closing_ for other threads: a lease answered after the close is given
  /// back from the engine's thread, whether or not the io threads still run.
  std::atomic<bool> closed_{false};
  bool input_exhausted_ = false;       // reader_.next() wanted more bytes
  bool eof_ = false;                   // the client shut its side: finish what was read, then close
  std::optional<input_item> waiting_;  // read, not yet allowed to start

  std::deque<answer_slot> slots_;  // unwritten answers, in command order
  std::uint64_t first_slot_ = 0;   // sequence number of slots_.front()
  std::string out_;                // being written
  bool writing_ = false;
  std::size_t unanswered_ = 0;  // read and not yet written back

  std::size_t in_flight_ = 0;  // started, not finished
  bool barrier_in_flight_ = false;
  std::unordered_multiset<job_id> busy_jobs_;  // jobs named by commands in flight

  std::string principal_ = "beanstalk";
  role who_ = role::admin;
  bool authenticated_ = false;
  bool producer_ = false;
  bool worker_counted_ = false;
  std::string used_ = "default";
  std::vector<std::string> watched_{"default"};
  bool waiting_for_job_ = false;  // a reserve is waiting (stats: current-waiting)
  std::unordered_map<job_id, reservation> reserved_;
  // Puts started by this pump() round, submitted together at its end (or
  // before the next command that is not a put): one engine call and one
  // callback for all the puts one read brought.
  std::vector<job_submitted> put_specs_;
  std::vector<started> put_started_;
};

}  // namespace jobsmith::server::beanstalk
