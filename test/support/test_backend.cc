#include "test/support/test_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <grpcpp/health_check_service_interface.h>

namespace sluice::test {

int listenOnLoopback(int& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0 || ::listen(fd, 16) != 0) {
    std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot listen on 127.0.0.1: " + why);
  }
  port = ntohs(a.sin_port);
  return fd;
}

TestBackend::TestBackend(std::string name) : TestBackend(std::move(name), "127.0.0.1", 0) {}

TestBackend::TestBackend(std::string name, std::string ip, int port)
    : name_(std::move(name)), ip_(std::move(ip)), port_(port) {
  start();
}

TestBackend::~TestBackend() { stop(); }

void TestBackend::start() {
  if (server_) return;
  auto backend = std::make_unique<example::EchoBackend>(name_);
  // Every test backend serves grpc.health.v1, which the gateway's active
  // health checks ask (a process-wide grpc++ switch, read when a server is built).
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int selected = 0;
  builder.AddListeningPort(ip_ + ":" + std::to_string(port_), grpc::InsecureServerCredentials(),
                           &selected);
  backend->addTo(builder);
  // Without this a restarted backend could share a port with another
  // process's socket (grpc++ sets SO_REUSEPORT by default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  auto server = builder.BuildAndStart();
  if (!server || selected == 0) {
    throw std::runtime_error("backend " + name_ + ": cannot listen on " + ip_ + ":" + std::to_string(port_));
  }
  port_ = selected;
  backend_ = std::move(backend);
  server_ = std::move(server);
}

void TestBackend::stop(std::chrono::milliseconds grace) {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
  server_.reset();
  // backend_ stays: its stats remain readable until the next start().
}

ClosedPort::ClosedPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error(std::string("ClosedPort: ") + std::strerror(errno));
  }
  port_ = ntohs(address.sin_port);
}

ClosedPort::~ClosedPort() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace sluice::test
