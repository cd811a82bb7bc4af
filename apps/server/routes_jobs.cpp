// /v1/jobs: submit, list, get (with history and explanation), and what a
// producer does to one job: cancel, run-now, retry, review.
#include <limits>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "apps/server/api_internal.hpp"
#include "events/json.hpp"

namespace jobsmith::server {

namespace {

/// Submit bodies up to this size are parsed on the Asio thread that read
/// them (a single job, a small batch); larger ones on a call thread.
constexpr std::size_t inline_parse_bytes = 64 * 1024;

job_submitted parse_submission(const json& j, const std::string& where, const server_limits& lim,
                               millis min_recurrence, millis now) {
  if (!j.is_object()) throw bad_request(where + "expected a submission object");
  millis delay = 0;
  json without_delay;  // a copy only when there is a delay to take out
  if (auto it = j.find("delay"); it != j.end()) {
    if (!it->is_number_integer()) throw bad_request(where + "delay: expected an integer");
    delay = it->get<std::int64_t>();
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > max_safe_id)
      throw bad_request(where + "delay: too large");
    if (delay < 0) throw bad_request(where + "delay: must be >= 0");
    if (delay > max_duration)
      throw bad_request(where + "delay: must be at most " + std::to_string(max_duration) +
                        " ms (10 years)");
    without_delay = j;
    without_delay.erase("delay");
  }
  job_submitted spec;
  std::string error;
  if (!spec_from_json(without_delay.is_null() ? j : without_delay, spec, &error))
    throw bad_request(where + error);
  if (auto e = validate(spec, min_recurrence)) throw bad_request(where + e->message);
  auto check_len = [&](const std::string& s, const char* field) {
    if (s.size() > lim.max_name_length)
      throw bad_request(where + field + ": longer than " + std::to_string(lim.max_name_length) +
                        " bytes");
  };
  check_len(spec.kind, "kind");
  check_len(spec.queue, "queue");
  check_len(spec.unique_key, "unique_key");
  for (auto& r : spec.resources) check_len(r.name, "resources");
  if (spec.run_at == 0 && delay > 0) spec.run_at = now + delay;
  return spec;
}

json explanation_json(const dispatch_explanation& x) {
  json waits = json::array();
  for (auto& w : x.lock_waits)
    waits.push_back({{"resource", w.resource},
                     {"mode", std::string{to_string(w.wanted)}},
                     {"holders", w.holders},
                     {"queued_ahead", w.queued_ahead}});
  return {{"phase", x.phase}, {"text", x.text}, {"lock_waits", std::move(waits)}};
}

/// The answer to cancel, run-now, retry and review: the job as it is now.
void answer_changed_job(request_context& r, result<job_record>& out) {
  if (!out) return r.fail(from_engine(out.error()));
  if (!r.tokens().all) out->lease_token = 0;  // producers hold no leases
  r.answer(200, {{"job", to_json(*out, wall_now())}});
}

}  // namespace

std::optional<stream_request> submit_jobs(request_context& rt) {
  rt.only_query({});
  const auto& lim = rt.limits();
  if (rt.self.over_memory_budget()) {
    rt.counters().refused_memory.fetch_add(1);
    throw api_error{503, "memory_budget",
                    "resident memory " + mib(rt.resident_bytes()) +
                        " is over the server's budget of " + mib(lim.memory_budget_bytes) +
                        "; submits are refused until it is below (workers still run "
                        "what is queued)"};
  }
  // A large body is parsed on a call thread: an Asio thread that parses
  // a large batch keeps /healthz and every other request on it
  // waiting. A small one is parsed here. Either way the submit itself
  // holds no thread while its commit is in flight.
  auto parse_and_submit = [](request_context& r) {
    const auto& lim = r.limits();
    auto body = r.body_json(false);
    auto now = wall_now();
    const millis min_recurrence = r.config().engine.min_recurrence_interval;
    std::vector<job_submitted> specs;
    bool batch = body.contains("jobs");
    if (batch) {
      if (body.size() != 1) throw bad_request("a batch has only the field \"jobs\"");
      auto& arr = body["jobs"];
      if (!arr.is_array()) throw bad_request("jobs: expected an array");
      if (arr.size() > lim.max_batch)
        throw api_error{413, "too_large", "batch of " + std::to_string(arr.size()) +
                                              " jobs is over the limit of " +
                                              std::to_string(lim.max_batch)};
      specs.reserve(arr.size());
      for (std::size_t i = 0; i < arr.size(); ++i)
        specs.push_back(parse_submission(arr[i], "jobs[" + std::to_string(i) + "]: ", lim,
                                         min_recurrence, now));
    } else {
      specs.push_back(parse_submission(body, "", lim, min_recurrence, now));
    }
    body = json{};  // the parsed tree is not needed past here
    submit_options opts;
    opts.principal = r.principal;
    auto shared = std::make_shared<request_context>(std::move(r));
    shared->eng().submit_many_async(
        std::move(specs), std::move(opts), [shared, batch](result<std::vector<job_id>> ids) {
          if (!ids) return shared->fail(from_engine(ids.error()));
          if (batch) shared->answer(201, {{"ids", *ids}});
          else shared->answer(201, {{"id", ids->front()}});
        });
  };
  if (rt.req.body.size() > inline_parse_bytes) rt.on_pool(parse_and_submit);
  else parse_and_submit(rt);
  return std::nullopt;
}

