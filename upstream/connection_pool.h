// ConnectionPool: the h2c connections of one worker to one backend endpoint.
//
// Owned by its Cluster (one pool per endpoint per worker; no locks, one loop
// owns it). Streams go to the first usable connection; a new connection is
// opened when none is (none yet, the backend's stream limit reached, or it sent
// GOAWAY). Connections that close are deleted at the end of the loop iteration.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/socket_address.h"

namespace sluice {

class Dispatcher;
class UpstreamConnection;
class UpstreamStream;

class ConnectionPool {
 public:
  ConnectionPool(Dispatcher& dispatcher, std::string cluster_name, SocketAddress address,
                 uint32_t connect_timeout_ms);
  ~ConnectionPool();

  void newStream(UpstreamStream& stream);
  // Called by a connection that closed: the pool lets go of it.
  void onConnectionClosed(UpstreamConnection& connection);
  // Gateway shutdown: close every connection.
  void closeAll();

  const std::string& clusterName() const { return cluster_name_; }
  const SocketAddress& address() const { return address_; }
  uint32_t connectTimeoutMs() const { return connect_timeout_ms_; }
  size_t connectionCount() const { return connections_.size(); }

 private:
  Dispatcher& dispatcher_;
  std::string cluster_name_;
  SocketAddress address_;
  uint32_t connect_timeout_ms_;
  uint64_t next_connection_id_ = 1;
  std::vector<std::unique_ptr<UpstreamConnection>> connections_;
};

}  // namespace sluice
