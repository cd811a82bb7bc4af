#include "actors/caf_runtime.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <caf/detail/set_thread_name.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/policy/work_sharing.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/coordinator.hpp>

// -- the lean work-sharing policy ---------------------------------------------

namespace jobsmith {

/// Work sharing like CAF's `policy::work_sharing`: one queue of runnable
/// actors that every worker takes from, FIFO. It differs in two ways:
/// - The queue is a deque, not a list that allocates a node per enqueue.
/// - A worker wakes another only when one sleeps, and an actor made
///   runnable by a worker wakes another only when it is not the only one
///   waiting (push_from_worker).
/// Its worker (the specialization below) drops CAF's per-resume logger
/// bookkeeping: a `dynamic_cast` and two thread-local lookups for every
/// actor it resumes, which no log line used (the CAF build logs nothing).
/// All three together: about 5% less CPU per job in `jobsmith bench
/// --embedded` (docs/benchmarks.md).
struct lean_sharing {
  struct coordinator_data {
    explicit coordinator_data(caf::scheduler::abstract_coordinator*) {}
    std::mutex mu;
    std::condition_variable wake;
    std::deque<caf::resumable*> runnable;  // guarded by mu
    std::size_t sleeping = 0;              // workers waiting on wake; guarded by mu
  };

  struct worker_data {
    explicit worker_data(caf::scheduler::abstract_coordinator*) {}
  };

  static void push(coordinator_data& d, caf::resumable* job) {
    bool wake_one;
    {
      std::lock_guard<std::mutex> guard{d.mu};
      d.runnable.push_back(job);
      wake_one = d.sleeping > 0;
    }
    if (wake_one) d.wake.notify_one();
  }

  /// Queues an actor made runnable by the actor a worker is running now.
  /// That worker takes the queue's front as soon as it is done, so a
  /// sleeping worker is woken only when this is not the only actor
  /// waiting: a lone request to the next actor does not cost a second
  /// thread's wake-up and a hand-over between cores.
  static void push_from_worker(coordinator_data& d, caf::resumable* job) {
    bool wake_one;
    {
      std::lock_guard<std::mutex> guard{d.mu};
      d.runnable.push_back(job);
      wake_one = d.sleeping > 0 && d.runnable.size() > 1;
    }
    if (wake_one) d.wake.notify_one();
  }

  /// Blocks until an actor is runnable, and takes it.
  static caf::resumable* take(coordinator_data& d) {
    std::unique_lock<std::mutex> guard{d.mu};
    while (d.runnable.empty()) {
      ++d.sleeping;
      d.wake.wait(guard);
      --d.sleeping;
    }
    auto job = d.runnable.front();
    d.runnable.pop_front();
    return job;
  }

  // What caf::scheduler::coordinator calls on its policy.
  template <class Coordinator>
  void central_enqueue(Coordinator* self, caf::resumable* job) {
    push(self->data(), job);
  }

  template <class Worker, class UnaryFunction>
  void foreach_resumable(Worker*, UnaryFunction) {}  // workers hold no queue

  template <class Coordinator, class UnaryFunction>
  void foreach_central_resumable(Coordinator* self, UnaryFunction f) {
    auto& d = self->data();
    std::deque<caf::resumable*> left;
    {
      std::lock_guard<std::mutex> guard{d.mu};
      left.swap(d.runnable);
    }
    for (auto job : left) f(job);
  }
};

}  // namespace jobsmith

namespace caf::scheduler {

/// The worker of the lean policy: CAF's worker loop without the logger
/// bookkeeping. CAF's coordinator creates, starts, stops and joins it
/// through the members below, the ones it uses of `worker<Policy>`.
template <>
class worker<jobsmith::lean_sharing> : public execution_unit {
 public:
  using coordinator_ptr = coordinator<jobsmith::lean_sharing>*;
  using policy_data = jobsmith::lean_sharing::worker_data;

  worker(size_t /*worker_id*/, coordinator_ptr parent, const policy_data&, size_t throughput)
      : execution_unit(&parent->system()), max_throughput_(throughput), parent_(parent) {}

  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  void start() {
    thread_ = std::thread{[this] {
      CAF_SET_LOGGER_SYS(&system());
      detail::set_thread_name("caf.worker");
      system().thread_started();
      run();
      system().thread_terminates();
    }};
  }

  void external_enqueue(resumable* job) { jobsmith::lean_sharing::push(parent_->data(), job); }

  void exec_later(resumable* job) override {
    jobsmith::lean_sharing::push_from_worker(parent_->data(), job);
  }

