// Process lifecycle end to end: graceful drain on SIGTERM with streams of all
// four kinds open, and live reload on SIGHUP (good and broken configs).
#include <catch2/catch.hpp>

#include <signal.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

constexpr int kPerKind = 100;
constexpr uint32_t kStepMs = 250;  // each call takes about 4 steps

// One call of each kind, each lasting about 4 * kStepMs; returns "" or what went wrong.
std::string unaryCall(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, std::chrono::seconds(20));
  EchoRequest req;
  req.set_sleep_ms(4 * kStepMs);
  EchoResponse resp;
  auto s = stub.Unary(&ctx, req, &resp);
  return s.ok() ? "" : "unary: " + describe(s);
}

std::string serverStreamCall(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, std::chrono::seconds(20));
  EchoRequest req;
  req.set_response_count(4);
  req.set_response_interval_ms(kStepMs);
  auto reader = stub.ServerStream(&ctx, req);
  EchoResponse resp;
  int n = 0;
  while (reader->Read(&resp)) ++n;
  auto s = reader->Finish();
  if (!s.ok()) return "server stream: " + describe(s);
  return n == 4 ? "" : "server stream: " + std::to_string(n) + " messages";
}

std::string clientStreamCall(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, std::chrono::seconds(20));
  EchoResponse resp;
  auto writer = stub.ClientStream(&ctx, &resp);
  for (int i = 0; i < 4; ++i) {
    if (!writer->Write(EchoRequest())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(kStepMs));
  }
  writer->WritesDone();
  auto s = writer->Finish();
  if (!s.ok()) return "client stream: " + describe(s);
  return resp.received_messages() == 4 ? "" : "client stream: " + std::to_string(resp.received_messages());
}

std::string bidiCall(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, std::chrono::seconds(20));
  auto stream = stub.Bidi(&ctx);
  int got = 0;
  for (int i = 0; i < 4; ++i) {
    if (!stream->Write(EchoRequest())) break;
    EchoResponse resp;
    if (stream->Read(&resp)) ++got;
    std::this_thread::sleep_for(std::chrono::milliseconds(kStepMs));
  }
  stream->WritesDone();
  auto s = stream->Finish();
  if (!s.ok()) return "bidi: " + describe(s);
  return got == 4 ? "" : "bidi: " + std::to_string(got) + " responses";
}

}  // namespace

TEST_CASE("SIGTERM drains 100 open calls of each kind; late calls get UNAVAILABLE; exit 0", "[e2e][lifecycle]") {
  TestBackend backend("b");
  auto config = catchAllConfig(backend.address());
  config["drain_timeout_ms"] = 15000;
  GatewayProcess gateway(config, GatewayProcess::Options{"info", std::chrono::milliseconds{10000}, {}, {}});
  auto channel = makeChannel(gateway.address());
  auto stub = example::Echo::NewStub(channel);

  std::vector<std::string> problems(4 * kPerKind);
  std::vector<std::thread> threads;
  using CallFn = std::string (*)(example::Echo::Stub&);
  const CallFn kinds[] = {unaryCall, serverStreamCall, clientStreamCall, bidiCall};
  for (int k = 0; k < 4; ++k) {
    for (int i = 0; i < kPerKind; ++i) {
      threads.emplace_back([&, k, i] { problems[k * kPerKind + i] = kinds[k](*stub); });
    }
  }
  REQUIRE(waitFor([&] { return backend.stats().active >= 4 * kPerKind; }, std::chrono::seconds(10)));
  auto signalled = std::chrono::steady_clock::now();
  gateway.signal(SIGTERM);
  // Give the gateway a moment to stop accepting, then try a new call.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  {
    auto late = example::Echo::NewStub(makeChannel(gateway.address()));
    grpc::ClientContext ctx;
    setTimeout(ctx, std::chrono::seconds(5));
    EchoResponse resp;
    auto s = late->Unary(&ctx, EchoRequest(), &resp);
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  for (auto& t : threads) t.join();
  int failures = 0;
  for (const auto& p : problems) {
    if (!p.empty() && failures++ < 5) UNSCOPED_INFO(p);
  }
  CHECK(failures == 0);
  REQUIRE(waitFor([&] { return !gateway.running(); }, std::chrono::seconds(15)));
  CHECK(std::chrono::steady_clock::now() - signalled < std::chrono::seconds(15));
  CHECK(gateway.stop() == 0);
  CHECK_THAT(gateway.logs(), Catch::Contains("draining 400 active stream(s)"));
}

TEST_CASE("SIGHUP reloads routes for new calls while open streams keep their backend", "[e2e][lifecycle]") {
  TestBackend a("a");
  TestBackend b("b");
  auto clusters = nlohmann::json::array({cluster("a", {a.address()}), cluster("b", {b.address()})});
  auto to = [&](const std::string& c) { return gatewayConfig(nlohmann::json::array({route("prefix", "/", c)}), clusters); };
  GatewayProcess gateway(to("a"), GatewayProcess::Options{"info", std::chrono::milliseconds{10000}, {}, {}});
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto backendOfUnary = [&] {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoResponse resp;
    auto s = stub->Unary(&ctx, EchoRequest(), &resp);
    INFO(describe(s));
    REQUIRE(s.ok());
    return resp.backend();
  };
  REQUIRE(backendOfUnary() == "a");

  grpc::ClientContext streamCtx;
  setTimeout(streamCtx, std::chrono::seconds(20));
  auto stream = stub->Bidi(&streamCtx);
  EchoResponse resp;
  REQUIRE(stream->Write(EchoRequest()));
  REQUIRE(stream->Read(&resp));
  REQUIRE(resp.backend() == "a");

  std::ofstream(gateway.configPath()) << to("b").dump(2);
  gateway.signal(SIGHUP);
  REQUIRE(waitFor([&] { return gateway.logs().find("config reloaded") != std::string::npos; }, std::chrono::seconds(5)));
  CHECK(backendOfUnary() == "b");
  REQUIRE(stream->Write(EchoRequest()));
  REQUIRE(stream->Read(&resp));
  CHECK(resp.backend() == "a");  // the open stream stays on its backend

  SECTION("a broken config changes nothing and is logged") {
    std::ofstream(gateway.configPath()) << R"({"listeners": [], "clusters": "oops"})";
    gateway.signal(SIGHUP);
    REQUIRE(waitFor([&] { return gateway.logs().find("reload refused") != std::string::npos; },
                    std::chrono::seconds(5)));
    CHECK_THAT(gateway.logs(), Catch::Contains("/clusters"));
    CHECK(backendOfUnary() == "b");
  }
  REQUIRE(stream->WritesDone());
  REQUIRE_OK(stream->Finish());
}

}  // namespace sluice::test
