// /v1/queues: the list with each queue's counts, and what an admin does to
// one queue: pause, resume, set its concurrency or its retention.
#include <map>
#include <string>

#include "apps/server/api_internal.hpp"
#include "events/time_text.hpp"

namespace jobsmith::server {

namespace {

enum class queue_change { pause, resume, concurrency };

/// Pause, resume and concurrency: the queue's name is the path's {queue},
/// percent-decoded.
void change_queue(request_context& rt, queue_change change) {
  const auto& lim = rt.limits();
  rt.only_query({});
  auto name_or = percent_decode(rt.path_arg("queue"));
  if (!name_or || name_or->empty() || name_or->size() > lim.max_name_length)
    throw bad_request("queue name: 1 to " + std::to_string(lim.max_name_length) + " bytes");
  std::uint32_t concurrency = 0;
  auto body = rt.body_json(change != queue_change::concurrency);
  object_reader in{body, ""};
  if (change == queue_change::concurrency) {
    auto c = in.integer("concurrency");
    if (!c || *c < 0 || *c > 0xffffffffLL)
      throw bad_request("concurrency: required, an integer >= 0 (0 = unlimited)");
    concurrency = static_cast<std::uint32_t>(*c);
  }
  in.no_other_fields();
  rt.on_pool([change, name = *name_or, concurrency](request_context& r) {
    auto& eng = r.eng();
    result<queue_info> out = change == queue_change::pause    ? eng.pause(name, r.principal)
                             : change == queue_change::resume ? eng.resume(name, r.principal)
                                 : eng.configure(name, concurrency, r.principal);
    if (!out) return r.fail(from_engine(out.error()));
    auto& q = *out;
    r.answer(200, {{"queue",
                    {{"name", q.name}, {"paused", q.paused}, {"concurrency", q.concurrency},
                     {"scheduled", q.scheduled}, {"ready", q.ready},
                     {"locking", q.locking}, {"running", q.running}}}});
  });
}

json retention_json(const retention_policy& p) {
  return {{"succeeded", p.succeeded}, {"failed", p.failed}};
}

/// A retention duration: ms as an integer, or text such as "1d" or "90m".
std::optional<millis> duration_field(object_reader& in, const char* key) {
  const json* v = in.find(key);
  if (v == nullptr) return std::nullopt;
  std::optional<millis> d;
  if (v->is_number_unsigned()) d = static_cast<millis>(v->get<std::uint64_t>());
  else if (v->is_string()) d = parse_duration(v->get<std::string>());
  if (!d || *d > max_duration)
    throw bad_request(std::string(key) +
                      ": ms as an integer, or a duration such as \"1d\", \"12h\", \"30m\", "
                      "\"45s\" (0 = kept), at most 10 years");
  return d;
}

}  // namespace

std::optional<stream_request> configure_queue_retention(request_context& rt) {
  const auto& lim = rt.limits();
  rt.only_query({});
  auto name_or = percent_decode(rt.path_arg("queue"));
  if (!name_or || name_or->empty() || name_or->size() > lim.max_name_length)
    throw bad_request("queue name: 1 to " + std::to_string(lim.max_name_length) + " bytes");
  auto body = rt.body_json(false);
  object_reader in{body, ""};
  auto succeeded = duration_field(in, "retention");
  auto failed = duration_field(in, "retention_failed");
  in.no_other_fields();
  if (!succeeded && !failed) throw bad_request("say retention, retention_failed or both");
  rt.on_pool([name = *name_or, succeeded, failed](request_context& r) {
    auto& eng = r.eng();
    // The one not given keeps what is in force for the queue now.
    auto rows = eng.queue_counts();
    if (!rows) return r.fail(from_engine(rows.error()));
    auto current = eng.default_retention();
    if (!current) return r.fail(from_engine(current.error()));
    retention_policy policy = *current;
    for (auto& q : *rows)
      if (q.name == name) policy = q.retention;
    if (succeeded) policy.succeeded = *succeeded;
    if (failed) policy.failed = *failed;
    auto seq = eng.set_retention(name, policy, r.principal);
    if (!seq) return r.fail(from_engine(seq.error()));
    r.answer(200, {{"queue", {{"name", name}, {"retention", retention_json(policy)}}}});
  });
  return std::nullopt;
}

std::optional<stream_request> list_queues(request_context& rt) {
  rt.only_query({});
  rt.on_pool([](request_context& r) {
    auto infos = r.eng().queues();
    if (!infos) return r.fail(from_engine(infos.error()));
    auto counts = r.hub().counts_by_queue();
    std::map<std::string, json> by_name;
    auto counts_json = [](const queue_row* c) {
      json out = json::object();
      for (int s = 0; s < job_state_count; ++s)
        out[std::string{to_string(static_cast<job_state>(s))}] =
            c ? c->by_state[static_cast<std::size_t>(s)] : 0;
      return out;
    };
    auto stored_default = r.eng().default_retention();
    const retention_policy fallback = stored_default ? *stored_default : retention_policy{};
    for (auto& q : *infos) {
      const queue_row* c = nullptr;
      for (auto& x : counts)
        if (x.name == q.name) c = &x;
      by_name[q.name] = {{"name", q.name},         {"paused", q.paused},
                         {"concurrency", q.concurrency}, {"scheduled", q.scheduled},
                         {"ready", q.ready},       {"locking", q.locking},
                         {"running", q.running},   {"counts", counts_json(c)},
                         {"retired", c ? c->retired : 0},
                         {"retention", retention_json(c ? c->retention : fallback)}};
    }
    // Queues whose jobs all finished are gone from the scheduler but
    // still have counts.
    for (auto& c : counts)
      if (!by_name.count(c.name))
        by_name[c.name] = {{"name", c.name},  {"paused", false}, {"concurrency", 0},
                           {"scheduled", 0},  {"ready", 0},      {"locking", 0},
                           {"running", 0},    {"counts", counts_json(&c)},
                           {"retired", c.retired}, {"retention", retention_json(c.retention)}};
    json arr = json::array();
    for (auto& [name, q] : by_name) arr.push_back(std::move(q));
    r.answer(200, {{"queues", std::move(arr)}});
  });
  return std::nullopt;
}

std::optional<stream_request> pause_queue(request_context& rt) {
  change_queue(rt, queue_change::pause);
  return std::nullopt;
}

std::optional<stream_request> resume_queue(request_context& rt) {
  change_queue(rt, queue_change::resume);
  return std::nullopt;
}

std::optional<stream_request> configure_queue(request_context& rt) {
  change_queue(rt, queue_change::concurrency);
  return std::nullopt;
}

}  // namespace jobsmith::server
