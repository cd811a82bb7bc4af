#include "actors/worker_pool.hpp"

#include <random>

#include <nlohmann/json.hpp>

namespace jobsmith {

namespace {

/// What a handler's outcome becomes as a command to its job.
job_command outcome_command(const job_record& rec, outcome out, const job_context& ctx,
                            double jitter_draw) {
  if (out.what == outcome::kind::success) {
    if (out.text.empty()) out.text = "null";
    if (out.text != "null") {
      // The log keeps results in compact form; a result that is not JSON
      // is the handler's bug and fails the job for good.
      auto parsed = nlohmann::json::parse(out.text, nullptr, false);
      if (parsed.is_discarded())
        return cmd_fail{rec.lease_token, "handler returned a result that is not JSON", false,
                        ctx.next_handover(), jitter_draw};
      out.text = parsed.dump();
    }
    return cmd_succeed{rec.lease_token, std::move(out.text)};
  }
  return cmd_fail{rec.lease_token, std::move(out.text),
                  out.what == outcome::kind::retryable_failure, ctx.next_handover(),
                  jitter_draw};
}

struct runner_state {
  static inline const char* name = "runner";
  std::mt19937_64 rng{std::random_device{}()};
};

caf::behavior runner(caf::stateful_actor<runner_state>* self, worker_pool_actor pool,
                     const handler_registry* handlers, std::string worker_name,
                     std::chrono::milliseconds flush_interval) {
  return {
      [=](atom::run, job_record& rec, job_actor& job,
          std::shared_ptr<const std::atomic<bool>>& cancelled) {
        auto principal = "worker:" + worker_name;
        auto token = rec.lease_token;
        auto flush = [job, token, principal](std::string detail, std::int32_t percent,
                                             std::vector<log_line> lines) {
          caf::anon_send(job, atom::command::value,
                         job_command{cmd_progress{token, std::move(detail), percent,
                                                  std::move(lines)}},
                         principal);
        };
        job_context ctx{rec.id,        rec.attempts, rec.spec.kind, rec.spec.payload,
                        rec.handover,  cancelled,    flush,         flush_interval};
        outcome out;
        if (auto entry = handlers->find(rec.spec.kind); entry && entry->handler) {
          try {
            out = entry->handler(ctx);
          } catch (const std::exception& e) {
            out = outcome::retry(std::string{"handler threw: "} + e.what());
          } catch (...) {
            out = outcome::retry("handler threw a non-standard exception");
          }
        } else {
          out = outcome::permanent("no handler registered for kind '" + rec.spec.kind + "'");
        }
        ctx.flush();
        auto draw = std::uniform_real_distribution<double>(0, 1)(self->state.rng);
        auto cmd = outcome_command(rec, std::move(out), ctx, draw);
        // A refusal (stale: the job was cancelled or reclaimed meanwhile) needs
        // no action: that attempt already ended in the log.
        self->request(job, caf::infinite, atom::command::value, std::move(cmd), principal)
            .then([](const job_record&) {}, [](const caf::error&) {});
        self->send(pool, atom::finished::value, rec.id);
      },
  };
}

}  // namespace

worker_pool_actor::behavior_type worker_pool(
    worker_pool_actor::stateful_pointer<worker_pool_state> self, worker_pool_config config,
    const handler_registry* handlers) {
  auto& st = self->state;
  st.config = std::move(config);
  st.handlers = handlers;
  auto threads = std::max<std::size_t>(1, st.config.threads);
  auto me = caf::actor_cast<worker_pool_actor>(self);
  for (std::size_t i = 0; i < threads; ++i) {
    caf::actor r;
    if (st.config.detached)
      r = self->spawn<caf::detached + caf::linked>(runner, me, handlers, st.config.worker_name,
                                                   st.config.flush_interval);
    else
      r = self->spawn<caf::linked>(runner, me, handlers, st.config.worker_name,
                                   st.config.flush_interval);
    st.runners.push_back(r);
  }
  st.load.assign(threads, 0);
  return {
      [self](atom::run, job_record& rec, job_actor& job) {
        auto& st = self->state;
        auto least = static_cast<std::size_t>(
            std::min_element(st.load.begin(), st.load.end()) - st.load.begin());
        auto flag = std::make_shared<std::atomic<bool>>(false);
        st.running[rec.id] = {flag, least};
        ++st.load[least];
        caf::anon_send(st.runners[least], atom::run::value, std::move(rec), std::move(job),
                   std::shared_ptr<const std::atomic<bool>>{flag});
      },
      [self](atom::cancel, job_id id) {
        auto i = self->state.running.find(id);
        if (i != self->state.running.end()) i->second.cancelled->store(true);
      },
      [self](atom::finished, job_id id) {
        auto& st = self->state;
        auto i = st.running.find(id);
        if (i == st.running.end()) return;
        if (st.load[i->second.runner] > 0) --st.load[i->second.runner];
        st.running.erase(i);
      },
  };
}

}  // namespace jobsmith
