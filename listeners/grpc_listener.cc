#include "listeners/grpc_listener.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <uv.h>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/config.h"
#include "core/dispatcher.h"
#include "core/overload.h"
#include "core/stats.h"
#include "listeners/connection_balancer.h"
#include "listeners/downstream_connection.h"
#include "listeners/worker.h"

namespace sluice {
GrpcListener::GrpcListener(Worker& worker, std::string name, SocketAddress address,
                           ConnectionBalancer& balancer)
    : worker_(worker),
      name_(std::move(name)),
      address_(std::move(address)),
      stats_(worker.stats().listener(name_)),
      balancer_(balancer),
      balancer_index_(balancer.add(*this)),
      socket_(worker.dispatcher(), [this](uv_stream_s* server) { onNewConnection(server); }) {}

const ListenerConfig& GrpcListener::config() const { return *worker_.current()->listener(name_); }

Http2Settings GrpcListener::http2Settings() const {
  const ListenerConfig& c = config();
  Http2Settings s;
  s.max_concurrent_streams = c.max_concurrent_streams;
  s.max_header_list_bytes = c.max_header_list_bytes;
  s.reset_burst = c.rst_stream_burst;
  s.reset_rate_per_second = c.rst_stream_rate;
  s.max_outbound_ack = c.max_pending_acks;
  s.initial_stream_window = c.initial_stream_window_bytes;
  s.connection_window = c.initial_connection_window_bytes;
  return s;
}

size_t GrpcListener::activeStreams() const {
  size_t n = 0;
  for (const auto& c : connections_) n += c->activeStreams();
  return n;
}

void GrpcListener::collectCallsHolding(uint64_t min_bytes,
                                       std::vector<std::pair<uint64_t, DownstreamStream*>>& out) const {
  for (const auto& c : connections_) c->collectCallsHolding(min_bytes, out);
}

void GrpcListener::startDrain() {
  stopAccepting();
  for (auto& c : connections_) c->startDrain();
}

void GrpcListener::endCallsForShutdown(std::string_view why) {
  for (auto& c : connections_) c->endCallsForShutdown(why);
}

GrpcListener::~GrpcListener() {
  stopAccepting();
  closeConnections();
}

Status GrpcListener::start(uint16_t port_override) {
  SocketAddress addr = address_;
  const std::string what = fmt::format("listener '{}'", name_);
  if (port_override != 0) {
    addr.port = port_override;  // the port the first worker bound, shared
  } else if (Status free = TcpListener::checkAddressFree(addr, what); !free.isOk()) {
    return free;
  }
  Status s = socket_.listen(addr, /*reuse_port=*/true, what);
  if (s.isOk()) spdlog::debug("listener '{}' listening on {}", name_, boundAddress().toString());
  return s;
}

void GrpcListener::stopAccepting() { socket_.close(); }

void GrpcListener::closeConnections() {
  while (!connections_.empty()) connections_.back()->close("listener closing");
}

void GrpcListener::onNewConnection(uv_stream_s* server) {
  if (worker_.overload().refusingConnections()) {
    refuseOverloaded(server);
    return;
  }
  GrpcListener* owner = balancer_.pick(balancer_index_, config().connection_balance == ConnectionBalance::Exact,
                                       config().max_connections);
  if (owner == nullptr) {
    refuse(server);
    return;
  }
  if (owner == this) {
    auto conn = std::make_unique<DownstreamConnection>(*this, next_connection_id_++);
    if (conn->accept(server) != 0) {
      balancer_.release(balancer_index_);
      return;
    }
    admit(std::move(conn));
    return;
  }
  int fd = TcpSocket::acceptDetached(server);
  if (fd < 0) {
    balancer_.release(owner->balancer_index_);
    return;
  }
  // The owner's worker outlives its loop, and work posted to a stopped loop
  // is dropped (the descriptor then closes with the process).
  owner->worker().dispatcher().post([owner, fd] { owner->adopt(fd); });
}

void GrpcListener::adopt(int fd) {
  if (!socket_.listening()) {  // draining or closed since: no new connections here
    ::close(fd);
    balancer_.release(balancer_index_);
    return;
  }
  auto conn = std::make_unique<DownstreamConnection>(*this, next_connection_id_++);
  if (conn->adopt(fd) != 0) {
    ::close(fd);
    balancer_.release(balancer_index_);
    worker_.dispatcher().deferredDelete(std::move(conn));
    return;
  }
  admit(std::move(conn));
}

void GrpcListener::refuse(uv_stream_s* server) {
  auto conn = std::make_unique<DownstreamConnection>(*this, next_connection_id_++);
  if (conn->accept(server) == 0) {
    stats_.downstream_cx_refused.inc();
    // At most a line a second: clients reconnecting to a full listener in
    // a loop must not flood the log (downstream_cx_refused counts them all).
    uint64_t skipped = 0;
    if (refusal_log_.admit(skipped)) {
      spdlog::warn("listener '{}': max_connections ({}) reached, refusing {} ({} more refused since the last such "
                   "line)",
                   name_, config().max_connections, conn->peerAddress(), skipped);
    }
    conn->close("max_connections reached");
  }
  worker_.dispatcher().deferredDelete(std::move(conn));
}

void GrpcListener::refuseOverloaded(uv_stream_s* server) {
  // Not logged per connection: the overload monitor logs when this starts
  // and stops, and a flood of connections would flood the log.
  int fd = TcpSocket::acceptDetached(server);
  if (fd < 0) return;
  ::close(fd);
  stats_.downstream_cx_overload_refused.inc();
}

void GrpcListener::admit(std::unique_ptr<DownstreamConnection> conn) {
  stats_.downstream_cx_total.inc();
  stats_.downstream_cx_active.inc();
  connections_.push_back(std::move(conn));
}

void GrpcListener::onConnectionClosed(DownstreamConnection& connection) {
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [&](const auto& c) { return c.get() == &connection; });
  if (it == connections_.end()) return;
  stats_.downstream_cx_active.dec();
  balancer_.release(balancer_index_);
  worker_.dispatcher().deferredDelete(std::move(*it));
  connections_.erase(it);
}

}  // namespace sluice
