// The server kill loop (docs/reliability.md): starts `jobsmith serve` on a
// data directory and a loopback port, runs producers, workers and a reviewer
// against it over real HTTP, SIGKILLs the server at random moments, restarts
// it on the same directory and port, and checks after every restart that
// what the server acknowledged (a 2xx answer) is still true:
//   1. no acknowledged submit is missing;
//   2. no job got a 2xx complete under two different lease tokens;
//   3. an acknowledged terminal transition (complete, fail, cancel, review)
//      is never undone;
//   4. after the final drain every job is in exactly one terminal state;
//   5. no job stays `running` without a live lease after its heartbeat
//      timeout (plus slack);
//   6. `jobsmith audit verify` passes on the directory while the server is
//      down;
//   7-10. folded from the whole log after the drain (log_invariants.hpp):
//      no two jobs hold a resource at once unless both claim it shared, no
//      two live jobs share a unique key, no schedule has two live runs, and
//      each event carries the principal of the token that caused it.
// After each restart it also checks that the tokens still apply (401, 403),
// that the queue is paused or not as the last acknowledged pause or resume
// said, and that every acknowledged recurring schedule is still listed.
// The load: producers submit (some jobs with resources, unique keys, review,
// delays) and cancel, run now and retry; workers lease, heartbeat, complete
// and fail, and sometimes walk away; a reviewer accepts and declines; an
// operator pauses and resumes the queue and owns the recurring schedules.
// Every caller has its own token and role (--no-tokens: none, all admin).
// Violations go to stdout, one per line; the exit status is 1 on any.
// Only the server process this program started is ever signalled.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "apps/client/http_client.hpp"
#include "tests/crash/log_invariants.hpp"
#include "tests/crash/server_process.hpp"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace http = jobsmith::http;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const std::set<std::string> terminal_states = {"succeeded", "accepted",  "declined",
                                               "discarded", "cancelled", "expired"};
bool is_terminal(const std::string& s) { return terminal_states.count(s) > 0; }

struct options {
  std::string binary;
  int kills = 20;
  std::uint64_t seed = 1;
  int snapshot_every = 2000;
  int min_load_ms = 80;  // load between a restart being ready and the next kill
  int max_load_ms = 500;
  int heartbeat_ms = 1000;  // every job's spec.timeouts.heartbeat
  int slack_ms = 2500;      // on top of it before a running job without a lease is a violation
  int producers = 2;
  int workers = 4;
  int max_live = 300;  // producers pause while this many jobs are not finished
  int drain_s = 120;
  int verify_every = 1;       // audit verify after every Nth kill (and always at the end)
  int full_check_every = 10;  // list every job after every Nth restart, else only those
                              // acknowledged-about since the last check (and all later ids)
  int http_timeout_ms = 10000;
  int ready_timeout_s = 60;
  std::string work_dir;  // default: a fresh /tmp/jobsmith-crash-XXXXXX, removed at the end
  bool keep = false;
  bool verbose = false;  // one line per kill
  // Records three acknowledgements the server never gave (a submit, a
  // second complete token, a terminal state) after the first restart, so a
  // test can see the checks report them: the oracle is not vacuous.
  bool inject = false;
  bool tokens = true;  // false: no tokens file, every caller is admin
  int schedules = 2;   // recurring schedules the operator keeps (each run a job)
};

// The callers and their tokens (the tokens file the driver writes).
struct caller {
  const char* name;
  const char* token;
  const char* role;
};
constexpr caller producer_caller{"crash-producer", "crash-producer-token", "producer"};
constexpr caller reviewer_caller{"crash-reviewer", "crash-reviewer-token", "producer"};
constexpr caller worker_caller{"crash-worker", "crash-worker-token", "worker"};
constexpr caller admin_caller{"crash-admin", "crash-admin-token", "admin"};
constexpr caller reader_caller{"crash-reader", "crash-reader-token", "read"};
constexpr caller all_callers[] = {producer_caller, reviewer_caller, worker_caller, admin_caller,
                                  reader_caller};

// -- the oracle -------------------------------------------------------------------

struct job_facts {
  // False for a job the oracle knows only from a later answer (a lease, a
  // cancel): its submit was committed but the answer lost in a kill.
  bool submit_acked = false;
  // Submitted with a unique key: the answer may name an older job with
  // another payload, so payload and review are not checked.
  bool unique = false;
  bool review = false;
  std::string payload;                      // as submitted (each is unique), dumped
  std::set<std::uint64_t> complete_tokens;  // tokens that got a 2xx complete
  std::string terminal;                     // acknowledged terminal state, "" if none
  std::string terminal_how;
  std::uint64_t terminal_seq = 0;  // the job's last_seq in that answer (0: not given)
  // A retry was acknowledged (its answer's last_seq in retry_seq), or may
  // have happened (an answer lost in a kill: retry_seq = max). Answers from
  // before it are ignored; the two-token and two-terminal checks no longer
  // apply to the job (a retried job runs and ends again).
  bool retried = false;
  std::uint64_t retry_seq = 0;
  // Retries sent whose answer is not recorded yet, and all retries sent.
  // A retry is committed before its answer is recorded here, so while one
  // is in flight (or when one was sent during a check) no answer or state
  // of the job can be ordered against it: the terminal and token checks
  // stand down for that job meanwhile.
  int retries_in_flight = 0;
  std::uint64_t retries_sent = 0;
};

