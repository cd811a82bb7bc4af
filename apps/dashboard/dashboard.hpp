// The dashboard's files, compiled into the binary so `jobsmith serve` needs
// nothing beside it. The server answers GET / and GET /ui/... from here.
#pragma once

#include <optional>
#include <string_view>

namespace jobsmith::dashboard {

struct asset {
  std::string_view body;
  std::string_view content_type;  // "text/html; charset=utf-8", ...
};

/// The asset for a request path: "/" is the page, "/ui/<file>" its scripts
/// and styles. Nothing for any other path.
std::optional<asset> find_asset(std::string_view path);

}  // namespace jobsmith::dashboard
