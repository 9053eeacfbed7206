// The usual e2e set-up: one in-process backend, one gateway routing every
// call to it, and a grpc++ channel to the gateway.
#pragma once

#include <signal.h>

#include <chrono>
#include <cstddef>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "echo.grpc.pb.h"
#include "test/support/configs.h"
#include "test/support/gateway_process.h"
#include "test/support/grpc_helpers.h"
#include "test/support/test_backend.h"

namespace sluice::test {

// Deadline for ordinary calls: generous on a loaded machine, but a hang
// still ends the test.
inline constexpr std::chrono::milliseconds kCallTimeout{10'000};

// An empty Echo/Unary call with the usual deadline.
inline grpc::Status callEmptyUnary(example::Echo::Stub& stub) {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  example::EchoResponse response;
  return stub.Unary(&context, example::EchoRequest(), &response);
}

// Polls `condition` every 20 ms until it holds (true) or `timeout` passes (false).
inline bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// How many times `text` occurs in the gateway's log so far.
inline size_t logCount(const GatewayProcess& gateway, const std::string& text) {
  const std::string logs = gateway.logs();
  size_t n = 0;
  for (size_t at = logs.find(text); at != std::string::npos; at = logs.find(text, at + 1)) ++n;
  return n;
}

// Writes `config` to the gateway's config file, sends SIGHUP, and waits up to
// 5 s for the log's `nth` "config reloaded" (worker 0 logs it once it has the
// config; other workers take it a moment later). False on timeout.
inline bool reloadWithSighup(GatewayProcess& gateway, const std::string& config, size_t nth) {
  std::ofstream(gateway.configPath()) << config;
  gateway.signal(SIGHUP);
  return waitFor([&] { return logCount(gateway, "config reloaded") >= nth; }, std::chrono::seconds(5));
}

struct SingleBackendFixture {
  TestBackend backend{"primary"};
  GatewayProcess gateway{catchAllConfig(backend.address())};
  std::shared_ptr<grpc::Channel> channel = makeChannel(gateway.address());
  std::unique_ptr<example::Echo::Stub> stub = example::Echo::NewStub(channel);
};

}  // namespace sluice::test
