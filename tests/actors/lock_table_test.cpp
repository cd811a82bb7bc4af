#define BOOST_TEST_MODULE lock_table
#include "actors/lock_table.hpp"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

using namespace jobsmith;

// How Boost.Test prints the table's values in a failure message.
namespace jobsmith {

std::ostream& boost_test_print_type(std::ostream& os, lock_mode m) {
  return os << (m == lock_mode::shared ? "shared" : "exclusive");
}

std::ostream& boost_test_print_type(std::ostream& os, const lock_table::holder& h) {
  os << "job " << h.job << ' ';
  return boost_test_print_type(os, h.mode);
}

template <class T>
std::ostream& print_list(std::ostream& os, const std::vector<T>& items) {
  os << '[';
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) os << ", ";
    if constexpr (std::is_same_v<T, job_id>) {
      os << items[i];
    } else {
      boost_test_print_type(os, items[i]);
    }
  }
  return os << ']';
}

std::ostream& boost_test_print_type(std::ostream& os, const lock_table::wait_reason& w) {
  os << w.resource << " wanted ";
  boost_test_print_type(os, w.wanted);
  os << " held by ";
  print_list(os, w.holders) << " behind ";
  return print_list(os, w.queued_ahead);
}

std::ostream& boost_test_print_type(std::ostream& os, const lock_table::resource_state& r) {
  os << r.resource << " held by ";
  print_list(os, r.holders) << " awaited by ";
  return print_list(os, r.waiters);
}

}  // namespace jobsmith

namespace {

constexpr lock_mode S = lock_mode::shared;
constexpr lock_mode X = lock_mode::exclusive;

using ids = std::vector<job_id>;

resource_claim claim(std::string name, lock_mode mode) { return {std::move(name), mode}; }

bool conflicts(lock_mode a, lock_mode b) { return a == X || b == X; }

}  // namespace

BOOST_AUTO_TEST_CASE(disjoint_sets_are_granted_together) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("db:charts", X), claim("db:users", X)}));
  BOOST_TEST(t.acquire(2, {claim("fs:images", X)}));
  BOOST_TEST(t.acquire(3, {claim("db:orders", X), claim("fs:cache", S)}));
  BOOST_TEST(t.held_count() == 3u);
  BOOST_TEST(t.waiting_count() == 0u);
}

BOOST_AUTO_TEST_CASE(overlapping_exclusive_claims_are_never_held_together) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("a", X), claim("b", X)}));
  BOOST_TEST(!t.acquire(2, {claim("b", X), claim("c", X)}));
  BOOST_TEST(t.waits(2));
  BOOST_TEST(!t.holds(2));
  BOOST_TEST(t.holders_of("b") == (std::vector<lock_table::holder>{{1, X}}));
  BOOST_TEST(t.release(1) == ids{2});
  BOOST_TEST(t.holds(2));
  BOOST_TEST(t.holders_of("b") == (std::vector<lock_table::holder>{{2, X}}));
  BOOST_TEST(t.holders_of("a").empty());
}

BOOST_AUTO_TEST_CASE(shared_claims_are_held_together_but_not_with_exclusive) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("r", S)}));
  BOOST_TEST(t.acquire(2, {claim("r", S)}));
  BOOST_TEST(!t.acquire(3, {claim("r", X)}));
  BOOST_TEST(t.holders_of("r") == (std::vector<lock_table::holder>{{1, S}, {2, S}}));

  // One shared holder leaving does not admit the exclusive waiter...
  BOOST_TEST(t.release(1).empty());
  BOOST_TEST(t.waits(3));
  // ...the last one does.
  BOOST_TEST(t.release(2) == ids{3});
  // And a shared request now waits for the exclusive holder.
  BOOST_TEST(!t.acquire(4, {claim("r", S)}));
  BOOST_TEST(t.release(3) == ids{4});
}

