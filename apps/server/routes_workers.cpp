// What a worker calls: lease, heartbeat, complete (one job, or a batch),
// fail. These call the engine's *_async functions from the thread that
// read the request and answer from the engine's callback: a waiting lease
// or a commit in flight holds no thread.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "apps/server/api_internal.hpp"
#include "apps/server/slim_answers.hpp"
#include "events/json.hpp"

namespace jobsmith::server {

namespace {

/// Lease answers of up to this many jobs are encoded on the thread the
/// engine answered on; larger ones on a call thread.
constexpr std::size_t inline_encode_jobs = 16;

/// The fields of a lease (POST /v1/workers/lease, and a complete's
/// lease_next): worker, queues, max_jobs, worker_limit, wait_ms. `where`
/// prefixes the messages ("lease_next.").
lease_request read_lease_request(object_reader& in, const std::string& where,
                                 const std::string& principal, const server_limits& lim) {
  lease_request lr;
  lr.principal = principal;
  auto worker = in.str("worker", lim.max_name_length);
  if (!worker || worker->empty()) throw bad_request(where + "worker: required, a non-empty string");
  lr.worker = *worker;
  if (auto qs = in.find("queues")) {
    if (!qs->is_array()) throw bad_request(where + "queues: expected an array of strings");
    for (auto& q : *qs) {
      if (!q.is_string() || q.get<std::string>().empty() ||
          q.get<std::string>().size() > lim.max_name_length)
        throw bad_request(where + "queues: expected non-empty strings");
      lr.queues.push_back(q.get<std::string>());
    }
    if (lr.queues.size() > 1000) throw bad_request(where + "queues: at most 1000");
  }
  auto max_jobs = in.integer("max_jobs").value_or(1);
  if (max_jobs < 1) throw bad_request(where + "max_jobs: must be >= 1");
  lr.max_jobs = static_cast<std::uint32_t>(
      std::min<std::int64_t>(max_jobs, static_cast<std::int64_t>(lim.max_lease_jobs)));
  auto worker_limit = in.integer("worker_limit").value_or(0);
  if (worker_limit < 0 || worker_limit > 0xffffffffLL)
    throw bad_request(where + "worker_limit: must be >= 0");
  lr.worker_limit = static_cast<std::uint32_t>(worker_limit);
  auto wait = in.integer("wait_ms").value_or(0);
  if (wait < 0) throw bad_request(where + "wait_ms: must be >= 0");
  lr.wait = std::min<millis>(wait, lim.max_long_poll.count());
  return lr;
}

/// A complete's optional "lease_next" (one job or a batch): complete and
/// take the next jobs in one call. The lease runs once the completions are
/// decided, as if it were the next request; it never waits.
std::optional<lease_request> read_lease_next(object_reader& in, const std::string& principal,
                                             const server_limits& lim) {
  auto ln = in.find("lease_next");
  if (!ln) return std::nullopt;
  object_reader next_in{*ln, "lease_next."};
  auto next = read_lease_request(next_in, "lease_next.", principal, lim);
  next_in.no_other_fields();
  if (next.wait > 0)
    throw bad_request("lease_next.wait_ms: a complete answers at once; wait with a lease");
  return next;
}

/// Appends `"results":[...]`, the verdicts of a batch complete in request
/// order. Written as text, keys in the order nlohmann would dump them: the
/// same bytes as building the tree, at a fraction of the cost.
void append_verdicts(std::string& out, const std::vector<job_id>& ids,
                     const std::vector<result<job_record>>& outs, millis now) {
  out.reserve(out.size() + outs.size() * 48 + 16);
  out += "\"results\":[";
  for (std::size_t i = 0; i < outs.size(); ++i) {
    auto& verdict = outs[i];
    if (i != 0) out += ',';
    if (verdict) {
      // Not the whole job: a worker answering hundreds of jobs at once
      // needs only each one's verdict.
      out += "{\"id\":";
      out += std::to_string(ids[i]);
      out += ",\"state\":\"";
      out += to_string(effective_state(*verdict, now));  // a plain name
      out += "\",\"status\":200}";
    } else {
      auto e = from_engine(verdict.error());
      out += dump(json{{"id", ids[i]},
                       {"status", e.status},
                       {"error", {{"code", e.code}, {"message", e.message}}}});
    }
  }
  out += ']';
}

/// The answer to a batch complete: {"results": [...]}, or with lease_next
/// {"jobs": [...], "lease_error" (when the lease failed), "results": [...]},
/// the jobs whole or slim as a lease's.
void answer_verdicts(request_context& r, const std::vector<job_id>& ids,
                     const std::vector<result<job_record>>& outs,
                     const result<std::vector<job_record>>* leased) {
  auto now = wall_now();
  http_reply reply;
  reply.status = 200;
  reply.body = "{";
  if (leased) {
    static const std::vector<job_record> none;
    reply.body += "\"jobs\":";
    append_leased_jobs(reply.body, *leased ? **leased : none, r.minimal(), now);
    if (!*leased) append_lease_error(reply.body, leased->error());
    reply.body += ',';
  }
  append_verdicts(reply.body, ids, outs, now);
  reply.body += '}';
  if (leased && r.minimal()) return r.reply_minimal(std::move(reply));
  r.reply(std::move(reply));
}

/// Leases `next` for a batch complete whose completions are decided, then
/// answers. Called on the engine's thread (or, for an empty batch, the
/// request's): no hand-off to a call thread.
void lease_after_verdicts(std::shared_ptr<request_context> shared, lease_request next,
                          std::vector<job_id> ids, std::vector<result<job_record>> outs) {
  auto& eng = shared->eng();
  eng.lease_async(std::move(next), [shared, ids = std::move(ids), outs = std::move(outs)](
                                       result<std::vector<job_record>> leased) {
    if (leased) shared->counters().leased_jobs.fetch_add(leased->size());
    answer_verdicts(*shared, ids, outs, &leased);
  });
}

}  // namespace

void append_leased_jobs(std::string& out, const std::vector<job_record>& jobs, bool minimal,
                        millis now) {
  out += '[';
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (i != 0) out += ',';
    if (minimal) append_leased_job_minimal(out, jobs[i]);
    else append_json_text(out, jobs[i], now);
  }
  out += ']';
}

