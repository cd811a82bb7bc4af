// /v1/admin/backup: a RocksDB checkpoint written by the engine that holds
// the log.
#include <filesystem>
#include <string>
#include <variant>

#include "apps/server/api_internal.hpp"
#include "apps/server/backup_target.hpp"

namespace jobsmith::server {

std::optional<stream_request> write_backup(request_context& rt) {
  rt.only_query({});
  auto body = rt.body_json(false);
  object_reader in{body, ""};
  auto to = in.str("to", 4096);
  in.no_other_fields();
  // Only inside serve --backup-dir, never inside the data directory.
  const auto& config = rt.config();
  auto target = resolve_backup_target(config.backup_dir, config.engine.data_dir,
                                      to ? std::string_view{*to} : std::string_view{});
  if (auto* refused = std::get_if<backup_target_error>(&target))
    throw api_error{refused->status, refused->code, refused->message};
  // Blocks for a memtable flush, hard links and a WAL copy: on the pool.
  rt.on_pool([dir = std::get<std::filesystem::path>(target).string()](request_context& r) {
    auto out = r.eng().checkpoint(dir);
    if (!out) return r.fail(from_engine(out.error()));
    r.answer(200, {{"backup", {{"dir", *out}}}});
  });
  return std::nullopt;
}

}  // namespace jobsmith::server