BOOST_AUTO_TEST_CASE(a_job_holds_all_its_resources_or_none) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("b", X)}));
  BOOST_TEST(!t.acquire(2, {claim("a", X), claim("b", X)}));
  // "a" is free, yet job 2 does not sit on it while "b" is busy.
  BOOST_TEST(t.holders_of("a").empty());
  BOOST_TEST(!t.holds(2));
  // Freeing one of its resources is not enough either.
  BOOST_TEST(t.acquire(3, {claim("a:cache", X)}));
  BOOST_TEST(!t.acquire(4, {claim("b", X), claim("a:cache", X)}));
  BOOST_TEST(t.release(3).empty());
  BOOST_TEST(t.holders_of("a:cache").empty());
  BOOST_TEST(t.release(1) == (ids{2}));
  BOOST_TEST(t.waits(4));  // behind 2 on "b"
  BOOST_TEST(t.holders_of("a") == (std::vector<lock_table::holder>{{2, X}}));
  BOOST_TEST(t.holders_of("b") == (std::vector<lock_table::holder>{{2, X}}));
}

BOOST_AUTO_TEST_CASE(an_exclusive_waiter_is_not_starved_by_later_shared_requests) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("r", S)}));
  BOOST_TEST(!t.acquire(2, {claim("r", X)}));
  // A stream of readers, each arriving while another reader still holds.
  job_id reader = 1;
  for (job_id next = 10; next < 20; ++next) {
    BOOST_TEST(!t.acquire(next, {claim("r", S)}), "reader " << next << " overtook the writer");
    t.release(reader);  // the only reader holding leaves: the writer goes first
    reader = next;
    if (t.holds(2)) break;
  }
  BOOST_TEST(t.holds(2));
  BOOST_TEST(t.holders_of("r") == (std::vector<lock_table::holder>{{2, X}}));
  BOOST_TEST(t.release(2) == ids{10});  // then the reader that queued behind it
}

BOOST_AUTO_TEST_CASE(release_grants_waiters_in_arrival_order) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("r", X)}));
  BOOST_TEST(!t.acquire(2, {claim("r", S)}));
  BOOST_TEST(!t.acquire(3, {claim("r", S)}));
  BOOST_TEST(!t.acquire(4, {claim("r", X)}));
  BOOST_TEST(!t.acquire(5, {claim("r", S)}));
  BOOST_TEST(t.release(1) == (ids{2, 3}));  // the shared prefix, together
  BOOST_TEST(t.waits(5));                   // behind the exclusive waiter 4
  BOOST_TEST(t.release(3).empty());
  BOOST_TEST(t.release(2) == ids{4});
  BOOST_TEST(t.release(4) == ids{5});
}

BOOST_AUTO_TEST_CASE(release_reports_grants_in_arrival_order_across_resources) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("a", X), claim("b", X)}));
  BOOST_TEST(!t.acquire(7, {claim("b", X)}));  // arrives first, on the later name
  BOOST_TEST(!t.acquire(3, {claim("a", X)}));
  BOOST_TEST(t.release(1) == (ids{7, 3}));
}

BOOST_AUTO_TEST_CASE(withdrawing_a_waiter_unblocks_those_behind_it) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("r", S)}));
  BOOST_TEST(!t.acquire(2, {claim("r", X)}));
  BOOST_TEST(!t.acquire(3, {claim("r", S)}));  // behind the exclusive waiter
  BOOST_TEST(t.release(2) == ids{3});          // withdrawn: 3 joins the reader
  BOOST_TEST(!t.waits(2));
  BOOST_TEST(!t.holds(2));
  BOOST_TEST(t.holders_of("r") == (std::vector<lock_table::holder>{{1, S}, {3, S}}));
}

BOOST_AUTO_TEST_CASE(withdrawing_a_waiter_grants_nothing_when_the_holder_still_blocks) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("r", X)}));
  BOOST_TEST(!t.acquire(2, {claim("r", X)}));
  BOOST_TEST(!t.acquire(3, {claim("r", X)}));
  BOOST_TEST(t.release(2).empty());
  BOOST_TEST(t.waits(3));
  BOOST_TEST(t.waiting_count() == 1u);
  BOOST_TEST(t.release(1) == ids{3});
}

BOOST_AUTO_TEST_CASE(a_job_behind_a_conflicting_waiter_waits_even_with_its_resources_free) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("b", X)}));
  BOOST_TEST(!t.acquire(2, {claim("a", X), claim("b", X)}));
  BOOST_TEST(!t.acquire(3, {claim("a", X)}));  // "a" is free, but 2 queued on it first
  BOOST_TEST(t.holders_of("a").empty());
  auto why = t.waits_for(3);
  BOOST_TEST_REQUIRE(why.size() == 1u);
  BOOST_TEST(why[0].resource == "a");
  BOOST_TEST(why[0].holders.empty());
  BOOST_TEST(why[0].queued_ahead == ids{2});
  BOOST_TEST(t.release(2) == ids{3});  // withdrawn: the convoy clears
}

