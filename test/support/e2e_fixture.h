// The usual e2e set-up: one in-process backend, one gateway routing every
// call to it, and a grpc++ channel to the gateway.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
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

// Polls `condition` every 20 ms until it holds (true) or `timeout` passes (false).
inline bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

struct SingleBackendFixture {
  TestBackend backend{"primary"};
  GatewayProcess gateway{catchAllConfig(backend.address())};
  std::shared_ptr<grpc::Channel> channel = makeChannel(gateway.address());
  std::unique_ptr<example::Echo::Stub> stub = example::Echo::NewStub(channel);
};

}  // namespace sluice::test
