// Where POST /v1/admin/backup may write: only into a new directory inside
// the folder the operator named with `serve --backup-dir DIR`, never inside
// the data directory. The server writes the checkpoint with its own rights
// (often root or the service user), so without this rule an admin token
// could create directories anywhere the process may write. docs/api.md,
// "Backup"; docs/operations.md, "Backup".
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <variant>

namespace jobsmith::server {

/// Why a backup target is refused, as the HTTP answer gives it.
struct backup_target_error {
  int status = 400;  // 400 the caller's mistake, 403 backups off, 409 the backup dir vanished
  std::string code;  // "bad_request", "forbidden", "conflict"
  std::string message;
};

/// The directory to write a backup into for the request's `to`, resolved:
/// the real path of its parent (symlinks followed) joined with its last
/// name. `to` must be an absolute path without `..` components and NUL
/// bytes whose parent exists and lies (after symlinks) inside `backup_dir`;
/// the target itself must not exist and must not be inside `data_dir`.
/// An empty `backup_dir` means backups over HTTP are off: 403, with a
/// message saying how to allow them. Reads the file system (canonical paths,
/// existence) but changes nothing; the checkpoint that follows creates the
/// directory, and fails cleanly if someone else did so in between.
std::variant<std::filesystem::path, backup_target_error> resolve_backup_target(
    const std::filesystem::path& backup_dir, const std::filesystem::path& data_dir,
    std::string_view to);

/// Why `backup_dir` cannot be serve's --backup-dir, or "" when it can: it
/// must be an existing directory that is neither the data directory nor
/// inside it (after symlinks; `data_dir` need not exist yet).
std::string check_backup_dir(const std::filesystem::path& backup_dir,
                             const std::filesystem::path& data_dir);

}  // namespace jobsmith::server
