#include "actors/caf_runtime.hpp"

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <caf/detail/set_thread_name.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/policy/work_sharing.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/scheduler/coordinator.hpp>

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
  if (policy == "sharing")
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
