// GrpcListener: a listening TCP socket that accepts h2c gRPC connections for
// one configured listener on one worker.
//
// Owned by the Worker; owns its DownstreamConnections. Its settings come from
// the worker's current config generation, looked up by name (a reload may
// change filters and limits, not the name or address).
#pragma once

#include <cstdint>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "codecs/http2/session.h"
#include "core/log_throttle.h"
#include "core/socket_address.h"
#include "core/status.h"
#include "core/tcp_listener.h"

struct uv_stream_s;

namespace sluice {

class ConnectionBalancer;
class DownstreamConnection;
class DownstreamStream;
class Worker;
struct ListenerConfig;
struct ListenerStats;

class GrpcListener {
 public:
  // `balancer`, shared by this listener's instances on every worker, counts
  // their connections (max_connections is a per-listener limit, whichever
  // worker accepted) and spreads them over the workers.
  GrpcListener(Worker& worker, std::string name, SocketAddress address, ConnectionBalancer& balancer);
  ~GrpcListener();

  // Binds (with SO_REUSEPORT, so every worker has its own socket on the same
  // port) and listens. `port_override` replaces the configured port: workers
  // after the first bind the port the first one got for "port 0".
  Status start(uint16_t port_override = 0);
  const SocketAddress& boundAddress() const { return socket_.boundAddress(); }
  // Stops accepting; open connections go on.
  void stopAccepting();
  // Closes every connection now.
  void closeConnections();
  // Graceful drain: stop accepting and GOAWAY every connection.
  void startDrain();
  // See DownstreamConnection::endCallsForShutdown.
  void endCallsForShutdown(std::string_view why);
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
  // Adds (bytes held, call) for each call holding at least `min_bytes` of
  // messages (overload.reset_calls_percent).
  void collectCallsHolding(uint64_t min_bytes, std::vector<std::pair<uint64_t, DownstreamStream*>>& out) const;
  // On this listener's loop: a connection another worker accepted for us.
  void adopt(int fd);

 private:
  void onNewConnection(uv_stream_s* server);
  // Keeps a connection that is now ours (already counted by the balancer).
  void admit(std::unique_ptr<DownstreamConnection> conn);
  // Past max_connections: accepted only to be closed at once, so the client
  // sees a reset, not a hang.
  void refuse(uv_stream_s* server);
  // The heap is past overload.refuse_connections_percent: the same, counted
  // apart, before the connection is balanced or counted anywhere.
  void refuseOverloaded(uv_stream_s* server);

  Worker& worker_;
  std::string name_;
  SocketAddress address_;
  ListenerStats& stats_;
  ConnectionBalancer& balancer_;
  size_t balancer_index_;
  TcpListener socket_;
  uint64_t next_connection_id_ = 1;
  std::vector<std::unique_ptr<DownstreamConnection>> connections_;
  LogThrottle refusal_log_;  // max_connections refusals
};

}  // namespace sluice
