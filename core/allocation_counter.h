// Process-wide count of heap allocations, for proving the data path allocates
// nothing per message. The `sluice` binary counts (examples/allocation_counting.cc
// replaces operator new); a library user who does not opt in reads "not counted".
#pragma once

#include <cstdint>
#include <optional>

namespace sluice::allocation_counter {

using CountFn = uint64_t (*)();
// Installed once at start-up by a binary that counts its allocations.
void install(CountFn fn);
// Allocations so far, or nullopt when this process does not count them.
std::optional<uint64_t> current();

}  // namespace sluice::allocation_counter
