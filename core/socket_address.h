// SocketAddress: an IP literal and port from config ("127.0.0.1:8080", "[::1]:80").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

struct sockaddr_storage;

namespace sluice {

struct SocketAddress {
  std::string host;  // IP literal without brackets
  uint16_t port = 0;
  bool ipv6 = false;

  std::string toString() const;  // "[::1]:80" / "127.0.0.1:80"
  // Fills a sockaddr for libuv; false if the host is not an IP literal.
  bool toSockaddr(sockaddr_storage& out) const;
  bool operator==(const SocketAddress&) const = default;
};

// Accepts "IPv4:port" and "[IPv6]:port"; port 0 only when allow_port_zero.
StatusOr<SocketAddress> parseSocketAddress(std::string_view text, bool allow_port_zero);

// Looks `host` up (getaddrinfo: it blocks, up to the resolver's timeouts):
// its IPv4 addresses in the resolver's order (loopback backends usually
// listen there), else its IPv6 ones, each once; empty if it does not resolve.
std::vector<SocketAddress> resolveHost(const std::string& host, uint16_t port);

}  // namespace sluice
