// GrpcListener: a listening TCP socket that accepts h2c gRPC connections for
// one configured listener on one worker.
//
// Owned by the Worker; owns its DownstreamConnections. Its settings come from
// the worker's current config generation, looked up by name (a reload may
// change filters and limits, not the name or address).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codecs/http2/session.h"
#include "core/socket_address.h"
#include "core/status.h"

struct uv_tcp_s;

namespace sluice {

class DownstreamConnection;
class Worker;
struct ListenerConfig;
struct ListenerStats;

class GrpcListener {
 public:
  GrpcListener(Worker& worker, std::string name, SocketAddress address);
  ~GrpcListener();

  // Binds and listens; the bound address (real port when 0 was asked) after.
  Status start();
  const SocketAddress& boundAddress() const { return bound_; }
  // Stops accepting; open connections go on.
  void stopAccepting();
  // Closes every connection now.
  void closeConnections();
  // Graceful drain: stop accepting and GOAWAY every connection.
  void startDrain();
  size_t connectionCount() const { return connections_.size(); }
  size_t activeStreams() const;

  const std::string& name() const { return name_; }
  Worker& worker() { return worker_; }
  // This listener's entry in the current config generation.
  const ListenerConfig& config() const;
  // HTTP/2 settings and abuse limits for a new connection, from the current config.
  Http2Settings http2Settings() const;
  ListenerStats& stats() { return stats_; }

  void onConnectionClosed(DownstreamConnection& connection);
  void onNewConnection(int status);  // libuv bridge only

 private:
  Worker& worker_;
  std::string name_;
  SocketAddress address_;
  ListenerStats& stats_;
  uv_tcp_s* handle_ = nullptr;
  SocketAddress bound_;
  uint64_t next_connection_id_ = 1;
  std::vector<std::unique_ptr<DownstreamConnection>> connections_;
};

}  // namespace sluice