/// Everything the server acknowledged, and the violations found so far.
/// Shared by every thread; one mutex.
class oracle {
 public:
  void violation(std::uint64_t job, const std::string& what) {
    std::lock_guard lk(m_);
    std::string line =
        job ? "violation: job " + std::to_string(job) + ": " + what : "violation: " + what;
    if (!seen_.insert(line).second) return;  // found again by a later check
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  std::size_t violations() {
    std::lock_guard lk(m_);
    return seen_.size();
  }

  /// `unique`: submitted with a unique key (the id may be an older job's).
  void submitted(std::uint64_t id, bool review, std::string payload, bool unique = false) {
    std::lock_guard lk(m_);
    auto& f = jobs_[id];
    if (!f.submit_acked) {
      ++acked_submits_;
      ids_.push_back(id);
    }
    f.submit_acked = true;
    if (unique || f.unique) {
      f.unique = true;
    } else {
      f.review = review;
      f.payload = std::move(payload);
    }
    dirty(id);
  }

  /// A 2xx answer carrying the job: records its state if terminal. `seq` is
  /// the job's last_seq in the answer (0 when the answer has none).
  void acknowledged(std::uint64_t id, const std::string& state, const std::string& how,
                    std::uint64_t seq = 0) {
    if (!is_terminal(state)) return;
    std::string conflict;
    {
      std::lock_guard lk(m_);
      auto& f = jobs_[id];
      dirty(id);
      if (f.retries_in_flight > 0) return;          // before or after it: unknown
      if (f.retried && seq <= f.retry_seq) return;  // answered before the latest retry
      if (f.terminal.empty() || (f.retried && seq > f.terminal_seq)) {
        f.terminal = state;
        f.terminal_how = how;
        f.terminal_seq = seq;
        if (state != "succeeded" && state != "accepted") retriable_.push_back(id);
      } else if (f.terminal != state && !f.retried) {
        conflict = "two terminal states acknowledged: expected " + f.terminal + " (by " +
                   f.terminal_how + "), seen " + state + " (by " + how + ")";
      }
    }
    if (!conflict.empty()) violation(id, conflict);
  }

  /// A retry of `id` is about to be sent; its outcome is then recorded by
  /// retried() or retry_refused().
  void retry_sending(std::uint64_t id) {
    std::lock_guard lk(m_);
    auto& f = jobs_[id];
    ++f.retries_in_flight;
    ++f.retries_sent;
  }
  /// A retry was answered with a refusal (nothing written).
  void retry_refused(std::uint64_t id) {
    std::lock_guard lk(m_);
    --jobs_[id].retries_in_flight;
  }
  /// How many retries of `id` were ever sent.
  std::uint64_t retries_sent(std::uint64_t id) {
    std::lock_guard lk(m_);
    auto i = jobs_.find(id);
    return i == jobs_.end() ? 0 : i->second.retries_sent;
  }

  /// A 2xx retry whose answer had last_seq `seq`; 0 = the answer was lost,
  /// so the retry may or may not have happened.
  void retried(std::uint64_t id, std::uint64_t seq) {
    std::lock_guard lk(m_);
    auto& f = jobs_[id];
    dirty(id);
    --f.retries_in_flight;
    f.retried = true;
    f.retry_seq = seq == 0 ? UINT64_MAX : std::max(f.retry_seq, seq);
    if (f.terminal_seq < f.retry_seq) {
      f.terminal.clear();
      f.terminal_seq = 0;
    }
    f.complete_tokens.clear();
  }

  /// True when it reported the job as completed under two tokens.
  bool completed(std::uint64_t id, std::uint64_t token, const std::string& state,
                 std::uint64_t seq = 0) {
    std::string twice;
    {
      std::lock_guard lk(m_);
      auto& f = jobs_[id];
      dirty(id);
      if (!f.retried && f.retries_in_flight == 0) f.complete_tokens.insert(token);
      if (f.complete_tokens.size() > 1) {
        twice = "completed under two tokens: expected only " +
                std::to_string(*f.complete_tokens.begin()) + ", seen also ";
        for (auto t : f.complete_tokens)
          if (t != *f.complete_tokens.begin()) twice += std::to_string(t) + " ";
      }
    }
    if (!twice.empty()) violation(id, twice);
    acknowledged(id, state, "complete under token " + std::to_string(token), seq);
    return !twice.empty();
  }

  /// A 2xx lease or heartbeat for `token`: its lease is live as of now.
  void touch(std::uint64_t token) {
    std::lock_guard lk(m_);
    touched_[token] = wall_ms();
  }
  std::int64_t touched(std::uint64_t token) {
    std::lock_guard lk(m_);
    auto i = touched_.find(token);
    return i == touched_.end() ? 0 : i->second;
  }

  void op() { ops_.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t ops() const { return ops_.load(); }

  std::map<std::uint64_t, job_facts> snapshot() {
    std::lock_guard lk(m_);
    return jobs_;
  }
  /// The smallest id acknowledged-about since the last call (0 if none).
  std::uint64_t take_min_dirty() {
    std::lock_guard lk(m_);
    auto v = min_dirty_;
    min_dirty_ = UINT64_MAX;
    return v == UINT64_MAX ? 0 : v;
  }
  std::optional<std::uint64_t> random_id(std::mt19937_64& rng) {
    std::lock_guard lk(m_);
    if (ids_.empty()) return std::nullopt;
    // Mostly recent jobs: those are the ones still waiting or running.
    auto n = ids_.size();
    auto window = std::min<std::size_t>(n, 400);
    return ids_[n - 1 - std::uniform_int_distribution<std::size_t>(0, window - 1)(rng)];
  }
  /// A job last acknowledged discarded, declined, cancelled or expired
  /// (mostly recent ones), for a retry.
  std::optional<std::uint64_t> random_retriable(std::mt19937_64& rng) {
    std::lock_guard lk(m_);
    if (retriable_.empty()) return std::nullopt;
    auto n = retriable_.size();
    auto window = std::min<std::size_t>(n, 100);
    return retriable_[n - 1 - std::uniform_int_distribution<std::size_t>(0, window - 1)(rng)];
  }
  /// Jobs whose submit was acknowledged.
  std::size_t job_count() {
    std::lock_guard lk(m_);
    return acked_submits_;
  }

 private:
  void dirty(std::uint64_t id) { min_dirty_ = std::min(min_dirty_, id); }
  std::mutex m_;
  std::map<std::uint64_t, job_facts> jobs_;
  std::vector<std::uint64_t> ids_;
  std::vector<std::uint64_t> retriable_;
  std::unordered_map<std::uint64_t, std::int64_t> touched_;
  std::set<std::string> seen_;
  std::uint64_t min_dirty_ = UINT64_MAX;
  std::size_t acked_submits_ = 0;
  std::atomic<std::uint64_t> ops_{0};
};

// -- processes: tests/crash/server_process.hpp -------------------------------------

using jobsmith::crash::free_port;
using jobsmith::crash::server_process;
using jobsmith::crash::spawn;
using jobsmith::crash::tail;
using jobsmith::crash::wait_for;

// -- load -------------------------------------------------------------------------

struct shared_state {
  const options* o = nullptr;
  http::url url;
  oracle orc;
  std::atomic<bool> produce{true};  // producers and cancels run
  std::atomic<bool> work{true};     // workers and the reviewer run
  std::atomic<bool> chaos{true};    // workers may abandon jobs and send late results
  std::atomic<bool> operate{true};  // the operator pauses and resumes the queue
  // Held by the operator around a pause or resume and its record, and by
  // the check that compares the queue with the record.
  std::mutex queue_mu;
  std::optional<bool> expect_paused = false;  // nullopt: the last answer was lost
  std::mutex schedules_mu;
  std::vector<std::uint64_t> schedules;  // acknowledged recurring schedules (first run ids)

  // The server's downtimes, [killed, ready again] in wall ms: a lease's
  // clock stops while the server is down (actors/lease_clock.hpp).
  void went_down(std::int64_t killed, std::int64_t ready) {
    std::lock_guard lk(down_mu);
    downs.emplace_back(killed, ready);
  }
  /// Wall ms in [from, to] that the server was up.
  std::int64_t uptime_between(std::int64_t from, std::int64_t to) {
    std::lock_guard lk(down_mu);
    std::int64_t up = std::max<std::int64_t>(0, to - from);
    for (auto [a, b] : downs) up -= std::max<std::int64_t>(0, std::min(b, to) - std::max(a, from));
    return std::max<std::int64_t>(0, up);
  }

 private:
  std::mutex down_mu;
  std::vector<std::pair<std::int64_t, std::int64_t>> downs;
};

std::unique_ptr<http::client> make_client(const shared_state& s, const caller& who) {
  return std::make_unique<http::client>(s.url, s.o->tokens ? who.token : std::string{},
                                        std::chrono::milliseconds(s.o->http_timeout_ms));
}

bool unacknowledged(int status) {
  // Down, restarting, busy or out of disk: nothing was written, or (0) the
  // answer was lost and it may have been.
  return status == 0 || status == 429 || status == 503 || status == 507;
}

std::uint64_t last_seq_of(const json& body) {
  if (body.is_object() && body.contains("job") && body["job"].is_object())
    return body["job"].value("last_seq", std::uint64_t{0});
  return 0;
}

std::string state_of(const json& body) {
  if (body.is_object() && body.contains("job") && body["job"].is_object() &&
      body["job"].contains("state") && body["job"]["state"].is_string())
    return body["job"]["state"].get<std::string>();
  return "";
}

void producer(shared_state& s, int index) {
  std::mt19937_64 rng(s.o->seed * 1000 + 100 + index);
  std::uniform_real_distribution<double> u(0, 1);
  auto c = make_client(s, producer_caller);
  std::uint64_t n = 0;
  std::int64_t live = 0;
  // Jobs waiting for their resources. Exclusive claims on four resources
  // drain far slower than the rest (a job a worker walked away from holds
  // its claims for a heartbeat timeout), so with resources on every fourth
  // job the waiters alone soon made up the `max_live` bound and held the
  // whole load back (a 500-kill run once made 1,929 jobs in all): past
  // `max_locking` waiters new jobs claim no resources.
  std::int64_t locking = 0;
  constexpr std::int64_t max_locking = 40;
  int since_count = 0;
  auto spec = [&] {
    json retry = {{"max_attempts", 1 + static_cast<int>(rng() % 4)},
                  {"initial_interval", 50},
                  {"max_interval", 200}};
    json j = {{"kind", "crash"},
              {"payload", {{"producer", index}, {"n", ++n}}},
              {"retry", retry},
              // to_stop 0: a cancel ends even a running job at once, so a
              // cancel's answer is its terminal state (invariant 3).
              {"timeouts", {{"heartbeat", s.o->heartbeat_ms}, {"to_stop", 0}}}};
    if (u(rng) < 0.15) j["review_required"] = true;
    if (u(rng) < 0.1) j["delay"] = static_cast<int>(rng() % 2000);  // some to run now
    if (u(rng) < 0.25 && locking < max_locking) {
      // One or two of four resources, mostly exclusive (log invariant 7).
      json claims = json::array();
      auto first = rng() % 4;
      auto count = 1 + rng() % 2;
      for (std::uint64_t k = 0; k < count; ++k)
        claims.push_back({{"name", "crash:r" + std::to_string((first + k) % 4)},
                          {"mode", u(rng) < 0.6 ? "exclusive" : "shared"}});
      j["resources"] = claims;
    }
    if (u(rng) < 0.08) j["unique_key"] = "crash-u" + std::to_string(rng() % 12);
    return j;
  };
  auto job_call = [&](const char* what, std::uint64_t id, const json& body) {
    return c->post("/v1/jobs/" + std::to_string(id) + "/" + what, body);
  };
  std::vector<std::uint64_t> delayed;  // submitted with a delay: run-now's targets
  auto pick_from = [&](const std::vector<std::uint64_t>& v) -> std::optional<std::uint64_t> {
    if (v.empty()) return std::nullopt;
    auto window = std::min<std::size_t>(v.size(), 50);
    return v[v.size() - 1 - std::uniform_int_distribution<std::size_t>(0, window - 1)(rng)];
  };
  while (s.produce.load()) {
    if (since_count-- <= 0) {
      // How many jobs are not finished: producers keep it bounded.
      auto r = c->get("/v1/queues");
      if (r.status == 200) {
        live = 0;
        locking = 0;
        const json body = r.json();  // kept alive: the loop below refers into it
        for (auto& q : body["queues"]) {
          for (const char* st : {"scheduled", "queued", "running", "pending_review"})
            live += q["counts"].value(st, 0);
          locking += q.value("locking", 0);
        }
      }
      since_count = 10;
    }
    if (live > s.o->max_live) {
      std::this_thread::sleep_for(20ms);
      since_count = 0;
      continue;
    }
    double pick = u(rng);
    if (pick < 0.12) {
      auto id = s.orc.random_id(rng);
      if (!id) continue;
      auto r = job_call("cancel", *id, {{"reason", "crash-test"}});
      if (r.status == 200) {
        s.orc.op();
        auto st = state_of(r.json());
        if (st != "cancelled")
          s.orc.violation(*id, "cancel answered 200: expected state cancelled, seen " + st);
        s.orc.acknowledged(*id, st, "cancel", last_seq_of(r.json()));
      }
      if (r.status == 0) std::this_thread::sleep_for(20ms);
      continue;
    }
    if (pick < 0.17) {
      // Run now: a scheduled job becomes due (200); any other state is 409.
      auto id = pick_from(delayed);
      if (!id) continue;
      auto r = job_call("run-now", *id, json::object());
      if (r.status == 200) {
        s.orc.op();
        auto st = state_of(r.json());
        if (st != "queued")
          s.orc.violation(*id, "run-now answered 200: expected state queued, seen " + st);
      } else if (r.status != 409 && !unacknowledged(r.status)) {
        s.orc.violation(*id, "run-now answered " + std::to_string(r.status) + ": " + r.body);
      }
      if (r.status == 0) std::this_thread::sleep_for(20ms);
      continue;
    }
    if (pick < 0.22) {
      // Retry: a discarded, expired, declined or cancelled job gets new
      // attempts (200); any other state is 409.
      auto id = s.orc.random_retriable(rng);
      if (!id) continue;
      s.orc.retry_sending(*id);
      auto r = job_call("retry", *id, json::object());
      if (r.status == 200) {
        s.orc.op();
        auto st = state_of(r.json());
        if (st != "queued" && st != "scheduled")
          s.orc.violation(*id, "retry answered 200: expected queued or scheduled, seen " + st);
        s.orc.retried(*id, std::max<std::uint64_t>(last_seq_of(r.json()), 1));
      } else if (r.status == 0) {
        s.orc.retried(*id, 0);  // may have happened
        std::this_thread::sleep_for(20ms);
      } else {
        s.orc.retry_refused(*id);
        if (r.status != 409 && !unacknowledged(r.status))
          s.orc.violation(*id, "retry answered " + std::to_string(r.status) + ": " + r.body);
      }
      continue;
    }
    json body;
    std::vector<bool> review, unique;
    std::vector<std::string> payload;
    std::vector<bool> later;
    auto add = [&](const json& one) {
      later.push_back(one.value("delay", 0) >= 500);
      review.push_back(one.value("review_required", false));
      unique.push_back(one.contains("unique_key"));
      payload.push_back(one["payload"].dump());
    };
    if (pick < 0.55) {
      body = spec();
      add(body);
    } else {
      json list = json::array();
      auto k = 2 + rng() % 19;
      for (std::size_t i = 0; i < k; ++i) {
        list.push_back(spec());
        add(list.back());
      }
      body = {{"jobs", list}};
    }
    auto r = c->post("/v1/jobs", body);
    if (r.status == 201) {
      s.orc.op();
      auto j = r.json();
      std::vector<std::uint64_t> ids;
      if (j.contains("id")) ids.push_back(j["id"].get<std::uint64_t>());
      else for (auto& x : j["ids"]) ids.push_back(x.get<std::uint64_t>());
      for (std::size_t i = 0; i < ids.size() && i < review.size(); ++i) {
        s.orc.submitted(ids[i], review[i], payload[i], unique[i]);
        if (later[i]) delayed.push_back(ids[i]);
      }
      live += static_cast<std::int64_t>(review.size());
    } else if (unacknowledged(r.status)) {
      std::this_thread::sleep_for(20ms);
    } else {
      s.orc.violation(0, "submit answered " + std::to_string(r.status) + ": " + r.body);
    }
  }
}

struct held_job {
  std::uint64_t id = 0;
  std::uint64_t token = 0;
};

/// Sends a worker call again while the server is down or restarting (a
/// result whose answer was lost is repeated, as a real worker does); gives
/// up after `limit`. The last answer.
http::response persist(http::client& c, const std::string& path, const json& body,
                       const shared_state& s, std::chrono::milliseconds limit = 20s) {
  auto end = clock_type::now() + limit;
  for (;;) {
    auto r = c.post(path, body);
    if ((r.status != 0 && r.status != 503 && r.status != 507 && r.status != 429) ||
        clock_type::now() > end ||
        !s.work.load())
      return r;
    std::this_thread::sleep_for(25ms);
  }
}

void worker(shared_state& s, int index) {
  std::mt19937_64 rng(s.o->seed * 1000 + 200 + index);
  std::uniform_real_distribution<double> u(0, 1);
  auto c = make_client(s, worker_caller);
  std::string name = "crash-w" + std::to_string(index);
  // Jobs this worker walked away from (a worker that hung); their results
  // are sent late, after the lease expired: they must be refused.
  std::vector<std::pair<held_job, std::int64_t>> late;
  auto jpath = [](std::uint64_t id, const char* what) {
    return "/v1/jobs/" + std::to_string(id) + "/" + what;
  };
  auto complete = [&](const held_job& h, const char* how) {
    auto r = persist(*c, jpath(h.id, "complete"),
                     {{"lease_token", h.token}, {"result", {{"ok", true}}}}, s);
    if (r.status == 200) {
      s.orc.op();
      auto a = r.json();
      s.orc.completed(h.id, h.token, state_of(a), last_seq_of(a));
    } else if (r.status != 409 && r.status != 0) {
      s.orc.violation(h.id,
                      std::string(how) + " answered " + std::to_string(r.status) + ": " + r.body);
    }
    return r.status;
  };
  while (s.work.load()) {
    auto now = wall_ms();
    for (auto it = late.begin(); it != late.end();) {
      if (it->second > now) {
        ++it;
        continue;
      }
      complete(it->first, "late complete");
      it = late.erase(it);
    }
    json req = {{"worker", name},
                {"queues", {"default"}},
                {"max_jobs", 1 + static_cast<int>(rng() % 8)},
                {"wait_ms", 200}};
    auto r = c->post("/v1/workers/lease", req);
    if (r.status != 200) {
      std::this_thread::sleep_for(20ms);
      continue;
    }
    std::vector<held_job> held;
    const json leased = r.json();
    for (auto& j : leased["jobs"]) {
      held_job h{j["id"].get<std::uint64_t>(), j["lease_token"].get<std::uint64_t>()};
      s.orc.touch(h.token);
      held.push_back(h);
    }
    if (!held.empty()) s.orc.op();
    json batch = json::array();
    std::vector<held_job> in_batch;
    for (auto& h : held) {
      double pick = u(rng);
      if (s.chaos.load() && pick < 0.07) {
        late.push_back({h, wall_ms() + s.o->heartbeat_ms + 300 + static_cast<int>(rng() % 1500)});
        continue;
      }
      if (u(rng) < 0.25) {
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 40));
        auto hb = persist(*c, jpath(h.id, "heartbeat"),
                          {{"lease_token", h.token}, {"detail", "working"}, {"percent", 50}}, s);
        if (hb.status == 200) {
          s.orc.op();
          s.orc.touch(h.token);
          if (hb.json().value("cancel_requested", false)) continue;
        } else if (hb.status == 409) {
          continue;  // reclaimed or cancelled meanwhile
        }
      }
      if (pick < 0.62) {
        if (complete(h, "complete") == 200 && u(rng) < 0.1) complete(h, "repeated complete");
      } else if (pick < 0.75) {
        batch.push_back({{"id", h.id}, {"lease_token", h.token}, {"result", "batched"}});
        in_batch.push_back(h);
      } else {
        bool retryable = pick < 0.9;
        auto f = persist(*c, jpath(h.id, "fail"),
                         {{"lease_token", h.token},
                          {"error", "crash-test failure"},
                          {"retryable", retryable},
                          {"handover", {{"step", 1}}}},
                         s);
        if (f.status == 200) {
          s.orc.op();
          auto a = f.json();
          auto st = state_of(a);
          if (!retryable && st != "discarded")
            s.orc.violation(h.id, "permanent fail answered 200: expected discarded, seen " + st);
          s.orc.acknowledged(h.id, st, retryable ? "retryable fail" : "permanent fail",
                             last_seq_of(a));
        }
      }
    }
    if (!batch.empty()) {
      auto b = persist(*c, "/v1/workers/complete", {{"results", batch}}, s);
      if (b.status == 200) {
        s.orc.op();
        auto results = b.json()["results"];
        for (std::size_t i = 0; i < results.size() && i < in_batch.size(); ++i)
          if (results[i].value("status", 0) == 200)
            s.orc.completed(in_batch[i].id, in_batch[i].token, results[i].value("state", ""));
      }
    }
  }
  // The late results that are still due are sent now (the drain waits for
  // the reclaims they refer to anyway).
  for (auto& [h, at] : late) complete(h, "late complete");
}

