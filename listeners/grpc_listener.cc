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

GrpcListener::GrpcListener(Worker& worker, std::string name, SocketAddress address,
                           std::atomic<uint32_t>& connections)
    : worker_(worker),
      name_(std::move(name)),
      address_(std::move(address)),
      stats_(worker.stats().listener(name_)),
      shared_connections_(connections) {}

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

Status GrpcListener::start(uint16_t port_override) {
  SocketAddress addr = address_;
  if (port_override != 0) addr.port = port_override;
  sockaddr_storage ss;
  if (!addr.toSockaddr(ss)) {
    return {StatusCode::InvalidArgument, fmt::format("bad address {}", addr.toString())};
  }
  auto fail = [&](int err) {
    return Status(StatusCode::Unavailable, fmt::format("listener '{}' cannot listen on {}: {}", name_,
                                                       addr.toString(), uv_strerror(err)));
  };
  // libuv 1.44 cannot ask for SO_REUSEPORT: make the socket, then hand it over.
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(-errno);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  socklen_t ss_len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), ss_len) != 0) {
    int err = -errno;
    ::close(fd);
    return fail(err);
  }
  handle_ = new uv_tcp_t;
  uv_tcp_init(worker_.dispatcher().loop(), handle_);
  handle_->data = this;
  int rv = uv_tcp_open(handle_, fd);
  if (rv == 0) rv = uv_listen(reinterpret_cast<uv_stream_t*>(handle_), 1024, onConnection);
  if (rv != 0) {
    stopAccepting();
    return fail(rv);
  }
  sockaddr_storage bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(handle_, reinterpret_cast<sockaddr*>(&bound), &len);
  bound_ = address_;
  bound_.port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  spdlog::debug("listener '{}' listening on {}", name_, bound_.toString());
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
  if (shared_connections_.fetch_add(1, std::memory_order_relaxed) >= config().max_connections) {
    shared_connections_.fetch_sub(1, std::memory_order_relaxed);
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
  shared_connections_.fetch_sub(1, std::memory_order_relaxed);
  worker_.dispatcher().deferredDelete(std::move(*it));
  connections_.erase(it);
}

}  // namespace sluice