  std::thread& get_thread() { return thread_; }

 private:
  void run() {
    auto& d = parent_->data();
    for (;;) {
      auto job = jobsmith::lean_sharing::take(d);
      // Every resume_result has a case: a new one fails the build (-Wswitch).
      switch (job->resume(this, max_throughput_)) {
        case resumable::resume_later:  // it yielded: to the back of the queue
          jobsmith::lean_sharing::push(d, job);
          break;
        case resumable::done:
        case resumable::awaiting_message:
          intrusive_ptr_release(job);
          break;
        case resumable::shutdown_execution_unit:
          return;
      }
    }
  }

  size_t max_throughput_;
  coordinator_ptr parent_;
  std::thread thread_;
};

}  // namespace caf::scheduler

namespace jobsmith {

namespace {

std::atomic<unsigned long long> passed_total{0};
std::atomic<unsigned long long> skipped_total{0};

/// CAF's thread-safe clock that drops cancellations of actors that never
/// armed a timeout: the only thing those would do is wake the timer thread
/// to find nothing to cancel. Delayed messages (schedule_message) are not
/// per-actor timeouts and are never cancelled by an actor's end in CAF
/// either.
class quiet_clock final : public caf::detail::thread_safe_actor_clock {
 public:
  using super = caf::detail::thread_safe_actor_clock;

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                            uint64_t id) override {
    arm(self);
    super::set_ordinary_timeout(t, self, type, id);
  }

  void set_request_timeout(time_point t, caf::abstract_actor* self, caf::message_id id) override {
    arm(self);
    super::set_request_timeout(t, self, id);
  }

  void set_multi_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                         uint64_t id) override {
    arm(self);
    super::set_multi_timeout(t, self, type, id);
  }

  /// Called by CAF when `self` ends. An actor is armed from its first
  /// timeout to its end, so an actor's address is never mistaken for that
  /// of an earlier actor at the same address.
  void cancel_timeouts(caf::abstract_actor* self) override {
    bool was_armed;
    {
      std::lock_guard<std::mutex> guard{mu_};
      was_armed = armed_.erase(self) > 0;
    }
    if (!was_armed) {
      skipped_total.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    passed_total.fetch_add(1, std::memory_order_relaxed);
    super::cancel_timeouts(self);
  }

 private:
  void arm(caf::abstract_actor* self) {
    std::lock_guard<std::mutex> guard{mu_};
    armed_.insert(self);
  }

  std::mutex mu_;
  std::unordered_set<caf::abstract_actor*> armed_;  // guarded by mu_
};

/// CAF's coordinator whose actors use the quiet clock. CAF's own clock
/// thread still runs (the base class starts it) but nothing is scheduled on
/// it, so it sleeps.
template <class Policy>
class quiet_coordinator final : public caf::scheduler::coordinator<Policy> {
 public:
  using super = caf::scheduler::coordinator<Policy>;

  explicit quiet_coordinator(caf::actor_system& sys) : super(sys) {}

  caf::detail::thread_safe_actor_clock& clock() noexcept override { return clock_; }

 protected:
  void start() override {
    super::start();
    timer_ = std::thread{[this] {
      caf::detail::set_thread_name("caf.clock");
      this->system().thread_started();
      clock_.run_dispatch_loop();
      this->system().thread_terminates();
    }};
  }

  void stop() override {
    // The base stops the workers first; timers fire until then.
    super::stop();
    clock_.cancel_dispatch_loop();
    if (timer_.joinable()) timer_.join();
  }

 private:
  quiet_clock clock_;
  std::thread timer_;
};

}  // namespace

void use_quiet_clock_scheduler(caf::actor_system_config& config, const std::string& policy) {
  if (policy == "lean")
    config.module_factories.push_back([](caf::actor_system& sys) -> caf::actor_system::module* {
      return new quiet_coordinator<lean_sharing>(sys);
    });
  else if (policy == "sharing")
    config.module_factories.push_back([](caf::actor_system& sys) -> caf::actor_system::module* {
      return new quiet_coordinator<caf::policy::work_sharing>(sys);
    });
  else if (policy == "stealing")
    config.module_factories.push_back([](caf::actor_system& sys) -> caf::actor_system::module* {
      return new quiet_coordinator<caf::policy::work_stealing>(sys);
    });
}

quiet_clock_counts quiet_clock_totals() {
  return {passed_total.load(std::memory_order_relaxed),
          skipped_total.load(std::memory_order_relaxed)};
}

}  // namespace jobsmith
