// find_asset() over the files embed.cmake compiled in from static/.
#include "apps/dashboard/dashboard.hpp"

#include "apps/dashboard/assets.hpp"

namespace jobsmith::dashboard {

namespace {

constexpr std::string_view ui_prefix = "/ui/";

std::string_view content_type_of(std::string_view name) {
  auto ends_with = [&](std::string_view ext) { return name.ends_with(ext); };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js") || ends_with(".mjs")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".svg")) return "image/svg+xml";
  if (ends_with(".png")) return "image/png";
  if (ends_with(".ico")) return "image/x-icon";
  if (ends_with(".json")) return "application/json";
  if (ends_with(".txt")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

std::optional<asset> find_file(std::string_view name) {
  for (std::size_t i = 0; i < detail::file_count; ++i)
    if (detail::files[i].name == name)
      return asset{detail::files[i].body, content_type_of(name)};
  return std::nullopt;
}

}  // namespace

std::optional<asset> find_asset(std::string_view path) {
  if (path == "/") return find_file("index.html");
  if (!path.starts_with(ui_prefix)) return std::nullopt;
  const std::string_view name = path.substr(ui_prefix.size());
  // Only plain names: the table has no folders, and "..", "" or "a/b" are
  // never served.
  if (name.empty() || name.find('/') != std::string_view::npos || name.starts_with('.'))
    return std::nullopt;
  return find_file(name);
}

}  // namespace jobsmith::dashboard
