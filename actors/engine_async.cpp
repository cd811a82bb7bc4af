// The engine facade's calls that answer through a callback (engine.hpp):
// a caller outside CAF parks no thread per call. Each call hands its
// request to a short-lived bridge actor (or a messenger for many
// completions); the answer comes back on a CAF thread.
#include <algorithm>
#include <random>

#include "actors/engine_impl.hpp"
#include "events/json.hpp"

namespace jobsmith {

namespace {

/// A short-lived actor that sends one request and hands the answer to a
/// callback, so callers outside CAF need no thread per outstanding request.
/// The request travels as spawn arguments, not lambda captures: CAF 0.17
/// dereferences an empty argument tuple when an actor is spawned without
/// arguments (UBSan reports it; scripts/ubsan.supp).
template <class R, class Handle, class... Ts>
void ask_bridge(caf::event_based_actor* self, Handle dest, engine::callback<R> cb, Ts... xs) {
  self->request(dest, caf::infinite, std::move(xs)...)
      .then(
          [self, cb](R& value) {
            cb(std::move(value));
            self->quit();
          },
          [self, cb](caf::error& err) {
            cb(from_caf(err));
            self->quit();
          });
}

template <class R, class Handle, class... Ts>
void ask_async(caf::actor_system& sys, const Handle& dest, engine::callback<R> cb, Ts... xs) {
  sys.spawn(&ask_bridge<R, Handle, Ts...>, dest, std::move(cb), std::move(xs)...);
}

}  // namespace

void engine::lease_async(lease_request request, callback<std::vector<job_record>> done) {
  auto& im = *impl_;
  if (im.while_open([&] {
        ask_async<std::vector<job_record>>(*im.system, im.core.scheduler, std::move(done),
                                           atom::lease::value, std::move(request));
      }))
    return;
  done(engine_error{engine_errc::closed, "engine is closed"});
}

void engine::complete_async(job_id id, std::uint64_t lease_token, std::string result_json,
                            std::string principal, callback<job_record> done) {
  complete_many_async({{id, lease_token, std::move(result_json)}}, std::move(principal),
                      [done = std::move(done)](result<std::vector<result<job_record>>> outs) {
                        done(std::move(outs->front()));  // never an error as a whole
                      });
}

namespace {

/// What the messengers of one complete_many_async call share.
struct complete_gather {
  engine::callback<std::vector<result<job_record>>> done;
  std::vector<result<job_record>> out;  // each messenger writes its own slice
  std::atomic<std::size_t> left{0};     // answers still out, over all messengers
};

/// A messenger of complete_many_async: one request per completion of its
/// slice; the last answer of the last slice calls back.
struct complete_batch_state {
  static inline const char* name = "complete_batch";
  complete_batch_state() = default;
  std::size_t left = 0;
};

/// Completions per messenger. CAF 0.17 keeps an actor's pending responses
/// in a flat vector: taking the oldest out moves all the others, so one
/// messenger with 500 requests in flight did 125,000 moves per batch.
constexpr std::size_t completions_per_messenger = 32;

void complete_batch_bridge(caf::stateful_actor<complete_batch_state>* self,
                           scheduler_actor scheduler, std::shared_ptr<complete_gather> gather,
                           std::size_t offset, std::vector<job_id> ids,
                           std::vector<job_command> commands, std::string principal) {
  self->state.left = ids.size();
  auto settle = [self, gather](std::size_t i, result<job_record> r) {
    gather->out[i] = std::move(r);
    if (--self->state.left == 0) self->quit();
    if (gather->left.fetch_sub(1, std::memory_order_acq_rel) == 1)
      gather->done(std::move(gather->out));
  };
  for (std::size_t k = 0; k < ids.size(); ++k) {
    // Forwarded: the job's actor answers here, not through the scheduler.
    // If that actor stopped just before, the command goes again the way
    // that brings the job back (atom::command).
    auto id = ids[k];
    self->request(scheduler, caf::infinite, atom::forward::value, id, commands[k], principal)
        .then([settle, i = offset + k](job_record& rec) { settle(i, std::move(rec)); },
              [self, settle, scheduler, id, cmd = commands[k], principal,
               i = offset + k](caf::error& err) {
                if (err != caf::sec::request_receiver_down) return settle(i, from_caf(err));
                self->request(scheduler, caf::infinite, atom::command::value, id, cmd, principal)
                    .then([settle, i](job_record& rec) { settle(i, std::move(rec)); },
                          [settle, i](caf::error& again) { settle(i, from_caf(again)); });
              });
  }
}

}  // namespace

void engine::complete_many_async(std::vector<completion> items, std::string principal,
                                 callback<std::vector<result<job_record>>> done) {
  auto& im = *impl_;
  // One answer per item: a refusal decided here, or a placeholder that the
  // engine's answer replaces.
  std::vector<result<job_record>> answers;
  std::vector<std::size_t> sent;  // the index in `items` of each command
  std::vector<job_id> ids;
  std::vector<job_command> commands;
  answers.reserve(items.size());
  sent.reserve(items.size());
  ids.reserve(items.size());
  commands.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    auto& c = items[i];
    auto result = compact_json(std::move(c.result_json));  // the log keeps results compact
    if (!result) {
      answers.push_back(engine_error{engine_errc::invalid_argument, "result is not valid JSON"});
      continue;
    }
    answers.push_back(engine_error{});
    sent.push_back(i);
    ids.push_back(c.id);
    commands.push_back(cmd_succeed{c.lease_token, std::move(*result)});
  }
  auto merge = [answers = std::move(answers), sent,
                done = std::move(done)](result<std::vector<result<job_record>>> got) mutable {
    for (std::size_t k = 0; k < sent.size(); ++k)
      answers[sent[k]] = got ? std::move((*got)[k]) : result<job_record>(got.error());
    done(std::move(answers));
  };
  if (ids.empty()) return merge(std::vector<result<job_record>>{});
  auto gather = std::make_shared<complete_gather>();
  gather->done = std::move(merge);
  gather->out.assign(ids.size(), result<job_record>(engine_error{}));
  gather->left = ids.size();
  principal = im.principal_or_default(std::move(principal));
  if (im.while_open([&] {
        for (std::size_t first = 0; first < ids.size(); first += completions_per_messenger) {
          const auto last = std::min(ids.size(), first + completions_per_messenger);
          im.system->spawn(
              complete_batch_bridge, im.core.scheduler, gather, first,
              std::vector<job_id>(ids.begin() + first, ids.begin() + last),
              std::vector<job_command>(std::make_move_iterator(commands.begin() + first),
                                       std::make_move_iterator(commands.begin() + last)),
              principal);
        }
      }))
    return;
  gather->done(engine_error{engine_errc::closed, "engine is closed"});
}

