#include "core/tcp_socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>

#include "core/dispatcher.h"
#include "core/stats.h"
#include "core/tcp_info.h"

namespace sluice {
namespace {

struct WriteRequest {
  uv_write_t req;
  std::string bytes;
};

struct ConnectRequest {
  uv_connect_t req;
};

TcpSocket* ownerOf(uv_handle_t* h) { return static_cast<TcpSocket*>(h->data); }

void freeHandle(uv_handle_t* h) noexcept { delete reinterpret_cast<uv_tcp_t*>(h); }

void onAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) noexcept {
  auto* loop_buffer = static_cast<std::string*>(h->loop->data);
  *buf = uv_buf_init(loop_buffer->data(), static_cast<unsigned>(loop_buffer->size()));
}

void onRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
  if (auto* owner = ownerOf(reinterpret_cast<uv_handle_t*>(s))) owner->onReadDone(nread, buf->base);
}

void onWrite(uv_write_t* req, int status) noexcept {
  auto* w = reinterpret_cast<WriteRequest*>(req);
  size_t n = w->bytes.size();
  // The owner may be gone: the handle's data is cleared before it is closed.
  TcpSocket* owner = ownerOf(reinterpret_cast<uv_handle_t*>(req->handle));
  delete w;
  if (owner != nullptr) owner->onWriteDone(n, status);
}

void onConnect(uv_connect_t* req, int status) noexcept {
  TcpSocket* owner = ownerOf(reinterpret_cast<uv_handle_t*>(req->handle));
  delete reinterpret_cast<ConnectRequest*>(req);
  if (owner != nullptr) owner->onConnectDone(status);
}

}  // namespace

std::string uvErrorText(int status) { return uv_strerror(status); }

TcpSocket::TcpSocket(Dispatcher& dispatcher, TcpSocketCallbacks& callbacks)
    : dispatcher_(dispatcher), callbacks_(callbacks), handle_(new uv_tcp_t) {
  uv_tcp_init(dispatcher.loop(), handle_);
  handle_->data = this;
}

TcpSocket::~TcpSocket() { close(); }

int TcpSocket::accept(uv_stream_t* server) {
  int rv = uv_accept(server, reinterpret_cast<uv_stream_t*>(handle_));
  if (rv == 0) uv_tcp_nodelay(handle_, 1);
  return rv;
}

int TcpSocket::open(int fd) {
  int rv = uv_tcp_open(handle_, fd);
  if (rv == 0) uv_tcp_nodelay(handle_, 1);
  return rv;
}

int TcpSocket::acceptDetached(uv_stream_t* server) {
  // libuv has already accepted the connection; uv_accept hands it to a handle
  // of this loop. Its descriptor is duplicated and the handle closed, so the
  // connection outlives it as a descriptor no loop watches yet.
  auto* tmp = new uv_tcp_t;
  uv_tcp_init(server->loop, tmp);
  int fd = -1;
  uv_os_fd_t accepted;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(tmp)) == 0 &&
      uv_fileno(reinterpret_cast<uv_handle_t*>(tmp), &accepted) == 0) {
    fd = ::fcntl(accepted, F_DUPFD_CLOEXEC, 0);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(tmp), freeHandle);
  return fd;
}

int TcpSocket::connect(const SocketAddress& address) {
  sockaddr_storage ss;
  if (!address.toSockaddr(ss)) return UV_EINVAL;
  uv_tcp_nodelay(handle_, 1);
  auto* req = new ConnectRequest;
  int rv = uv_tcp_connect(&req->req, handle_, reinterpret_cast<const sockaddr*>(&ss), onConnect);
  if (rv != 0) delete req;
  return rv;
}

int TcpSocket::limitKernelSendBuffer(int bytes) {
  if (handle_ == nullptr) return UV_EBADF;
  return uv_send_buffer_size(reinterpret_cast<uv_handle_t*>(handle_), &bytes);
}

int TcpSocket::detectDeadPeer(unsigned idle_s, unsigned interval_s, unsigned count, unsigned user_timeout_ms) {
  if (handle_ == nullptr) return UV_EBADF;
  uv_os_fd_t fd;
  if (int rv = uv_fileno(reinterpret_cast<uv_handle_t*>(handle_), &fd); rv != 0) return rv;
  const int on = 1;
  const int idle = static_cast<int>(idle_s), interval = static_cast<int>(interval_s), probes = static_cast<int>(count);
  const auto timeout = user_timeout_ms;
  if (::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval)) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes)) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout, sizeof(timeout)) != 0) {
    return uv_translate_sys_error(errno);
  }
  return 0;
}

void TcpSocket::startReading() {
  if (handle_ != nullptr) uv_read_start(reinterpret_cast<uv_stream_t*>(handle_), onAlloc, onRead);
}

void TcpSocket::stopReading() {
  if (handle_ != nullptr) uv_read_stop(reinterpret_cast<uv_stream_t*>(handle_));
}

void TcpSocket::onReadDone(long nread, const char* data) {
  if (nread > 0) {
    callbacks_.onRead(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(nread));
  } else if (nread < 0) {
    if (handle_ != nullptr) uv_read_stop(reinterpret_cast<uv_stream_t*>(handle_));
    callbacks_.onDisconnected(static_cast<int>(nread));
  }
}

