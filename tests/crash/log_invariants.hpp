// Invariants of a whole event log, folded in sequence order from the
// events as the API serves them (`GET /v1/events`: seq, type, job,
// principal, body). The fold is the driver's own, independent of the
// engine's `apply`, so a bug in the engine's bookkeeping cannot hide itself:
//   7. resources: a job holds its claims from its `job.started` to the
//      event that ends that attempt (succeeded, failed, reclaimed, cancelled,
//      expired, discarded); no two jobs hold the same resource at once
//      unless both claim it shared;
//   8. unique keys: no `job.submitted` (and no retry) makes a second job
//      with the same unique key live while another one is;
//   9. recurring schedules: a schedule never submits a run while a run it
//      submitted is live (a retried past run runs outside its schedule:
//      docs/decisions.md);
//  10. principals: each event type is recorded under one of the principals
//      allowed for it (the caller's token name, or "engine").
// Used by tests/crash/crash_driver.cpp after the drain and tested on
// made-up logs by tests/crash/log_invariants_test.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace jobsmith::crash {

class log_invariants {
 public:
  using report_fn = std::function<void(std::uint64_t job, const std::string& what)>;

  /// `principals`: event type -> the principals allowed to record it; a
  /// type not in the map is not checked.
  log_invariants(report_fn report, std::map<std::string, std::set<std::string>> principals)
      : report_(std::move(report)), principals_(std::move(principals)) {}

  /// Folds one event; events must come in sequence order.
  void fold(const nlohmann::json& ev) {
    const std::string type = ev.value("type", "");
    const std::uint64_t id = ev.value("job", std::uint64_t{0});
    const std::uint64_t seq = ev.value("seq", std::uint64_t{0});
    static const nlohmann::json empty = nlohmann::json::object();
    const nlohmann::json& b = ev.contains("body") ? ev["body"] : empty;
    check_principal(type, id, seq, ev.value("principal", ""));
    if (id == 0) return;
    if (type == "job.submitted") {
      auto& j = jobs_[id];
      j.review = b.value("review_required", false);
      j.unique_key = b.value("unique_key", "");
      j.schedule = b.value("schedule", std::uint64_t{0});
      if (b.contains("resources") && b["resources"].is_array())
        for (auto& r : b["resources"])
          j.claims.push_back({r.value("name", ""), r.value("mode", "exclusive") == "shared"});
      become_live(id, j, seq, "submitted");
      return;
    }
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      report_(id, "seq " + std::to_string(seq) + ": " + type + " before the job's job.submitted");
      return;
    }
    auto& j = it->second;
    if (type == "job.started") {
      start(id, j, seq);
      return;
    }
    if (type == "job.requested") {
      if (b.value("what", "") == "retry" && j.terminal) {
        j.terminal = false;
        become_live(id, j, seq, "retried");
      }
      return;
    }
    static const std::set<std::string> attempt_enders = {
        "job.succeeded", "job.failed", "job.reclaimed", "job.cancelled", "job.expired",
        "job.discarded"};
    if (attempt_enders.count(type)) release(id, j);
    bool terminal = false;
    if (type == "job.succeeded") terminal = !j.review;
    else if (type == "job.failed" || type == "job.reclaimed")
      terminal = b.value("next_run_at", std::int64_t{0}) == 0;
    else if (type == "job.reviewed" || type == "job.cancelled" || type == "job.expired" ||
             type == "job.discarded")
      terminal = true;
    if (terminal && !j.terminal) end(id, j);
  }

  std::size_t jobs() const { return jobs_.size(); }

 private:
  struct claim {
    std::string name;
    bool shared = false;
  };
  struct job {
    bool review = false;
    std::string unique_key;
    std::uint64_t schedule = 0;
    std::vector<claim> claims;
    bool holding = false;
    bool terminal = false;
  };
  struct holder {
    bool shared = false;
    std::uint64_t since = 0;  // seq of its job.started
  };

  void check_principal(const std::string& type, std::uint64_t id, std::uint64_t seq,
                       const std::string& principal) {
    auto p = principals_.find(type);
    if (p == principals_.end() || p->second.count(principal)) return;
    std::string allowed;
    for (auto& a : p->second) allowed += (allowed.empty() ? "" : " or ") + a;
    report_(id, "seq " + std::to_string(seq) + ": " + type + " recorded as principal '" +
                    principal + "', expected " + allowed);
  }

  void become_live(std::uint64_t id, job& j, std::uint64_t seq, const char* how) {
    if (!j.unique_key.empty()) {
      auto [k, fresh] = live_key_.emplace(j.unique_key, id);
      if (!fresh && k->second != id)
        report_(id, "seq " + std::to_string(seq) + ": " + how + " with unique key '" +
                        j.unique_key + "' while job " + std::to_string(k->second) +
                        " with that key is live");
      if (!fresh) k->second = id;
    }
    if (j.schedule != 0 && std::string_view{how} == "submitted") {
      auto [r, fresh] = live_run_.emplace(j.schedule, id);
      if (!fresh && r->second != id)
        report_(id, "seq " + std::to_string(seq) + ": " + how + " as a run of schedule " +
                        std::to_string(j.schedule) + " while its run " +
                        std::to_string(r->second) + " is live");
      if (!fresh) r->second = id;
    }
  }

  void end(std::uint64_t id, job& j) {
    j.terminal = true;
    if (auto k = live_key_.find(j.unique_key); k != live_key_.end() && k->second == id)
      live_key_.erase(k);
    if (auto r = live_run_.find(j.schedule); r != live_run_.end() && r->second == id)
      live_run_.erase(r);
  }

  void start(std::uint64_t id, job& j, std::uint64_t seq) {
    if (j.holding) release(id, j);  // a new attempt without an end: checked elsewhere
    for (auto& c : j.claims) {
      for (auto& [other, h] : holders_[c.name]) {
        if (other == id || (c.shared && h.shared)) continue;
        report_(id, "seq " + std::to_string(seq) + ": started holding " + c.name + " (" +
                        (c.shared ? "shared" : "exclusive") + ") while job " +
                        std::to_string(other) + " held it (" +
                        (h.shared ? "shared" : "exclusive") + ") since seq " +
                        std::to_string(h.since));
      }
    }
    for (auto& c : j.claims) holders_[c.name][id] = {c.shared, seq};
    j.holding = true;
  }

  void release(std::uint64_t id, job& j) {
    if (!j.holding) return;
    for (auto& c : j.claims) holders_[c.name].erase(id);
    j.holding = false;
  }

  report_fn report_;
  std::map<std::string, std::set<std::string>> principals_;
  std::map<std::uint64_t, job> jobs_;
  std::map<std::string, std::map<std::uint64_t, holder>> holders_;  // resource -> holders
  std::map<std::string, std::uint64_t> live_key_;                   // unique key -> live job
  std::map<std::uint64_t, std::uint64_t> live_run_;                 // schedule -> live run
};

}  // namespace jobsmith::crash
