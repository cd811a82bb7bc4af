// The table of embedded files that embed.cmake generates at build time
// (dashboard_assets.cpp in the build tree); dashboard.cpp searches it.
#pragma once

#include <cstddef>
#include <string_view>

namespace jobsmith::dashboard::detail {

struct embedded_file {
  std::string_view name;  // "app.js": the file name under static/
  std::string_view body;
};

extern const embedded_file files[];
extern const std::size_t file_count;

}  // namespace jobsmith::dashboard::detail
