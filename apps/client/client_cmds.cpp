// The client verbs: scaffolding; they land in this folder.
#include "apps/verbs.hpp"

namespace jobsmith::apps {

void add_client_commands(CLI::App&, int&) {}

}  // namespace jobsmith::apps
