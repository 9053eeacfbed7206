// The four gRPC call kinds through the gateway, and a bidi stream whose
// client half-closes while the backend keeps sending.
#include <catch2/catch.hpp>

#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

TEST_CASE_METHOD(SingleBackendFixture, "unary call", "[e2e][call-kinds]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoRequest request;
  request.set_payload("hello through the gateway");
  EchoResponse response;
  REQUIRE_OK(stub->Unary(&context, request, &response));
  CHECK(response.payload() == "hello through the gateway");
  CHECK(response.backend() == "primary");
  CHECK(response.method() == "/sluice.example.Echo/Unary");
  CHECK(backend.stats().calls.load() == 1);
}

TEST_CASE_METHOD(SingleBackendFixture, "client-streaming call", "[e2e][call-kinds]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoResponse response;
  auto writer = stub->ClientStream(&context, &response);

  SECTION("several messages") {
    for (const char* part : {"one ", "two ", "three ", "four ", "five"}) {
      EchoRequest request;
      request.set_payload(part);
      REQUIRE(writer->Write(request));
    }
    REQUIRE(writer->WritesDone());
    REQUIRE_OK(writer->Finish());
    CHECK(response.received_messages() == 5);
    CHECK(response.payload() == "one two three four five");
    CHECK(response.backend() == "primary");
  }

  SECTION("no messages at all") {
    REQUIRE(writer->WritesDone());
    REQUIRE_OK(writer->Finish());
    CHECK(response.received_messages() == 0);
    CHECK(response.payload().empty());
  }
}

TEST_CASE_METHOD(SingleBackendFixture, "server-streaming call", "[e2e][call-kinds]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoRequest request;
  request.set_response_count(25);
  request.set_response_size(3000);
  auto reader = stub->ServerStream(&context, request);
  EchoResponse response;
  uint64_t received = 0;
  while (reader->Read(&response)) {
    CHECK(response.index() == received);
    CHECK(response.payload().size() == 3000);
    CHECK(example::checkPattern(response.payload()));
    ++received;
  }
  REQUIRE_OK(reader->Finish());
  CHECK(received == 25);
}

TEST_CASE_METHOD(SingleBackendFixture, "bidirectional streaming call", "[e2e][call-kinds]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  auto stream = stub->Bidi(&context);
  // Ping-pong: each answer must arrive before the next request is sent, which
  // fails if the gateway holds messages back until the stream ends.
  for (int i = 0; i < 20; ++i) {
    EchoRequest request;
    request.set_payload("ping " + std::to_string(i));
    REQUIRE(stream->Write(request));
    EchoResponse response;
    REQUIRE(stream->Read(&response));
    CHECK(response.payload() == "ping " + std::to_string(i));
    CHECK(response.index() == static_cast<uint64_t>(i));
  }
  REQUIRE(stream->WritesDone());
  EchoResponse extra;
  CHECK_FALSE(stream->Read(&extra));
  REQUIRE_OK(stream->Finish());
}

TEST_CASE_METHOD(SingleBackendFixture, "gzip-compressed messages cross the gateway both ways", "[e2e][call-kinds]") {
  // 200 KB that gzip makes small: the compressed flag and grpc-encoding must
  // reach each side as sent, or the peer cannot read the message.
  const std::string payload = std::string(100000, 'z') + std::string(100000, 'y');
  SECTION("unary") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    EchoRequest request;
    request.set_payload(payload);
    request.set_compress_response(true);
    EchoResponse response;
    REQUIRE_OK(stub->Unary(&context, request, &response));
    CHECK(response.payload() == payload);
  }
  SECTION("bidi") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    auto stream = stub->Bidi(&context);
    for (int i = 0; i < 5; ++i) {
      EchoRequest request;
      request.set_payload(payload + std::to_string(i));
      request.set_compress_response(true);
      REQUIRE(stream->Write(request));
      EchoResponse response;
      REQUIRE(stream->Read(&response));
      CHECK(response.payload() == payload + std::to_string(i));
    }
    REQUIRE(stream->WritesDone());
    REQUIRE_OK(stream->Finish());
  }
}

TEST_CASE_METHOD(SingleBackendFixture, "bidi: the backend ends the call while the client is still sending",
                 "[e2e][call-kinds]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  auto stream = stub->Bidi(&context);
  EchoRequest request;
  request.set_payload("first");
  REQUIRE(stream->Write(request));
  EchoResponse response;
  REQUIRE(stream->Read(&response));
  request.set_status_code(static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  request.set_status_message("the backend had enough");
  REQUIRE(stream->Write(request));
  // The client never half-closes: the backend's status still arrives whole
  // (the gateway then resets the stream with NO_ERROR, which must not turn it
  // into an error), and the client's later writes fail instead of hanging.
  while (stream->Read(&response)) {
  }
  bool wrote_after_end = true;
  for (int i = 0; i < 20 && wrote_after_end; ++i) wrote_after_end = stream->Write(request);
  CHECK_FALSE(wrote_after_end);
  auto status = stream->Finish();
  REQUIRE_STATUS(status, grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(status.error_message() == "the backend had enough");
}

TEST_CASE_METHOD(SingleBackendFixture,
                 "bidi: client half-closes while the backend keeps sending", "[e2e][call-kinds]") {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  auto stream = stub->Bidi(&context);
  // Three requests, each answered by ten responses spaced 20 ms apart; the
  // client half-closes right after sending them, so most responses are sent
  // after the half-close. The backend finishes only after it reads the
  // half-close, so Finish() OK also proves the half-close was forwarded.
  for (int i = 0; i < 3; ++i) {
    EchoRequest request;
    request.set_payload("request " + std::to_string(i));
    request.set_response_count(10);
    request.set_response_interval_ms(20);
    REQUIRE(stream->Write(request));
  }
  REQUIRE(stream->WritesDone());

  EchoResponse response;
  uint64_t received = 0;
  while (stream->Read(&response)) {
    CHECK(response.index() == received);
    CHECK(response.payload() == "request " + std::to_string(received / 10));
    ++received;
  }
  REQUIRE_OK(stream->Finish());
  CHECK(received == 30);
}

}  // namespace
}  // namespace sluice::test
