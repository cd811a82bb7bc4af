// The resource lock table: which job holds which resource, and who waits.
// A plain single-threaded class; the lock actor wraps it and adds messages.
//
// States of a job in the table:
//
//   absent --acquire--> holding                      (granted at once)
//   absent --acquire--> waiting --(a release)--> holding
//   holding | waiting --release--> absent            (release of a waiter = withdraw)
//
// Bookkeeping. Per job: its claim set (sorted by name, one entry per
// resource, the strongest mode of any duplicates) and an arrival ticket,
// increasing with every acquire. Per resource: its holders (all shared, or
// exactly one exclusive) and its queue: the waiting jobs that claim it, in
// ticket order. A waiting job sits in the queue of EVERY resource it claims
// and holds none of them.
//
// Grant rule. Job J with ticket t may take resource r in mode m when
//   (1) m is compatible with every holder of r (shared with shared only), and
//   (2) no job queued on r with a ticket before t wants a conflicting mode.
// J is granted when (1) and (2) hold for every resource it claims, and then
// takes them all at once. Jobs with disjoint claim sets never meet in (1) or
// (2), so they never block each other.
//
// Release. The job leaves the holders or queues of its resources. Only
// waiters queued on those resources can have been unblocked, and of each
// queue only the prefix up to its first exclusive waiter (everyone further
// back is behind that waiter, which conflicts). Those candidates are
// re-examined once, in ticket order. One pass suffices because a grant never
// unblocks anyone: the granted job becomes a holder of exactly the resources
// it was queued on, and conflicts as a holder with everyone it conflicted
// with as an earlier waiter.
//
// Why no deadlock: a holder never waits (all or nothing, no hold-and-wait),
// and a waiter waits only for holders or for strictly earlier waiters, so the
// wait-for graph is acyclic.
// Why no starvation: the oldest waiter waits only for holders, and rule (2)
// admits no new holder that conflicts with it, so it is granted once the
// current holders release; then the next waiter is the oldest.
//
// Cost: acquire O(k log n) for k claimed resources; release O(c k log n) for
// c candidates, c at most the waiters on the released job's resources.
// Nothing scans all jobs or all resources, except resources() (introspection).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "../events/event.hpp"

namespace jobsmith {

class lock_table {
 public:
  struct holder {
    job_id job = 0;
    lock_mode mode = lock_mode::exclusive;
    friend bool operator==(const holder&, const holder&) = default;
  };

  /// One resource that blocks a waiting job, and by whom.
  struct wait_reason {
    std::string resource;
    lock_mode wanted = lock_mode::exclusive;
    std::vector<job_id> holders;       // holders whose mode conflicts with `wanted`, by job id
    std::vector<job_id> queued_ahead;  // earlier waiters here with a conflicting mode, in order
    friend bool operator==(const wait_reason&, const wait_reason&) = default;
  };

  /// One resource as it stands.
  struct resource_state {
    std::string resource;
    std::vector<holder> holders;  // by job id
    std::vector<holder> waiters;  // in arrival order
    friend bool operator==(const resource_state&, const resource_state&) = default;
  };

  lock_table() = default;
  // Jobs point into the resource map's nodes; a move keeps the nodes, a copy
  // would not.
  lock_table(const lock_table&) = delete;
  lock_table& operator=(const lock_table&) = delete;
  lock_table(lock_table&&) = default;
  lock_table& operator=(lock_table&&) = default;

  /// Asks for all of `claims` for `job`, all at once or none. Returns true
  /// when granted now (always for an empty claim set: the job then holds
  /// nothing but counts as holding until released). Otherwise the job waits
  /// and is granted by a later release(), FIFO per resource. A name claimed
  /// twice counts once, in the strongest mode.
  /// A repeat acquire for a job already holding or waiting changes nothing
  /// (not its claims, not its place) and returns holds(job).
  bool acquire(job_id job, const std::vector<resource_claim>& claims);

  /// Releases what `job` holds, or withdraws its wait. Returns the jobs
  /// granted as a consequence, in arrival order (which is grant order).
  /// A job the table does not know is a no-op returning nothing.
  std::vector<job_id> release(job_id job);

  bool holds(job_id job) const;
  bool waits(job_id job) const;

  /// For a waiting job, each claimed resource that blocks it (by name), with
  /// the conflicting holders and earlier conflicting waiters. Empty when the
  /// job does not wait; never empty when it does.
  std::vector<wait_reason> waits_for(job_id job) const;

  /// Holders of `resource` by job id; empty for an unknown resource.
  std::vector<holder> holders_of(const std::string& resource) const;

  std::size_t held_count() const { return held_count_; }        // jobs holding
  std::size_t waiting_count() const { return waiting_count_; }  // jobs waiting

  /// Every resource with a holder or a waiter, by name. O(everything): for
  /// introspection and recovery checks, not for the hot path.
  std::vector<resource_state> resources() const;

 private:
  using ticket_t = std::uint64_t;

  struct queued {
    job_id job = 0;
    lock_mode mode = lock_mode::exclusive;
  };

  struct resource_entry {
    lock_mode held_mode = lock_mode::shared;  // meaningful while holders is non-empty
    std::set<job_id> holders;
    std::map<ticket_t, queued> queue;     // waiters by arrival
    std::set<ticket_t> exclusive_queued;  // tickets of the exclusive waiters in `queue`
  };

  // Erased once it has neither holders nor waiters, so memory follows the
  // live locks, not every name ever claimed.
  using resource_map = std::unordered_map<std::string, resource_entry>;

  struct claim_ref {
    // Node pointers into resources_ stay valid across rehashing; the entry
    // outlives every job that claims it (see resource_map).
    resource_map::value_type* resource = nullptr;
    lock_mode mode = lock_mode::exclusive;
  };

  struct job_entry {
    std::vector<claim_ref> claims;  // sorted by resource name, names unique
    ticket_t ticket = 0;
    bool waiting = false;
  };

  // Rules (1) and (2) of the grant rule for one resource.
  static bool may_take(const resource_entry& r, lock_mode m, ticket_t ticket);
  bool grantable(const job_entry& j) const;
  void grant(job_id job, job_entry& j);

  std::unordered_map<job_id, job_entry> jobs_;
  resource_map resources_;
  ticket_t next_ticket_ = 1;
  std::size_t held_count_ = 0;
  std::size_t waiting_count_ = 0;
};

}  // namespace jobsmith
