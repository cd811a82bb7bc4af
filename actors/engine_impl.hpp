// The engine facade's state, shared by its translation units (engine.cpp:
// opening, closing and the blocking calls; engine_async.cpp: the calls that
// answer through a callback). Not for users of the engine.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <vector>

#include "actors/caf_error.hpp"
#include "actors/engine.hpp"
#include "actors/engine_actors.hpp"
#include "actors/kind_registry.hpp"
#include "store/event_log.hpp"

namespace jobsmith {

/// A retention's durations out of range (0 to max_duration), or nullopt
/// (actors/engine_kinds.cpp).
std::optional<engine_error> check_retention(const retention_policy& policy);

struct subscription::impl {
  /// Held while the subscriber calls the function; stop() clears `live`
  /// under it, so once stop() returns the function is not running on
  /// another thread and is never called again (recursive: the function may
  /// cancel its own subscription).
  struct gate {
    std::recursive_mutex mu;
    bool live = true;
  };
  std::shared_ptr<gate> calls = std::make_shared<gate>();
  caf::actor subscriber;
  journal_actor journal;
  void stop();
};

struct engine::impl {
  engine_options options;
  wall_clock clock;
  std::unique_ptr<store::event_log> log;
  std::unique_ptr<caf::actor_system_config> config;
  std::unique_ptr<caf::actor_system> system;
  engine_core core;
  recovery_report report;
  std::atomic<std::size_t> inflight_submits{0};
  std::mutex close_mutex;
  // checkpoint() (backup) holds this shared while it copies the log; close()
  // takes it exclusively before the log goes. Taken after close_mutex, never
  // before it.
  std::shared_mutex log_copiers;
  std::atomic<bool> closed{false};
  // The async calls hold this shared while they check `closed` and hand
  // their request to an actor; close() holds it exclusively only to set
  // `closed`. So an async call made from an engine thread (a callback that
  // chains the next call) never waits for close(), which waits for every
  // actor, and nothing is handed to an actor system being stopped.
  std::shared_mutex async_gate;

  /// Runs `hand_off` unless the engine closed; says whether it ran.
  template <class F>
  bool while_open(F&& hand_off) {
    std::shared_lock<std::shared_mutex> open{async_gate};
    if (closed) return false;
    hand_off();
    return true;
  }
  std::vector<std::weak_ptr<subscription::impl>> subscriptions;
  /// Registered kinds, checked by every submit (prepare_submit).
  kind_registry kinds;
  std::mutex configuring_kinds;  // held by configure_kind()

  /// Checks and normalises submissions as every submit does (kinds,
  /// payloads compacted and matched against their kind's schema, delay
  /// applied); the refusal, or nullopt.
  std::optional<engine_error> prepare_submit(std::vector<job_submitted>& specs,
                                             const submit_options& opts) const;
  /// Counts `n` more jobs in flight, or refuses (overloaded) above
  /// options.max_inflight_submits, counting nothing then.
  std::optional<engine_error> admit_submits(std::size_t n);

  std::string principal_or_default(std::string p) const {
    return p.empty() ? options.default_principal : p;
  }

  /// Blocking request to an actor of the engine.
  template <class R, class Handle, class... Ts>
  result<R> ask(const Handle& dest, Ts&&... xs) const {
    if (closed) return engine_error{engine_errc::closed, "engine is closed"};
    caf::scoped_actor self{*system};
    result<R> out = engine_error{engine_errc::closed, "no answer"};
    self->request(dest, caf::infinite, std::forward<Ts>(xs)...)
        .receive([&](R& value) { out = std::move(value); },
                 [&](caf::error& err) { out = from_caf(err); });
    return out;
  }

  result<job_record> command(job_id id, job_command cmd, std::string principal) const {
    return ask<job_record>(core.scheduler, atom::command::value, id, std::move(cmd),
                           principal_or_default(std::move(principal)));
  }

  /// As command(), but the job's actor answers this caller directly
  /// (atom::forward). For commands that may wait long in the job's actor (a
  /// review whose hook runs): nothing between holds the answer, so when
  /// close() stops the actor it answers `closed` here, and close() does not
  /// wait forever for this caller (the scheduler drops what it was still
  /// to answer when it stops).
  result<job_record> forward(job_id id, job_command cmd, std::string principal) const {
    if (closed) return engine_error{engine_errc::closed, "engine is closed"};
    principal = principal_or_default(std::move(principal));
    result<job_record> out = engine_error{engine_errc::closed, "no answer"};
    bool actor_stopped = false;
    {
      caf::scoped_actor self{*system};
      self->request(core.scheduler, caf::infinite, atom::forward::value, id, cmd, principal)
          .receive([&](job_record& rec) { out = std::move(rec); },
                   [&](caf::error& err) {
                     actor_stopped = err == caf::sec::request_receiver_down;
                     out = from_caf(err);
                   });
    }
    // The job's actor stopped just before (its job was terminal): this way
    // brings the job back (actors/protocol.hpp, atom::forward).
    if (actor_stopped) return command(id, std::move(cmd), std::move(principal));
    return out;
  }
};

}  // namespace jobsmith
