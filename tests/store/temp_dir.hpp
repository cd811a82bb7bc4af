// The store tests' temporary directory is the shared one.
#pragma once

#include "tests/test_support.hpp"

namespace jobsmith::store::test {
using jobsmith::test::temp_dir;
}  // namespace jobsmith::store::test
