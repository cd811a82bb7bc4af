// Where the engine reads time. Wall time (events, due times) comes from a
// function so tests and clock-fault runs can move it; monotonic time
// (leases, phase limits) is the actor system's clock, which CAF's test
// coordinator advances deterministically.
#pragma once

#include <chrono>
#include <functional>

#include "../events/event.hpp"

namespace jobsmith {

using wall_clock = std::function<millis()>;

inline millis system_wall_now() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace jobsmith
