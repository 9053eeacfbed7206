// TcpSocket: a libuv TCP stream with owned write buffers, for one connection.
//
// The owner (a downstream or upstream connection) owns the TcpSocket and gets
// its events through TcpSocketCallbacks. The uv handle lives apart and is freed
// in its close callback; after close() (or destruction) no callback reaches the
// owner. Reads land in the dispatcher's shared read buffer and must be consumed
// synchronously. Writes are tried at once and the remainder queued; the owner
// reads bytesPending() to stop producing past its limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/byte_span.h"
#include "core/socket_address.h"

struct uv_tcp_s;
struct uv_stream_s;

namespace sluice {

class Dispatcher;
class Gauge;

class TcpSocketCallbacks {
 public:
  virtual ~TcpSocketCallbacks() = default;
  // Client sockets: the connect finished (status 0) or failed (a libuv error).
  virtual void onConnected(int status) {}
  virtual void onRead(const uint8_t* data, size_t len) = 0;
  // The peer closed (UV_EOF) or a read or write failed; the owner should close.
  virtual void onDisconnected(int status) = 0;
  // Every queued write reached the kernel.
  virtual void onWriteDrained() {}
};

class TcpSocket {
 public:
  TcpSocket(Dispatcher& dispatcher, TcpSocketCallbacks& callbacks);
  ~TcpSocket();
  TcpSocket(const TcpSocket&) = delete;
  TcpSocket& operator=(const TcpSocket&) = delete;

  // Takes the next pending connection of a listening socket; a libuv error code on failure.
  int accept(uv_stream_s* server);
  // Takes over a connected socket's file descriptor (from acceptDetached() on
  // another loop); a libuv error code on failure, the fd then still the caller's.
  int open(int fd);
  // Takes the next pending connection of a listening socket as a bare file
  // descriptor the caller owns, for another loop to open(); -1 on failure.
  static int acceptDetached(uv_stream_s* server);
  int connect(const SocketAddress& address);
  // TCP keepalive probes after `idle_s` without traffic, every `interval_s`,
  // `count` unanswered ones end the connection; and data unacknowledged for
  // `user_timeout_ms` ends it too (TCP_USER_TIMEOUT). For a peer that
  // vanished without a FIN or RST. Call after connect(); 0 on success, else
  // a libuv error (the connection works without).
  int detectDeadPeer(unsigned idle_s, unsigned interval_s, unsigned count, unsigned user_timeout_ms);
  // SO_SNDBUF: the kernel keeps at most about `bytes` (Linux doubles it) of
  // what is written, instead of growing to tcp_wmem's 4 MiB; the rest waits
  // in bytesPending(), where its owner can count it. 0 or a libuv error.
  int limitKernelSendBuffer(int bytes);
  void startReading();
  // Until startReading(): the peer's bytes wait in the kernel, and TCP flow
  // control slows the peer down.
  void stopReading();

  void write(std::string&& bytes);
  // Gather write: tries the kernel at once; only what it did not take is
  // copied (into one owned buffer) and queued.
  void write(const ByteSpan* spans, size_t count);
  size_t bytesPending() const { return pending_bytes_; }
  // Keeps `gauge` (which must outlive the socket) counting bytesPending(),
  // with whatever other sockets add to it: bytes the peers have not taken
  // yet, held in the gateway.
  void countPendingIn(Gauge* gauge) { pending_gauge_ = gauge; }
  // Bytes the peer has acknowledged so far (TCP_INFO): whether it is reading
  // at all, however slowly; 0 when the kernel does not say.
  uint64_t bytesAcked() const;
  // Bytes the peer sent that wait in the kernel, not read yet (FIONREAD).
  size_t bytesReadable() const;

  // Sends FIN once nothing is left to write (call it when bytesPending() is
  // 0): the peer reads to the end, then sees the connection closed. Reading
  // goes on. Idempotent.
  void shutdownWrite();
  // Idempotent; no callback follows.
  void close();
  bool closed() const { return handle_ == nullptr; }
  std::string peerAddress() const;

  // libuv bridges only.
  void onConnectDone(int status) { callbacks_.onConnected(status); }
  void onReadDone(long nread, const char* data);
  void onWriteDone(size_t bytes, int status);

 private:
  // Queues bytes the kernel did not take yet, in order after earlier ones.
  void queueOwned(std::string bytes);
  void addPending(int64_t bytes);

  Dispatcher& dispatcher_;
  TcpSocketCallbacks& callbacks_;
  uv_tcp_s* handle_;
  size_t pending_bytes_ = 0;
  Gauge* pending_gauge_ = nullptr;
  bool write_failed_ = false;
  bool write_shut_ = false;
};

// An error text for a libuv error code ("connection refused").
std::string uvErrorText(int status);

}  // namespace sluice
