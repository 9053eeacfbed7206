// Metadata in both directions (text and binary, initial and trailing), every
// status code with its message, and trailers-only responses.
#include <catch2/catch.hpp>

#include "test/support/e2e_fixture.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

// Every byte value, so a gateway that treats binary metadata as text (or
// forgets base64) cannot pass.
std::string allBytes() {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  return bytes;
}

const std::string kTrailerBin("\x00\xff\x10", 3);

void addRequestMetadata(grpc::ClientContext& context) {
  context.AddMetadata("x-text", "plain value");
  context.AddMetadata("x-data-bin", allBytes());
  context.AddMetadata("x-multi", "one");
  context.AddMetadata("x-multi", "two");
}

// What the backend saw, as reported in its response.
void checkForwardedRequestMetadata(const EchoResponse& response) {
  const auto& seen = response.request_metadata();
  REQUIRE(seen.count("x-text") == 1);
  CHECK(seen.at("x-text") == "plain value");
  REQUIRE(seen.count("x-data-bin") == 1);
  CHECK(seen.at("x-data-bin") == allBytes());
  REQUIRE(seen.count("x-multi") == 1);
  // Two header fields, or one joined field: both are the same metadata.
  CHECK((seen.at("x-multi") == "one,two" || seen.at("x-multi") == "one, two"));
}

// The backend's echo of the x- keys (initial) and its fixed trailers.
void checkResponseMetadata(grpc::ClientContext& context) {
  const auto& initial = context.GetServerInitialMetadata();
  CHECK(metadataValue(initial, "x-text") == "plain value");
  CHECK(metadataValue(initial, "x-data-bin") == allBytes());
  const auto& trailing = context.GetServerTrailingMetadata();
  CHECK(metadataValue(trailing, "x-trailer") == "trailer-value");
  CHECK(metadataValue(trailing, "x-trailer-bin") == kTrailerBin);
}

TEST_CASE_METHOD(SingleBackendFixture, "metadata both ways: unary", "[e2e][metadata]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  addRequestMetadata(context);
  EchoRequest request;
  request.set_echo_metadata(true);
  EchoResponse response;
  REQUIRE_OK(stub->Unary(&context, request, &response));
  checkForwardedRequestMetadata(response);
  checkResponseMetadata(context);
}

TEST_CASE_METHOD(SingleBackendFixture, "metadata both ways: server streaming", "[e2e][metadata]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  addRequestMetadata(context);
  EchoRequest request;
  request.set_echo_metadata(true);
  request.set_response_count(3);
  auto reader = stub->ServerStream(&context, request);
  EchoResponse response;
  int received = 0;
  while (reader->Read(&response)) {
    if (received++ == 0) checkForwardedRequestMetadata(response);
  }
  REQUIRE_OK(reader->Finish());
  CHECK(received == 3);
  checkResponseMetadata(context);
}

TEST_CASE_METHOD(SingleBackendFixture, "metadata both ways: bidi", "[e2e][metadata]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  addRequestMetadata(context);
  auto stream = stub->Bidi(&context);
  EchoRequest request;
  request.set_echo_metadata(true);
  REQUIRE(stream->Write(request));
  EchoResponse response;
  REQUIRE(stream->Read(&response));
  checkForwardedRequestMetadata(response);
  // Initial metadata arrived with (before) the first message, while the
  // stream is still open in both directions.
  CHECK(metadataValue(context.GetServerInitialMetadata(), "x-text") == "plain value");
  REQUIRE(stream->WritesDone());
  REQUIRE_OK(stream->Finish());
  checkResponseMetadata(context);
}

// gRPC stacks send values with a leading or trailing space (a grpc-message
// such as "missing field: ", padded metadata) and accept them; RFC 9113
// says a receiver may treat them as malformed, which nghttp2 does by default.
// Through the gateway they must pass as they do direct, both ways, with a
// filter that edits the metadata in the chain too.
TEST_CASE("values with a leading or trailing space pass both ways, as gRPC stacks send them", "[e2e][metadata]") {
  TestBackend backend("b");
  auto config = catchAllConfig(backend.address());
  const bool edited = GENERATE(false, true);
  INFO("metadata filter in the chain: " << edited);
  if (edited) {
    nlohmann::json edits = {{"set", {{"x-served-by", "sluice"}}}};
    nlohmann::json metadata = {
        {"name", "metadata"},
        {"config", {{"request", {{"set", {{"x-tenant", "acme"}}}}}, {"response", edits}, {"response_trailers", edits}}}};
    auto& filters = config["listeners"][0]["filters"];
    filters.insert(filters.begin(), metadata);
  }
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.AddMetadata("x-padded", " padded value ");
    EchoRequest request;
    request.set_echo_metadata(true);
    (*request.mutable_response_trailers())["x-trailer-padded"] = "v ";
    EchoResponse response;
    REQUIRE_OK(stub->Unary(&context, request, &response));
    REQUIRE(response.request_metadata().count("x-padded") == 1);
    CHECK(response.request_metadata().at("x-padded") == " padded value ");
    CHECK(metadataValue(context.GetServerInitialMetadata(), "x-padded") == " padded value ");
    CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-trailer-padded") == "v ");
  }
  for (const char* message : {"missing field: ", " leading"}) {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_status_code(3);
    request.set_status_message(message);
    EchoResponse response;
    grpc::Status status = stub->Unary(&context, request, &response);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(status.error_message() == message);
  }
  CHECK(backend.stats().calls == 3);
}

