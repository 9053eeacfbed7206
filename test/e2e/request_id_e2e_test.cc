// x-request-id through a real gateway: made for calls without one, a client's
// kept (or replaced, as the listener says), one per call at the backend, and
// given back to the client with always_set_request_id_in_response.
#include <catch2/catch.hpp>

#include <regex>
#include <set>

#include "test/support/e2e_fixture.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

const std::regex kUuidV4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");

bool isUuid(const std::string& id) { return std::regex_match(id, kUuidV4); }

nlohmann::json requestIdGateway(const std::string& backend, const nlohmann::json& keys) {
  nlohmann::json config = catchAllConfig(backend);
  for (const auto& [key, value] : keys.items()) config["listeners"][0][key] = value;
  return config;
}

// The x-request-id values the backend saw ("" when none; repeated values
// joined with ','), after sending `ids` as the client's own.
std::string idAtBackend(example::Echo::Stub& stub, const std::vector<std::string>& ids) {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  for (const auto& id : ids) context.AddMetadata("x-request-id", id);
  EchoRequest request;
  request.set_echo_metadata(true);
  EchoResponse response;
  grpc::Status status = stub.Unary(&context, request, &response);
  INFO(status.error_message());
  REQUIRE(status.ok());
  auto it = response.request_metadata().find("x-request-id");
  return it == response.request_metadata().end() ? "" : it->second;
}

// The x-request-id of a trailers-only reply, which grpc++ hands over as
// trailing metadata; exactly one copy across headers and trailers.
std::string idOfTrailersOnlyReply(grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  CHECK(trailers.count("x-request-id") + context.GetServerInitialMetadata().count("x-request-id") == 1);
  auto id = metadataValue(trailers, "x-request-id");
  REQUIRE(id);
  return *id;
}

}  // namespace

TEST_CASE("request id: a call without one gets a fresh UUID, a client's own is kept", "[e2e][request_id]") {
  TestBackend backend("primary");
  GatewayProcess gateway(catchAllConfig(backend.address()));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));

  std::set<std::string> made;
  for (int i = 0; i < 5; ++i) {
    std::string id = idAtBackend(*stub, {});
    INFO(id);
    CHECK(isUuid(id));
    made.insert(id);
  }
  CHECK(made.size() == 5);

  CHECK(idAtBackend(*stub, {"req-42"}) == "req-42");
  // One id per call: the first of repeated values.
  CHECK(idAtBackend(*stub, {"first-id", "second-id"}) == "first-id");
  // Not an id: too long, or with a space. Replaced, not passed on.
  CHECK(isUuid(idAtBackend(*stub, {std::string(129, 'x')})));
  CHECK(isUuid(idAtBackend(*stub, {"two words"})));
  CHECK(idAtBackend(*stub, {std::string(128, 'x')}) == std::string(128, 'x'));
}

TEST_CASE("request id: preserve_external_request_id and generate_request_id", "[e2e][request_id]") {
  TestBackend backend("primary");
  SECTION("not preserved: every call gets the gateway's own id") {
    GatewayProcess gateway(requestIdGateway(backend.address(), {{"preserve_external_request_id", false}}));
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    std::string id = idAtBackend(*stub, {"client-chosen"});
    CHECK(isUuid(id));
    CHECK(isUuid(idAtBackend(*stub, {})));
  }
  SECTION("not generated: a client's id passes, none is made") {
    GatewayProcess gateway(requestIdGateway(backend.address(), {{"generate_request_id", false}}));
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    CHECK(idAtBackend(*stub, {"client-chosen"}) == "client-chosen");
    CHECK(idAtBackend(*stub, {}).empty());
    // A value that is no id is not passed on as one.
    CHECK(idAtBackend(*stub, {"two words"}).empty());
  }
  SECTION("neither: no call reaches the backend with an id") {
    GatewayProcess gateway(requestIdGateway(backend.address(),
                                            {{"generate_request_id", false}, {"preserve_external_request_id", false}}));
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    CHECK(idAtBackend(*stub, {"client-chosen"}).empty());
    CHECK(idAtBackend(*stub, {}).empty());
  }
}

TEST_CASE("request id: always_set_request_id_in_response gives the client the call's id", "[e2e][request_id]") {
  TestBackend backend("primary");
  // Only the Other service is routed: Echo calls get a local UNIMPLEMENTED.
  nlohmann::json config = gatewayConfig(nlohmann::json::array({route("service", "sluice.example.Other", "echo")}),
                                        nlohmann::json::array({cluster("echo", {backend.address()})}));
  config["listeners"][0]["always_set_request_id_in_response"] = true;
  GatewayProcess gateway(config);
  auto channel = makeChannel(gateway.address());

  SECTION("in the response headers of a call the backend answers, in place of the backend's") {
    auto stub = example::Other::NewStub(channel);
    for (bool echo : {false, true}) {
      grpc::ClientContext context;
      setTimeout(context, kCallTimeout);
      EchoRequest request;
      request.set_echo_metadata(echo);  // the backend echoes x- metadata back: still one id
      (*request.mutable_response_trailers())["x-request-id"] = "the-backend's";
      EchoResponse response;
      REQUIRE_OK(stub->Unary(&context, request, &response));
      const auto& headers = context.GetServerInitialMetadata();
      CHECK(headers.count("x-request-id") == 1);
      auto id = metadataValue(headers, "x-request-id");
      REQUIRE(id);
      CHECK(isUuid(*id));
      CHECK(context.GetServerTrailingMetadata().count("x-request-id") == 0);
    }
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.AddMetadata("x-request-id", "mine-7");
    EchoRequest request;
    EchoResponse response;
    REQUIRE_OK(stub->Unary(&context, request, &response));
    CHECK(metadataValue(context.GetServerInitialMetadata(), "x-request-id") == "mine-7");
  }
  SECTION("in a backend's trailers-only reply, in place of the backend's") {
    auto stub = example::Other::NewStub(channel);
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_status_code(grpc::StatusCode::NOT_FOUND);
    (*request.mutable_response_trailers())["x-request-id"] = "the-backend's";
    EchoResponse response;
    REQUIRE_STATUS(stub->Unary(&context, request, &response), grpc::StatusCode::NOT_FOUND);
    CHECK(isUuid(idOfTrailersOnlyReply(context)));
  }
  SECTION("in a reply the gateway gives itself (trailers-only), and in its plain HTTP errors") {
    auto stub = example::Echo::NewStub(channel);
    for (std::string given : {"mine-8", ""}) {
      grpc::ClientContext context;
      setTimeout(context, kCallTimeout);
      if (!given.empty()) context.AddMetadata("x-request-id", given);
      EchoRequest request;
      EchoResponse response;
      REQUIRE_STATUS(stub->Unary(&context, request, &response), grpc::StatusCode::UNIMPLEMENTED);
      std::string id = idOfTrailersOnlyReply(context);
      if (given.empty()) {
        CHECK(isUuid(id));
      } else {
        CHECK(id == given);
      }
    }
    RawH2Client raw("127.0.0.1", gateway.port());
    RawRequest get = RawRequest::grpc("/sluice.example.Echo/Unary");
    get.method = "GET";
    RawResponse reply = raw.request(get);
    CHECK(reply.status == 405);
    auto id = reply.header("x-request-id");
    REQUIRE(id);
    CHECK(isUuid(*id));
  }
}

}  // namespace sluice::test
