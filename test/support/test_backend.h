// An in-process example backend (sluice.example.Echo and .Other) for e2e tests.
//
// TestBackend runs a grpc::Server on 127.0.0.1 (or another loopback address) with the services of one
// example::EchoBackend; the first start() picks a free port and restarts reuse
// it, so a gateway config written once stays valid across stop()/start(). Each
// start() makes a fresh EchoBackend: stats() counts from zero again.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "examples/backend/echo_service.h"

namespace sluice::test {

// A listening TCP socket on 127.0.0.1 at a free port (written to `port`), for
// the hand-made backends of some tests (raw HTTP/2, silent, garbage). Throws
// std::runtime_error when the kernel refuses.
int listenOnLoopback(int& port);

class TestBackend {
 public:
  // Starts serving at once.
  explicit TestBackend(std::string name);
  // On another loopback address (127.0.0.2, ...) and a given port (0: a free
  // one): two backends on one port, told apart by address.
  TestBackend(std::string name, std::string ip, int port);
  ~TestBackend();
  TestBackend(const TestBackend&) = delete;
  TestBackend& operator=(const TestBackend&) = delete;

  void start();
  // Sends GOAWAY and cancels calls still running after `grace`.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(500));
  bool running() const { return server_ != nullptr; }

  const std::string& name() const { return name_; }
  int port() const { return port_; }
  std::string address() const { return ip_ + ":" + std::to_string(port_); }
  example::BackendStats& stats() { return backend_->stats(); }

 private:
  std::string name_;
  std::string ip_;
  int port_ = 0;
  std::unique_ptr<example::EchoBackend> backend_;
  std::unique_ptr<grpc::Server> server_;
};

// A loopback port where nothing listens: a socket is bound to it (so nobody
// else gets it) but never listens, so connecting is refused at once.
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace sluice::test