void append_lease_error(std::string& out, const engine_error& err) {
  auto e = from_engine(err);
  out += ",\"lease_error\":" + dump(json{{"code", e.code}, {"message", e.message}});
}

std::optional<stream_request> lease_jobs(request_context& rt) {
  rt.only_query({});
  const auto& lim = rt.limits();
  auto body = rt.body_json(false);
  object_reader in{body, ""};
  auto lr = read_lease_request(in, "", rt.principal, lim);
  in.no_other_fields();
  bool long_poll = lr.wait > 0;
  if (long_poll && rt.counters().long_polls.fetch_add(1) >= lim.max_long_polls) {
    rt.counters().long_polls.fetch_sub(1);
    rt.counters().refused_busy.fetch_add(1);
    throw api_error{429, "overloaded", "too many workers are waiting for jobs"};
  }
  auto shared = std::make_shared<request_context>(std::move(rt));
  auto started = std::chrono::steady_clock::now();
  shared->eng().lease_async(std::move(lr), [shared, long_poll, started](
                                               result<std::vector<job_record>> out) {
    if (long_poll) shared->counters().long_polls.fetch_sub(1);
    shared->lease_seconds().observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (!out) return shared->fail(from_engine(out.error()));
    shared->counters().leased_jobs.fetch_add(out->size());
    // Encoding a large batch is real work: off the engine's thread. A
    // few jobs are encoded here, which costs less than a hand-off.
    auto jobs = std::make_shared<std::vector<job_record>>(std::move(*out));
    auto encode = [shared, jobs] {
      if (!shared->minimal()) return shared->answer_jobs(200, "jobs", *jobs);
      http_reply r;
      r.body.reserve(jobs->size() * 256 + 16);
      r.body = "{\"jobs\":[";
      for (std::size_t i = 0; i < jobs->size(); ++i) {
        if (i != 0) r.body += ',';
        append_leased_job_minimal(r.body, (*jobs)[i]);
      }
      r.body += "]}";
      shared->reply_minimal(std::move(r));
    };
    if (jobs->size() <= inline_encode_jobs || !shared->pool().force_post(encode)) encode();
  });
  return std::nullopt;
}

std::optional<stream_request> heartbeat_job(request_context& rt) {
  rt.only_query({});
  auto body = rt.body_json(false);
  object_reader in{body, ""};
  heartbeat_request hb;
  hb.id = rt.id;
  hb.principal = rt.principal;
  auto token = in.id("lease_token");
  if (!token) throw bad_request("lease_token: required");
  hb.lease_token = *token;
  hb.detail = in.str("detail", 4096).value_or("");
  auto pct = in.integer("percent");
  if (pct && (*pct < -1 || *pct > 100)) throw bad_request("percent: must be in [-1, 100]");
  hb.percent = static_cast<std::int32_t>(pct.value_or(-1));
  if (auto lines = in.find("lines")) {
    if (!lines->is_array()) throw bad_request("lines: expected an array");
    if (lines->size() > 1000) throw api_error{413, "too_large", "lines: at most 1000"};
    auto now = wall_now();
    for (std::size_t i = 0; i < lines->size(); ++i) {
      object_reader line{(*lines)[i], "lines[" + std::to_string(i) + "]."};
      log_line l;
      l.time = now;
      auto level = line.str("level", 16).value_or("info");
      auto parsed = parse_log_level(level);
      if (!parsed) throw bad_request("lines[" + std::to_string(i) + "].level: info, warn or error");
      l.level = *parsed;
      l.text = line.str("text", 16384).value_or("");
      line.no_other_fields();
      hb.lines.push_back(std::move(l));
    }
  }
  in.no_other_fields();
  auto shared = std::make_shared<request_context>(std::move(rt));
  shared->eng().heartbeat_async(std::move(hb), [shared](result<heartbeat_reply> out) {
    if (!out) return shared->fail(from_engine(out.error()));
    json answer = {{"lease_ms", out->lease_ms}, {"cancel_requested", out->cancel_requested}};
    if (out->cancel_requested) answer["stop_ms"] = out->stop_ms;
    shared->answer(200, answer);
  });
  return std::nullopt;
}

