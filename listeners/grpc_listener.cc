#include "listeners/grpc_listener.h"

#include <netinet/in.h>
#include <uv.h>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/config.h"
#include "core/dispatcher.h"
#include "core/stats.h"
#include "listeners/worker.h"
#include "listeners/downstream_connection.h"

namespace sluice {
namespace {

void onConnection(uv_stream_t* server, int status) noexcept {
  if (server->data != nullptr) static_cast<GrpcListener*>(server->data)->onNewConnection(status);
}
void freeHandle(uv_handle_t* h) noexcept { delete reinterpret_cast<uv_tcp_t*>(h); }

}  // namespace

GrpcListener::GrpcListener(Worker& worker, std::string name, SocketAddress address)
    : worker_(worker), name_(std::move(name)), address_(std::move(address)), stats_(worker.stats().listener(name_)) {}

const ListenerConfig& GrpcListener::config() const { return *worker_.current()->listener(name_); }

Http2Settings GrpcListener::http2Settings() const {
  const ListenerConfig& c = config();
  Http2Settings s;
  s.max_concurrent_streams = c.max_concurrent_streams;
  s.max_header_list_bytes = c.max_header_list_bytes;
  s.reset_burst = c.rst_stream_burst;
  s.reset_rate_per_second = c.rst_stream_rate;
  s.max_outbound_ack = c.max_pending_acks;
  return s;
}

size_t GrpcListener::activeStreams() const {
  size_t n = 0;
  for (const auto& c : connections_) n += c->activeStreams();
  return n;
}

void GrpcListener::startDrain() {
  stopAccepting();
  for (auto& c : connections_) c->startDrain();
}

GrpcListener::~GrpcListener() {
  stopAccepting();
  closeConnections();
}

Status GrpcListener::start() {
  sockaddr_storage ss;
  if (!address_.toSockaddr(ss)) {
    return {StatusCode::InvalidArgument, fmt::format("bad address {}", address_.toString())};
  }
  handle_ = new uv_tcp_t;
  uv_tcp_init(worker_.dispatcher().loop(), handle_);
  handle_->data = this;
  int rv = uv_tcp_bind(handle_, reinterpret_cast<const sockaddr*>(&ss), 0);
  if (rv == 0) rv = uv_listen(reinterpret_cast<uv_stream_t*>(handle_), 1024, onConnection);
  if (rv != 0) {
    stopAccepting();
    return {StatusCode::Unavailable, fmt::format("listener '{}' cannot listen on {}: {}", name_,
                                                 address_.toString(), uv_strerror(rv))};
  }
  sockaddr_storage bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(handle_, reinterpret_cast<sockaddr*>(&bound), &len);
  bound_ = address_;
  bound_.port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  spdlog::info("listener '{}' listening on {}", name_, bound_.toString());
  return Status::ok();
}

void GrpcListener::stopAccepting() {
  if (handle_ == nullptr) return;
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), freeHandle);
  handle_ = nullptr;
}

void GrpcListener::closeConnections() {
  while (!connections_.empty()) connections_.back()->close("listener closing");
}

void GrpcListener::onNewConnection(int status) {
  if (status != 0) {
    spdlog::warn("listener '{}': accept failed: {}", name_, uv_strerror(status));
    return;
  }
  auto conn = std::make_unique<DownstreamConnection>(*this, next_connection_id_++);
  if (conn->accept(reinterpret_cast<uv_stream_t*>(handle_)) != 0) return;
  if (connections_.size() >= config().max_connections) {
    // Accepted only to be closed at once: the client sees a reset, not a hang.
    stats_.downstream_cx_refused.inc();
    spdlog::warn("listener '{}': max_connections ({}) reached, refusing {}", name_, config().max_connections,
                 conn->peerAddress());
    conn->close("max_connections reached");
    worker_.dispatcher().deferredDelete(std::move(conn));
    return;
  }
  stats_.downstream_cx_total.inc();
  stats_.downstream_cx_active.inc();
  connections_.push_back(std::move(conn));
}

void GrpcListener::onConnectionClosed(DownstreamConnection& connection) {
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [&](const auto& c) { return c.get() == &connection; });
  if (it == connections_.end()) return;
  stats_.downstream_cx_active.dec();
  worker_.dispatcher().deferredDelete(std::move(*it));
  connections_.erase(it);
}

}  // namespace sluice
