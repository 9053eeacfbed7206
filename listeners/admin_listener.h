// AdminListener: the operators' HTTP/1.1 endpoint (curl, Prometheus, probes).
//
// Owned by the Gateway; runs on the loop it is given. Requests are parsed with
// http-parser (Debian's libhttp-parser), answered, and the connection closed.
// What the endpoints show and do comes from an AdminHandler (the Gateway).
// That loop also serves gRPC (worker 0), so admin clients are bounded: at most
// AdminLimits::max_connections at once (more are closed on accept), and each
// gets request_timeout_ms to send its request and take the answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/log_throttle.h"
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

// Delivers the answer to one request, at once or later on the admin loop.
// Once the client has gone (or its request_timeout_ms has passed) it does
// nothing.
using AdminReply = std::function<void(const AdminResponse&)>;

class AdminHandler {
 public:
  virtual ~AdminHandler() = default;
  // `query`: what follows '?' in the request target, as sent (not decoded).
  virtual void handleAdmin(const std::string& method, const std::string& path, const std::string& query,
                           AdminReply reply) = 0;
};

struct AdminLimits {
  uint32_t max_connections = 32;
  uint32_t request_timeout_ms = 5000;
  uint64_t max_pending_answer_bytes = 32 << 20;
};

class AdminListener {
 public:
  AdminListener(Dispatcher& dispatcher, AdminHandler& handler, SocketAddress address, AdminLimits limits);
  ~AdminListener();

  Status start();
  const SocketAddress& boundAddress() const { return socket_.boundAddress(); }
  // Stops listening and closes the open connections: an answer being
  // written gets a second to finish, nothing else waits.
  void stop();

  AdminHandler& handler() { return handler_; }
  Dispatcher& dispatcher() { return dispatcher_; }
  const AdminLimits& limits() const { return limits_; }
  // A reload's new limits: for connections accepted from now on.
  void setLimits(AdminLimits limits) { limits_ = limits; }
  void onConnectionDone(AdminConnection& connection);
  // A connection refused at max_connections (all busy with requests).
  void logRefusal(const std::string& peer);
  // Answers written but not yet taken by their clients. Past
  // max_pending_answer_bytes, a request gets 503 at once instead of another
  // answer to hold.
  size_t answerBytesPending() const;
  // The AdminReply for a request on `connection`; it finds the connection by
  // id, so it stays safe to call after the connection is gone.
  AdminReply replyTo(uint64_t connection_id);

 private:
  void onAccept(uv_stream_s* server);

  Dispatcher& dispatcher_;
  AdminHandler& handler_;
  SocketAddress address_;
  AdminLimits limits_;
  TcpListener socket_;
  std::vector<std::unique_ptr<AdminConnection>> connections_;
  uint64_t next_connection_id_ = 1;
  LogThrottle refusal_log_;
};

}  // namespace sluice