std::optional<stream_request> complete_job(request_context& rt) {
  rt.only_query({});
  auto body = rt.body_json(false);
  object_reader in{body, ""};
  auto token = in.id("lease_token");
  if (!token) throw bad_request("lease_token: required");
  auto result_text = in.any("result").value_or("null");
  // Complete and take the next jobs in one call: the lease runs once
  // the completion is durable, as if it were the next request.
  auto next = read_lease_next(in, rt.principal, rt.limits());
  in.no_other_fields();
  const job_id id = rt.id;
  auto shared = std::make_shared<request_context>(std::move(rt));
  shared->eng().complete_async(
      id, *token, std::move(result_text), shared->principal,
      [shared, next = std::move(next)](result<job_record> out) mutable {
        if (!out) return shared->fail(from_engine(out.error()));
        if (!next) return shared->answer_job(*out);
        // Chained from the engine's thread: no hand-off to a call thread.
        shared->eng().lease_async(
            std::move(*next),
            [shared, done = std::move(*out)](result<std::vector<job_record>> leased) {
              if (leased) shared->counters().leased_jobs.fetch_add(leased->size());
              shared->answer_job_and_next(done, leased);
            });
      });
  return std::nullopt;
}

std::optional<stream_request> fail_job(request_context& rt) {
  rt.only_query({});
  auto body = rt.body_json(false);
  object_reader in{body, ""};
  auto token = in.id("lease_token");
  if (!token) throw bad_request("lease_token: required");
  auto error = in.str("error", 65536).value_or("");
  auto retryable = in.boolean("retryable").value_or(true);
  std::string handover;
  if (auto it = body.find("handover"); it != body.end() && !it->is_null()) handover = it->dump();
  in.find("handover");
  in.no_other_fields();
  const job_id id = rt.id;
  auto shared = std::make_shared<request_context>(std::move(rt));
  shared->eng().fail_async(id, *token, std::move(error), retryable, shared->principal,
                           std::move(handover), [shared](result<job_record> out) {
                             if (!out) return shared->fail(from_engine(out.error()));
                             shared->answer_job(*out);
                           });
  return std::nullopt;
}

std::optional<stream_request> complete_jobs(request_context& rt) {
  rt.only_query({});
  const auto& lim = rt.limits();
  auto body = rt.body_json(false);
  object_reader in{body, ""};
  auto results = in.find("results");
  // As a complete's, once every completion of the batch is decided.
  auto next = read_lease_next(in, rt.principal, lim);
  in.no_other_fields();
  if (!results || !results->is_array()) throw bad_request("results: expected an array");
  if (results->size() > lim.max_batch)
    throw api_error{413, "too_large", "batch of " + std::to_string(results->size()) +
                                          " results is over the limit of " +
                                          std::to_string(lim.max_batch)};
  std::vector<engine::completion> items;
  items.reserve(results->size());
  for (std::size_t i = 0; i < results->size(); ++i) {
    object_reader r{(*results)[i], "results[" + std::to_string(i) + "]."};
    auto jid = r.id("id");
    auto token = r.id("lease_token");
    if (!jid || !token)
      throw bad_request("results[" + std::to_string(i) + "]: id and lease_token are required");
    items.push_back({*jid, *token, r.any("result").value_or("null")});
    r.no_other_fields();
  }
  if (items.empty()) {
    if (!next) {
      rt.answer(200, {{"results", json::array()}});
      return std::nullopt;
    }
    // Nothing to decide: the call is a lease.
    lease_after_verdicts(std::make_shared<request_context>(std::move(rt)), std::move(*next), {},
                         {});
    return std::nullopt;
  }
  // Every item goes to the engine at once, so their events share fsyncs;
  // the answer is built when the last one is back.
  std::vector<job_id> ids;
  ids.reserve(items.size());
  for (auto& it : items) ids.push_back(it.id);
  auto shared = std::make_shared<request_context>(std::move(rt));
  shared->eng().complete_many_async(
      std::move(items), shared->principal,
      [shared, ids = std::move(ids), next = std::move(next)](
          result<std::vector<result<job_record>>> outs) mutable {
        if (!outs) return shared->fail(from_engine(outs.error()));  // not expected
        if (!next) return answer_verdicts(*shared, ids, *outs, nullptr);
        // Chained from the engine's thread, as a complete's lease_next.
        lease_after_verdicts(shared, std::move(*next), std::move(ids), std::move(*outs));
      });
  return std::nullopt;
}

}  // namespace jobsmith::server
