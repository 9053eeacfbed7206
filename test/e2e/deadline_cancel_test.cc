// Deadlines (the client's, and one the gateway enforces from grpc-timeout)
// and client cancellation, before and after the first response. In every
// case the backend must learn that the call is over: a gateway that leaves
// abandoned upstream streams running leaks them.
#include <catch2/catch.hpp>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/http_client.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using example::BackendStats;
using example::EchoRequest;
using example::EchoResponse;
using Clock = std::chrono::steady_clock;

// How long the backend may take to see a cancel that happened at the client.
constexpr auto kCancelPropagation = 2500ms;

bool backendSawCancel(TestBackend& backend, int count = 1) {
  return BackendStats::waitUntil([&] { return backend.stats().cancelled.load() >= count; },
                                 kCancelPropagation);
}

TEST_CASE_METHOD(SingleBackendFixture, "client deadline on a sleeping backend",
                 "[e2e][deadline]") {
  // Deadlines of 1 s: the call, on connections not yet open, must reach the
  // backend before it ends, or the backend has nothing to see cancelled.
  grpc::ClientContext context;
  setTimeout(context, 1000ms);
  EchoRequest request;
  request.set_sleep_ms(5000);
  EchoResponse response;
  const auto start = Clock::now();
  grpc::Status status = stub->Unary(&context, request, &response);
  const auto elapsed = Clock::now() - start;
  REQUIRE_STATUS(status, grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(elapsed < 3s);
  CHECK(backendSawCancel(backend));
}

TEST_CASE_METHOD(SingleBackendFixture, "gateway enforces grpc-timeout from the request",
                 "[e2e][deadline]") {
  // The raw client, unlike grpc++, does not give up by itself: only the
  // gateway (or the backend it forwards the timeout to) can end this call.
  RawH2Client raw("127.0.0.1", gateway.port());
  EchoRequest request;
  request.set_sleep_ms(5000);
  RawRequest rawRequest =
      RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(request.SerializeAsString()));
  rawRequest.headers.emplace_back("grpc-timeout", "1000m");
  const auto start = Clock::now();
  RawResponse response = raw.request(rawRequest, 8s);
  const auto elapsed = Clock::now() - start;
  INFO(response.describe());
  CHECK(response.status == 200);
  CHECK(response.grpcStatus() == 4);
  CHECK(elapsed < 3s);
  CHECK(backendSawCancel(backend));
}

// grpc-timeout allows up to 99999999H (11,000 years); added to the clock it
// must saturate, not wrap into the past.
TEST_CASE_METHOD(SingleBackendFixture, "the largest grpc-timeout is a deadline far away, not one passed",
                 "[e2e][deadline]") {
  for (const char* timeout : {"99999999H", "2562047H", "99999999S"}) {
    RawH2Client raw("127.0.0.1", gateway.port());
    EchoRequest request;
    request.set_payload("far");
    RawRequest rawRequest =
        RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(request.SerializeAsString()));
    rawRequest.headers.emplace_back("grpc-timeout", timeout);
    RawResponse response = raw.request(rawRequest, 5s);
    INFO(timeout << ": " << response.describe());
    CHECK(response.grpcStatus() == 0);
    auto frames = parseGrpcFrames(response.body);
    REQUIRE(frames.has_value());
    REQUIRE(frames->size() == 1);
    EchoResponse echoed;
    REQUIRE(echoed.ParseFromString(frames->front()));
    CHECK(echoed.payload() == "far");
  }
}

TEST_CASE("a route timeout still caps a call that sends the largest grpc-timeout", "[e2e][deadline]") {
  TestBackend backend("b");
  nlohmann::json r = route("prefix", "/", "one");
  r["timeout_ms"] = 300;
  GatewayProcess gateway(
      gatewayConfig(nlohmann::json::array({r}), nlohmann::json::array({cluster("one", {backend.address()})})));
  RawH2Client raw("127.0.0.1", gateway.port());
  EchoRequest request;
  request.set_sleep_ms(3000);
  RawRequest rawRequest = RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(request.SerializeAsString()));
  rawRequest.headers.emplace_back("grpc-timeout", "99999999H");
  const auto start = Clock::now();
  RawResponse response = raw.request(rawRequest, 5s);
  INFO(response.describe());
  CHECK(response.grpcStatus() == 4);
  CHECK(Clock::now() - start < 2s);
}