BOOST_AUTO_TEST_CASE(waits_for_names_the_resource_its_holders_and_the_waiters_ahead) {
  lock_table t;
  BOOST_TEST(t.acquire(17, {claim("db:charts", X)}));
  BOOST_TEST(!t.acquire(42, {claim("db:charts", X), claim("db:users", S)}));
  BOOST_TEST(!t.acquire(43, {claim("db:charts", S), claim("db:users", S)}));

  // "job 42 waits for db:charts held by 17"; db:users is free, so not named.
  auto why42 = t.waits_for(42);
  BOOST_TEST_REQUIRE(why42.size() == 1u);
  BOOST_TEST(why42[0] == (lock_table::wait_reason{"db:charts", X, {17}, {}}));

  auto why43 = t.waits_for(43);
  BOOST_TEST_REQUIRE(why43.size() == 1u);
  BOOST_TEST(why43[0] == (lock_table::wait_reason{"db:charts", S, {17}, {42}}));

  BOOST_TEST(t.waits_for(17).empty());  // holds
  BOOST_TEST(t.waits_for(99).empty());  // unknown

  // Shared holders do not block a shared request; the exclusive waiter does.
  lock_table u;
  BOOST_TEST(u.acquire(1, {claim("r", S)}));
  BOOST_TEST(!u.acquire(2, {claim("r", X)}));
  BOOST_TEST(!u.acquire(3, {claim("r", S)}));
  auto why3 = u.waits_for(3);
  BOOST_TEST_REQUIRE(why3.size() == 1u);
  BOOST_TEST(why3[0] == (lock_table::wait_reason{"r", S, {}, {2}}));
}

BOOST_AUTO_TEST_CASE(an_empty_claim_set_is_always_granted) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("r", X)}));
  BOOST_TEST(!t.acquire(2, {claim("r", X)}));
  BOOST_TEST(t.acquire(3, {}));
  BOOST_TEST(t.holds(3));
  BOOST_TEST(t.held_count() == 2u);
  BOOST_TEST(t.release(3).empty());
  BOOST_TEST(t.held_count() == 1u);
  BOOST_TEST(t.waits(2));
}

BOOST_AUTO_TEST_CASE(a_name_claimed_twice_counts_once_in_the_strongest_mode) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("r", S), claim("r", X), claim("r", S)}));
  BOOST_TEST(t.holders_of("r") == (std::vector<lock_table::holder>{{1, X}}));
  BOOST_TEST(!t.acquire(2, {claim("r", S), claim("r", S)}));
  BOOST_TEST(t.release(1) == ids{2});
  BOOST_TEST(t.holders_of("r") == (std::vector<lock_table::holder>{{2, S}}));
  BOOST_TEST(t.acquire(3, {claim("r", S)}));
}

BOOST_AUTO_TEST_CASE(a_repeat_acquire_or_release_changes_nothing) {
  lock_table t;
  BOOST_TEST(t.acquire(1, {claim("r", X)}));
  BOOST_TEST(!t.acquire(2, {claim("r", X)}));
  BOOST_TEST(t.acquire(1, {claim("other", X)}));  // already holds: no new claims
  BOOST_TEST(t.holders_of("other").empty());
  BOOST_TEST(!t.acquire(2, {}));  // already waits: keeps waiting, keeps its place
  BOOST_TEST(!t.acquire(3, {claim("r", X)}));
  BOOST_TEST(t.held_count() == 1u);
  BOOST_TEST(t.waiting_count() == 2u);
  BOOST_TEST(t.release(1) == ids{2});
  BOOST_TEST(t.release(1).empty());   // released twice
  BOOST_TEST(t.release(99).empty());  // never known
  BOOST_TEST(t.holds(2));
  BOOST_TEST(t.waits(3));
}

