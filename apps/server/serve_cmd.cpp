// `jobsmith serve`: scaffolding; the server lands in this folder.
#include "apps/verbs.hpp"

namespace jobsmith::apps {

void add_serve_command(CLI::App&, int&) {}

}  // namespace jobsmith::apps