TEST_CASE_METHOD(SingleBackendFixture, "client cancels before the first response",
                 "[e2e][cancel]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoRequest request;
  request.set_sleep_ms(5000);
  request.set_response_count(3);
  auto reader = stub->ServerStream(&context, request);
  // Cancel only once the call has reached the backend, so the cancel has
  // something upstream to reset.
  REQUIRE(BackendStats::waitUntil([&] { return backend.stats().calls.load() >= 1; }, 5s));
  const auto start = Clock::now();
  context.TryCancel();
  EchoResponse response;
  CHECK_FALSE(reader->Read(&response));
  REQUIRE_STATUS(reader->Finish(), grpc::StatusCode::CANCELLED);
  CHECK(Clock::now() - start < 2s);
  CHECK(backendSawCancel(backend));
  CHECK(backend.stats().messagesSent.load() == 0);
}

TEST_CASE_METHOD(SingleBackendFixture, "client cancels after the first response",
                 "[e2e][cancel]") {
  constexpr uint32_t kAsked = 500;
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoRequest request;
  request.set_response_count(kAsked);
  request.set_response_interval_ms(20);

  SECTION("server streaming") {
    auto reader = stub->ServerStream(&context, request);
    EchoResponse response;
    REQUIRE(reader->Read(&response));
    context.TryCancel();
    while (reader->Read(&response)) {
    }
    REQUIRE_STATUS(reader->Finish(), grpc::StatusCode::CANCELLED);
  }

  SECTION("bidi") {
    auto stream = stub->Bidi(&context);
    REQUIRE(stream->Write(request));
    EchoResponse response;
    REQUIRE(stream->Read(&response));
    context.TryCancel();
    while (stream->Read(&response)) {
    }
    REQUIRE_STATUS(stream->Finish(), grpc::StatusCode::CANCELLED);
  }

  CHECK(backendSawCancel(backend));
  // The backend stopped early instead of streaming into the void.
  CHECK(BackendStats::waitUntil([&] { return backend.stats().active.load() == 0; }, 2s));
  CHECK(backend.stats().messagesSent.load() < kAsked);
}

// A grpc++ client resets the stream at its own deadline, a little before the
// gateway's timer for the same deadline fires: the metrics (and the access
// log, which reads the same status) must still say DEADLINE_EXCEEDED, and a
// cancel well before the deadline CANCELLED.
TEST_CASE("a client's own deadline counts as DEADLINE_EXCEEDED, its cancel as CANCELLED", "[e2e][deadline][admin]") {
  TestBackend backend("b");
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "one")}),
                              nlohmann::json::array({cluster("one", {backend.address()})}));
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  constexpr int kDeadlines = 5;
  for (int i = 0; i < kDeadlines; ++i) {
    grpc::ClientContext context;
    setTimeout(context, 300ms);
    EchoRequest request;
    request.set_sleep_ms(5000);
    EchoResponse response;
    REQUIRE_STATUS(stub->Unary(&context, request, &response), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_sleep_ms(5000);
    auto reader = stub->ServerStream(&context, request);
    REQUIRE(BackendStats::waitUntil([&] { return backend.stats().calls.load() >= kDeadlines + 1; }, 5s));
    context.TryCancel();
    EchoResponse response;
    CHECK_FALSE(reader->Read(&response));
    REQUIRE_STATUS(reader->Finish(), grpc::StatusCode::CANCELLED);
  }
  const std::string admin = gateway.adminAddress();
  const std::string unary = "grpc_method=\"Unary\"";
  const std::string stream = "grpc_method=\"ServerStream\"";
  std::string text;
  // The gateway records a call when its stream closes, after the client
  // has seen the end.
  REQUIRE(BackendStats::waitUntil(
      [&] {
        text = http(admin, "GET", "/stats/prometheus").body;
        return metric(text, "grpc_server_handled_total", {stream}) == 1 &&
               metric(text, "grpc_server_handled_total", {unary}) == kDeadlines;
      },
      3s));
  INFO(text);
  CHECK(metric(text, "grpc_server_handled_total", {unary, "grpc_code=\"DEADLINE_EXCEEDED\""}) == kDeadlines);
  CHECK(metric(text, "grpc_server_handled_total", {stream, "grpc_code=\"CANCELLED\""}) == 1);
}

}  // namespace
}  // namespace sluice::test
