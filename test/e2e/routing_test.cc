// Routing: by service and by method to different backends, unknown services
// and methods (UNIMPLEMENTED), and a cluster whose endpoint is down
// (UNAVAILABLE).
#include <catch2/catch.hpp>

#include "test/support/e2e_fixture.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

TEST_CASE("routing by service and by method to two backends", "[e2e][routing]") {
  TestBackend alpha("alpha");
  TestBackend beta("beta");
  const auto routes = nlohmann::json::array({
      route("service", "sluice.example.Other", "beta-cluster"),
      route("method", "/sluice.example.Echo/Bidi", "beta-cluster"),
      route("prefix", "/", "alpha-cluster"),
  });
  const auto clusters = nlohmann::json::array({
      cluster("alpha-cluster", {alpha.address()}),
      cluster("beta-cluster", {beta.address()}),
  });
  GatewayProcess gateway(gatewayConfig(routes, clusters));
  auto channel = makeChannel(gateway.address());
  auto echo = example::Echo::NewStub(channel);
  auto other = example::Other::NewStub(channel);

  SECTION("a service route") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    REQUIRE_OK(other->Unary(&context, EchoRequest(), &response));
    CHECK(response.backend() == "beta");
    CHECK(response.method() == "/sluice.example.Other/Unary");
  }

  SECTION("a method route") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    auto stream = echo->Bidi(&context);
    REQUIRE(stream->Write(EchoRequest()));
    EchoResponse response;
    REQUIRE(stream->Read(&response));
    REQUIRE(stream->WritesDone());
    REQUIRE_OK(stream->Finish());
    CHECK(response.backend() == "beta");
  }

  SECTION("the other methods of the same service fall through to the prefix route") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    REQUIRE_OK(echo->Unary(&context, EchoRequest(), &response));
    CHECK(response.backend() == "alpha");

    grpc::ClientContext streamContext;
    setTimeout(streamContext, kCallTimeout);
    auto reader = echo->ServerStream(&streamContext, EchoRequest());
    REQUIRE(reader->Read(&response));
    CHECK(response.backend() == "alpha");
    while (reader->Read(&response)) {
    }
    REQUIRE_OK(reader->Finish());
  }

  CHECK(alpha.stats().calls.load() + beta.stats().calls.load() >= 1);
}

TEST_CASE("unknown service or method is UNIMPLEMENTED and names the method",
          "[e2e][routing][status]") {
  TestBackend backend("only");
  // No catch-all: only Other (any method) and Echo/Unary are routed.
  const auto routes = nlohmann::json::array({
      route("service", "sluice.example.Other", "backend"),
      route("method", "/sluice.example.Echo/Unary", "backend"),
  });
  GatewayProcess gateway(
      gatewayConfig(routes, nlohmann::json::array({cluster("backend", {backend.address()})})));
  auto channel = makeChannel(gateway.address());

  SECTION("routed calls still work") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    REQUIRE_OK(example::Echo::NewStub(channel)->Unary(&context, EchoRequest(), &response));
  }

  SECTION("unknown method of a known service") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    auto reader = example::Echo::NewStub(channel)->ServerStream(&context, EchoRequest());
    EchoResponse response;
    CHECK_FALSE(reader->Read(&response));
    grpc::Status status = reader->Finish();
    REQUIRE_STATUS(status, grpc::StatusCode::UNIMPLEMENTED);
    CHECK_THAT(status.error_message(), Catch::Contains("/sluice.example.Echo/ServerStream"));
  }

  SECTION("unknown service") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    grpc::Status status =
        callUnaryMethod(*channel, "/nowhere.v1.Missing/Find", context, EchoRequest(), &response);
    REQUIRE_STATUS(status, grpc::StatusCode::UNIMPLEMENTED);
    CHECK_THAT(status.error_message(), Catch::Contains("/nowhere.v1.Missing/Find"));
  }

  SECTION("the gateway answers trailers-only, as a gRPC server does") {
    RawH2Client raw("127.0.0.1", gateway.port());
    RawResponse response =
        raw.request(RawRequest::grpc("/nowhere.v1.Missing/Find", grpcFrame("")));
    INFO(response.describe());
    CHECK(response.trailersOnly());
    CHECK(response.grpcStatus() == 12);
    CHECK_THAT(response.grpcMessage(), Catch::Contains("/nowhere.v1.Missing/Find"));
  }

  CHECK(backend.stats().calls.load() <= 1);
}

TEST_CASE("backend down is UNAVAILABLE and names the cluster", "[e2e][routing][status]") {
  ClosedPort closed;
  GatewayProcess gateway(catchAllConfig(closed.address(), "inventory-cluster"));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));

  SECTION("unary") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    grpc::Status status = stub->Unary(&context, EchoRequest(), &response);
    REQUIRE_STATUS(status, grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(status.error_message(), Catch::Contains("inventory-cluster"));
  }

  SECTION("bidi") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    auto stream = stub->Bidi(&context);
    stream->Write(EchoRequest());
    stream->WritesDone();
    EchoResponse response;
    CHECK_FALSE(stream->Read(&response));
    grpc::Status status = stream->Finish();
    REQUIRE_STATUS(status, grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(status.error_message(), Catch::Contains("inventory-cluster"));
  }
}

}  // namespace
}  // namespace sluice::test
