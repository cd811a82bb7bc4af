// `jobsmith audit export|verify|stats` and `jobsmith backup`: the command
// line. The verbs are in apps/audit/audit_tools.cpp.
//
// Numbers and bounds are taken as strings and parsed here, so that every
// usage error exits with 2 (CLI11's own conversion errors use other codes).
#include <memory>
#include <string>

#include "apps/audit/audit_tools.hpp"
#include "apps/verbs.hpp"

namespace jobsmith::apps {

namespace {

namespace au = audit;

/// The raw text of the range options shared by export and verify.
struct range_args {
  std::string data;
  std::string from;
  std::string to;
};

void add_range_options(CLI::App* cmd, range_args& r) {
  cmd->add_option("--data", r.data, "data directory (opened read-only)");
  cmd->add_option("--from", r.from, "first sequence number (default 1)");
  cmd->add_option("--to", r.to,
                  "last sequence number, or a time: the last event with time <= TIME "
                  "(ISO-8601 UTC such as 2026-11-22T14:02:00Z, or epoch ms: a number "
                  ">= 10^12 or with an \"ms\" suffix)");
}

/// Fills from/to; false (message printed) on a usage error.
bool parse_range(const char* verb, const range_args& r, sequence_t* from, au::upper_bound* to) {
  if (r.data.empty()) {
    std::fprintf(stderr, "jobsmith %s: --data DIR is required\n", verb);
    return false;
  }
  if (!r.from.empty()) {
    auto v = au::parse_positive(r.from);
    if (!v) {
      std::fprintf(stderr, "jobsmith %s: --from %s: expected a sequence number >= 1\n", verb,
                   r.from.c_str());
      return false;
    }
    *from = *v;
  }
  if (!r.to.empty()) {
    std::string error;
    auto b = au::parse_upper_bound(r.to, &error);
    if (!b) {
      std::fprintf(stderr, "jobsmith %s: --to %s\n", verb, error.c_str());
      return false;
    }
    *to = *b;
  }
  return true;
}

}  // namespace

void add_audit_commands(CLI::App& app, int& exit_code) {
  auto* audit = app.add_subcommand(
      "audit", "offline tools over a data directory: export, verify, stats (read-only)");
  audit->require_subcommand(1);

  // -- export ----------------------------------------------------------------
  struct export_args {
    range_args range;
    std::string job;
    std::string out;
    bool no_progress = false;
  };
  auto ex = std::make_shared<export_args>();
  auto* export_cmd =
      audit->add_subcommand("export", "events as JSON Lines: to_json(event) plus \"hash\"");
  add_range_options(export_cmd, ex->range);
  export_cmd->add_option("--job", ex->job, "only this job's events");
  export_cmd->add_option("--out", ex->out, "write to FILE instead of stdout");
  export_cmd->add_flag("--no-progress", ex->no_progress, "no progress bar on a terminal");
  export_cmd->callback([ex, &exit_code] {
    au::export_options o;
    if (!parse_range("audit export", ex->range, &o.from, &o.to)) {
      exit_code = au::exit_usage;
      return;
    }
    if (!ex->job.empty()) {
      auto j = au::parse_positive(ex->job);
      if (!j) {
        std::fprintf(stderr, "jobsmith audit export: --job %s: expected a job id >= 1\n",
                     ex->job.c_str());
        exit_code = au::exit_usage;
        return;
      }
      o.job = *j;
    }
    o.data_dir = ex->range.data;
    o.out_file = ex->out;
    o.progress = !ex->no_progress;
    exit_code = au::run_export(o);
  });

  // -- verify ----------------------------------------------------------------
  struct verify_args {
    range_args range;
    bool json = false;
    bool no_progress = false;
  };
  auto ve = std::make_shared<verify_args>();
  auto* verify_cmd = audit->add_subcommand(
      "verify",
      "recompute the hash chain; exit 1 naming the first bad record, 2 when it cannot open");
  add_range_options(verify_cmd, ve->range);
  verify_cmd->add_flag("--json", ve->json, "one JSON object on stdout");
  verify_cmd->add_flag("--no-progress", ve->no_progress, "no progress bar on a terminal");
  verify_cmd->callback([ve, &exit_code] {
    au::verify_options o;
    if (!parse_range("audit verify", ve->range, &o.from, &o.to)) {
      exit_code = au::exit_usage;
      return;
    }
    o.data_dir = ve->range.data;
    o.json = ve->json;
    o.progress = !ve->no_progress;
    exit_code = au::run_verify(o);
  });

  // -- stats -----------------------------------------------------------------
  auto st = std::make_shared<au::stats_options>();
  auto* stats_cmd = audit->add_subcommand(
      "stats", "events by type and by UTC day, jobs, size on disk, head, first/last time");
  stats_cmd->add_option("--data", st->data_dir, "data directory (opened read-only)");
  stats_cmd->add_flag("--json", st->json, "one JSON object on stdout");
  auto no_stats_progress = std::make_shared<bool>(false);
  stats_cmd->add_flag("--no-progress", *no_stats_progress, "no progress bar on a terminal");
  stats_cmd->callback([st, no_stats_progress, &exit_code] {
    if (st->data_dir.empty()) {
      std::fprintf(stderr, "jobsmith audit stats: --data DIR is required\n");
      exit_code = au::exit_usage;
      return;
    }
    st->progress = !*no_stats_progress;
    exit_code = au::run_stats(*st);
  });

  // -- backup ----------------------------------------------------------------
  auto bk = std::make_shared<au::backup_options>();
  auto no_verify = std::make_shared<bool>(false);
  auto* backup_cmd = app.add_subcommand(
      "backup",
      "a consistent RocksDB checkpoint of a data directory: --data DIR when no engine runs "
      "there, --url URL to ask a running server");
  backup_cmd->add_option("--data", bk->data_dir, "data directory no engine holds");
  backup_cmd->add_option("--url", bk->url, "a running `jobsmith serve`: it writes the checkpoint");
  backup_cmd->add_option("--token", bk->token, "with --url: an admin token")
      ->envname("JOBSMITH_TOKEN");
  backup_cmd->add_option("--to", bk->target, "new directory for the checkpoint");
  backup_cmd->add_flag("--no-verify", *no_verify, "do not verify the copy's chain afterwards");
  backup_cmd->add_flag("--json", bk->json, "one JSON object on stdout");
  backup_cmd->callback([bk, no_verify, &exit_code] {
    bk->verify = !*no_verify;
    exit_code = au::run_backup(*bk);
  });
}

}  // namespace jobsmith::apps
