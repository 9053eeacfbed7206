// sluice_example_backend: serves sluice.example.Echo and sluice.example.Other
// until SIGINT or SIGTERM.
//
//   sluice_example_backend --address 127.0.0.1:50061 --name a
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include <grpcpp/grpcpp.h>

#include "examples/backend/echo_service.h"

namespace {

void usage() {
  std::cerr << "usage: sluice_example_backend [--address HOST:PORT] [--name NAME]\n";
}

// "127.0.0.1:0" -> "127.0.0.1:<port>" once the port is known.
std::string withPort(const std::string& address, int port) {
  auto colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  return host + ":" + std::to_string(port);
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:50061";
  std::string name = "backend";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--address" || arg == "--name") && i + 1 < argc) {
      (arg == "--address" ? address : name) = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }

  // Block the stop signals before grpc++ starts its threads, so they inherit
  // the mask and only sigwait() below ever sees the signal. A shell starts
  // background jobs with SIGINT ignored, and an ignored signal is discarded
  // rather than left pending for sigwait(): restore the default first.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);

  sluice::example::EchoBackend backend(name);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  backend.addTo(builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "backend " << name << ": cannot listen on " << address << "\n";
    return 1;
  }
  std::cout << "backend " << name << " listening on " << withPort(address, port) << std::endl;

  int received = 0;
  sigwait(&stopSignals, &received);
  std::cout << "backend " << name << " stopping (" << strsignal(received) << ")" << std::endl;
  // Give calls in flight a moment to finish, then cancel the rest.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  return 0;
}
