// The kernel's view of a TCP connection (TCP_INFO), apart from the rest of
// the socket code: <linux/tcp.h>, which has the counters, clashes with
// <netinet/tcp.h>.
#pragma once

#include <cstdint>

namespace sluice {

// Bytes the peer has acknowledged on socket `fd` so far; 0 when the kernel
// does not say.
uint64_t tcpBytesAcked(int fd);

}  // namespace sluice
