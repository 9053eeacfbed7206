// A filter that decides calls on a thread of its own and comes back through
// the call's CallHandle (test/gateway's test_off_thread, in
// sluice_test_gateway), with real grpc++ clients and backend: verdicts reach
// their calls on every worker, a verdict for a call that ended meanwhile is
// dropped rather than run on a deleted filter, one that throws ends its call,
// and verdicts still pending do not trouble a stop.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/frame_socket.h"

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
    c["admin"] = {{"address", "127.0.0.1:0"}};
    return c;
  }
  static GatewayProcess::Options options() {
    GatewayProcess::Options o;
    o.binary = testGatewayBinary();
    return o;
  }
  // The trailers the filter adds: verdicts posted and run so far.
  struct Counts {
    std::string posted = "(none)";
    std::string ran = "(none)";
  };
  // A unary call whose verdict comes `spec` ("allow:MS", "deny:MS") later.
  static grpc::Status call(example::Echo::Stub& stub, const std::string& spec,
                           std::chrono::milliseconds timeout = kCallTimeout, Counts* counts = nullptr) {
    grpc::ClientContext ctx;
    setTimeout(ctx, timeout);
    if (!spec.empty()) ctx.AddMetadata("x-test-off-thread", spec);
    EchoResponse resp;
    grpc::Status s = stub.Unary(&ctx, EchoRequest(), &resp);
    if (counts != nullptr) {
      const auto& trailers = ctx.GetServerTrailingMetadata();
      auto value = [&](const char* key) {
        auto it = trailers.find(key);
        return it == trailers.end() ? std::string("(none)") : std::string(it->second.data(), it->second.size());
      };
      counts->posted = value("x-test-off-thread-posted");
      counts->ran = value("x-test-off-thread-ran");
    }
    return s;
  }
  grpc::Status call(const std::string& spec, std::chrono::milliseconds timeout = kCallTimeout,
                    Counts* counts = nullptr) {
    return call(*stub, spec, timeout, counts);
  }
  // Waits (calls without a verdict report the counts) until `posted`
  // verdicts have been posted, then gives the worker a moment to take them.
  bool waitForPosted(const std::string& posted) {
    Counts counts;
    const bool seen = waitFor([&] {
      REQUIRE_OK(call("", kCallTimeout, &counts));
      return counts.posted == posted;
    }, std::chrono::seconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return seen;
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
  // A verdict that throws ends its call, as a hook that throws would, rather
  // than leave it paused until its deadline.
  grpc::Status threw = f.call("throw:50");
  CHECK(threw.error_code() == grpc::StatusCode::INTERNAL);
  // Named as a hook that throws is: the handle was asked for in test_off_thread's hook.
  CHECK(threw.error_message() == "filter \"test_off_thread\" failed");
  CHECK_THAT(f.gateway.logs(), Catch::Contains("filter \"test_off_thread\" in work a filter posted to its call "
                                               "(CallHandle::post) threw"));
  CHECK(f.backend.stats().calls == 1);
  // Many at once, over connections of their own (spread over both workers),
  // connected first (see makeConnectedChannel).
  std::vector<std::unique_ptr<example::Echo::Stub>> stubs;
  for (int c = 0; c < 8; ++c) stubs.push_back(example::Echo::NewStub(makeConnectedChannel(f.gateway.address())));
  std::vector<std::thread> threads;
  std::vector<grpc::Status> statuses(40);
  for (int i = 0; i < 40; ++i) {
    threads.emplace_back([&, i] {
      statuses[i] = OffThreadFixture::call(*stubs[i % 8], "allow:" + std::to_string(10 + i % 7 * 10));
    });
  }
  for (auto& t : threads) t.join();
  for (const grpc::Status& s : statuses) {
    INFO("grpc status: " << describe(s));
    CHECK(s.ok());
  }
  CHECK(f.backend.stats().calls == 41);
  CHECK(f.gateway.running());
}

// Each reload retires the factory and its thread, which the next config's
// factory does not share: the retired one's thread is joined off the loop,
// and a refused reload starts none. The calls around them are served, and
// the process keeps no thread per reload.
TEST_CASE("a factory thread that reloads retire is stopped off the loop", "[e2e][call_handle]") {
  OffThreadFixture f;
  REQUIRE_OK(f.call("allow:10"));
  auto threads = [&] {
    std::ifstream status("/proc/" + std::to_string(f.gateway.pid()) + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
    }
    return -1;
  };
  const int before = threads();
  const std::string text = OffThreadFixture::config(f.backend.address()).dump();
  for (size_t i = 1; i <= 5; ++i) {
    REQUIRE(reloadWithSighup(f.gateway, text, i));
    REQUIRE_OK(f.call("allow:10"));
  }
  // A refused reload (the listener's filters are fine, a cluster is not).
  auto broken = OffThreadFixture::config(f.backend.address());
  broken["clusters"][0]["endpoints"] = "nope";
  std::ofstream(f.gateway.configPath()) << broken.dump();
  f.gateway.signal(SIGHUP);
  REQUIRE(waitFor([&] { return logCount(f.gateway, "reload refused") == 1; }, std::chrono::seconds(5)));
  CHECK(f.call("deny:10").error_code() == grpc::StatusCode::PERMISSION_DENIED);
  // Retired factories' threads and their off-loop joiners come and go.
  CHECK(waitFor([&] { return threads() <= before + 1; }, std::chrono::seconds(5)));
  CHECK(f.gateway.stop() == 0);
}

TEST_CASE("a verdict for a call that ended before it came is dropped, not run", "[e2e][call_handle]") {
  OffThreadFixture f;
  // Ten calls the client gives up on at 100 ms, their verdicts due at 400 ms.
  for (int i = 0; i < 10; ++i) {
    grpc::Status s = f.call(i % 2 == 0 ? "allow:400" : "deny:400", std::chrono::milliseconds(100));
    CHECK(s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  CHECK(f.waitForPosted("10"));
  OffThreadFixture::Counts counts;
  REQUIRE_OK(f.call("allow:10", kCallTimeout, &counts));
  CHECK(counts.posted == "11");
  CHECK(counts.ran == "1");  // this call's own verdict only
  CHECK(f.gateway.running());
  // Verdicts still due when the gateway stops: those of calls already given
  // up on, due long after (the factory's close() drops them), and those of
  // calls a drain waits for (due at 500 ms, they let the calls finish).
  for (int i = 0; i < 4; ++i) {
    CHECK(f.call("allow:5000", std::chrono::milliseconds(50)).error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (f.call("allow:500").ok()) ok++;
    });
  }
  CHECK(waitFor([&] { return statValue(f.gateway.adminAddress(), "listener.grpc.downstream_rq_active") == 4; },
                std::chrono::seconds(5)));
  CHECK(f.gateway.stop() == 0);
  for (auto& t : threads) t.join();
  CHECK(ok == 4);
}

TEST_CASE("work posted after a call ended does not run while its stream is still open", "[e2e][call_handle]") {
  OffThreadFixture f;
  // A client that grants no window: the reply's message and trailers wait in
  // the gateway, so the call has ended but its stream lives on.
  FrameSocket stuck(f.gateway.port());
  stuck.setStreamWindow(0);
  EchoRequest request;
  request.set_response_count(1);
  request.set_response_size(100);
  stuck.openServerStream(1, request, FrameSocket::literal("x-test-off-thread-late", "300"));
  CHECK(f.waitForPosted("1"));
  OffThreadFixture::Counts counts;
  REQUIRE_OK(f.call("", kCallTimeout, &counts));
  CHECK(counts.ran == "0");
  CHECK(f.gateway.running());
}

}  // namespace sluice::test
