// HostResolver: looks up one host name at a time without blocking the loop.
//
// getaddrinfo() can block for seconds (a resolver that does not answer waits
// out its timeouts and retries, per name server and address family), so
// lookups run on threads of their own and each answer is posted back to the
// asking Dispatcher's loop. Not libuv's thread pool: a lookup running there
// cannot be abandoned, and the loop could not stop (nor the gateway exit)
// until the resolver gave up; its four threads would also be shared by every
// worker.
//
// The lookup threads are one bounded set for the whole process (top-level
// config key dns_lookup_threads): a config naming hundreds of hosts, refreshed
// by every worker, starts at most that many threads; further lookups wait in
// order. A lookup stuck for over 5 s no longer counts, so names that hang do
// not hold up the others. A name already being looked up (by another
// worker's cluster) is not looked up twice: the later asker shares the
// answer. Threads start when a lookup finds none free, and end after 5 s
// without one.
//
// Owned by whoever asks. Destroying it with a lookup in flight is safe: the
// lookup's thread finishes on its own and its answer is dropped; a lookup
// nobody waits for any more is dropped before it starts.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/socket_address.h"

namespace sluice {

class Dispatcher;
class Timer;

class HostResolver {
 public:
  // `on_resolved` gets the addresses (see resolveHost), none when the name
  // did not resolve; always on the Dispatcher's loop.
  using Callback = std::function<void(std::vector<SocketAddress>)>;

  HostResolver(Dispatcher& dispatcher, Callback on_resolved);
  ~HostResolver();
  HostResolver(const HostResolver&) = delete;
  HostResolver& operator=(const HostResolver&) = delete;

  // Starts a lookup, which may wait for a lookup thread, or share the answer
  // of a lookup of the same name already asked for. With `fresh`, only one
  // not yet started is shared (an answer from before the ask will not do: a
  // reload after a DNS change must see it). False (and nothing started)
  // while one is in flight, or when no lookup thread runs nor could start.
  bool resolve(const std::string& host, uint16_t port, bool fresh = false);
  bool busy() const { return in_flight_ != nullptr; }

  // Lookup threads the process may run at once (at least 1); lookups past it
  // wait. Thread-safe; a lower cap lets running threads finish their lookup.
  static void setMaxThreads(size_t max_threads);
  // Lookup threads running now.
  static size_t runningThreads();

  // What a lookup's thread shares with the resolver (host_resolver.cc).
  struct Lookup;

 private:
  static void runLookups();
  // While this resolver's lookup waits for a thread: every kStuckAfter, let
  // lookups stuck that long make room for it.
  void onRecheck();
  // Arms onRecheck `delay` from now (when the next lookup under way counts
  // as stuck).
  void watchForStuckThreads(std::chrono::steady_clock::duration delay);
  static void deliver(const std::shared_ptr<Lookup>& lookup, const std::vector<SocketAddress>& addresses);
  // On the loop: `lookup` answered (ignored unless it is the one in flight).
  void onResolved(const std::shared_ptr<Lookup>& lookup, std::vector<SocketAddress> addresses);

  Dispatcher& dispatcher_;
  Callback on_resolved_;
  std::shared_ptr<Lookup> in_flight_;
  std::unique_ptr<Timer> recheck_;
};

}  // namespace sluice
