// Where POST /v1/admin/backup may write (apps/server/backup_target.hpp):
// only new directories inside serve's --backup-dir, never inside the data
// directory, with symlinks followed; each refusal with its status.
#define BOOST_TEST_MODULE backup_target
#include <boost/test/unit_test.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <variant>

#include "apps/server/backup_target.hpp"

namespace fs = std::filesystem;
using jobsmith::server::backup_target_error;
using jobsmith::server::check_backup_dir;
using jobsmith::server::resolve_backup_target;

namespace {

// A fresh directory with a backup folder, a data directory and a folder
// elsewhere; removed with everything in it at the end.
struct dirs {
  fs::path root, backups, data, elsewhere;
  dirs() {
    std::string pattern = "/tmp/jobsmith-backup-target-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root = fs::canonical(pattern);
    backups = root / "backups";
    data = root / "data";
    elsewhere = root / "elsewhere";
    fs::create_directories(backups);
    fs::create_directories(data);
    fs::create_directories(elsewhere);
  }
  ~dirs() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  dirs(const dirs&) = delete;
  dirs& operator=(const dirs&) = delete;

  std::variant<fs::path, backup_target_error> resolve(const std::string& to) const {
    return resolve_backup_target(backups, data, to);
  }
};

fs::path accepted(const std::variant<fs::path, backup_target_error>& r) {
  if (auto* e = std::get_if<backup_target_error>(&r))
    BOOST_FAIL("refused with " << e->status << " " << e->code << ": " << e->message);
  return std::get<fs::path>(r);
}

// The refusal's status; its message must contain `words`.
int refused(const std::variant<fs::path, backup_target_error>& r, const std::string& words) {
  auto* e = std::get_if<backup_target_error>(&r);
  if (e == nullptr) BOOST_FAIL("accepted: " << std::get<fs::path>(r));
  BOOST_TEST(e->message.find(words) != std::string::npos, e->message);
  return e->status;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_new_directory_inside_the_backup_folder_is_accepted) {
  dirs d;
  BOOST_TEST(accepted(d.resolve((d.backups / "2026-11-22").string())) == d.backups / "2026-11-22");
  // Deeper, with "." and doubled or trailing separators.
  fs::create_directories(d.backups / "daily");
  BOOST_TEST(accepted(d.resolve(d.backups.string() + "/./daily//mon/")) ==
             d.backups / "daily" / "mon");
}

BOOST_AUTO_TEST_CASE(without_a_backup_folder_http_backups_are_refused) {
  dirs d;
  const auto r = resolve_backup_target({}, d.data, (d.backups / "x").string());
  BOOST_TEST(refused(r, "start serve with --backup-dir DIR") == 403);
  BOOST_TEST(std::get<backup_target_error>(r).code == "forbidden");
}

BOOST_AUTO_TEST_CASE(dot_dot_is_refused_even_when_it_stays_inside) {
  dirs d;
  BOOST_TEST(refused(d.resolve(d.backups.string() + "/../elsewhere/x"), "'..'") == 400);
  BOOST_TEST(refused(d.resolve(d.backups.string() + "/../../../etc/x"), "'..'") == 400);
  fs::create_directories(d.backups / "a");
  BOOST_TEST(refused(d.resolve(d.backups.string() + "/a/../b"), "'..'") == 400);
}

BOOST_AUTO_TEST_CASE(absolute_paths_elsewhere_are_refused) {
  dirs d;
  const auto r = d.resolve((d.elsewhere / "x").string());
  BOOST_TEST(refused(r, "is not inside the backup directory") == 400);
  BOOST_TEST(std::get<backup_target_error>(r).code == "bad_request");
  BOOST_TEST(refused(d.resolve("/etc/jobsmith-backup-test"), "not inside the backup") == 400);
  BOOST_TEST(refused(d.resolve("/proc/self/x"), "not inside the backup") == 400);
  // A sibling whose name starts with the backup folder's is not inside it.
  fs::create_directories(d.root / "backups-old");
  BOOST_TEST(refused(d.resolve((d.root / "backups-old" / "x").string()), "not inside") == 400);
  BOOST_TEST(!fs::exists(d.elsewhere / "x"));
}

BOOST_AUTO_TEST_CASE(relative_empty_and_the_folder_itself_are_refused) {
  dirs d;
  BOOST_TEST(refused(d.resolve("relative/dir"), "an absolute path") == 400);
  BOOST_TEST(refused(d.resolve(""), "an absolute path") == 400);
  BOOST_TEST(refused(d.resolve("/"), "must name a new directory") == 400);
  BOOST_TEST(refused(d.resolve(d.backups.string()), "not the folder itself") == 400);
  BOOST_TEST(refused(d.resolve(d.backups.string() + "/."), "not the folder itself") == 400);
  BOOST_TEST(refused(d.resolve(d.backups.string() + "/"), "not the folder itself") == 400);
}

BOOST_AUTO_TEST_CASE(the_data_directory_is_refused_even_inside_the_backup_folder) {
  // A backup folder that holds the data directory is allowed; writing into
  // the data directory is not.
  dirs d;
  const fs::path data = d.backups / "data";
  fs::create_directories(data);
  BOOST_TEST(refused(resolve_backup_target(d.backups, data, (data / "x").string()),
                     "inside the data directory") == 400);
  BOOST_TEST(refused(resolve_backup_target(d.backups, data, data.string()),
                     "inside the data directory") == 400);
  // Through a symlink to it, too.
  fs::create_directory_symlink(data, d.backups / "data-link");
  BOOST_TEST(refused(resolve_backup_target(d.backups, data, (d.backups / "data-link/x").string()),
                     "inside the data directory") == 400);
  // A data directory given relative to the working directory is the same one.
  const fs::path cwd = fs::current_path();
  fs::current_path(d.backups);
  const auto r = resolve_backup_target(d.backups, "./data", (data / "y").string());
  fs::current_path(cwd);
  BOOST_TEST(refused(r, "inside the data directory") == 400);
  BOOST_TEST(accepted(resolve_backup_target(d.backups, data, (d.backups / "z").string())) ==
             d.backups / "z");
}

BOOST_AUTO_TEST_CASE(a_symlink_out_of_the_backup_folder_is_followed_and_refused) {
  dirs d;
  fs::create_directory_symlink(d.elsewhere, d.backups / "escape");
  BOOST_TEST(refused(d.resolve((d.backups / "escape" / "x").string()),
                     "(that is, " + (d.elsewhere / "x").string() + ") is not inside") == 400);
  // A symlink that is the target itself, even dangling, already exists.
  fs::create_directory_symlink(d.elsewhere / "missing", d.backups / "dangling");
  BOOST_TEST(refused(d.resolve((d.backups / "dangling").string()), "already exists") == 400);
}

BOOST_AUTO_TEST_CASE(a_backup_folder_reached_through_a_symlink_works) {
  dirs d;
  fs::create_directory_symlink(d.backups, d.root / "backups-link");
  BOOST_TEST(accepted(resolve_backup_target(d.root / "backups-link", d.data,
                                            (d.root / "backups-link" / "x").string())) ==
             d.backups / "x");
  BOOST_TEST(accepted(resolve_backup_target(d.root / "backups-link", d.data,
                                            (d.backups / "y").string())) == d.backups / "y");
}

BOOST_AUTO_TEST_CASE(a_nul_byte_is_refused) {
  dirs d;
  std::string to = (d.backups / "x").string();
  to += '\0';
  to += "/etc/passwd";
  BOOST_TEST(refused(d.resolve(to), "NUL") == 400);
}

BOOST_AUTO_TEST_CASE(a_missing_parent_or_a_file_as_parent_is_the_callers_mistake) {
  dirs d;
  BOOST_TEST(refused(d.resolve((d.backups / "no" / "such" / "x").string()), "does not exist") ==
             400);
  { std::ofstream{d.backups / "file"} << "x"; }
  BOOST_TEST(refused(d.resolve((d.backups / "file" / "x").string()), "") == 400);
}

BOOST_AUTO_TEST_CASE(an_existing_target_is_refused) {
  dirs d;
  fs::create_directories(d.backups / "taken");
  BOOST_TEST(refused(d.resolve((d.backups / "taken").string()), "already exists") == 400);
  { std::ofstream{d.backups / "file"} << "x"; }
  BOOST_TEST(refused(d.resolve((d.backups / "file").string()), "already exists") == 400);
}

BOOST_AUTO_TEST_CASE(a_backup_folder_that_vanished_is_a_conflict) {
  dirs d;
  const fs::path gone = d.root / "gone";
  fs::create_directories(gone);
  fs::remove(gone);
  BOOST_TEST(refused(resolve_backup_target(gone, d.data, (gone / "x").string()),
                     "no longer exists") == 409);
}

BOOST_AUTO_TEST_CASE(serve_checks_its_backup_folder_at_start) {
  dirs d;
  BOOST_TEST(check_backup_dir(d.backups, d.data) == "");
  BOOST_TEST(check_backup_dir(d.root, d.data) == "");  // holds the data directory: fine
  BOOST_TEST(check_backup_dir(d.backups, d.root / "not-yet" / "data") == "");
  BOOST_TEST(check_backup_dir(d.root / "missing", d.data).find("no such directory") !=
             std::string::npos);
  { std::ofstream{d.root / "file"} << "x"; }
  BOOST_TEST(check_backup_dir(d.root / "file", d.data).find("not a directory") !=
             std::string::npos);
  fs::create_directories(d.data / "inner");
  BOOST_TEST(check_backup_dir(d.data / "inner", d.data).find("or inside it") !=
             std::string::npos);
  BOOST_TEST(check_backup_dir(d.data, d.data).find("or inside it") !=
             std::string::npos);
  fs::create_directory_symlink(d.data / "inner", d.root / "inner-link");
  BOOST_TEST(check_backup_dir(d.root / "inner-link", d.data).find("or inside it") !=
             std::string::npos);
}