void reviewer(shared_state& s) {
  std::mt19937_64 rng(s.o->seed * 1000 + 300);
  std::uniform_real_distribution<double> u(0, 1);
  auto c = make_client(s, reviewer_caller);
  while (s.work.load()) {
    auto r = c->get("/v1/jobs?state=pending_review&limit=100");
    if (r.status == 200) {
      const json pending = r.json();
      for (auto& j : pending["jobs"]) {
        auto id = j["id"].get<std::uint64_t>();
        bool accept = u(rng) < 0.7;
        auto a = c->post("/v1/jobs/" + std::to_string(id) + "/review",
                         {{"accept", accept}, {"comment", "crash-test"}});
        if (a.status == 200) {
          s.orc.op();
          auto answer = a.json();
          auto st = state_of(answer);
          if (st != (accept ? "accepted" : "declined"))
            s.orc.violation(id, std::string("review answered 200: expected ") +
                                    (accept ? "accepted" : "declined") + ", seen " + st);
          s.orc.acknowledged(id, st, accept ? "review accept" : "review decline",
                             last_seq_of(answer));
        }
      }
    }
    std::this_thread::sleep_for(r.status == 200 ? 30ms : 20ms);
  }
}

/// Sends an operator's call again while the server is down, restarting or
/// busy, until it answers otherwise or `limit` passes: the last answer.
http::response insist(http::client& c, const std::string& method, const std::string& path,
                      const json& body, std::chrono::milliseconds limit = 60s) {
  auto end = clock_type::now() + limit;
  for (;;) {
    auto r = c.request(method, path, body.is_null() ? std::string{} : body.dump());
    if (!unacknowledged(r.status) || clock_type::now() > end) return r;
    std::this_thread::sleep_for(25ms);
  }
}

