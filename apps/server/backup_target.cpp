#include "apps/server/backup_target.hpp"

#include <algorithm>
#include <system_error>

namespace jobsmith::server {

namespace fs = std::filesystem;

namespace {

backup_target_error caller_error(std::string message) {
  return {400, "bad_request", std::move(message)};
}

// True when `inner` is `outer` or lies below it. Both absolute and
// canonical (no "." or "..", no symlinks, no trailing separator), so a
// comparison of components is exact: "/a/bc" is not inside "/a/b".
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto o = outer.begin(), i = inner.begin();
  for (; o != outer.end(); ++o, ++i)
    if (i == inner.end() || *i != *o) return false;
  return true;
}

bool has_dot_dot(const fs::path& p) {
  return std::any_of(p.begin(), p.end(), [](const fs::path& part) { return part == ".."; });
}

// The real absolute path of `p` with symlinks resolved as far as it exists
// (the data directory may not exist yet); empty on error.
fs::path real_path(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) return {};
  fs::path real = fs::weakly_canonical(abs, ec);
  if (ec) return {};
  // weakly_canonical keeps a trailing separator of a missing path.
  if (!real.has_filename() && real.has_parent_path() && real != real.root_path())
    real = real.parent_path();
  return real;
}

}  // namespace

std::variant<fs::path, backup_target_error> resolve_backup_target(const fs::path& backup_dir,
                                                                  const fs::path& data_dir,
                                                                  std::string_view to) {
  if (backup_dir.empty())
    return backup_target_error{403, "forbidden",
                               "backups over HTTP are off on this server: start serve with "
                               "--backup-dir DIR to allow them into new directories inside DIR"};
  const std::string inside = "inside the backup directory " + backup_dir.string();
  if (to.find('\0') != std::string_view::npos) return caller_error("to: must not contain a NUL byte");
  const fs::path given{std::string{to}};
  if (to.empty() || !given.is_absolute())
    return caller_error("to: required, an absolute path of a new directory " + inside);
  // Refused outright rather than normalized away: the kernel resolves
  // "link/.." through the link, lexically_normal() does not.
  if (has_dot_dot(given)) return caller_error("to: must not contain '..' components");
  fs::path normal = given.lexically_normal();
  if (!normal.has_filename()) normal = normal.parent_path();  // "/b/x/" names "/b/x"
  const fs::path name = normal.filename();
  if (name.empty() || name == "." || normal == normal.root_path())
    return caller_error("to: must name a new directory " + inside);

  const fs::path backups = real_path(backup_dir);
  std::error_code ec;
  if (backups.empty() || !fs::is_directory(backups, ec))
    return backup_target_error{409, "conflict",
                               "the backup directory " + backup_dir.string() +
                                   " (serve --backup-dir) no longer exists"};

  // The parent must exist already: its real path says where the new
  // directory would land, whatever symlinks lead there.
  const fs::path parent = fs::canonical(normal.parent_path(), ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory)
      return caller_error("to: the parent directory " + normal.parent_path().string() +
                         " does not exist");
    return caller_error("to: cannot resolve " + normal.parent_path().string() + ": " +
                       ec.message());
  }
  if (!fs::is_directory(parent, ec))
    return caller_error("to: " + normal.parent_path().string() + " is not a directory");
  const fs::path target = parent / name;
  const std::string shown =
      target == normal ? target.string() : normal.string() + " (that is, " + target.string() + ")";
  if (target == backups)
    return caller_error("to: must name a new directory " + inside + ", not the folder itself");
  if (!is_within(parent, backups)) return caller_error("to: " + shown + " is not " + inside);

  const fs::path data = real_path(data_dir);
  if (!data.empty() && is_within(target, data))
    return caller_error("to: " + shown + " is inside the data directory " + data_dir.string() +
                       "; a backup goes elsewhere");
  // symlink_status: a dangling symlink is there too.
  if (fs::exists(fs::symlink_status(target, ec)))
    return caller_error("to: " + shown + " already exists; a backup goes into a new directory");
  return target;
}

std::string check_backup_dir(const fs::path& backup_dir, const fs::path& data_dir) {
  const std::string flag = "--backup-dir " + backup_dir.string();
  std::error_code ec;
  if (backup_dir.empty()) return "--backup-dir: an empty path";
  if (!fs::exists(backup_dir, ec)) return flag + ": no such directory (create it first)";
  if (!fs::is_directory(backup_dir, ec)) return flag + ": not a directory";
  const fs::path backups = real_path(backup_dir);
  const fs::path data = real_path(data_dir);
  if (backups.empty() || data.empty()) return flag + ": cannot resolve the path";
  if (is_within(backups, data))
    return flag + ": is the data directory " + data_dir.string() + " or inside it (resolved: " +
           backups.string() + " in " + data.string() + "); choose a folder outside it";
  return "";
}

}  // namespace jobsmith::server