std::optional<stream_request> list_jobs(request_context& rt) {
  rt.only_query({"state", "not_state", "queue", "kind", "submitted_from", "submitted_to",
                 "finished_from", "finished_to", "error", "attempts_min", "attempts_max", "limit",
                 "after"});
  job_filter f;
  auto states = [&](const char* key, std::vector<job_state>& out) {
    if (auto v = rt.query(key))
      for (auto name : split(*v, ',')) {
        auto s = parse_job_state(name);
        if (!s) throw bad_request(std::string{key} + ": unknown state '" + std::string{name} + "'");
        out.push_back(*s);
      }
  };
  states("state", f.states_in);
  states("not_state", f.states_not_in);
  if (auto v = rt.query("queue")) f.queue = *v;
  if (auto v = rt.query("kind")) f.kind = *v;
  if (auto v = rt.query("error")) f.error_contains = *v;
  f.submitted_from = rt.query_int("submitted_from", 0, 0);
  f.submitted_to = rt.query_int("submitted_to", 0, 0);
  f.finished_from = rt.query_int("finished_from", 0, 0);
  f.finished_to = rt.query_int("finished_to", 0, 0);
  auto attempts = [&](const char* key, std::optional<std::uint32_t>& out) {
    if (!rt.query(key)) return;
    auto n = rt.query_int(key, 0, 0);
    if (n > std::numeric_limits<std::uint32_t>::max())
      throw bad_request(std::string{key} + ": at most " +
                        std::to_string(std::numeric_limits<std::uint32_t>::max()));
    out = static_cast<std::uint32_t>(n);
  };
  attempts("attempts_min", f.attempts_min);
  attempts("attempts_max", f.attempts_max);
  f.after = static_cast<job_id>(rt.query_int("after", 0, 0));
  auto limit = rt.query_int("limit", 100, 1);
  if (limit > 1000) throw bad_request("limit: at most 1000");
  f.limit = static_cast<std::size_t>(limit);
  rt.on_pool([f](request_context& r) {
    auto jobs = r.eng().list(f);
    if (!jobs) return r.fail(from_engine(jobs.error()));
    bool all_tokens = r.tokens().all;
    for (auto& rec : *jobs) {
      // Pages stay small: payload and result only in GET /v1/jobs/{id}.
      rec.spec.payload = "null";
      rec.result = "null";
      if (!all_tokens) rec.lease_token = 0;
    }
    // Keys in the order a JSON object dumps them: "jobs" < "next".
    auto next = jobs->size() == f.limit && !jobs->empty() ? std::to_string(jobs->back().id)
                                                          : std::string("null");
    r.answer_jobs(200, "jobs", *jobs, ",\"next\":" + next);
  });
  return std::nullopt;
}

std::optional<stream_request> get_job(request_context& rt) {
  rt.only_query({});
  rt.on_pool([id = rt.id](request_context& r) {
    auto view = r.eng().get(id);
    if (!view) return r.fail(from_engine(view.error()));
    auto now = wall_now();
    auto who = r.tokens();
    json history = json::array();
    const event* last_start = nullptr;
    for (auto& ev : view->history) {
      if (std::holds_alternative<job_started>(ev.body)) last_start = &ev;
      history.push_back(to_json(who.hides(ev) ? visible_to(ev, who) : ev));
    }
    // The job's token is its last attempt's: shown as that start is.
    if (last_start == nullptr || who.hides(*last_start)) view->job.lease_token = 0;
    json explanation;
    if (is_terminal(view->job.state)) {
      explanation = {{"phase", "not live"},
                     {"text", "job " + std::to_string(id) + " is " +
                                  std::string{to_string(view->job.state)}},
                     {"lock_waits", json::array()}};
    } else {
      auto x = r.eng().explain(id);
      if (x) explanation = explanation_json(*x);
      else
        explanation = {
            {"phase", "not live"}, {"text", x.error().message}, {"lock_waits", json::array()}};
    }
    r.answer(200, {{"job", to_json(view->job, now)},
                   {"history", std::move(history)},
                   {"explanation", std::move(explanation)}});
  });
  return std::nullopt;
}

// Cancel, run-now, retry and review take an optional body; each engine call
// blocks until the job's actor answers: on the pool.

std::optional<stream_request> cancel_job(request_context& rt) {
  rt.only_query({});
  auto body = rt.body_json(true);
  object_reader in{body, ""};
  std::string reason = in.str("reason", 4096).value_or("");
  bool at_once = in.boolean("at_once").value_or(false);
  in.no_other_fields();
  rt.on_pool([id = rt.id, reason, at_once](request_context& r) {
    auto out = r.eng().cancel(id, reason, r.principal, at_once);
    answer_changed_job(r, out);
  });
  return std::nullopt;
}

std::optional<stream_request> run_job_now(request_context& rt) {
  rt.only_query({});
  auto body = rt.body_json(true);
  object_reader in{body, ""};
  in.no_other_fields();
  rt.on_pool([id = rt.id](request_context& r) {
    auto out = r.eng().run_now(id, r.principal);
    answer_changed_job(r, out);
  });
  return std::nullopt;
}

std::optional<stream_request> retry_job(request_context& rt) {
  rt.only_query({});
  auto body = rt.body_json(true);
  object_reader in{body, ""};
  in.no_other_fields();
  rt.on_pool([id = rt.id](request_context& r) {
    auto out = r.eng().retry(id, r.principal);
    answer_changed_job(r, out);
  });
  return std::nullopt;
}

std::optional<stream_request> review_job(request_context& rt) {
  rt.only_query({});
  auto body = rt.body_json(true);
  object_reader in{body, ""};
  auto a = in.boolean("accept");
  if (!a) throw bad_request("accept: required (true or false)");
  bool accept = *a;
  std::string comment = in.str("comment", 4096).value_or("");
  in.no_other_fields();
  rt.on_pool([id = rt.id, accept, comment](request_context& r) {
    auto out = r.eng().review(id, accept, comment, r.principal);
    answer_changed_job(r, out);
  });
  return std::nullopt;
}

}  // namespace jobsmith::server