/// The operator (admin token): starts the recurring schedules, then pauses
/// the default queue for a moment now and then and resumes it. Each answer
/// is recorded under queue_mu, so a check never sees an operation half done.
void operator_loop(shared_state& s) {
  std::mt19937_64 rng(s.o->seed * 1000 + 400);
  auto c = make_client(s, admin_caller);
  for (int i = 0; i < s.o->schedules && s.operate.load(); ++i) {
    json spec = {{"kind", "crash-recurring"},
                 {"payload", {{"schedule", i}}},
                 {"recurrence", {{"interval", 100 + 100 * i}}},
                 {"retry", {{"max_attempts", 2}, {"initial_interval", 50}, {"max_interval", 200}}},
                 {"timeouts", {{"heartbeat", s.o->heartbeat_ms}, {"to_stop", 0}}}};
    auto r = insist(*c, "POST", "/v1/jobs", spec);
    if (r.status != 201) {
      // A lost answer may have left a schedule the driver does not know:
      // the drain deletes every listed one.
      if (r.status != 0)
        s.orc.violation(0, "recurring submit answered " + std::to_string(r.status) + ": " + r.body);
      continue;
    }
    auto id = r.json()["id"].get<std::uint64_t>();
    s.orc.submitted(id, false, spec["payload"].dump());
    std::lock_guard lk(s.schedules_mu);
    s.schedules.push_back(id);
  }
  auto toggle = [&](bool pause) {
    std::lock_guard lk(s.queue_mu);
    auto r = c->post(std::string("/v1/queues/default/") + (pause ? "pause" : "resume"),
                     json::object());
    if (r.status == 200) {
      s.orc.op();
      s.expect_paused = pause;
      if (r.json()["queue"].value("paused", !pause) != pause)
        s.orc.violation(0, std::string(pause ? "pause" : "resume") +
                               " answered 200 with paused=" + (pause ? "false" : "true"));
    } else if (r.status == 0) {
      s.expect_paused.reset();  // may or may not have happened
    } else if (!unacknowledged(r.status)) {
      s.orc.violation(0, std::string(pause ? "pause" : "resume") + " answered " +
                             std::to_string(r.status) + ": " + r.body);
    }
  };
  auto nap = [&](int ms) {
    for (auto end = clock_type::now() + std::chrono::milliseconds(ms);
         s.operate.load() && clock_type::now() < end;)
      std::this_thread::sleep_for(10ms);
  };
  while (s.operate.load()) {
    nap(300 + static_cast<int>(rng() % 700));
    if (!s.operate.load()) break;
    toggle(true);
    nap(30 + static_cast<int>(rng() % 170));
    toggle(false);
  }
}

