#include "actors/worker_pool.hpp"

#include <optional>
#include <random>

#include "events/json.hpp"

namespace jobsmith {

namespace {

/// What a handler's outcome becomes as a command to its job.
job_command outcome_command(const job_run& run, outcome& out, const job_context& ctx,
                            double jitter_draw) {
  if (out.what == outcome::kind::success) {
    if (out.text.empty()) out.text = "null";
    // The log keeps results in compact form; a result that is not JSON
    // is the handler's bug and fails the job for good.
    auto result = compact_json(std::move(out.text));
    if (!result)
      return cmd_fail{run.lease_token, "handler returned a result that is not JSON", false,
                      ctx.next_handover(), jitter_draw};
    return cmd_succeed{run.lease_token, std::move(*result)};
  }
  return cmd_fail{run.lease_token, std::move(out.text),
                  out.what == outcome::kind::retryable_failure, ctx.next_handover(), jitter_draw};
}

/// Runs a runner takes per wake-up message before it looks at its mailbox
/// again (an exit on close): fewer messages per job while jobs queue up.
constexpr int runs_per_wakeup = 16;

struct runner_state {
  static inline const char* name = "runner";
  runner_state() = default;
  std::mt19937_64 rng{std::random_device{}()};
};

caf::behavior runner(caf::stateful_actor<runner_state>* self, const handler_registry* handlers,
                     std::string worker_name, std::chrono::milliseconds flush_interval,
                     std::shared_ptr<run_queue> queue, std::size_t index) {
  auto principal = "worker:" + worker_name;
  return {
      // Woken: run queued jobs, a few per message, or go idle when there is
      // none.
      [=](atom::run) {
        for (int taken = 0; taken < runs_per_wakeup; ++taken) {
          job_run run;
          job_actor job;
          {
            std::lock_guard<std::mutex> guard{queue->mu};
            if (queue->runs.empty()) {
              queue->idle.push_back(index);
              return;
            }
            run = std::move(queue->runs.front().run);
            job = std::move(queue->runs.front().job);
            queue->runs.pop_front();
          }
          auto token = run.lease_token;
          auto flush = [job, token, principal](std::string detail, std::int32_t percent,
                                               std::vector<log_line> lines) {
            caf::anon_send(
                job, atom::command::value,
                job_command{cmd_progress{token, std::move(detail), percent, std::move(lines)}},
                principal);
          };
          job_context ctx{run.id,       run.attempt,   run.kind, std::move(run.payload),
                          run.handover, run.cancelled, flush,    flush_interval};
          outcome out;
          if (auto entry = handlers->find(run.kind); entry && entry->handler) {
            try {
              out = entry->handler(ctx);
            } catch (const std::exception& e) {
              out = outcome::retry(std::string{"handler threw: "} + e.what());
            } catch (...) {
              out = outcome::retry("handler threw a non-standard exception");
            }
          } else {
            out = outcome::permanent("no handler registered for kind '" + run.kind + "'");
          }
          ctx.flush();
          auto draw = std::uniform_real_distribution<double>(0, 1)(self->state.rng);
          // One way: a refusal (stale: the job was cancelled or reclaimed
          // meanwhile) needs no action, that attempt already ended in the log.
          caf::anon_send(job, atom::command::value, outcome_command(run, out, ctx, draw),
                         principal);
        }
        // Then more, behind whatever arrived meanwhile (an exit on close
        // comes first).
        self->send(self, atom::run::value);
      },
  };
}

/// Runs one on-accept hook and reports how it went; then the actor ends.
void accept_hook_runner(caf::blocking_actor*, const accept_hook* hook, accept_run run,
                        job_actor job) {
  std::string failure;
  try {
    (*hook)(run.id, run.payload, run.result);
  } catch (const std::exception& e) {
    failure = "on-accept hook of kind '" + run.kind + "' failed: " + e.what();
  } catch (...) {
    failure = "on-accept hook of kind '" + run.kind + "' failed: a non-standard exception";
  }
  caf::anon_send(job, atom::hook_done::value, std::move(failure));
}

}  // namespace

std::shared_ptr<const runner_set> spawn_runners(caf::actor_system& sys,
                                                const worker_pool_config& config,
                                                const handler_registry* handlers) {
  auto set = std::make_shared<runner_set>();
  set->worker_name = config.worker_name;
  set->queue = std::make_shared<run_queue>();
  set->handlers = handlers;
  auto threads = std::max<std::size_t>(1, config.threads);
  for (std::size_t i = 0; i < threads; ++i) {
    set->queue->idle.push_back(i);
    if (config.detached)
      set->runners.push_back(sys.spawn<caf::detached>(runner, handlers, config.worker_name,
                                                      config.flush_interval, set->queue, i));
    else
      set->runners.push_back(
          sys.spawn(runner, handlers, config.worker_name, config.flush_interval, set->queue, i));
  }
  return set;
}

void runner_set::hand_over(job_run run, job_actor job) const {
  std::optional<std::size_t> wake;
  {
    std::lock_guard<std::mutex> guard{queue->mu};
    queue->runs.push_back({std::move(run), std::move(job)});
    if (!queue->idle.empty()) {
      wake = queue->idle.back();
      queue->idle.pop_back();
    }
  }
  if (wake) caf::anon_send(runners[*wake], atom::run::value);
}

bool runner_set::has_accept_hook(const std::string& kind) const {
  auto entry = handlers ? handlers->find(kind) : nullptr;
  return entry && entry->on_accept;
}

void runner_set::run_accept_hook(caf::actor_system& sys, accept_run run, job_actor job) const {
  const auto* hook = &handlers->find(run.kind)->on_accept;
  sys.spawn(accept_hook_runner, hook, std::move(run), std::move(job));
}

void stop_runners(const runner_set& set) {
  for (auto& r : set.runners) caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
}

}  // namespace jobsmith
