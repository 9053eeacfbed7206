// Top-level key "worker_spin_polls" end to end (core/dispatcher.h): under
// concurrent calls a worker polls instead of sleeping and some of those polls
// find work (/stats loop.spin_polls, loop.spin_polls_with_work); at rest it
// still sleeps, so an idle gateway uses next to no CPU; with 0 it never polls
// before sleeping. Calls succeed either way.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

constexpr int kClientThreads = 4;
constexpr int kCallsPerThread = 250;

nlohmann::json spinConfig(const std::string& backend, const nlohmann::json& spin_polls) {
  nlohmann::json config = catchAllConfig(backend);
  config["workers"] = 1;  // every call on one loop: its polls are the ones counted
  config["admin"] = {{"address", "127.0.0.1:0"}};
  if (!spin_polls.is_null()) config["worker_spin_polls"] = spin_polls;
  return config;
}

// Unary calls from kClientThreads threads at once, each on its own connection
// (connected first: see makeConnectedChannel), so the gateway's loop has new input while it is still answering. Returns ""
// when every call succeeded, else how many failed and how the first did.
std::string callConcurrently(const std::string& address) {
  std::vector<int> failures(kClientThreads, 0);
  std::vector<std::string> first(kClientThreads);
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int t = 0; t < kClientThreads; ++t) channels.push_back(makeConnectedChannel(address));
  std::vector<std::thread> threads;
  for (int t = 0; t < kClientThreads; ++t) {
    threads.emplace_back([&, t] {
      auto stub = example::Echo::NewStub(channels[t]);
      for (int i = 0; i < kCallsPerThread; ++i) {
        grpc::ClientContext ctx;
        setTimeout(ctx, kCallTimeout);
        EchoRequest req;
        req.set_payload("call " + std::to_string(i));
        EchoResponse resp;
        grpc::Status s = stub->Unary(&ctx, req, &resp);
        if ((!s.ok() || resp.payload() != req.payload()) && failures[t]++ == 0) {
          first[t] = "thread " + std::to_string(t) + " call " + std::to_string(i) + ": " + describe(s);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  int total = 0;
  std::string first_failure;
  for (int t = 0; t < kClientThreads; ++t) {
    total += failures[t];
    if (first_failure.empty()) first_failure = first[t];
  }
  return total == 0 ? "" : std::to_string(total) + " call(s) failed; first: " + first_failure;
}

// User + system CPU time of a process so far, in clock ticks (/proc/PID/stat).
long cpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold spaces.
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::vector<std::string> fields;
  std::string f;
  while (rest >> f) fields.push_back(f);
  REQUIRE(fields.size() > 12);
  return std::stol(fields[11]) + std::stol(fields[12]);  // utime, stime (fields 14 and 15)
}

}  // namespace

TEST_CASE("by default a busy worker polls before sleeping, and an idle one sleeps", "[e2e][spin]") {
  TestBackend backend("b");
  GatewayProcess gateway(spinConfig(backend.address(), nullptr));  // worker_spin_polls: 8
  const std::string admin = gateway.adminAddress();

  CHECK(callConcurrently(gateway.address()) == "");
  CHECK(backend.stats().calls.load() == kClientThreads * kCallsPerThread);
  CHECK(statValue(admin, "loop.spin_polls") > 0);
  // Some polls found the next request or answer already there: sleeps saved.
  CHECK(statValue(admin, "loop.spin_polls_with_work") > 0);
  CHECK(statValue(admin, "loop.spin_polls_with_work") <= statValue(admin, "loop.spin_polls"));

  // At rest the loop sleeps: a worker that kept polling would burn a core.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const long ticks_per_second = sysconf(_SC_CLK_TCK);
  long before = cpuTicks(gateway.pid());
  std::this_thread::sleep_for(std::chrono::seconds(1));
  long used = cpuTicks(gateway.pid()) - before;
  INFO("CPU ticks used by the idle gateway in 1 s: " << used << " of " << ticks_per_second);
  CHECK(used <= ticks_per_second / 10);
}

TEST_CASE("worker_spin_polls 0: a worker sleeps as soon as it has nothing to do", "[e2e][spin]") {
  TestBackend backend("b");
  GatewayProcess gateway(spinConfig(backend.address(), 0));
  const std::string admin = gateway.adminAddress();

  CHECK(callConcurrently(gateway.address()) == "");
  CHECK(backend.stats().calls.load() == kClientThreads * kCallsPerThread);
  CHECK(statValue(admin, "loop.spin_polls") == 0);
  CHECK(statValue(admin, "loop.spin_polls_with_work") == 0);
}

TEST_CASE("worker_spin_polls out of range is a config error at its path", "[e2e][spin]") {
  ProcessResult result = runValidate(spinConfig("127.0.0.1:50061", 5000).dump(2));
  INFO(result.output);
  CHECK(result.exitCode == 2);
  CHECK_THAT(result.errorOutput, Catch::Contains("/worker_spin_polls"));
}

}  // namespace sluice::test
