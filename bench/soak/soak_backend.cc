// sluice_soak_backend: the example Echo backend (examples/backend/echo_service)
// plus grpc.health.v1.Health, so that the gateway's health checks see it
// SERVING. The example backend binary does not serve health checks.
//
//   sluice_soak_backend --address 127.0.0.1:PORT --name NAME
// Prints "listening on HOST:PORT" once serving; SIGTERM/SIGINT: graceful stop
// (2 s for calls in flight, as the example backend does).
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "examples/backend/echo_service.h"

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:0";
  std::string name = "soak";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string arg = argv[i];
    if (arg == "--address") address = argv[i + 1];
    else if (arg == "--name") name = argv[i + 1];
    else {
      std::cerr << "usage: sluice_soak_backend [--address HOST:PORT] [--name NAME]\n";
      return 2;
    }
  }
  // Only sigwait() below sees the stop signals (grpc++ threads inherit the mask).
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  sluice::example::EchoBackend backend(name);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  backend.addTo(builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "soak backend " << name << ": cannot listen on " << address << "\n";
    return 1;
  }
  std::string host = address.substr(0, address.rfind(':'));
  std::cout << "listening on " << host << ":" << port << std::endl;

  int received = 0;
  sigwait(&stop, &received);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  return 0;
}
