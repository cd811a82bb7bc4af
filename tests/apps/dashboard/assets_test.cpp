// find_asset() (apps/dashboard/dashboard.hpp): the embedded bytes are the
// files in apps/dashboard/static/, each with its content type, and nothing
// outside / and /ui/<file> is served.
#define BOOST_TEST_MODULE dashboard_assets_test
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <sstream>
#include <string>

#include "apps/dashboard/dashboard.hpp"

using jobsmith::dashboard::find_asset;

namespace {

std::string read_static(const std::string& name) {
  std::ifstream in(std::string(JOBSMITH_DASHBOARD_STATIC) + "/" + name, std::ios::binary);
  BOOST_TEST_REQUIRE(in.good(), "cannot read static/" << name);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

BOOST_AUTO_TEST_CASE(root_is_the_page) {
  auto a = find_asset("/");
  BOOST_TEST_REQUIRE(a.has_value());
  BOOST_TEST(a->content_type == "text/html; charset=utf-8");
  BOOST_TEST((a->body == read_static("index.html")), "the embedded page differs from static/index.html");
  BOOST_TEST(a->body.starts_with("<!doctype html>"));
}

BOOST_AUTO_TEST_CASE(files_are_byte_for_byte_with_their_types) {
  struct {
    const char* name;
    const char* type;
  } const files[] = {
      {"index.html", "text/html; charset=utf-8"},
      {"app.js", "text/javascript; charset=utf-8"},
      {"api.js", "text/javascript; charset=utf-8"},
      {"format.js", "text/javascript; charset=utf-8"},
      {"style.css", "text/css; charset=utf-8"},
  };
  for (const auto& f : files) {
    BOOST_TEST_CONTEXT(f.name) {
      auto a = find_asset(std::string("/ui/") + f.name);
      BOOST_TEST_REQUIRE(a.has_value());
      BOOST_TEST(a->content_type == f.type);
      const std::string want = read_static(f.name);
      BOOST_TEST(a->body.size() == want.size());
      // Not printed whole on failure: a stale embedding would dump the file.
      BOOST_TEST((a->body == want), "the embedded bytes differ from static/" << f.name);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_page_loads_only_what_is_embedded) {
  // Every /ui/ reference in the page names an embedded file.
  const std::string page(find_asset("/")->body);
  for (const char* ref : {"/ui/app.js", "/ui/style.css"}) {
    BOOST_TEST(page.find(ref) != std::string::npos, ref);
    BOOST_TEST(find_asset(ref).has_value(), ref);
  }
  // Every module app.js imports ("from './x.js'", resolved under /ui/).
  const std::string app(find_asset("/ui/app.js")->body);
  int imports = 0;
  for (auto at = app.find("from './"); at != std::string::npos; at = app.find("from './", at + 1)) {
    const auto start = at + 8;
    const auto end = app.find('\'', start);
    BOOST_TEST_REQUIRE(end != std::string::npos);
    const std::string ref = "/ui/" + app.substr(start, end - start);
    BOOST_TEST(find_asset(ref).has_value(), "app.js imports " << ref);
    ++imports;
  }
  BOOST_TEST(imports >= 1);
}

BOOST_AUTO_TEST_CASE(other_paths_are_not_assets) {
  for (const char* p : {"", "/index.html", "/ui", "/ui/", "/ui/missing.js", "/ui/../app.js",
                        "/ui/./app.js", "/ui//app.js", "/ui/app.js/", "/ui/.app.js", "/UI/app.js",
                        "/v1/jobs", "/ui/app.js?x=1", "app.js"}) {
    BOOST_TEST(!find_asset(p).has_value(), "served " << p);
  }
}
