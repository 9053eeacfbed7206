// A filter that decides calls on a thread of its own and comes back through
// the call's CallHandle (test/gateway's test_off_thread, in
// sluice_test_gateway), with a real grpc++ client and backend: verdicts reach
// their calls, and a verdict for a call that ended meanwhile is dropped
// rather than run on a deleted filter.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

struct OffThreadFixture {
  OffThreadFixture() : gateway(config(backend.address()), options()),
                       stub(example::Echo::NewStub(makeChannel(gateway.address()))) {}
  static nlohmann::json config(const std::string& backend) {
    nlohmann::json c = catchAllConfig(backend);
    auto& chain = c["listeners"][0]["filters"];
    chain.insert(chain.begin(), nlohmann::json{{"name", "test_off_thread"}});
    c["workers"] = 2;
    return c;
  }
  static GatewayProcess::Options options() {
    GatewayProcess::Options o;
    o.binary = testGatewayBinary();
    return o;
  }
  // A unary call whose verdict comes `spec` ("allow:MS", "deny:MS") later;
  // `ran` gets the trailer saying how many verdicts had run by its reply.
  grpc::Status call(const std::string& spec, std::chrono::milliseconds timeout = kCallTimeout,
                    std::string* ran = nullptr) {
    grpc::ClientContext ctx;
    setTimeout(ctx, timeout);
    if (!spec.empty()) ctx.AddMetadata("x-test-off-thread", spec);
    EchoResponse resp;
    grpc::Status s = stub->Unary(&ctx, EchoRequest(), &resp);
    if (ran != nullptr) {
      auto it = ctx.GetServerTrailingMetadata().find("x-test-off-thread-ran");
      *ran = it == ctx.GetServerTrailingMetadata().end() ? "(none)" : std::string(it->second.data(), it->second.size());
    }
    return s;
  }
  TestBackend backend{"b"};
  GatewayProcess gateway;
  std::unique_ptr<example::Echo::Stub> stub;
};

}  // namespace

TEST_CASE("a verdict posted through the call's handle from another thread resumes or ends the call",
          "[e2e][call_handle]") {
  OffThreadFixture f;
  REQUIRE_OK(f.call("allow:50"));
  CHECK(f.backend.stats().calls == 1);
  grpc::Status denied = f.call("deny:50");
  CHECK(denied.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(denied.error_message() == "denied off the loop");
  CHECK(f.backend.stats().calls == 1);
  // Many at once, on both workers' calls.
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 40; ++i) {
    threads.emplace_back([&, i] {
      if (f.call("allow:" + std::to_string(10 + i % 7 * 10)).ok()) ok++;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 40);
  CHECK(f.gateway.running());
}

TEST_CASE("a verdict for a call that ended before it came is dropped, not run", "[e2e][call_handle]") {
  OffThreadFixture f;
  // Ten calls the client gives up on at 100 ms, their verdicts due at 400 ms.
  for (int i = 0; i < 10; ++i) {
    grpc::Status s = f.call(i % 2 == 0 ? "allow:400" : "deny:400", std::chrono::milliseconds(100));
    CHECK(s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  // Every one of those verdicts has been posted by now (the last at about
  // 1.4 s from the first call).
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  std::string ran;
  REQUIRE_OK(f.call("allow:10", kCallTimeout, &ran));
  CHECK(ran == "1");  // this call's own verdict only
  CHECK(f.backend.stats().calls == 1);
  CHECK(f.gateway.running());
  CHECK(f.gateway.stop() == 0);
}

}  // namespace sluice::test