// -- checks -----------------------------------------------------------------------

struct listed {
  std::string state;
  std::uint64_t lease_token = 0;
  std::int64_t started_at = 0;
};

/// A GET for the checks. A connection kept alive across a kill may fail
/// once without an answer, and 429 asks to come back: both are tried again.
http::response get_checked(http::client& c, const std::string& path) {
  http::response r;
  for (int tries = 0; tries < 10; ++tries) {
    r = c.get(path);
    if (r.status != 0 && r.status != 429) break;
    std::this_thread::sleep_for(200ms);
  }
  return r;
}

std::string describe(const http::response& r) {
  return r.status ? std::to_string(r.status) + " " + r.body.substr(0, 300)
                  : "no answer (" + r.transport_error + ")";
}

/// What a fresh connection learns of the server at once, for a violation's
/// text: /healthz and the connection, call-queue and long-poll gauges.
std::string server_state(const shared_state& s) {
  http::client fresh(s.url, std::string{}, std::chrono::milliseconds(s.o->http_timeout_ms));
  auto h = fresh.get("/healthz");
  std::string out = "GET /healthz on a new connection: " + describe(h);
  auto m = fresh.get("/metrics");
  if (m.status != 200) return out + "; GET /metrics: " + describe(m);
  for (const char* name : {"jobsmith_http_connections", "jobsmith_call_queue",
                           "jobsmith_long_polls", "jobsmith_http_requests_total"}) {
    auto pos = m.body.find(std::string{"\n"} + name + " ");
    if (pos == std::string::npos) continue;
    auto end = m.body.find('\n', pos + 1);
    out += "; " + m.body.substr(pos + 1, end - pos - 1);
  }
  return out;
}

/// Every job with id > `after`, from the list endpoint; nullopt (and why in
/// `error`) when the server did not answer 200.
std::optional<std::map<std::uint64_t, listed>> list_all(http::client& c, std::uint64_t after,
                                                        const std::string& filter = "",
                                                        std::string* error = nullptr) {
  std::map<std::uint64_t, listed> out;
  for (;;) {
    auto r = get_checked(c, "/v1/jobs?limit=1000&after=" + std::to_string(after) + filter);
    if (r.status != 200) {
      if (error) *error = describe(r);
      return std::nullopt;
    }
    auto j = r.json();
    for (auto& job : j["jobs"])
      out[job["id"].get<std::uint64_t>()] = {job["state"].get<std::string>(),
                                             job.value("lease_token", std::uint64_t{0}),
                                             job.value("started_at", std::int64_t{0})};
    if (j["next"].is_null()) return out;
    after = j["next"].get<std::uint64_t>();
  }
}

/// Invariant 5: a job running with no lease renewed (by its start, a lease
/// or a heartbeat) within its heartbeat timeout of server uptime plus slack
/// must have been reclaimed. A restart does not renew a lease: it keeps
/// what was left of it (actors/lease_clock.hpp).
void check_running(shared_state& s, http::client& c) {
  std::string err;
  auto running = list_all(c, 0, "&state=running", &err);
  if (!running) {
    s.orc.violation(0, "GET /v1/jobs?state=running: expected 200, seen " + err);
    return;
  }
  auto now = wall_ms();
  for (auto& [id, seen] : *running) {
    if (seen.state != "running") continue;
    auto last = std::max(seen.started_at, s.orc.touched(seen.lease_token));
    auto idle = s.uptime_between(last, now);
    if (idle > s.o->heartbeat_ms + s.o->slack_ms)
      s.orc.violation(
          id, "running without a live lease: expected a reclaim within " +
                  std::to_string(s.o->heartbeat_ms) + " ms (+" + std::to_string(s.o->slack_ms) +
                  " ms slack), seen running under token " + std::to_string(seen.lease_token) +
                  " with no renewal for " + std::to_string(idle) + " ms of uptime");
  }
}

/// After a restart: the tokens still apply, the queue is paused as the last
/// acknowledged pause or resume left it, every acknowledged recurring
/// schedule is still there.
void check_settings(shared_state& s, http::client& c) {
  if (s.o->tokens) {
    struct probe {
      const caller* who;  // nullptr: no token
      const char* method;
      const char* path;
      int expect;
    };
    for (auto& p : {probe{nullptr, "GET", "/v1/jobs", 401},
                    probe{&reader_caller, "POST", "/v1/jobs", 403},
                    probe{&worker_caller, "POST", "/v1/jobs", 403},
                    probe{&producer_caller, "POST", "/v1/workers/lease", 403},
                    probe{&producer_caller, "POST", "/v1/queues/default/pause", 403}}) {
      http::client a(s.url, p.who ? p.who->token : std::string{},
                     std::chrono::milliseconds(s.o->http_timeout_ms));
      auto r = a.request(p.method, p.path, std::string_view{"{\"kind\": \"crash\"}"});
      if (r.status != p.expect && !unacknowledged(r.status))
        s.orc.violation(0, std::string(p.method) + " " + p.path + " as " +
                               (p.who ? p.who->name : "nobody") + ": expected " +
                               std::to_string(p.expect) + ", seen " + describe(r));
    }
  }
  {
    std::lock_guard lk(s.queue_mu);
    auto r = get_checked(c, "/v1/queues");
    if (r.status != 200) {
      s.orc.violation(0, "GET /v1/queues: expected 200, seen " + describe(r));
    } else if (s.expect_paused) {
      bool paused = false;
      const json answer = r.json();
      for (auto& q : answer["queues"])
        if (q.value("name", "") == "default") paused = q.value("paused", false);
      if (paused != *s.expect_paused)
        s.orc.violation(0, std::string("queue default: the last acknowledged operation was ") +
                               (*s.expect_paused ? "pause" : "resume") + ", seen paused=" +
                               (paused ? "true" : "false"));
    }
  }
  std::vector<std::uint64_t> known;
  {
    std::lock_guard lk(s.schedules_mu);
    known = s.schedules;
  }
  auto r = get_checked(c, "/v1/schedules");
  if (r.status != 200) {
    s.orc.violation(0, "GET /v1/schedules: expected 200, seen " + describe(r));
    return;
  }
  std::set<std::uint64_t> listed;
  const json answer = r.json();  // kept alive: the loop refers into it
  for (auto& sc : answer["schedules"]) listed.insert(sc["id"].get<std::uint64_t>());
  for (auto id : known)
    if (!listed.count(id))
      s.orc.violation(id, "acknowledged recurring schedule missing: GET /v1/schedules answered " +
                              r.body.substr(0, 300));
}