BOOST_AUTO_TEST_CASE(resources_lists_holders_and_waiters_in_order_and_forgets_idle_ones) {
  lock_table t;
  BOOST_TEST(t.acquire(5, {claim("b", S)}));
  BOOST_TEST(t.acquire(4, {claim("b", S)}));
  BOOST_TEST(!t.acquire(9, {claim("a", X), claim("b", X)}));
  BOOST_TEST(!t.acquire(8, {claim("b", S)}));
  using rs = lock_table::resource_state;
  BOOST_TEST(t.resources() ==
             (std::vector<rs>{{"a", {}, {{9, X}}}, {"b", {{4, S}, {5, S}}, {{9, X}, {8, S}}}}));
  t.release(9);  // 8 joins the readers
  BOOST_TEST(t.resources() == (std::vector<rs>{{"b", {{4, S}, {5, S}, {8, S}}, {}}}));
  t.release(4);
  t.release(5);
  t.release(8);
  BOOST_TEST(t.resources().empty());
  BOOST_TEST(t.held_count() == 0u);
  BOOST_TEST(t.waiting_count() == 0u);
}

BOOST_AUTO_TEST_CASE(a_long_queue_is_served_one_by_one) {
  lock_table t;
  constexpr job_id n = 20'000;
  for (job_id j = 1; j <= n; ++j) BOOST_TEST_REQUIRE(t.acquire(j, {claim("hot", X)}) == (j == 1));
  for (job_id j = 1; j < n; ++j) BOOST_TEST_REQUIRE(t.release(j) == ids{j + 1});
  BOOST_TEST(t.holds(n));
  BOOST_TEST(t.waiting_count() == 0u);
}

// -- randomized ----------------------------------------------------------------

namespace {

// The grant rule written out literally, in O(jobs^2), with a fixpoint after
// every release instead of the table's single candidate pass.
class reference_model {
 public:
  struct job {
    job_id id;
    std::map<std::string, lock_mode> claims;  // strongest mode per name
    bool holding = false;
  };

  bool acquire(job_id id, const std::vector<resource_claim>& claims) {
    job j{id, {}, false};
    for (const auto& c : claims) {
      auto [it, fresh] = j.claims.emplace(c.name, c.mode);
      if (!fresh && c.mode == X) it->second = X;
    }
    jobs_.push_back(std::move(j));
    jobs_.back().holding = qualifies(jobs_.size() - 1);
    return jobs_.back().holding;
  }

  ids release(job_id id) {
    ids granted;
    auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const job& j) { return j.id == id; });
    if (it == jobs_.end()) return granted;
    jobs_.erase(it);
    for (bool changed = true; changed;) {
      changed = false;
      for (std::size_t i = 0; i < jobs_.size(); ++i) {
        if (!jobs_[i].holding && qualifies(i)) {
          jobs_[i].holding = true;
          granted.push_back(jobs_[i].id);
          changed = true;
        }
      }
    }
    return granted;
  }

  const std::vector<job>& jobs() const { return jobs_; }

 private:
  // Compatible with every holder, and with every earlier waiter, on every claim.
  bool qualifies(std::size_t i) const {
    for (const auto& [name, mode] : jobs_[i].claims) {
      for (std::size_t k = 0; k < jobs_.size(); ++k) {
        if (k == i) continue;
        auto other = jobs_[k].claims.find(name);
        if (other == jobs_[k].claims.end() || !conflicts(mode, other->second)) continue;
        if (jobs_[k].holding || k < i) return false;
      }
    }
    return true;
  }

  std::vector<job> jobs_;  // arrival order
};

