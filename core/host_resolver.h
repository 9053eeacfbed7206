// HostResolver: looks up one host name at a time without blocking the loop.
//
// getaddrinfo() can block for seconds (a resolver that does not answer waits
// out its timeouts and retries), so the lookup runs on libuv's thread pool
// (uv_getaddrinfo) and the answer comes back on the Dispatcher's loop.
//
// Owned by whoever asks. Destroying it with a lookup in flight is safe: the
// lookup is cancelled if it has not started, and its answer is dropped either
// way (the libuv request lives apart and is freed when libuv is done with it).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/socket_address.h"

namespace sluice {

class Dispatcher;

class HostResolver {
 public:
  // `on_resolved` gets the address (see pickResolvedAddress), or nullopt when
  // the name did not resolve.
  using Callback = std::function<void(std::optional<SocketAddress>)>;

  HostResolver(Dispatcher& dispatcher, Callback on_resolved);
  ~HostResolver();
  HostResolver(const HostResolver&) = delete;
  HostResolver& operator=(const HostResolver&) = delete;

  // Starts a lookup; false (and nothing started) while one is in flight or
  // when libuv refuses.
  bool resolve(const std::string& host, uint16_t port);
  bool busy() const { return in_flight_ != nullptr; }

  // Called by the libuv bridge only.
  struct Request;
  void onResolved(std::optional<SocketAddress> address);

 private:
  Dispatcher& dispatcher_;
  Callback on_resolved_;
  Request* in_flight_ = nullptr;
};

}  // namespace sluice
