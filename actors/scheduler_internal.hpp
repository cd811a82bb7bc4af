// The scheduler actor's parts (actors/scheduler.hpp), shared by its files:
//   scheduler_tracking.cpp  job actors, queue slots, schedules, the tracked
//                           jobs and what commits do to them, submissions;
//   scheduler_dispatch.cpp  leases, starting jobs, timers (ticks, deadlines,
//                           the lease clock);
//   scheduler.cpp           commands and queries, recovery, the behavior.
// Every function runs inside the scheduler actor, on its state. Not for
// anything outside the scheduler.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "actors/scheduler.hpp"

namespace jobsmith::scheduling {

using self_ptr = scheduler_actor::stateful_pointer<scheduler_state>;
using tracked_job = scheduler_state::tracked_job;
using phase = scheduler_state::phase;
using time_point = scheduler_state::time_point;

inline constexpr const char* engine_principal = "engine";
// The longest the scheduler sleeps on a wall-clock timer before reading the
// wall clock again (see arm_tick). Leases and phase limits run on the
// monotonic clock and are not affected by wall jumps at all.
inline constexpr millis wall_recheck_ms = 1'000;
// How soon a schedule's next run is submitted again after the log refused it.
inline constexpr std::chrono::milliseconds schedule_retry_interval{1'000};

inline bool is_local_worker(const std::string& name) { return name.rfind("local:", 0) == 0; }

inline millis wall_now(self_ptr self) { return self->state.clock(); }
inline time_point mono_now(self_ptr self) { return self->clock().now(); }

// -- scheduler_tracking.cpp ---------------------------------------------------------
job_actor spawn_job(self_ptr self, job_record rec, bool hydrated);
job_actor actor_of(self_ptr self, job_id id);
void tell_job(self_ptr self, job_id id, job_command cmd,
              std::string principal = std::string{engine_principal});
void flush_progress(self_ptr self, tracked_job& tj);
scheduler_state::queue_slot& queue_of(self_ptr self, const std::string& name);
bool queue_open(self_ptr self, const std::string& name);
void release_holds(self_ptr self, tracked_job& tj);
void end_attempt(self_ptr self, tracked_job& tj);
void place(self_ptr self, tracked_job& tj);
void append_engine_events(self_ptr self, std::vector<event> events);
void continue_schedule(self_ptr self, schedule_info& s);
void retry_schedule_later(self_ptr self, schedule_id id);
void schedule_run_ended(self_ptr self, const job_record& rec);
void untrack(self_ptr self, job_id id);
tracked_job& track(self_ptr self, job_record rec);
void resync(self_ptr self, tracked_job& tj);
bool apply_engine_event(self_ptr self, const event& ev);
void on_committed(self_ptr self, const std::vector<event>& batch);
void submit_internal(self_ptr self, std::vector<job_submitted> specs, std::string principal,
                     caf::typed_response_promise<std::vector<job_id>>* promise,
                     schedule_id continues = 0);

// -- scheduler_dispatch.cpp ---------------------------------------------------------
void on_granted(self_ptr self, job_id id);
void maybe_finish_lease(self_ptr self, std::uint64_t lease_id, bool expired);
void mark_running(self_ptr self, tracked_job& tj);
void arm_stop(self_ptr self, tracked_job& tj);
void on_started(self_ptr self, job_id id, std::uint64_t token, job_record& rec,
                std::uint64_t lease_id);
void on_start_failed(self_ptr self, job_id id, std::uint64_t token, const caf::error& err,
                     std::uint64_t lease_id);
void start(self_ptr self, tracked_job& tj, scheduler_state::worker_entry& worker,
           std::uint64_t lease_id);
void dispatch(self_ptr self);
void arm_tick(self_ptr self);
void save_lease_clock(self_ptr self, time_point now_mono);
void on_tick(self_ptr self);

}  // namespace jobsmith::scheduling