void TcpSocket::write(std::string&& bytes) {
  if (handle_ == nullptr || write_failed_ || bytes.empty()) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(handle_);
  size_t offset = 0;
  if (pending_bytes_ == 0) {
    uv_buf_t buf = uv_buf_init(bytes.data(), static_cast<unsigned>(bytes.size()));
    int n = uv_try_write(stream, &buf, 1);
    if (n > 0) offset = static_cast<size_t>(n);
    if (offset == bytes.size()) return;
  }
  queueOwned(offset == 0 ? std::move(bytes) : bytes.substr(offset));
}

void TcpSocket::queueOwned(std::string bytes) {
  auto* w = new WriteRequest;
  w->bytes = std::move(bytes);
  uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  const auto bytes_queued = static_cast<int64_t>(w->bytes.size());
  addPending(bytes_queued);
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(handle_), &buf, 1, onWrite) != 0) {
    addPending(-bytes_queued);
    delete w;
    write_failed_ = true;
    callbacks_.onDisconnected(UV_EPIPE);
  }
}

void TcpSocket::write(const ByteSpan* spans, size_t count) {
  if (handle_ == nullptr || write_failed_ || count == 0) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(handle_);
  size_t total = 0;
  for (size_t i = 0; i < count; ++i) total += spans[i].len;
  size_t written = 0;
  if (pending_bytes_ == 0) {
    // Groups of up to kMaxBufs pieces (one writev each) while the kernel
    // takes whole groups; copying starts only where it stopped taking.
    constexpr size_t kMaxBufs = 256;
    uv_buf_t bufs[kMaxBufs];
    for (size_t first = 0; first < count;) {
      size_t n = std::min(count - first, kMaxBufs);
      size_t group = 0;
      for (size_t i = 0; i < n; ++i) {
        const ByteSpan& s = spans[first + i];
        bufs[i] = uv_buf_init(reinterpret_cast<char*>(const_cast<uint8_t*>(s.data)), static_cast<unsigned>(s.len));
        group += s.len;
      }
      int rv = uv_try_write(stream, bufs, static_cast<unsigned>(n));
      if (rv > 0) written += static_cast<size_t>(rv);
      if (rv < 0 || static_cast<size_t>(rv) < group) break;
      first += n;
    }
    if (written == total) return;
  }
  // Keep the rest, in order, in one owned buffer.
  std::string rest;
  rest.reserve(total - written);
  size_t skip = written;
  for (size_t i = 0; i < count; ++i) {
    if (skip >= spans[i].len) {
      skip -= spans[i].len;
      continue;
    }
    rest.append(reinterpret_cast<const char*>(spans[i].data) + skip, spans[i].len - skip);
    skip = 0;
  }
  queueOwned(std::move(rest));
}

uint64_t TcpSocket::bytesAcked() const {
  // Not the bytes written: a socket stays unwritable until half its (large)
  // kernel buffer drained, so a slow reader would seem to take nothing.
  uv_os_fd_t fd;
  if (handle_ == nullptr || uv_fileno(reinterpret_cast<const uv_handle_t*>(handle_), &fd) != 0) return 0;
  return tcpBytesAcked(fd);
}

size_t TcpSocket::bytesReadable() const {
  uv_os_fd_t fd;
  if (handle_ == nullptr || uv_fileno(reinterpret_cast<const uv_handle_t*>(handle_), &fd) != 0) return 0;
  int n = 0;
  return ::ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? static_cast<size_t>(n) : 0;
}

void TcpSocket::addPending(int64_t bytes) {
  pending_bytes_ = static_cast<size_t>(static_cast<int64_t>(pending_bytes_) + bytes);
  if (pending_gauge_ != nullptr) pending_gauge_->add(bytes);
}

void TcpSocket::onWriteDone(size_t bytes, int status) {
  addPending(-static_cast<int64_t>(bytes));
  if (status != 0) {
    if (!write_failed_) {
      write_failed_ = true;
      callbacks_.onDisconnected(status);
    }
    return;
  }
  if (pending_bytes_ == 0) callbacks_.onWriteDrained();
}

void TcpSocket::shutdownWrite() {
  if (handle_ == nullptr || write_shut_ || pending_bytes_ > 0) return;
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(handle_), &fd) != 0) return;
  // Nothing is queued in libuv (pending_bytes_ is 0), so the kernel has every
  // byte already: a plain shutdown(2) orders the FIN after them.
  ::shutdown(fd, SHUT_WR);
  write_shut_ = true;
}

void TcpSocket::close() {
  if (handle_ == nullptr) return;
  // What is still queued is freed as libuv cancels it, unseen by us.
  addPending(-static_cast<int64_t>(pending_bytes_));
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), freeHandle);
  handle_ = nullptr;
}

std::string TcpSocket::peerAddress() const {
  if (handle_ == nullptr) return {};
  sockaddr_storage ss{};
  int len = sizeof(ss);
  if (uv_tcp_getpeername(handle_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  char ip[64] = {};
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    uv_ip6_name(a, ip, sizeof(ip));
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  uv_ip4_name(a, ip, sizeof(ip));
  return std::string(ip) + ":" + std::to_string(ntohs(a->sin_port));
}

}  // namespace sluice
