#include "core/socket_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace sluice {

std::string SocketAddress::toString() const {
  return ipv6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

bool SocketAddress::toSockaddr(sockaddr_storage& out) const {
  std::memset(&out, 0, sizeof(out));
  if (ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&out);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    return inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) == 1;
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&out);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  return inet_pton(AF_INET, host.c_str(), &a->sin_addr) == 1;
}

StatusOr<SocketAddress> parseSocketAddress(std::string_view text, bool allow_port_zero) {
  auto bad = [&](std::string_view why) {
    return Status(StatusCode::InvalidArgument,
                  fmt::format("\"{}\" is not a valid address ({}); expected \"IP:port\"", text, why));
  };
  SocketAddress addr;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("bracketed IPv6 must be followed by :port");
    }
    addr.host = std::string(text.substr(1, close - 1));
    addr.ipv6 = true;
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing :port");
    addr.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return bad("port must be a number from 0 to 65535");
  }
  if (port == 0 && !allow_port_zero) return bad("port 0 is only allowed for listeners");
  addr.port = static_cast<uint16_t>(port);
  sockaddr_storage ss;
  if (!addr.toSockaddr(ss)) return bad("host is not an IP address");
  return addr;
}

namespace {

// The IPv4 answers in the resolver's order, else the IPv6 ones; each address
// once (getaddrinfo may repeat one, per protocol or per source of answers).
std::vector<SocketAddress> pickResolvedAddresses(const addrinfo* answers, uint16_t port) {
  std::vector<SocketAddress> v4, v6;
  for (const addrinfo* ai = answers; ai != nullptr; ai = ai->ai_next) {
    char ip[INET6_ADDRSTRLEN] = {};
    SocketAddress address;
    if (ai->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr, ip, sizeof(ip));
      address = SocketAddress{ip, port, false};
    } else if (ai->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr, ip, sizeof(ip));
      address = SocketAddress{ip, port, true};
    } else {
      continue;
    }
    auto& family = address.ipv6 ? v6 : v4;
    if (std::find(family.begin(), family.end(), address) == family.end()) family.push_back(std::move(address));
  }
  return v4.empty() ? v6 : v4;
}

}  // namespace

std::vector<SocketAddress> resolveHost(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* answers = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &answers) != 0 || answers == nullptr) return {};
  std::vector<SocketAddress> addresses = pickResolvedAddresses(answers, port);
  freeaddrinfo(answers);
  return addresses;
}

}  // namespace sluice
