// The metadata filter through a real gateway: request edits the backend
// sees, response header and trailer edits the client sees, x-forwarded-for.
#include <catch2/catch.hpp>

#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

nlohmann::json metadataGateway(const std::string& backend) {
  nlohmann::json config = catchAllConfig(backend);
  nlohmann::json metadata = nlohmann::json::parse(R"({
    "name": "metadata",
    "config": {
      "request": {"remove": ["x-secret"], "set": {"x-tenant": "acme"}, "add": {"x-via": ["sluice", "edge"]}},
      "response": {"set": {"x-served-by": "sluice"}, "remove": ["x-text"]},
      "response_trailers": {"add": {"x-trailer-added": "yes"}, "remove": ["x-trailer"]},
      "x_forwarded_for": "append"
    }})");
  auto& chain = config["listeners"][0]["filters"];
  chain.insert(chain.begin(), metadata);
  return config;
}

struct MetadataFixture {
  TestBackend backend{"primary"};
  GatewayProcess gateway{metadataGateway(backend.address())};
  std::shared_ptr<grpc::Channel> channel = makeChannel(gateway.address());
  std::unique_ptr<example::Echo::Stub> stub = example::Echo::NewStub(channel);
};

}  // namespace

TEST_CASE_METHOD(MetadataFixture, "metadata filter: request edits reach the backend", "[e2e][metadata-filter]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  context.AddMetadata("x-secret", "do not forward");
  context.AddMetadata("x-tenant", "spoofed");
  context.AddMetadata("x-forwarded-for", "192.0.2.10");
  EchoRequest request;
  request.set_echo_metadata(true);
  EchoResponse response;
  REQUIRE_OK(stub->Unary(&context, request, &response));
  const auto& seen = response.request_metadata();
  CHECK(seen.count("x-secret") == 0);
  REQUIRE(seen.count("x-tenant") == 1);
  CHECK(seen.at("x-tenant") == "acme");
  REQUIRE(seen.count("x-via") == 1);
  CHECK((seen.at("x-via") == "sluice,edge" || seen.at("x-via") == "sluice, edge"));
  REQUIRE(seen.count("x-forwarded-for") == 1);
  CHECK(seen.at("x-forwarded-for") == "192.0.2.10, 127.0.0.1");
}

TEST_CASE_METHOD(MetadataFixture, "metadata filter: response edits reach the client", "[e2e][metadata-filter]") {
  SECTION("headers, messages, trailers") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.AddMetadata("x-text", "echoed back by the backend, removed by the gateway");
    context.AddMetadata("x-kept", "echoed");
    EchoRequest request;
    request.set_echo_metadata(true);
    request.set_response_count(2);
    auto reader = stub->ServerStream(&context, request);
    EchoResponse response;
    int received = 0;
    while (reader->Read(&response)) ++received;
    REQUIRE_OK(reader->Finish());
    CHECK(received == 2);
    const auto& initial = context.GetServerInitialMetadata();
    CHECK(metadataValue(initial, "x-served-by") == "sluice");
    CHECK(metadataValue(initial, "x-text") == std::nullopt);
    CHECK(metadataValue(initial, "x-kept") == "echoed");
    const auto& trailing = context.GetServerTrailingMetadata();
    CHECK(metadataValue(trailing, "x-trailer-added") == "yes");
    CHECK(metadataValue(trailing, "x-trailer") == std::nullopt);
    CHECK(metadataValue(trailing, "x-trailer-bin").has_value());
  }
  SECTION("a trailers-only error response") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_echo_metadata(true);
    request.set_status_code(grpc::StatusCode::NOT_FOUND);
    EchoResponse response;
    REQUIRE_STATUS(stub->Unary(&context, request, &response), grpc::StatusCode::NOT_FOUND);
    const auto& trailing = context.GetServerTrailingMetadata();
    CHECK(metadataValue(trailing, "x-trailer-added") == "yes");
    CHECK(metadataValue(trailing, "x-trailer") == std::nullopt);
  }
}

TEST_CASE("metadata filter: x_forwarded_for replace leaves the backend no client-made address header",
          "[e2e][metadata-filter]") {
  TestBackend backend("primary");
  nlohmann::json config = catchAllConfig(backend.address());
  auto& chain = config["listeners"][0]["filters"];
  chain.insert(chain.begin(), nlohmann::json{{"name", "metadata"}, {"config", {{"x_forwarded_for", "replace"}}}});
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  context.AddMetadata("x-forwarded-for", "203.0.113.66");
  context.AddMetadata("x-real-ip", "203.0.113.66");
  context.AddMetadata("forwarded", "for=203.0.113.66");
  EchoRequest request;
  request.set_echo_metadata(true);
  EchoResponse response;
  REQUIRE_OK(stub->Unary(&context, request, &response));
  const auto& seen = response.request_metadata();
  REQUIRE(seen.count("x-forwarded-for") == 1);
  CHECK(seen.at("x-forwarded-for") == "127.0.0.1");
  REQUIRE(seen.count("x-real-ip") == 1);
  CHECK(seen.at("x-real-ip") == "127.0.0.1");
  CHECK(seen.count("forwarded") == 0);
}

TEST_CASE("metadata filter: --validate reports every mistake with its path", "[e2e][metadata-filter]") {
  nlohmann::json config = metadataGateway("127.0.0.1:1");
  auto& md = config["listeners"][0]["filters"][0]["config"];
  md["request"]["set"] = {{"grpc-timeout", "1S"}};
  md["x_forwarded_for"] = true;
  ProcessResult result = runValidate(config.dump());
  INFO(result.output);
  CHECK(result.exitCode == 2);
  CHECK(result.output.find("/listeners/0/filters/0/config/request/set/grpc-timeout") != std::string::npos);
  CHECK(result.output.find("/listeners/0/filters/0/config/x_forwarded_for") != std::string::npos);
}

}  // namespace sluice::test
