// Every atom of the actor protocols, in one place (CAF 0.17: at most 10
// characters each).
#pragma once

#include <caf/atom.hpp>

namespace jobsmith::atom {

using append = caf::atom_constant<caf::atom("append")>;
using flush = caf::atom_constant<caf::atom("flush")>;
using subscribe = caf::atom_constant<caf::atom("subscribe")>;
using unsubscrib = caf::atom_constant<caf::atom("unsubscrib")>;
using committed = caf::atom_constant<caf::atom("committed")>;
using read_job = caf::atom_constant<caf::atom("read_job")>;
using command = caf::atom_constant<caf::atom("command")>;
using forward = caf::atom_constant<caf::atom("forward")>;
using submit = caf::atom_constant<caf::atom("submit")>;
using revived = caf::atom_constant<caf::atom("revived")>;
using tick = caf::atom_constant<caf::atom("tick")>;
using acquire = caf::atom_constant<caf::atom("acquire")>;
using release = caf::atom_constant<caf::atom("release")>;
using granted = caf::atom_constant<caf::atom("granted")>;
using waits = caf::atom_constant<caf::atom("waits")>;
using run = caf::atom_constant<caf::atom("run")>;
using lease = caf::atom_constant<caf::atom("lease")>;
using heartbeat = caf::atom_constant<caf::atom("heartbeat")>;
using queue_op = caf::atom_constant<caf::atom("queue_op")>;
using queues = caf::atom_constant<caf::atom("queues")>;
using schedule = caf::atom_constant<caf::atom("schedule")>;
using stats = caf::atom_constant<caf::atom("stats")>;
using refused = caf::atom_constant<caf::atom("refused")>;
using list = caf::atom_constant<caf::atom("list")>;
using stop = caf::atom_constant<caf::atom("stop")>;
using snapshot = caf::atom_constant<caf::atom("snapshot")>;
using totals = caf::atom_constant<caf::atom("totals")>;
using unique = caf::atom_constant<caf::atom("unique")>;
using leases = caf::atom_constant<caf::atom("leases")>;
using hook_done = caf::atom_constant<caf::atom("hook_done")>;
using kind = caf::atom_constant<caf::atom("kind")>;
using retired = caf::atom_constant<caf::atom("retired")>;
using retention = caf::atom_constant<caf::atom("retention")>;
using rows = caf::atom_constant<caf::atom("rows")>;

}  // namespace jobsmith::atom