/// Invariants 1 and 3 (2 is checked as answers arrive) against the running
/// server, for every acknowledged job with id > `after`; then 5.
void check_server(shared_state& s, http::client& c, std::uint64_t after) {
  auto facts = s.orc.snapshot();
  std::string err;
  auto jobs = list_all(c, after, "", &err);
  if (!jobs) {
    s.orc.violation(0, "GET /v1/jobs after a restart: expected 200, seen " + err + "; then " +
                           server_state(s));
    return;
  }
  for (auto it = facts.upper_bound(after); it != facts.end(); ++it) {
    auto id = it->first;
    auto& f = it->second;
    auto j = jobs->find(id);
    if (j == jobs->end()) {
      auto g = get_checked(c, "/v1/jobs/" + std::to_string(id));
      if (g.status == 404)
        s.orc.violation(id, "acknowledged submit missing: expected the job, seen 404");
      else
        s.orc.violation(id, "acknowledged submit missing from the list: expected it, GET answers " +
                                std::to_string(g.status) + " " + state_of(g.json()));
      continue;
    }
    const auto& seen = j->second;
    // A retry in flight at the snapshot, or sent since, may have changed
    // the state the list shows: not a violation, and not checkable now.
    if (f.retries_in_flight > 0 || s.orc.retries_sent(id) != f.retries_sent) continue;
    if (!f.terminal.empty() && seen.state != f.terminal)
      s.orc.violation(id, "acknowledged " + f.terminal_how + " undone: expected " + f.terminal +
                              ", seen " + seen.state);
    if (!f.complete_tokens.empty()) {
      static const std::set<std::string> after_complete = {"pending_review", "succeeded",
                                                           "accepted", "declined", "cancelled"};
      auto token = *f.complete_tokens.begin();
      if (!after_complete.count(seen.state))
        s.orc.violation(id, "acknowledged complete under token " + std::to_string(token) +
                                " undone: expected a completed state, seen " + seen.state);
      else if (seen.lease_token != token)
        s.orc.violation(id, "acknowledged complete under token " + std::to_string(token) +
                                ": expected that token on the job, seen " +
                                std::to_string(seen.lease_token));
    }
  }
  check_running(s, c);
  check_settings(s, c);
}

/// Invariant 4 and the histories: every acknowledged job, one GET each.
/// A fold of the history over the event types (independent of the
/// engine's) must reach exactly one terminal state, the one the job shows;
/// at most one job.succeeded, under a token some job.started handed out and
/// (when a complete was acknowledged) the acknowledged one.
void check_histories(shared_state& s, const std::map<std::uint64_t, job_facts>& facts,
                     int threads) {
  std::vector<std::uint64_t> ids;
  for (auto& [id, f] : facts) ids.push_back(id);
  std::atomic<std::size_t> next{0};
  auto run = [&] {
    // As an admin: the checks compare lease tokens, which a reader sees as 0.
    auto c = make_client(s, admin_caller);
    for (std::size_t i; (i = next.fetch_add(1)) < ids.size();) {
      auto id = ids[i];
      const auto& f = facts.at(id);
      auto r = get_checked(*c, "/v1/jobs/" + std::to_string(id));
      if (r.status != 200) {
        s.orc.violation(id, "GET after the drain: expected 200, seen " + describe(r));
        continue;
      }
      auto j = r.json();
      std::string shown = j["job"]["state"].get<std::string>();
      bool review = j["job"]["spec"].value("review_required", false);
      auto payload = j["job"]["spec"]["payload"].dump();
      if (f.submit_acked && !f.unique && payload != f.payload)
        s.orc.violation(id, "acknowledged submit replaced: expected payload " + f.payload +
                                ", seen " + payload);
      if (f.submit_acked && !f.unique && review != f.review)
        s.orc.violation(id, std::string("review_required: expected ") +
                                (f.review ? "true" : "false") + ", seen " +
                                (review ? "true" : "false"));
      std::string state = "queued";
      int terminal_entries = 0, succeeded = 0, retries = 0;
      std::map<int, std::uint64_t> tokens;  // attempt -> lease token
      std::uint64_t succeeded_token = 0;
      for (auto& ev : j["history"]) {
        auto type = ev["type"].get<std::string>();
        auto& b = ev["body"];
        std::string next_state = state;
        if (type == "job.started") {
          next_state = "running";
          tokens[b.value("attempt", 0)] = b.value("lease_token", std::uint64_t{0});
        } else if (type == "job.succeeded") {
          ++succeeded;
          succeeded_token = tokens[b.value("attempt", 0)];
          next_state = review ? "pending_review" : "succeeded";
        } else if (type == "job.failed" || type == "job.reclaimed") {
          next_state = b.value("next_run_at", std::int64_t{0}) == 0 ? "discarded" : "scheduled";
        } else if (type == "job.reviewed") {
          next_state = b.value("accepted", false) ? "accepted" : "declined";
        } else if (type == "job.cancelled") {
          next_state = "cancelled";
        } else if (type == "job.discarded") {
          next_state = "discarded";
        } else if (type == "job.expired") {
          next_state = "expired";
        } else if (type == "job.requested" && b.value("what", "") == "retry" &&
                   is_terminal(state)) {
          next_state = "scheduled";
          ++retries;
        }
        if (is_terminal(next_state) && !is_terminal(state))
          ++terminal_entries;
        else if (is_terminal(state) && next_state != state && type != "job.requested")
          s.orc.violation(id, "event " + type + " after the terminal state " + state);
        state = next_state;
      }
      if (!is_terminal(shown))
        s.orc.violation(id, "after the drain: expected a terminal state, seen " + shown);
      if (terminal_entries != retries + 1)
        s.orc.violation(id, "expected exactly one terminal transition in the history" +
                                (retries ? " per retry and one more" : std::string{}) +
                                ", seen " + std::to_string(terminal_entries) + " (" +
                                std::to_string(retries) + " retries)");
      if (state != shown)
        s.orc.violation(id, "the history folds to " + state + ", the job shows " + shown);
      if (succeeded > retries + 1)
        s.orc.violation(id, "expected at most one job.succeeded" +
                                (retries ? " per retry and one more" : std::string{}) +
                                ", seen " + std::to_string(succeeded));
      if (!f.complete_tokens.empty() && succeeded == 1 && !f.complete_tokens.count(succeeded_token))
        s.orc.violation(id, "succeeded under token " + std::to_string(succeeded_token) +
                                ", expected the acknowledged token " +
                                std::to_string(*f.complete_tokens.begin()));
      if (!f.complete_tokens.empty() && succeeded == 0)
        s.orc.violation(id, "acknowledged complete, expected a job.succeeded, seen none");
    }
  };
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) ts.emplace_back(run);
  for (auto& t : ts) t.join();
}

/// Which principals may record each event type (log invariant 10): the
/// token names of the callers that cause it, or the engine itself.
std::map<std::string, std::set<std::string>> expected_principals(const options& o) {
  if (!o.tokens) return {};  // every caller is "local"
  const std::string engine = "engine";
  const std::string producer = producer_caller.name, worker = worker_caller.name,
                    admin = admin_caller.name, reviewer = reviewer_caller.name;
  return {{"job.submitted", {producer, admin, engine}},  // admin: first runs of schedules
          {"job.started", {worker}},
          {"job.progress", {worker}},
          {"job.succeeded", {worker}},
          {"job.failed", {worker}},
          {"job.reclaimed", {engine}},
          {"job.cancelled", {producer}},
          {"job.requested", {producer, admin}},  // admin: run-now in the drain
          {"job.reviewed", {reviewer}},
          {"job.expired", {engine}},
          {"queue.paused", {admin}},
          {"queue.resumed", {admin}},
          {"schedule.created", {admin}},
          {"schedule.deleted", {admin}},
          {"engine.started", {engine}},
          {"queue.retention", {engine}}};  // serve's default, at each start
}

