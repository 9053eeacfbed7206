// GrpcListener: a listening TCP socket that accepts h2c gRPC connections for
// one configured listener on one worker.
//
// Owned by the Worker; owns its DownstreamConnections. The config it reads is
// kept alive by the worker for as long as the listener exists.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "codecs/http2/session.h"
#include "core/socket_address.h"
#include "core/status.h"

struct uv_tcp_s;

namespace sluice {

class DownstreamConnection;
class WorkerContext;
struct ListenerConfig;

class GrpcListener {
 public:
  GrpcListener(WorkerContext& worker, const ListenerConfig& config);
  ~GrpcListener();

  // Binds and listens; the bound address (real port when 0 was asked) after.
  Status start();
  const SocketAddress& boundAddress() const { return bound_; }
  // Stops accepting; open connections go on.
  void stopAccepting();
  // Closes every connection now.
  void closeConnections();
  size_t connectionCount() const { return connections_.size(); }

  WorkerContext& worker() { return worker_; }
  const ListenerConfig& config() const { return config_; }
  const Http2Settings& http2Settings() const { return settings_; }

  void onConnectionClosed(DownstreamConnection& connection);
  void onNewConnection(int status);  // libuv bridge only

 private:
  WorkerContext& worker_;
  const ListenerConfig& config_;
  Http2Settings settings_;
  uv_tcp_s* handle_ = nullptr;
  SocketAddress bound_;
  uint64_t next_connection_id_ = 1;
  std::vector<std::unique_ptr<DownstreamConnection>> connections_;
};

}  // namespace sluice