TEST_CASE_METHOD(SingleBackendFixture, "trailing metadata on an error status",
                 "[e2e][metadata][status]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  addRequestMetadata(context);
  EchoRequest request;
  request.set_echo_metadata(true);
  request.set_status_code(grpc::StatusCode::FAILED_PRECONDITION);
  request.set_status_message("precondition failed");
  EchoResponse response;
  grpc::Status status = stub->Unary(&context, request, &response);
  REQUIRE_STATUS(status, grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(status.error_message() == "precondition failed");
  const auto& trailing = context.GetServerTrailingMetadata();
  CHECK(metadataValue(trailing, "x-trailer") == "trailer-value");
  CHECK(metadataValue(trailing, "x-trailer-bin") == kTrailerBin);
}

// Plain ASCII, UTF-8 from three scripts, and the bytes grpc-message must
// percent-encode ('%', control characters).
std::string messageFor(int code) {
  return "status " + std::to_string(code) + ": ünïcödé ✓ 日本語 Ωμέγα, 100% sure\tend";
}

TEST_CASE_METHOD(SingleBackendFixture, "every status code with its message: unary",
                 "[e2e][status]") {
  for (int code = 1; code <= 16; ++code) {
    INFO("status code " << code);
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_status_code(code);
    request.set_status_message(messageFor(code));
    EchoResponse response;
    grpc::Status status = stub->Unary(&context, request, &response);
    CHECK(status.error_code() == static_cast<grpc::StatusCode>(code));
    CHECK(status.error_message() == messageFor(code));
  }
}

TEST_CASE_METHOD(SingleBackendFixture,
                 "every status code with its message: after streamed responses", "[e2e][status]") {
  // Here the status travels in real trailers, after headers and messages.
  for (int code = 1; code <= 16; ++code) {
    INFO("status code " << code);
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_response_count(2);
    request.set_status_code(code);
    request.set_status_message(messageFor(code));
    auto reader = stub->ServerStream(&context, request);
    EchoResponse response;
    int received = 0;
    while (reader->Read(&response)) ++received;
    grpc::Status status = reader->Finish();
    CHECK(received == 2);
    CHECK(status.error_code() == static_cast<grpc::StatusCode>(code));
    CHECK(status.error_message() == messageFor(code));
  }
}

TEST_CASE_METHOD(SingleBackendFixture, "trailers-only responses", "[e2e][status]") {
  RawH2Client raw("127.0.0.1", gateway.port());

  SECTION("an error from the backend stays trailers-only, on the wire") {
    EchoRequest request;
    request.set_status_code(grpc::StatusCode::NOT_FOUND);
    request.set_status_message("no such thing ✓");
    RawResponse response =
        raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(request.SerializeAsString())));
    INFO(response.describe());
    CHECK(response.trailersOnly());
    CHECK(response.grpcStatus() == 5);
    CHECK(response.grpcMessage() == "no such thing ✓");
  }

  SECTION("a success is headers, one message, trailers (the raw client reads both forms)") {
    EchoRequest request;
    request.set_payload("raw hello");
    RawResponse response =
        raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(request.SerializeAsString())));
    INFO(response.describe());
    CHECK(response.status == 200);
    CHECK_FALSE(response.trailersOnly());
    CHECK(response.grpcStatus() == 0);
    auto messages = parseGrpcFrames(response.body);
    REQUIRE(messages.has_value());
    REQUIRE(messages->size() == 1);
    EchoResponse parsed;
    REQUIRE(parsed.ParseFromString(messages->front()));
    CHECK(parsed.payload() == "raw hello");
  }

  SECTION("grpc++ sees the status of a trailers-only streaming response") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_status_code(grpc::StatusCode::PERMISSION_DENIED);
    request.set_status_message("go away");
    auto reader = stub->ServerStream(&context, request);
    EchoResponse response;
    CHECK_FALSE(reader->Read(&response));
    grpc::Status status = reader->Finish();
    REQUIRE_STATUS(status, grpc::StatusCode::PERMISSION_DENIED);
    CHECK(status.error_message() == "go away");
  }
}

}  // namespace
}  // namespace sluice::test