/// The event log as the API serves it: sequence numbers 1..head without a
/// gap, every acknowledged job has its job.submitted, and the fold of the
/// whole log keeps invariants 7-10 (log_invariants.hpp).
void check_events(shared_state& s, http::client& c,
                  const std::map<std::uint64_t, job_facts>& facts) {
  auto ready = get_checked(c, "/readyz").json();
  std::uint64_t head = ready.is_object() ? ready.value("head", std::uint64_t{0}) : 0;
  std::uint64_t from = 1, expect = 1;
  std::set<std::uint64_t> submitted;
  jobsmith::crash::log_invariants inv(
      [&s](std::uint64_t job, const std::string& what) { s.orc.violation(job, what); },
      expected_principals(*s.o));
  while (from <= head) {
    auto r = get_checked(c, "/v1/events?limit=1000&from=" + std::to_string(from));
    if (r.status != 200) {
      s.orc.violation(0, "GET /v1/events: expected 200, seen " + describe(r));
      return;
    }
    auto j = r.json();
    for (auto& ev : j["events"]) {
      auto seq = ev["seq"].get<std::uint64_t>();
      if (seq != expect)
        s.orc.violation(0, "event sequence: expected " + std::to_string(expect) + ", seen " +
                               std::to_string(seq));
      expect = seq + 1;
      if (ev["type"] == "job.submitted") submitted.insert(ev["job"].get<std::uint64_t>());
      inv.fold(ev);
    }
    auto next = j["next"].get<std::uint64_t>();
    if (next <= from) {
      s.orc.violation(0, "GET /v1/events?from=" + std::to_string(from) + " did not advance");
      return;
    }
    from = next;
  }
  if (expect != head + 1)
    s.orc.violation(0, "events: expected 1.." + std::to_string(head) + ", seen 1.." +
                           std::to_string(expect - 1));
  for (auto& [id, f] : facts)
    if (!submitted.count(id)) s.orc.violation(id, "expected a job.submitted event, seen none");
}

/// Invariant 6: `jobsmith audit verify` on the directory (server down).
void audit_verify(shared_state& s, const std::string& data, const std::string& work) {
  auto out = work + "/audit.out";
  std::error_code ec;
  fs::remove(out, ec);
  auto pid = spawn({s.o->binary, "audit", "verify", "--data", data}, out);
  auto st = pid > 0 ? wait_for(pid, 300s) : std::optional<int>{-1};
  if (!st) {
    ::kill(pid, SIGKILL);
    wait_for(pid, 10s);
  }
  if (!st || *st != 0)
    s.orc.violation(0, "audit verify: expected exit 0, seen " +
                           (st ? std::to_string(*st) : std::string("a timeout")) + ":\n" +
                           tail(out, 10));
}

/// --inject-violations: false acknowledgements the checks must report.
/// Called after each restart until all three are placed: the second and
/// third need a finished and an unfinished job in the list, which the
/// first restart may not have yet (or its list call may fail).
struct injected_violations {
  bool ghost = false, undone = false, twice = false;
  bool all() const { return ghost && undone && twice; }
};

void inject_violations(shared_state& s, http::client& c, injected_violations& done) {
  const std::uint64_t ghost = 1000000000;
  if (!done.ghost) {
    s.orc.submitted(ghost, false, "{}");  // 1: a submit the server never saw
    done.ghost = true;
  }
  std::string err;
  auto jobs = list_all(c, 0, "", &err);
  if (!jobs) {
    std::printf("crash-test: --inject-violations: listing jobs failed (%s); trying after the "
                "next restart\n", err.c_str());
    return;
  }
  for (auto& [id, l] : *jobs) {
    if (!done.undone && !is_terminal(l.state)) {
      s.orc.acknowledged(id, "cancelled", "injected cancel");  // 3: never happened
      done.undone = true;
    } else if (!done.twice && l.state == "succeeded" && l.lease_token) {
      // 2: a second token. The oracle does not count tokens of a job it saw
      // retried, so this takes the first job for which the check fires.
      s.orc.completed(id, l.lease_token, "succeeded");
      done.twice = s.orc.completed(id, l.lease_token + 1, "succeeded");
    }
  }
  if (!done.all())
    std::printf("crash-test: --inject-violations: %zu jobs listed, no %s job yet; trying after "
                "the next restart\n",
                jobs->size(), done.undone ? "succeeded" : "unfinished");
}

