// ConnectionPool: the h2c connections of one worker to one endpoint.
//
// Owned by its Endpoint (one pool per endpoint per worker; no locks, one loop
// owns it). Streams go to the first usable connection; a new connection is
// opened when none is (none yet, the backend's stream limit reached, or it sent
// GOAWAY), within the cluster's circuit breakers. After a failed connect the
// pool backs off (exponential, with jitter) before trying again. Connections
// that close are deleted at the end of the loop iteration.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/status.h"

namespace sluice {

class Cluster;
class Dispatcher;
class Endpoint;
class UpstreamConnection;
class UpstreamStream;

// What becomes of calls waiting on a connection still connecting (for the
// backend's SETTINGS) when it is retired: they wait there (Stay: the
// config was replaced, the backend is the same); go to a connection to
// the endpoint's new address (Move); or are withdrawn, for their callers
// to place anew on another endpoint (Withdraw: the endpoint is gone;
// UpstreamCallbacks::onUpstreamWithdrawn).
enum class WaitingCalls { Stay, Move, Withdraw };

class ConnectionPool {
 public:
  using Clock = std::chrono::steady_clock;

  ConnectionPool(Dispatcher& dispatcher, Endpoint& endpoint);
  ~ConnectionPool();

  // Places `stream` on a connection; UNAVAILABLE (naming the limit) when a
  // circuit breaker or the reconnect backoff forbids it. `counted` streams
  // take part in the cluster's request accounting (health checks do not).
  Status newStream(UpstreamStream& stream, bool counted = true);
  bool inBackoff(Clock::time_point now) const { return now < backoff_until_; }
  // Whether a call may try to connect although the pool is in backoff:
  // when every endpoint of the cluster is backing off, calls would otherwise
  // fail for up to the backoff's 10 s after a restarted backend is back. A
  // second after the last failed connect (or the backoff's end, if sooner),
  // one call at a time tries (the calls arriving meanwhile wait on its
  // connection); the chooser sends calls here only when no endpoint is out
  // of backoff.
  bool probeDue(Clock::time_point now) const { return now >= probe_after_; }

  // Called by connections.
  void onConnectionClosed(UpstreamConnection& connection);
  // A connection reached the backend (its SETTINGS came): calls need not
  // wait out a backoff a health check's connect has just proved stale.
  void onConnectSucceeded() {
    connect_failures_ = 0;
    backoff_until_ = {};
    probe_after_ = {};
  }
  // A backend's SETTINGS_MAX_CONCURRENT_STREAMS, from any connection: new
  // connections assume it until their own SETTINGS arrive.
  void onStreamLimitAdvertised(uint32_t limit) { advertised_stream_limit_ = limit; }
  std::optional<uint32_t> advertisedStreamLimit() const { return advertised_stream_limit_; }
  void onConnectFailed();
  // A reload: the backoff of the pool the old config had for this endpoint.
  void adoptBackoffOf(const ConnectionPool& old) {
    connect_failures_ = old.connect_failures_;
    backoff_until_ = old.backoff_until_;
    probe_after_ = old.probe_after_;
  }

  // The endpoint's host name now resolves elsewhere (dns_addresses "first").
  void onAddressChanged();
  // Gateway shutdown: close every connection.
  void closeAll();
  // The endpoint was removed, or its cluster replaced: every connection
  // closes once its calls end, and so does any opened later (a stream the
  // backend had no room for on a connection still connecting comes back
  // here). `waiting`: see UpstreamConnection::retire.
  void retire(WaitingCalls waiting = WaitingCalls::Stay);

  Endpoint& endpoint() { return endpoint_; }
  Cluster& cluster();
  size_t connectionCount() const { return connections_.size(); }

 private:
  // Why no new connection may be opened now (reconnect backoff, circuit
  // breakers), or ok; `record_overflow` counts a breaker in upstream_rq_overflow.
  Status canOpenConnection(bool counted, bool record_overflow);
  // UNAVAILABLE while the connections that heard the backend's SETTINGS say
  // it takes no streams at all (SETTINGS_MAX_CONCURRENT_STREAMS 0).
  Status refusesStreams() const;
  Dispatcher& dispatcher_;
  Endpoint& endpoint_;
  uint64_t next_connection_id_ = 1;
  std::vector<std::unique_ptr<UpstreamConnection>> connections_;
  uint32_t connect_failures_ = 0;
  bool retired_ = false;
  std::optional<uint32_t> advertised_stream_limit_;
  Clock::time_point backoff_until_{};
  Clock::time_point probe_after_{};  // see probeDue()
  std::minstd_rand rng_{std::random_device{}()};
};

}  // namespace sluice
