// Every actor's protocol in one place: one typed-actor alias per actor, one
// comment per handler. Messages are values (or shared pointers to immutable
// values). Handlers marked "internal" are self-messages, not for callers.
//
// These types stay in one process: they are allowed as unsafe message types
// (no serialization). Remote access goes through the HTTP API.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/engine_types.hpp"
#include "actors/lock_table.hpp"
#include "events/event.hpp"
#include "events/job_state.hpp"
#include "projections/job_filter.hpp"
#include "projections/queue_view.hpp"

namespace jobsmith {

/// Events the journal committed in one group commit, with their sequences.
/// Shared by every subscriber; never modified after publication.
using committed_batch = std::shared_ptr<const std::vector<event>>;

/// A started attempt, handed by its job actor to an in-process runner.
struct job_run {
  job_id id = 0;
  std::uint32_t attempt = 0;
  std::uint64_t lease_token = 0;
  std::string kind;
  std::string payload;
  std::string handover;
  /// Set by the job actor once the attempt ended without the handler
  /// (cancelled, reclaimed, discarded): the handler should stop.
  std::shared_ptr<const std::atomic<bool>> cancelled;
};

}  // namespace jobsmith

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::committed_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<jobsmith::event>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<jobsmith::job_submitted>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<jobsmith::job_id>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<jobsmith::job_record>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<jobsmith::resource_claim>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<jobsmith::lock_table::wait_reason>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<jobsmith::queue_info>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::queue_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::retention_policy)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<jobsmith::schedule_view>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::job_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::job_filter)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::queue_view)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<jobsmith::queue_row>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::event_counts)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::job_command)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::lease_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::heartbeat_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::heartbeat_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::queue_command)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::dispatch_explanation)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::scheduler_stats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::job_run)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jobsmith::kind_configured)

