#include "core/tcp_listener.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/dispatcher.h"

namespace sluice {
namespace {

void onConnectionBridge(uv_stream_t* server, int status) noexcept {
  if (server->data != nullptr) static_cast<TcpListener*>(server->data)->onConnection(status);
}
void freeHandle(uv_handle_t* h) noexcept { delete reinterpret_cast<uv_tcp_t*>(h); }

}  // namespace

Status TcpListener::listen(const SocketAddress& address, bool reuse_port, const std::string& what) {
  sockaddr_storage ss;
  if (!address.toSockaddr(ss)) return {StatusCode::InvalidArgument, fmt::format("{}: bad address {}", what, address.toString())};
  auto fail = [&](int err) {
    return Status(StatusCode::Unavailable,
                  fmt::format("{} cannot listen on {}: {}", what, address.toString(), uv_strerror(err)));
  };
  // libuv 1.44 cannot ask for SO_REUSEPORT: make the socket, then hand it over.
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(-errno);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  socklen_t ss_len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), ss_len) != 0) {
    int err = -errno;
    ::close(fd);
    return fail(err);
  }
  handle_ = new uv_tcp_t;
  uv_tcp_init(dispatcher_.loop(), handle_);
  handle_->data = this;
  int rv = uv_tcp_open(handle_, fd);
  if (rv == 0) rv = uv_listen(reinterpret_cast<uv_stream_t*>(handle_), 1024, onConnectionBridge);
  if (rv != 0) {
    close();
    return fail(rv);
  }
  sockaddr_storage bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(handle_, reinterpret_cast<sockaddr*>(&bound), &len);
  bound_ = address;
  bound_.port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return Status::ok();
}

Status TcpListener::checkAddressFree(const SocketAddress& address, const std::string& what) {
  sockaddr_storage ss;
  if (address.port == 0 || !address.toSockaddr(ss)) return Status::ok();
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::ok();  // listen() reports what is wrong
  int one = 1;
  // SO_REUSEADDR, not SO_REUSEPORT: a port left in TIME_WAIT is free, one
  // with a listening socket is not, however that socket was bound.
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t ss_len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  const int rv = ::bind(fd, reinterpret_cast<const sockaddr*>(&ss), ss_len);
  const int err = errno;
  ::close(fd);
  if (rv != 0 && err == EADDRINUSE) {
    return {StatusCode::Unavailable, fmt::format("{} cannot listen on {}: address already in use (by another "
                                                 "process, perhaps another gateway started on the same config)",
                                                 what, address.toString())};
  }
  return Status::ok();
}

void TcpListener::close() {
  if (handle_ == nullptr) return;
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), freeHandle);
  handle_ = nullptr;
}

void TcpListener::onConnection(int status) {
  if (status != 0) {
    spdlog::warn("accept failed: {}", uv_strerror(status));
    return;
  }
  on_connection_(reinterpret_cast<uv_stream_t*>(handle_));
}

}  // namespace sluice
