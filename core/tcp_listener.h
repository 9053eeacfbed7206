// TcpListener: a listening TCP socket on a Dispatcher's loop, for the gRPC
// and admin listeners.
//
// Owned by its listener; the uv handle is freed in its close callback, so the
// owner may close it at any time. With reuse_port every worker binds its own
// socket to the same port (SO_REUSEPORT) and the kernel spreads connections.
#pragma once

#include <functional>

#include "core/socket_address.h"
#include "core/status.h"

struct uv_tcp_s;
struct uv_stream_s;

namespace sluice {

class Dispatcher;

class TcpListener {
 public:
  // Called for each pending connection; accept it from `server`.
  using OnConnection = std::function<void(uv_stream_s* server)>;

  TcpListener(Dispatcher& dispatcher, OnConnection on_connection)
      : dispatcher_(dispatcher), on_connection_(std::move(on_connection)) {}
  ~TcpListener() { close(); }
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  // Binds and listens; `what` names it in errors ("listener 'grpc'").
  Status listen(const SocketAddress& address, bool reuse_port, const std::string& what);
  // An error if some socket already listens on `address` (a fixed port).
  // Binding with SO_REUSEPORT would succeed next to another process's
  // socket bound the same way, and the two would split the connections
  // without a word: a second gateway started by mistake on one config.
  static Status checkAddressFree(const SocketAddress& address, const std::string& what);
  // The bound address: the real port when 0 was asked.
  const SocketAddress& boundAddress() const { return bound_; }
  void close();
  bool listening() const { return handle_ != nullptr; }

  void onConnection(int status);  // libuv bridge only

 private:
  Dispatcher& dispatcher_;
  OnConnection on_connection_;
  uv_tcp_s* handle_ = nullptr;
  SocketAddress bound_;
};

}  // namespace sluice
