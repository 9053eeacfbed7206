// AdminListener: the operators' HTTP/1.1 endpoint (curl, Prometheus, probes).
//
// Owned by the Gateway; runs on the loop it is given. Requests are parsed with
// http-parser (Debian's libhttp-parser), answered, and the connection closed.
// What the endpoints show and do comes from an AdminHandler (the Gateway).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/socket_address.h"
#include "core/status.h"
#include "core/tcp_listener.h"

struct uv_stream_s;

namespace sluice {

class Dispatcher;
class AdminConnection;

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string allow;  // for 405
};

class AdminHandler {
 public:
  virtual ~AdminHandler() = default;
  virtual AdminResponse handleAdmin(const std::string& method, const std::string& path) = 0;
};

class AdminListener {
 public:
  AdminListener(Dispatcher& dispatcher, AdminHandler& handler, SocketAddress address);
  ~AdminListener();

  Status start();
  const SocketAddress& boundAddress() const { return socket_.boundAddress(); }
  void stop();

  AdminHandler& handler() { return handler_; }
  Dispatcher& dispatcher() { return dispatcher_; }
  void onConnectionDone(AdminConnection& connection);

 private:
  Dispatcher& dispatcher_;
  AdminHandler& handler_;
  SocketAddress address_;
  TcpListener socket_;
  std::vector<std::unique_ptr<AdminConnection>> connections_;
};

}  // namespace sluice
