// Listener key "connection_balance" end to end: with two workers, "exact"
// (the default) spreads 8 long-lived grpc++ connections 4 + 4, in three
// rounds on one gateway (the kernel's SO_REUSEPORT hash alone splits 8
// connections 4 + 4 only ~27% of the time, so three even rounds by luck are
// ~2%); every connection serves calls after it was handed to another worker;
// the per-worker counts return to 0 when the clients leave. "kernel" serves
// every connection too; an unknown value is a config error at its JSON path.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

constexpr int kConnections = 8;
constexpr int kWorkers = 2;
const std::string kActive = "listener.grpc.downstream_cx_active";

std::string workerActive(int worker) {
  return "worker." + std::to_string(worker) + ".listener.grpc.downstream_cx_active";
}

nlohmann::json balancedConfig(const std::string& backend, const char* balance) {
  nlohmann::json config = catchAllConfig(backend);
  config["workers"] = kWorkers;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  if (balance != nullptr) config["listeners"][0]["connection_balance"] = balance;
  return config;
}

// One grpc++ channel, hence one TCP connection (makeChannel shares no
// subchannels), kept open between calls.
struct Client {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<example::Echo::Stub> stub;
};

void callOnce(Client& client, int index, const char* when) {
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoRequest req;
  req.set_payload("connection " + std::to_string(index));
  EchoResponse resp;
  INFO(when << " call on connection " << index);
  REQUIRE_OK(client.stub->Unary(&ctx, req, &resp));
  CHECK(resp.payload() == req.payload());
}

// Opens kConnections connections one after another, one call on each.
std::vector<Client> connectAll(const std::string& address) {
  std::vector<Client> clients;
  for (int i = 0; i < kConnections; ++i) {
    Client c;
    c.channel = makeChannel(address);
    c.stub = example::Echo::NewStub(c.channel);
    callOnce(c, i, "first");
    clients.push_back(std::move(c));
  }
  return clients;
}

// Bounded wait until the gateway counts no open connection, on any worker.
// Returns the last stats read.
std::map<std::string, int64_t> waitForNoConnections(const std::string& admin) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::map<std::string, int64_t> stats;
  for (;;) {
    stats = readStats(admin);
    bool idle = statValue(stats, kActive) == 0;
    for (int w = 0; w < kWorkers; ++w) idle = idle && statValue(stats, workerActive(w)) == 0;
    if (idle || std::chrono::steady_clock::now() > deadline) return stats;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void checkNoConnections(const std::string& admin) {
  auto stats = waitForNoConnections(admin);
  CHECK(statValue(stats, kActive) == 0);
  for (int w = 0; w < kWorkers; ++w) CHECK(statValue(stats, workerActive(w)) == 0);
}

}  // namespace

TEST_CASE("exact balance spreads long-lived connections evenly over the workers", "[e2e][balance]") {
  TestBackend backend("b");
  GatewayProcess gateway(balancedConfig(backend.address(), nullptr));  // "exact" by default
  const std::string admin = gateway.adminAddress();

  for (int round = 1; round <= 3; ++round) {
    INFO("round " << round);
    {
      std::vector<Client> clients = connectAll(gateway.address());
      auto stats = readStats(admin);
      CHECK(statValue(stats, kActive) == kConnections);
      CHECK(statValue(stats, workerActive(0)) == kConnections / kWorkers);
      CHECK(statValue(stats, workerActive(1)) == kConnections / kWorkers);
      // Every connection, wherever it was handed to, keeps serving calls.
      for (int i = 0; i < kConnections; ++i) callOnce(clients[i], i, "second");
    }
    // The clients are gone: the counts (and with them the balancer's, or the
    // next round would not split evenly) return to 0.
    checkNoConnections(admin);
  }
  CHECK(backend.stats().calls.load() == 3 * 2 * kConnections);
}

TEST_CASE("kernel balance still serves every connection", "[e2e][balance]") {
  TestBackend backend("b");
  GatewayProcess gateway(balancedConfig(backend.address(), "kernel"));
  const std::string admin = gateway.adminAddress();
  {
    std::vector<Client> clients = connectAll(gateway.address());
    auto stats = readStats(admin);
    CHECK(statValue(stats, kActive) == kConnections);
    CHECK(statValue(stats, workerActive(0)) + statValue(stats, workerActive(1)) == kConnections);
    for (int i = 0; i < kConnections; ++i) callOnce(clients[i], i, "second");
  }
  checkNoConnections(admin);
}

TEST_CASE("connection_balance accepts exact and kernel and names the path of anything else",
          "[e2e][balance]") {
  for (const char* ok : {"exact", "kernel"}) {
    nlohmann::json config = catchAllConfig("127.0.0.1:50061");
    config["listeners"][0]["connection_balance"] = ok;
    ProcessResult result = runValidate(config.dump(2));
    INFO(ok << "\n--- sluice output ---\n" << result.output);
    CHECK(result.exitCode == 0);
  }
  nlohmann::json config = catchAllConfig("127.0.0.1:50061");
  config["listeners"][0]["connection_balance"] = "round_robin";
  ProcessResult result = runValidate(config.dump(2));
  INFO(result.output);
  CHECK(result.exitCode == 2);
  CHECK_THAT(result.errorOutput, Catch::Contains("/listeners/0/connection_balance"));
  CHECK_THAT(result.errorOutput, Catch::Contains("round_robin"));
}

}  // namespace sluice::test
