// HostResolver: looks up one host name at a time without blocking the loop.
//
// getaddrinfo() can block for seconds (a resolver that does not answer waits
// out its timeouts and retries, per name server and address family), so each
// lookup runs on a thread of its own and the answer is posted back to the
// Dispatcher's loop. Not libuv's thread pool: a lookup running there cannot
// be abandoned, and the loop could not stop (nor the gateway exit) until the
// resolver gave up; its four threads would also be shared by every worker.
//
// Owned by whoever asks. Destroying it with a lookup in flight is safe: the
// lookup's thread finishes on its own and its answer is dropped.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/socket_address.h"

namespace sluice {

class Dispatcher;

class HostResolver {
 public:
  // `on_resolved` gets the address (see resolveHost), or nullopt when
  // the name did not resolve; always on the Dispatcher's loop.
  using Callback = std::function<void(std::optional<SocketAddress>)>;

  HostResolver(Dispatcher& dispatcher, Callback on_resolved);
  ~HostResolver();
  HostResolver(const HostResolver&) = delete;
  HostResolver& operator=(const HostResolver&) = delete;

  // Starts a lookup; false (and nothing started) while one is in flight or
  // when no thread could be started.
  bool resolve(const std::string& host, uint16_t port);
  bool busy() const { return in_flight_ != nullptr; }

  // What a lookup's thread shares with the resolver (host_resolver.cc).
  struct Lookup;

 private:
  void onResolved(std::optional<SocketAddress> address);

  Dispatcher& dispatcher_;
  Callback on_resolved_;
  std::shared_ptr<Lookup> in_flight_;
};

}  // namespace sluice
