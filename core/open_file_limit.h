// The process's open-file limit (RLIMIT_NOFILE), which bounds connections.
//
// Every client connection, backend connection and log file is a descriptor.
// Shells and service managers commonly start processes with a soft limit of
// 1024 under a hard limit hundreds of times larger; a gateway left at 1024
// would refuse connections (EMFILE) long before its listeners'
// max_connections. The gateway raises the soft limit to the hard one at start,
// as nginx (worker_rlimit_nofile) and Go programs do.
#pragma once

#include <cstdint>
#include <string>

namespace sluice {

struct OpenFileLimit {
  uint64_t before = 0;  // the soft limit found
  uint64_t after = 0;   // the soft limit now
  std::string error;    // why it could not be raised; empty if it was (or did not need to be)
};

// Raises the soft RLIMIT_NOFILE to the hard limit (at most `cap`).
OpenFileLimit raiseOpenFileLimit(uint64_t cap = uint64_t{1} << 20);

}  // namespace sluice