// Checks the table against the invariants alone, using only its public view
// and the claims the test itself handed in.
void check_invariants(const lock_table& t,
                      const std::map<job_id, std::map<std::string, lock_mode>>& claims_of) {
  std::size_t holding = 0;
  std::size_t waiting = 0;
  for (const auto& [id, claims] : claims_of) {
    BOOST_TEST_REQUIRE(t.holds(id) != t.waits(id), "job " << id << " is in exactly one state");
    (t.holds(id) ? holding : waiting)++;
  }
  BOOST_TEST_REQUIRE(t.held_count() == holding);
  BOOST_TEST_REQUIRE(t.waiting_count() == waiting);

  // Per resource: holders mutually compatible and really holding what they
  // claimed; waiters really waiting, in the order they arrived (ids rise).
  std::map<std::string, lock_table::resource_state> by_name;
  for (const auto& r : t.resources()) {
    BOOST_TEST_REQUIRE((!r.holders.empty() || !r.waiters.empty()), "idle " << r.resource);
    if (r.holders.size() > 1)
      for (const auto& h : r.holders)
        BOOST_TEST_REQUIRE((h.mode == S), "conflicting holders of " << r.resource);
    for (const auto& h : r.holders) {
      BOOST_TEST_REQUIRE(t.holds(h.job));
      BOOST_TEST_REQUIRE((claims_of.at(h.job).at(r.resource) == h.mode));
    }
    for (std::size_t i = 0; i < r.waiters.size(); ++i) {
      BOOST_TEST_REQUIRE(t.waits(r.waiters[i].job));
      BOOST_TEST_REQUIRE((claims_of.at(r.waiters[i].job).at(r.resource) == r.waiters[i].mode));
      if (i > 0) BOOST_TEST_REQUIRE(r.waiters[i - 1].job < r.waiters[i].job);
    }
    by_name.emplace(r.resource, r);
  }

  // No lost wakeup: every waiter is blocked on some claimed resource, by a
  // conflicting holder or a conflicting earlier waiter; and is queued on all.
  for (const auto& [id, claims] : claims_of) {
    if (!t.waits(id)) continue;
    bool blocked = false;
    for (const auto& [name, mode] : claims) {
      const auto& r = by_name.at(name);
      bool queued = false;
      for (const auto& h : r.holders) blocked = blocked || conflicts(mode, h.mode);
      for (const auto& w : r.waiters) {
        if (w.job == id) {
          queued = true;
          break;
        }
        blocked = blocked || conflicts(mode, w.mode);
      }
      BOOST_TEST_REQUIRE(queued, "job " << id << " not queued on " << name);
    }
    BOOST_TEST_REQUIRE(blocked, "job " << id << " waits although nothing blocks it");
    BOOST_TEST_REQUIRE(!t.waits_for(id).empty());
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(randomized_operations_keep_holders_compatible_and_lose_no_wakeup) {
  std::mt19937_64 rng(20240611);
  auto roll = [&](std::uint64_t n) { return rng() % n; };
  const std::vector<std::string> names{"r0", "r1", "r2", "r3", "r4", "r5", "r6"};

  lock_table t;
  reference_model model;
  std::map<job_id, std::map<std::string, lock_mode>> claims_of;
  job_id next_id = 1;
  std::size_t grants_on_release = 0;
  std::size_t max_waiting = 0;

  for (int op = 0; op < 20'000; ++op) {
    const std::size_t live = claims_of.size();
    const std::uint64_t dice = roll(100);
    if (live == 0 || (dice < (live < 25 ? 55u : 35u))) {
      std::vector<resource_claim> claims;
      for (std::uint64_t k = roll(5); k > 0; --k)  // 0..4 claims, duplicates possible
        claims.push_back(claim(names[roll(names.size())], roll(3) == 0 ? X : S));
      const job_id id = next_id++;
      auto& merged = claims_of[id];
      for (const auto& c : claims) {
        auto [it, fresh] = merged.emplace(c.name, c.mode);
        if (!fresh && c.mode == X) it->second = X;
      }
      const bool expected = model.acquire(id, claims);
      BOOST_TEST_REQUIRE(t.acquire(id, claims) == expected, "acquire " << id << " op " << op);
    } else if (dice < 97) {
      auto it = claims_of.begin();
      std::advance(it, static_cast<long>(roll(live)));
      const job_id id = it->first;
      claims_of.erase(it);
      const ids expected = model.release(id);
      const ids got = t.release(id);
      BOOST_TEST_REQUIRE(got == expected, "release " << id << " op " << op);
      grants_on_release += got.size();
    } else if (dice < 99) {
      // Repeat acquire of a live job: no change.
      auto it = claims_of.begin();
      std::advance(it, static_cast<long>(roll(live)));
      const bool held = t.holds(it->first);
      BOOST_TEST_REQUIRE(t.acquire(it->first, {claim("r0", X)}) == held);
    } else {
      BOOST_TEST_REQUIRE(t.release(next_id + 1000).empty());
    }

    for (const auto& j : model.jobs()) {
      BOOST_TEST_REQUIRE(t.holds(j.id) == j.holding, "job " << j.id << " op " << op);
    }
    check_invariants(t, claims_of);
    max_waiting = std::max(max_waiting, t.waiting_count());
  }
  // The run must have exercised contention, or it proves little.
  BOOST_TEST(grants_on_release > 1000u);
  BOOST_TEST(max_waiting > 10u);
}