bool parse(int argc, char** argv, options& o) {
  auto num = [&](int& i) { return std::stoll(argv[++i]); };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc && a != "--keep" && a != "--verbose" && a != "--inject-violations" &&
        a != "--no-tokens" && a != "--help") {
      std::fprintf(stderr, "crash-test: %s needs a value\n", a.c_str());
      return false;
    }
    if (a == "--binary")
      o.binary = argv[++i];
    else if (a == "--kills")
      o.kills = static_cast<int>(num(i));
    else if (a == "--seed")
      o.seed = static_cast<std::uint64_t>(num(i));
    else if (a == "--snapshot-every")
      o.snapshot_every = static_cast<int>(num(i));
    else if (a == "--min-load-ms")
      o.min_load_ms = static_cast<int>(num(i));
    else if (a == "--max-load-ms")
      o.max_load_ms = static_cast<int>(num(i));
    else if (a == "--heartbeat-ms")
      o.heartbeat_ms = static_cast<int>(num(i));
    else if (a == "--slack-ms")
      o.slack_ms = static_cast<int>(num(i));
    else if (a == "--producers")
      o.producers = static_cast<int>(num(i));
    else if (a == "--workers")
      o.workers = static_cast<int>(num(i));
    else if (a == "--max-live")
      o.max_live = static_cast<int>(num(i));
    else if (a == "--drain-s")
      o.drain_s = static_cast<int>(num(i));
    else if (a == "--verify-every")
      o.verify_every = static_cast<int>(num(i));
    else if (a == "--full-check-every")
      o.full_check_every = static_cast<int>(num(i));
    else if (a == "--http-timeout-ms")
      o.http_timeout_ms = static_cast<int>(num(i));
    else if (a == "--work-dir")
      o.work_dir = argv[++i];
    else if (a == "--keep")
      o.keep = true;
    else if (a == "--verbose")
      o.verbose = true;
    else if (a == "--inject-violations")
      o.inject = true;
    else if (a == "--no-tokens")
      o.tokens = false;
    else if (a == "--schedules")
      o.schedules = static_cast<int>(num(i));
    else {
      std::fprintf(stderr,
                   "usage: jobsmith-crash-driver --binary PATH [--kills N] [--seed S]\n"
                   "  [--snapshot-every N] [--min-load-ms MS] [--max-load-ms MS]\n"
                   "  [--heartbeat-ms MS] [--slack-ms MS] [--producers N] [--workers N]\n"
                   "  [--max-live N] [--drain-s S] [--verify-every N] [--full-check-every N]\n"
                   "  [--http-timeout-ms MS] [--work-dir DIR] [--keep] [--verbose]\n"
                   "  [--inject-violations] [--no-tokens] [--schedules N]\n");
      return false;
    }
  }
  if (o.binary.empty() || o.kills < 0 || o.min_load_ms < 0 || o.max_load_ms < o.min_load_ms ||
      o.verify_every < 1 || o.full_check_every < 1 || o.schedules < 0) {
    std::fprintf(stderr, "crash-test: --binary is required; counts must be positive\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  try {
    if (!parse(argc, argv, o)) return 2;
  } catch (const std::exception&) {
    std::fprintf(stderr, "crash-test: a numeric option has a bad value\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  const bool own_dir = jobsmith::crash::prepare_work_dir(o.work_dir, "crash");
  const std::string data = o.work_dir + "/data";
  const std::string log = o.work_dir + "/server.log";

  shared_state s;
  s.o = &o;
  s.url.port = free_port();
  // Schedules run every 100-500 ms, so a run sees many of them.
  std::vector<std::string> serve_args{"--snapshot-every", std::to_string(o.snapshot_every),
                                      "--handler-timeout-ms", "60000", "--min-recurrence-ms",
                                      "100"};
  if (o.tokens) {
    json tokens = json::array();
    for (auto& who : all_callers)
      tokens.push_back({{"name", who.name}, {"token", who.token}, {"role", who.role}});
    const std::string path = o.work_dir + "/tokens.json";
    std::ofstream(path) << json{{"tokens", tokens}}.dump(2) << "\n";
    serve_args.insert(serve_args.end(), {"--tokens", path});
  }
  server_process server(o.binary, data, s.url.port, log, serve_args, o.ready_timeout_s);
  std::printf("crash-test: seed=%llu port=%u dir=%s\n", static_cast<unsigned long long>(o.seed),
              s.url.port, o.work_dir.c_str());
  std::fflush(stdout);

  std::string err;
  auto first = server.start(&err);
  if (!first) {
    std::printf("crash-test: %s\n", err.c_str());
    return 2;
  }

  std::vector<std::thread> threads;
  for (int i = 0; i < o.producers; ++i) threads.emplace_back(producer, std::ref(s), i);
  std::vector<std::thread> workers;
  for (int i = 0; i < o.workers; ++i) workers.emplace_back(worker, std::ref(s), i);
  workers.emplace_back(reviewer, std::ref(s));
  std::thread operator_thread(operator_loop, std::ref(s));

  std::mt19937_64 rng(o.seed);
  std::int64_t worst_recovery = 0, total_recovery = 0;
  int kills = 0;
  bool fatal = false;
  auto checker = make_client(s, admin_caller);  // sees lease tokens, as check_histories
  injected_violations injected;
  for (int k = 1; k <= o.kills && !fatal; ++k) {
    auto load = o.min_load_ms + static_cast<int>(rng() % (o.max_load_ms - o.min_load_ms + 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(load));
    server.kill_now();
    const auto killed_wall = wall_ms();
    ++kills;
    if (k % o.verify_every == 0) audit_verify(s, data, o.work_dir);
    auto ms = server.start(&err);
    if (!ms) {
      s.orc.violation(0, "restart after kill " + std::to_string(k) + " failed: " + err);
      fatal = true;
      break;
    }
    s.went_down(killed_wall, wall_ms());
    worst_recovery = std::max(worst_recovery, *ms);
    total_recovery += *ms;
    auto min_dirty = s.orc.take_min_dirty();
    bool full = k % o.full_check_every == 0;
    if (o.inject && !injected.all()) inject_violations(s, *checker, injected);
    auto c0 = clock_type::now();
    check_server(s, *checker, full || min_dirty == 0 ? 0 : min_dirty - 1);
    if (o.verbose)
      std::printf(
          "kill %d: after %d ms of load; ready again in %lld ms (%d start%s); checked in %lld ms\n",
          k, load, static_cast<long long>(*ms), server.starts, server.starts == 1 ? "" : "s",
          static_cast<long long>(
              std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - c0)
                  .count()));
    std::fflush(stdout);
  }

  // The drain: no more kills, no new jobs, no abandoned jobs; workers and
  // the reviewer work until every job is finished.
  s.produce = false;
  s.chaos = false;
  s.operate = false;
  for (auto& t : threads) t.join();
  operator_thread.join();
  if (!fatal) {
    // The queue runs again and every schedule ends (also one whose submit
    // answer a kill took): their live runs finish, no new ones start.
    auto admin = make_client(s, admin_caller);
    {
      std::lock_guard lk(s.queue_mu);
      auto r = insist(*admin, "POST", "/v1/queues/default/resume", json::object());
      if (r.status != 200)
        s.orc.violation(0, "resume for the drain: expected 200, seen " + describe(r));
      s.expect_paused = false;
    }
    auto scheds = get_checked(*checker, "/v1/schedules");
    if (scheds.status != 200)
      s.orc.violation(0, "GET /v1/schedules for the drain: expected 200, seen " + describe(scheds));
    const json schedule_list = scheds.status == 200 ? scheds.json() : json::object();
    if (scheds.status == 200)
      for (auto& sc : schedule_list["schedules"]) {
        auto id = sc["id"].get<std::uint64_t>();
        auto path = "/v1/schedules/" + std::to_string(id);
        auto r = insist(*admin, "DELETE", path, json());
        if (r.status != 200)
          s.orc.violation(id, "DELETE " + path + ": expected 200, seen " + describe(r));
        // Its last run may wait out a long failure backoff: due now (a run
        // that is not scheduled answers 409).
        auto last = sc.value("last_run", std::uint64_t{0});
        auto rn = insist(*admin, "POST", "/v1/jobs/" + std::to_string(last) + "/run-now",
                         json::object());
        if (rn.status != 200 && rn.status != 409)
          s.orc.violation(last, "run-now for the drain: expected 200 or 409, seen " + describe(rn));
      }
    {
      std::lock_guard lk(s.schedules_mu);
      s.schedules.clear();  // deleted: no longer expected in the list
    }
    auto end = clock_type::now() + std::chrono::seconds(o.drain_s);
    std::optional<std::map<std::uint64_t, listed>> left;
    for (;;) {
      left = list_all(*checker, 0,
                      "&not_state=succeeded,accepted,declined,discarded,cancelled,expired");
      if (left && left->empty()) break;
      if (clock_type::now() > end) break;
      // Invariant 5 holds during the drain too.
      check_running(s, *checker);
      std::this_thread::sleep_for(200ms);
    }
    s.work = false;
    for (auto& t : workers) t.join();
    workers.clear();
    if (!left) {
      s.orc.violation(0, "the list of unfinished jobs did not answer during the drain");
    } else {
      int shown = 0;
      for (auto& [id, l] : *left)
        if (shown++ < 20)
          s.orc.violation(id, "not finished after a " + std::to_string(o.drain_s) +
                                  " s drain: expected a terminal state, seen " + l.state);
    }
    check_server(s, *checker, 0);
    auto facts = s.orc.snapshot();
    check_histories(s, facts, 4);
    check_events(s, *checker, facts);
  }
  s.work = false;
  for (auto& t : workers) t.join();
  int stopped = server.stop();
  if (!fatal && stopped != 0)
    s.orc.violation(0, "SIGTERM: expected exit 0, seen " + std::to_string(stopped));
  audit_verify(s, data, o.work_dir);

  auto violations = s.orc.violations();
  std::printf(
      "crash-test: kills=%d operations=%llu jobs=%zu violations=%zu worst_recovery_ms=%lld "
      "mean_recovery_ms=%lld\n",
      kills, static_cast<unsigned long long>(s.orc.ops()), s.orc.job_count(), violations,
      static_cast<long long>(worst_recovery),
      static_cast<long long>(kills ? total_recovery / kills : 0));
  std::fflush(stdout);
  if (own_dir && !o.keep) {
    std::error_code ec;
    fs::remove_all(o.work_dir, ec);
  } else {
    std::printf("crash-test: data and server log kept in %s\n", o.work_dir.c_str());
  }
  return violations == 0 ? 0 : 1;
}