namespace {

/// One command to one job, answered by the job's actor (atom::forward), or
/// again through the scheduler when that actor stopped just before.
void command_bridge(caf::event_based_actor* self, scheduler_actor scheduler, job_id id,
                    job_command cmd, std::string principal, engine::callback<job_record> cb) {
  self->request(scheduler, caf::infinite, atom::forward::value, id, cmd, principal)
      .then(
          [self, cb](job_record& rec) {
            cb(std::move(rec));
            self->quit();
          },
          [self, cb, scheduler, id, cmd, principal](caf::error& err) {
            if (err != caf::sec::request_receiver_down) {
              cb(from_caf(err));
              return self->quit();
            }
            self->request(scheduler, caf::infinite, atom::command::value, id, cmd, principal)
                .then(
                    [self, cb](job_record& rec) {
                      cb(std::move(rec));
                      self->quit();
                    },
                    [self, cb](caf::error& again) {
                      cb(from_caf(again));
                      self->quit();
                    });
          });
}

}  // namespace

void engine::submit_many_async(std::vector<job_submitted> specs, submit_options opts,
                               callback<std::vector<job_id>> done) {
  auto& im = *impl_;
  if (auto refused = im.prepare_submit(specs, opts)) return done(*refused);
  if (specs.empty()) return done(std::vector<job_id>{});
  const auto n = specs.size();
  if (auto refused = im.admit_submits(n)) return done(*refused);
  // The jobs stop counting as in flight once answered, however that went.
  auto counted = [&im, n, done = std::move(done)](result<std::vector<job_id>> ids) {
    im.inflight_submits.fetch_sub(n);
    done(std::move(ids));
  };
  if (im.while_open([&] {
        ask_async<std::vector<job_id>>(*im.system, im.core.scheduler, std::move(counted),
                                       atom::submit::value, std::move(specs),
                                       im.principal_or_default(std::move(opts.principal)));
      }))
    return;
  counted(engine_error{engine_errc::closed, "engine is closed"});
}

void engine::heartbeat_async(heartbeat_request request, callback<heartbeat_reply> done) {
  auto& im = *impl_;
  if (im.while_open([&] {
        ask_async<heartbeat_reply>(*im.system, im.core.scheduler, std::move(done),
                                   atom::heartbeat::value, std::move(request));
      }))
    return;
  done(engine_error{engine_errc::closed, "engine is closed"});
}

void engine::fail_async(job_id id, std::uint64_t lease_token, std::string error, bool retryable,
                        std::string principal, std::string handover, callback<job_record> done) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  auto draw = std::uniform_real_distribution<double>(0, 1)(rng);
  job_command cmd = cmd_fail{lease_token, std::move(error), retryable, std::move(handover), draw};
  auto& im = *impl_;
  principal = im.principal_or_default(std::move(principal));
  if (im.while_open([&] {
        im.system->spawn(command_bridge, im.core.scheduler, id, std::move(cmd),
                         std::move(principal), std::move(done));
      }))
    return;
  done(engine_error{engine_errc::closed, "engine is closed"});
}

}  // namespace jobsmith
