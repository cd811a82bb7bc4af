// `jobsmith audit verify`: the hash chain over a range (also run by backup
// on its copy), then the parts in apps/audit/verify_checks.hpp, each with
// its own verdict; the first problem found is the run's.
#include <cinttypes>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "actors/recovery.hpp"
#include "apps/audit/audit_support.hpp"
#include "apps/audit/audit_tools.hpp"
#include "apps/audit/verify_checks.hpp"
#include "store/rocksdb_log.hpp"

namespace jobsmith::apps::audit {

using nlohmann::json;

namespace {

std::string classify(const store::status& s) {
  const std::string& m = s.message();
  if (s.code() != store::status_code::corruption) return "read_error";
  // The open refused a write-ahead log damaged before its last write.
  if (m.find("write-ahead log is damaged") != std::string::npos) return "wal_damaged";
  // RocksDB's own checksum of a table block ("block checksum mismatch").
  if (m.find("read failed") != std::string::npos) return "read_error";
  if (m.find("missing") != std::string::npos) return "missing";
  if (m.find("mismatch") != std::string::npos) return "hash_mismatch";
  if (m.find("does not decode") != std::string::npos) return "body_undecodable";
  return "undecodable";
}

}  // namespace

verify_outcome verify_range(const store::event_log& log, sequence_t from, sequence_t last,
                            bool progress) {
  verify_outcome out;
  const auto start = clock_type::now();
  out.last_good = from - 1;
  auto fail = [&](const store::status& s, sequence_t seq) {
    out.first_bad = seq != 0 ? seq : sequence_named_in(s.message());
    out.problem = classify(s);
    out.message = s.message();
    out.damage = s.code() == store::status_code::corruption;
  };

  // Anchor: the stored hash of the record before the range (checked itself
  // only by a run that covers it).
  if (from > 1) {
    bool found = false;
    store::status s = log.read(from - 1, from - 1, [&](const store::record& r) {
      out.last_hash = r.hash;
      found = true;
      return true;
    });
    if (!s.is_ok() || !found) {
      fail(s.is_ok() ? store::status::corruption("record " + std::to_string(from - 1) + ": missing")
                     : s,
           0);
      out.seconds = seconds_since(start);
      return out;
    }
  }
  if (from > last) return out;

  progress_meter meter("verify", last - from + 1, progress);
  event ev;
  std::string error;
  store::chain_hash prev = out.last_hash;
  store::status found_bad;
  store::status s = log.read(from, last, [&](const store::record& r) {
    if (store::chain(prev, r.seq, r.job, r.body) != r.hash) {
      found_bad = store::status::corruption("record " + std::to_string(r.seq) +
                                            ": chain hash mismatch (tampered or corrupt)");
      return false;
    }
    if (!decode_record(r, ev, &error)) {
      found_bad = store::status::corruption(error);
      return false;
    }
    prev = r.hash;
    out.last_good = r.seq;
    ++out.checked;
    meter.update(out.checked);
    return true;
  });
  meter.finish();
  out.last_hash = prev;
  if (!found_bad.is_ok()) {
    fail(found_bad, out.last_good + 1);
  } else if (!s.is_ok()) {
    // A gap or an undecodable value, found by the store's scan right after
    // the last record that checked out.
    fail(s, s.code() == store::status_code::corruption ? out.last_good + 1 : 0);
  }
  out.seconds = seconds_since(start);
  return out;
}

namespace {

/// The run's exit code: damage beats a failed read, which beats none.
int exit_code(const verify_outcome& chain, const std::vector<part_outcome>& parts) {
  bool damaged = !chain.problem.empty() && chain.damage;
  bool unreadable = !chain.problem.empty() && !chain.damage;
  for (const part_outcome& p : parts) {
    damaged = damaged || (!p.problem.empty() && p.damage);
    unreadable = unreadable || (!p.problem.empty() && !p.damage);
  }
  return damaged ? exit_damaged : unreadable ? exit_usage : exit_ok;
}

void print_json(const verify_options& o, sequence_t from, sequence_t last, sequence_t head,
                const verify_outcome& v, const std::vector<part_outcome>& parts, bool ok) {
  json j = {{"ok", ok},
            {"data", o.data_dir},
            {"from", from},
            {"to", last},
            {"head", head},
            {"checked", v.checked},
            {"seconds", v.seconds},
            {"events_per_second", rate(v.checked, v.seconds)}};
  json problems = json::array();
  if (v.problem.empty()) {
    j["last_hash"] = store::to_hex(v.last_hash);
  } else {
    j["last_good"] = v.last_good;
    problems.push_back({{"part", "chain"},
                        {"problem", v.problem},
                        {"message", v.message},
                        {"first_bad", v.first_bad}});
  }
  for (const part_outcome& p : parts) {
    json part = p.detail;
    part["ok"] = p.problem.empty();
    if (!p.problem.empty()) {
      part["problem"] = p.problem;
      part["message"] = p.message;
      part["first_bad"] = p.first_bad;
      problems.push_back({{"part", p.part},
                          {"problem", p.problem},
                          {"message", p.message},
                          {"first_bad", p.first_bad}});
    }
    j[p.part] = part;
  }
  if (!problems.empty()) {
    // The first problem is the run's, as before there were parts.
    j["problem"] = problems[0]["problem"];
    j["message"] = problems[0]["message"];
    j["first_bad"] = problems[0]["first_bad"];
    j["problems"] = problems;
  }
  std::printf("%s\n", j.dump().c_str());
}

const char* part_label(std::string_view part) {
  if (part == "wal") return "write-ahead log";
  if (part == "index") return "by_job index";
  return "snapshots";
}

void print_text(sequence_t from, sequence_t last, sequence_t head, const verify_outcome& v,
                const std::vector<part_outcome>& parts) {
  if (last < from && v.problem.empty()) {
    std::printf("ok: nothing to check (head %" PRIu64 ", range %" PRIu64 "..%" PRIu64 ")\n", head,
                from, last);
  } else if (v.problem.empty()) {
    std::printf("ok: records %" PRIu64 "..%" PRIu64 " (head %" PRIu64
                ") check out: chain hashes match, none missing, every body decodes\n",
                from, last, head);
  } else {
    std::printf("FAILED: %s\n", v.message.c_str());  // the message names the record
    std::printf("problem: %s; %s records before it check out (%" PRIu64 "..%" PRIu64 ")\n",
                v.problem.c_str(), grouped(v.checked).c_str(), from, v.last_good);
  }
  for (const part_outcome& p : parts) {
    if (p.problem.empty()) {
      std::printf("ok: %s\n", p.summary.c_str());
    } else {
      std::printf("FAILED: %s\n", p.message.c_str());
      std::printf("problem: %s (%s)\n", p.problem.c_str(), part_label(p.part));
    }
  }
  if (last >= from)
    std::printf("checked %s events in %.3f s (%s events/s)\n", grouped(v.checked).c_str(),
                v.seconds, grouped(static_cast<std::uint64_t>(rate(v.checked, v.seconds))).c_str());
  if (v.problem.empty() && last >= from)
    std::printf("chain hash at %" PRIu64 ": %s\n", last, store::to_hex(v.last_hash).c_str());
}

}  // namespace

int run_verify(const verify_options& o) {
  std::unique_ptr<store::event_log> log;
  store::wal_drop dropped;
  store::status s = open_read_only(o.data_dir, &log, &dropped);
  const sequence_t from = std::max<sequence_t>(o.from, 1);
  if (!s.is_ok()) {
    // The open itself met damage (the head record, record 1 missing, a
    // write-ahead log damaged before its last write).
    if (o.json) {
      json j = {{"ok", false}, {"data", o.data_dir}, {"message", s.to_string()}};
      if (s.code() == store::status_code::corruption) {
        j["problem"] = classify(s);
        j["first_bad"] = sequence_named_in(s.message());
      } else {
        j["problem"] = "cannot_open";
      }
      std::printf("%s\n", j.dump().c_str());
    } else {
      print_error("audit verify", s.to_string());
    }
    return exit_for(s);
  }
  const sequence_t head = log->head();
  if (from > head && head > 0) {
    print_error("audit verify", "--from " + std::to_string(from) + " is past the head (" +
                                    std::to_string(head) + ")");
    return exit_usage;
  }
  sequence_t last = 0;
  s = resolve_upper(*log, from, o.to, std::nullopt, &last);
  if (!s.is_ok()) {
    print_error("audit verify", s.to_string());
    return exit_for(s);
  }

  const verify_outcome v = verify_range(*log, from, last, o.progress);
  // The index over the range asked for: without --to, every entry from
  // `from` on, also those that point past the head.
  const sequence_t index_to = o.to.is_time ? last : o.to.seq;
  const std::vector<part_outcome> parts = {check_wal(dropped), check_index(*log, from, index_to),
                                           check_snapshots(*log)};
  const int code = exit_code(v, parts);
  if (o.json) {
    print_json(o, from, last, head, v, parts, code == exit_ok);
  } else {
    print_text(from, last, head, v, parts);
  }
  return code;
}

}  // namespace jobsmith::apps::audit
