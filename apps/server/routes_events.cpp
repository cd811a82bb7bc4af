// /v1/events: a page of the log, and a stream of it (Server-Sent Events;
// the HTTP side opens the response and hands it to event_hub::add_stream).
#include <chrono>
#include <string>

#include "apps/server/api_internal.hpp"
#include "events/json.hpp"

namespace jobsmith::server {

namespace {

/// The filter both take: job, queue, type (event types, comma-separated),
/// and whose lease tokens the caller may read.
stream_filter read_filter(request_context& rt) {
  stream_filter f;
  f.tokens = rt.tokens();
  f.job = static_cast<job_id>(rt.query_int("job", 0, 0));
  if (auto q = rt.query("queue")) f.queue = *q;
  if (auto t = rt.query("type"))
    for (auto name : split(*t, ',')) {
      auto idx = type_index(name);
      if (idx < 0) throw bad_request("type: unknown event type '" + std::string{name} + "'");
      f.types.push_back(idx);
    }
  return f;
}

}  // namespace

std::optional<stream_request> get_events_page(request_context& rt) {
  rt.only_query({"from", "limit", "job", "queue", "type"});
  auto f = read_filter(rt);
  auto from = static_cast<sequence_t>(rt.query_int("from", 1, 1));
  auto limit = rt.query_int("limit", 100, 1);
  if (static_cast<std::size_t>(limit) > rt.limits().max_events_page)
    throw bad_request("limit: at most " + std::to_string(rt.limits().max_events_page));
  rt.on_pool([f = std::move(f), from, limit](request_context& r) {
    auto head = r.eng().head();
    // Scans until the page is full or the head is reached, for at most
    // events_scan_time: a rare filter over a long log answers a short
    // page with "next" where the scan stopped and "head" to say that
    // there is more (docs/api.md).
    const auto deadline = std::chrono::steady_clock::now() + r.limits().events_scan_time;
    json events = json::array();
    sequence_t next = from;
    std::uint32_t since_clock = 0;
    auto res = r.eng().read_events(from, head, [&](const event& ev) {
      if (r.hub().matches(f, ev))
        events.push_back(to_json(f.tokens.hides(ev) ? visible_to(ev, f.tokens) : ev));
      next = ev.seq + 1;
      if (events.size() >= static_cast<std::size_t>(limit)) return false;
      if (++since_clock == 1024) {
        since_clock = 0;
        if (std::chrono::steady_clock::now() >= deadline) return false;
      }
      return true;
    });
    if (!res) return r.fail(from_engine(res.error()));
    if (head < from) next = from;
    r.answer(200, {{"events", std::move(events)}, {"head", head}, {"next", next}});
  });
  return std::nullopt;
}

std::optional<stream_request> open_event_stream(request_context& rt) {
  rt.only_query({"from", "job", "queue", "type"});
  auto f = read_filter(rt);
  // "New events only" starts after the head as this request is read,
  // not when a pool thread gets to the stream: an event committed in
  // between (the client may already have been told the stream is
  // open) would otherwise be lost to it.
  sequence_t from = rt.eng().head() + 1;
  if (!rt.req.last_event_id.empty()) {
    auto last = parse_id(rt.req.last_event_id);
    if (!last) throw bad_request("Last-Event-ID: expected a sequence number");
    from = *last + 1;
  } else if (rt.query("from")) {
    from = static_cast<sequence_t>(rt.query_int("from", 1, 1));
  }
  return stream_request{std::move(f), from};
}

}  // namespace jobsmith::server
