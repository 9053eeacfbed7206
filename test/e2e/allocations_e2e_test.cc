// The cheap data path, proven: once a stream is warm, messages through the
// gateway cause no heap allocation (counted by the binary itself and read from
// the admin endpoint), whatever their size.
#include <catch2/catch.hpp>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

// process.allocations from GET /stats.
uint64_t gatewayAllocations(const std::string& admin) {
  return static_cast<uint64_t>(statValue(admin, "process.allocations"));
}

}  // namespace

TEST_CASE("a warm stream allocates nothing per message in the gateway", "[e2e][allocations]") {
  size_t size = GENERATE(size_t{64}, size_t{16 * 1024}, size_t{64 * 1024});
  INFO("message size " << size);
  TestBackend backend("b");
  auto config = catchAllConfig(backend.address());
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["workers"] = 1;
  GatewayProcess gateway(config, GatewayProcess::Options{"info", std::chrono::milliseconds{10000}, {}, {}, {}});
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, std::chrono::seconds(60));
  auto stream = stub->Bidi(&ctx);
  EchoRequest req;
  req.set_payload(std::string(size, 'x'));
  EchoResponse resp;
  auto pingPong = [&](int n) {
    for (int i = 0; i < n; ++i) {
      REQUIRE(stream->Write(req));
      REQUIRE(stream->Read(&resp));
    }
  };
  pingPong(300);  // warm: pools, windows and queues reach their steady size
  uint64_t before = gatewayAllocations(gateway.adminAddress());
  constexpr int kMessages = 3000;
  pingPong(kMessages);
  uint64_t after = gatewayAllocations(gateway.adminAddress());
  REQUIRE(stream->WritesDone());
  REQUIRE_OK(stream->Finish());
  // The admin request itself allocates (a few hundred, per read): allow that,
  // and nothing that grows with the number of messages.
  double per_message = static_cast<double>(after - before) / (2.0 * kMessages);
  INFO("allocations: " << (after - before) << " for " << 2 * kMessages << " messages (" << per_message
                       << " per message)");
  CHECK(per_message < 0.1);
}

}  // namespace sluice::test
