#include "apps/audit/verify_checks.hpp"

#include <string_view>
#include <vector>

#include "actors/recovery.hpp"
#include "apps/audit/audit_support.hpp"
#include "projections/queue_view.hpp"

namespace jobsmith::apps::audit {

namespace {

std::string range_text(sequence_t first, sequence_t last) {
  return first == last ? "record " + std::to_string(first)
                       : "records " + std::to_string(first) + ".." + std::to_string(last);
}

}  // namespace

part_outcome check_wal(const store::wal_drop& d) {
  part_outcome out;
  out.part = "wal";
  if (!d.dropped) {
    out.summary = "write-ahead log: opening it for writing drops nothing";
    return out;
  }
  // The store's read-only open decided as a read-write open does (the same
  // recovery mode, the same fallback), so this is what `jobsmith serve`
  // would drop, and what this verify no longer sees.
  out.problem = "wal_tail_damaged";
  out.first_bad = d.kept + 1;
  std::string lost;
  if (d.first != 0) {
    lost = range_text(d.first, d.last) +
           (d.whole ? "" : " and maybe more (the damaged write does not decode to its end)");
  } else {
    lost = d.whole ? "no record (the write held none of the log's records)"
                   : "the records after " + std::to_string(d.kept) +
                         " that the write held (its bytes do not tell which)";
  }
  out.message = "the write-ahead log's last write is damaged (" + d.where +
                "): opening this directory for writing (jobsmith serve) drops it and with it " +
                lost + "; the log then ends at record " + std::to_string(d.kept);
  nlohmann::json dropped = {{"where", d.where}, {"kept", d.kept}, {"whole", d.whole}};
  if (d.first != 0) {
    dropped["first"] = d.first;
    dropped["last"] = d.last;
  }
  out.detail["dropped"] = dropped;
  return out;
}

part_outcome check_index(const store::event_log& log, sequence_t from, sequence_t to) {
  part_outcome out;
  out.part = "index";
  const auto start = clock_type::now();
  store::index_report r;
  const store::status s = log.verify_index(from, to, &r);
  out.seconds = seconds_since(start);
  out.checked = r.entries;
  out.detail = {{"records", r.records}, {"entries", r.entries}, {"seconds", out.seconds}};
  if (s.is_ok()) {
    out.summary = "by_job index: " + grouped(r.entries) +
                  " entries, one for each record, each under its record's job";
    return out;
  }
  out.problem = r.problem.empty() ? "read_error" : r.problem;
  out.message = s.message();
  out.first_bad = r.seq;
  out.damage = s.code() == store::status_code::corruption;
  if (r.job != 0) out.detail["job"] = r.job;
  return out;
}

part_outcome check_snapshots(const store::event_log& log) {
  part_outcome out;
  out.part = "snapshots";
  const auto start = clock_type::now();
  auto fail = [&](const char* problem, const std::string& name, std::string message) {
    out.problem = problem;
    out.message = "snapshot " + name + ": " + std::move(message);
    out.detail["snapshot"] = name;
    out.seconds = seconds_since(start);
    return out;
  };
  std::vector<store::snapshot_info> listed;
  store::status s = log.list_snapshots("", &listed);
  if (!s.is_ok()) {
    out.damage = s.code() == store::status_code::corruption;
    return fail(out.damage ? "snapshot_undecodable" : "read_error", "index",
                "cannot be listed: " + s.to_string());
  }
  const sequence_t head = log.head();
  for (const store::snapshot_info& info : listed) {
    store::snapshot snap;
    s = log.get_snapshot(info.name, &snap);
    if (!s.is_ok()) {
      if (s.code() == store::status_code::io_error) {
        out.damage = false;
        return fail("read_error", info.name, s.to_string());
      }
      return fail("snapshot_undecodable", info.name, "unreadable: " + s.to_string());
    }
    if (snap.covered != info.covered || snap.bytes.size() != info.size) {
      return fail("snapshot_mismatch", info.name,
                  "its index entry says sequence " + std::to_string(info.covered) + ", " +
                      std::to_string(info.size) + " bytes; it holds sequence " +
                      std::to_string(snap.covered) + ", " + std::to_string(snap.bytes.size()) +
                      " bytes");
    }
    if (std::string_view(info.name).starts_with(queue_view_snapshot_prefix)) {
      std::string why;
      const std::optional<queue_view> view = queue_view::decode(snap.bytes, &why);
      if (!view) return fail("snapshot_undecodable", info.name, why);
      if (snap.covered > head) {
        return fail("snapshot_mismatch", info.name,
                    "it covers record " + std::to_string(snap.covered) +
                        ", past the log's end at " + std::to_string(head) +
                        ": records after that were lost");
      }
      const std::optional<millis> time =
          snap.covered == 0 ? std::optional<millis>(view->head_time())
                            : record_time(log, snap.covered);
      if (view->head() != snap.covered || !time || *time != view->head_time()) {
        return fail("snapshot_mismatch", info.name,
                    "its view's head (record " + std::to_string(view->head()) +
                        ") is not record " + std::to_string(snap.covered) +
                        " of this log, or not at that record's time");
      }
    }
    ++out.checked;
  }
  out.seconds = seconds_since(start);
  out.detail = {{"checked", out.checked}, {"seconds", out.seconds}};
  out.summary = out.checked == 0 ? "snapshots: none stored"
                : "snapshots: " + std::to_string(out.checked) +
                      (out.checked == 1 ? " decodes and fits" : " decode and fit") + " the log";
  return out;
}

}  // namespace jobsmith::apps::audit