namespace jobsmith {

/// The single writer of the log. Detached: RocksDB blocks.
using journal_actor = caf::typed_actor<
    /// Appends the events (seq fields ignored) in one group commit; replies
    /// with the first assigned sequence after the batch is durable. Errors:
    /// engine_errc::overloaded (too much pending), storage (write failed).
    caf::replies_to<atom::append, std::vector<event>>::with<sequence_t>,
    /// Reads one job's committed events, in order.
    caf::replies_to<atom::read_job, job_id>::with<std::vector<event>>,
    /// Adds an actor that receives (atom::committed, committed_batch) after
    /// each commit.
    caf::reacts_to<atom::subscribe, caf::actor>,
    caf::reacts_to<atom::unsubscrib, caf::actor>,
    /// Internal: writes what gathered since the last write.
    caf::reacts_to<atom::flush>,
    /// Saves the lease clock (actors/lease_clock.hpp) without an fsync;
    /// best effort: skipped while the log refuses writes.
    caf::reacts_to<atom::leases, std::string>>;

/// One live job. Serializes the commands of its job.
using job_actor = caf::typed_actor<
    /// Decides, appends, applies; replies with the job after the events are
    /// committed (or the refusal). `principal` is recorded in the events.
    /// An accepting review whose kind has an on-accept hook claims the job
    /// while the hook runs on a thread of its own (runner_set::run_accept_hook);
    /// job.reviewed is appended only once it returned. Meanwhile another
    /// review is refused (illegal_transition) and other commands wait.
    caf::replies_to<atom::command, job_command, std::string>::with<job_record>,
    /// Internal, from the on-accept hook's thread: `failure` is empty when
    /// the hook returned, else why it threw (the review is then rejected).
    caf::reacts_to<atom::hook_done, std::string>>;

/// Grants declared resources, all at once or none, FIFO per resource.
using lock_actor = caf::typed_actor<
    /// true when granted now; otherwise the job waits and the scheduler gets
    /// (atom::granted, job) once it holds everything.
    caf::replies_to<atom::acquire, job_id, std::vector<resource_claim>>::with<bool>,
    /// Releases what the job holds or withdraws its wait.
    caf::reacts_to<atom::release, job_id>,
    /// What the job waits for and who holds it.
    caf::replies_to<atom::waits, job_id>::with<std::vector<lock_table::wait_reason>>>;

/// Hosts the read-side projections and answers queries from them.
using projector_actor = caf::typed_actor<
    /// Committed events from the journal, folded into every projection.
    caf::reacts_to<atom::committed, committed_batch>,
    /// Ids of the jobs matching the filter, in id order (the caller reads
    /// their records from the log).
    caf::replies_to<atom::list, job_filter>::with<std::vector<job_id>>,
    /// Jobs per state (indexed by job_state).
    caf::replies_to<atom::stats>::with<std::vector<std::size_t>>,
    /// Every queue with jobs or settings: its jobs per effective state.
    caf::replies_to<atom::queues>::with<std::vector<queue_row>>,
    /// Events of the whole log by what they did.
    caf::replies_to<atom::totals>::with<event_counts>,
    /// When the job was retired (its retention passed), 0 when it is not.
    caf::replies_to<atom::retired, job_id>::with<millis>,
    /// The default retention the log records ({0, 0} = kept).
    caf::replies_to<atom::retention>::with<retention_policy>,
    /// What the view's rows take: {row slots held, rows of retired jobs let go}.
    caf::replies_to<atom::rows>::with<std::vector<std::uint64_t>>,
    /// Writes the queue view snapshot now, unless it is current; replies
    /// with the sequence it covers (0 when nothing was written).
    caf::replies_to<atom::snapshot>::with<sequence_t>>;

/// Decides what runs: ready index, timers, queue limits, leases, schedules.
using scheduler_actor = caf::typed_actor<
    /// Validates and appends the submissions atomically; replies with one id
    /// per submission (an existing job's id for a live unique key).
    caf::replies_to<atom::submit, std::vector<job_submitted>, std::string>::with<
        std::vector<job_id>>,
    /// Routes a command to the job's actor, rehydrating a stopped job.
    caf::replies_to<atom::command, job_id, job_command, std::string>::with<job_record>,
    /// As atom::command, but the job's actor answers the caller directly
    /// (delegation), so the scheduler holds no pending response per command
    /// (CAF 0.17 keeps those in a flat vector: each answer moved all the
    /// others). The caller must handle sec::request_receiver_down (the job's
    /// actor stopped just before the command reached it) by sending the
    /// command again as atom::command, which brings the job back.
    caf::replies_to<atom::forward, job_id, job_command, std::string>::with<job_record>,
    /// Committed events from the journal: the scheduler's index is a fold.
    caf::reacts_to<atom::committed, committed_batch>,
    /// From the lock actor: the job now holds its resources.
    caf::reacts_to<atom::granted, job_id>,
    /// From a job actor about to retry its terminal job: reserves the job's
    /// unique key, or refuses (illegal_transition) when another live job has it.
    caf::replies_to<atom::unique, std::string, job_id>::with<bool>,
    /// From a job actor whose retry was not written: gives the key back.
    caf::reacts_to<atom::release, std::string, job_id>,
    /// From a job actor that a retry brought back to life.
    caf::reacts_to<atom::revived, job_record>,
    /// From a job actor that stopped (its job is terminal).
    caf::reacts_to<atom::stop, job_id>,
    /// From a job actor: the start under this token was refused (the job
    /// was cancelled meanwhile, or the journal is overloaded).
    caf::reacts_to<atom::refused, job_id, std::uint64_t>,
    /// A remote worker leases jobs (long poll up to request.wait).
    caf::replies_to<atom::lease, lease_request>::with<std::vector<job_record>>,
    /// A remote worker renews a lease; stale_token when it lost the job.
    caf::replies_to<atom::heartbeat, heartbeat_request>::with<heartbeat_reply>,
    /// Pause, resume or configure a queue (appends the queue event).
    caf::replies_to<atom::queue_op, queue_command, std::string>::with<queue_info>,
    caf::replies_to<atom::queues>::with<std::vector<queue_info>>,
    /// Replaces a kind's settings (appends kind.configured, already
    /// checked by the caller); replies with its sequence once durable.
    caf::replies_to<atom::kind, kind_configured, std::string>::with<sequence_t>,
    /// The recurring schedules not deleted, by id.
    caf::replies_to<atom::schedule>::with<std::vector<schedule_view>>,
    /// Ends a recurring schedule.
    caf::replies_to<atom::schedule, schedule_id, std::string>::with<bool>,
    /// Why a job is not running (yet).
    caf::replies_to<atom::waits, job_id>::with<dispatch_explanation>,
    caf::replies_to<atom::stats>::with<scheduler_stats>,
    /// Internal: timers for due times, leases and phase limits.
    caf::reacts_to<atom::tick>>;

}  // namespace jobsmith
