// Input no grpc++ client would send: a non-gRPC content-type, a malformed
// gRPC frame, and bytes that are not HTTP/2 at all. Each must get a clear
// answer and must not disturb anyone else's calls.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/http_client.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using example::EchoRequest;
using example::EchoResponse;

std::string validUnaryBody(const std::string& payload) {
  EchoRequest request;
  request.set_payload(payload);
  return grpcFrame(request.SerializeAsString());
}

TEST_CASE_METHOD(SingleBackendFixture, "wrong content-type is HTTP 415", "[e2e][bad-input]") {
  RawH2Client raw("127.0.0.1", gateway.port());
  RawRequest request = RawRequest::grpc("/sluice.example.Echo/Unary", validUnaryBody("x"));
  request.headers = {{"content-type", "text/plain"}, {"te", "trailers"}};
  RawResponse response = raw.request(request);
  INFO(response.describe());
  CHECK(response.status == 415);
  CHECK(backend.stats().calls.load() == 0);

  // A bad request is that request's problem, not the connection's.
  RawResponse next = raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", validUnaryBody("ok")));
  INFO(next.describe());
  CHECK(next.status == 200);
  CHECK(next.grpcStatus() == 0);

  // A media type's case does not matter (RFC 9110), nor does it to gRPC
  // servers; its suffixes and parameters are gRPC's own.
  for (const char* type : {"Application/GRPC", "application/grpc+proto", "application/grpc; charset=utf-8"}) {
    RawRequest other = RawRequest::grpc("/sluice.example.Echo/Unary", validUnaryBody("ok"));
    other.headers = {{"content-type", type}, {"te", "trailers"}};
    RawResponse served = raw.request(other);
    INFO(type << ": " << served.describe());
    CHECK(served.status == 200);
    CHECK(served.grpcStatus() == 0);
  }
  for (const char* type : {"application/grpcx", "application/grp", "APPLICATION/GRPC-WEB"}) {
    RawRequest other = RawRequest::grpc("/sluice.example.Echo/Unary", validUnaryBody("ok"));
    other.headers = {{"content-type", type}, {"te", "trailers"}};
    INFO(type);
    CHECK(raw.request(other).status == 415);
  }
}

TEST_CASE_METHOD(SingleBackendFixture, "a reply quoting a huge client value is cut short, and still sent",
                 "[e2e][bad-input]") {
  // 22,000 '%' are 22 KB of path, within max_header_list_bytes, but quoted in
  // grpc-message each becomes "%25": 66 KB, more than one HTTP/2 header block
  // may carry. Uncut, the reply was never sent and the call hung.
  RawH2Client raw("127.0.0.1", gateway.port());
  SECTION("a malformed path") {
    RawResponse response = raw.request(RawRequest::grpc("/" + std::string(22000, '%')), 5s);
    INFO(response.describe());
    CHECK_FALSE(response.timedOut);
    CHECK(response.grpcStatus() == 12);
    CHECK_THAT(response.grpcMessage(), Catch::StartsWith("malformed method name \"/%%%"));
    CHECK_THAT(response.grpcMessage(), Catch::EndsWith(" [truncated]"));
    CHECK(response.grpcMessage().size() <= 1024 + 12);
  }
  SECTION("a malformed grpc-timeout") {
    RawRequest request = RawRequest::grpc("/sluice.example.Echo/Unary", validUnaryBody("x"));
    request.headers.emplace_back("grpc-timeout", std::string(22000, '%'));
    RawResponse response = raw.request(request, 5s);
    INFO(response.describe());
    CHECK_FALSE(response.timedOut);
    CHECK(response.grpcStatus() == 13);
    CHECK_THAT(response.grpcMessage(), Catch::EndsWith(" [truncated]"));
  }
  // The connection goes on serving.
  RawResponse next = raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", validUnaryBody("ok")));
  CHECK(next.grpcStatus() == 0);
}

TEST_CASE_METHOD(SingleBackendFixture, "paths that could be normalised into another method are refused",
                 "[e2e][bad-input]") {
  // A route or auth rule judges /Service/Method as written; a proxy behind
  // the gateway that normalises paths could serve these as another method.
  RawH2Client raw("127.0.0.1", gateway.port());
  for (const char* path : {"/sluice.example.Other/../sluice.example.Echo/Unary", "/sluice.example.Echo/Un%61ry",
                           "/sluice.example.Echo/Unary/", "/../Unary", "/sluice.example.Echo/..",
                           // Bytes no protobuf name has (one would break every metrics scrape).
                           "/sluice.example.Echo/Unar\xc3\xa9", "/bad\xff\xfe.Svc/M",
                           // A query or fragment, which servers behind the gateway may strip.
                           "/sluice.example.Echo/Unary?x", "/sluice.example.Echo/Unary#f", "/sluice.example.Echo/Un;ary"}) {
    RawResponse response = raw.request(RawRequest::grpc(path, validUnaryBody("x")));
    INFO(path << ": " << response.describe());
    CHECK(response.grpcStatus() == 12);
    CHECK_THAT(response.grpcMessage(), Catch::Contains("a gRPC path is /Service/Method"));
  }
  CHECK(backend.stats().calls.load() == 0);
  RawResponse next = raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", validUnaryBody("ok")));
  CHECK(next.grpcStatus() == 0);
}

// A C-core backend (grpc++ here) ends its whole connection over a -bin value
// that is not base64, and with it every other client's calls on it: one such
// header from anyone made the shared backend connection fail. Answered as
// grpc-go answers it, without reaching the backend.
TEST_CASE("a -bin value that is not base64 fails only its own call, INTERNAL, and is not passed on",
          "[e2e][bad-input]") {
  TestBackend backend("primary");
  auto config = catchAllConfig(backend.address());
  config["workers"] = 1;  // the bystander's call and the bad ones share one backend connection
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext bystander_ctx;
  setTimeout(bystander_ctx, kCallTimeout);
  auto bystander = stub->Bidi(&bystander_ctx);
  EchoRequest request;
  EchoResponse response;
  request.set_payload("before");
  REQUIRE(bystander->Write(request));
  REQUIRE(bystander->Read(&response));

  RawH2Client raw("127.0.0.1", gateway.port());
  const auto calls_before = backend.stats().calls.load();
  for (const char* value : {"Y", "YQ-_", "Y Q", "YWJj=ZA", "YQ=", "YWJjZA===", "YWJjZ\xc3\xa9"}) {
    for (const char* key : {"x-h-bin", "grpc-trace-bin"}) {
      RawRequest bad = RawRequest::grpc("/sluice.example.Echo/Unary", validUnaryBody("bad"));
      bad.headers.emplace_back(key, value);
      RawResponse answer = raw.request(bad);
      INFO(key << ": " << value << ": " << answer.describe());
      CHECK(answer.grpcStatus() == 13);
      CHECK_THAT(answer.grpcMessage(), Catch::Contains(std::string("malformed binary metadata in header \"") + key));
    }
  }
  CHECK(backend.stats().calls.load() == calls_before);
  // Padded, unpadded and empty values are passed on.
  for (const char* value : {"", "YQ", "YQ==", "YWJj", "YWJjZA", "+/+/", "YWJjZA=="}) {
    RawRequest good = RawRequest::grpc("/sluice.example.Echo/Unary", validUnaryBody("good"));
    good.headers.emplace_back("x-h-bin", value);
    RawResponse answer = raw.request(good);
    INFO(value << ": " << answer.describe());
    CHECK(answer.grpcStatus() == 0);
  }
  request.set_payload("after");
  CHECK(bystander->Write(request));
  CHECK(bystander->Read(&response));
  CHECK(response.payload() == "after");
  bystander->WritesDone();
  CHECK(bystander->Finish().ok());
}

TEST_CASE_METHOD(SingleBackendFixture, "malformed gRPC frame is INTERNAL", "[e2e][bad-input]") {
  RawH2Client raw("127.0.0.1", gateway.port());
  // Flags byte 7: reserved bits set. Only bit 0 (compressed) means anything.
  EchoRequest echo;
  echo.set_payload("x");
  RawResponse response = raw.request(
      RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(echo.SerializeAsString(), 7)));
  INFO(response.describe());
  CHECK(response.status == 200);
  CHECK(response.grpcStatus() == 13);
}

// gRPC C-core 1.51 (grpcio, grpc++ on Debian 12) resets a call cancelled
// after its stream id was chosen but before its HEADERS went out: a reset of
// a stream it never opened, which RFC 9113 makes a connection error and
// nghttp2 answered with GOAWAY, failing every call on the connection. gRPC
// servers ignore it, and so does the gateway.
TEST_CASE("a reset of a stream the client never opened ends nothing", "[e2e][bad-input]") {
  TestBackend backend("primary");
  nlohmann::json config = catchAllConfig(backend.address());
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  RawH2Client raw("127.0.0.1", gateway.port());
  RawResponse first = raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", validUnaryBody("first")));
  INFO(first.describe());
  REQUIRE(first.grpcStatus() == 0);
  // RST_STREAM(CANCEL) for stream 101, which no HEADERS opened, in two
  // writes that cut its frame header.
  const std::string reset("\x00\x00\x04\x03\x00\x00\x00\x00\x65\x00\x00\x00\x08", 13);
  REQUIRE(raw.writeRaw(reset.substr(0, 5)));
  std::this_thread::sleep_for(50ms);
  REQUIRE(raw.writeRaw(reset.substr(5)));
  RawResponse second = raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", validUnaryBody("second")));
  INFO(second.describe());
  CHECK(second.grpcStatus() == 0);
  CHECK_FALSE(second.goawayReceived);
  CHECK_FALSE(second.connectionClosed);
  CHECK(backend.stats().calls.load() == 2);
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.downstream_idle_stream_resets") == 1);
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.downstream_protocol_errors") == 0);
}

TEST_CASE_METHOD(SingleBackendFixture,
                 "garbage bytes end that connection only", "[e2e][bad-input]") {
  // A healthy client on its own connection, busy before and after.
  grpc::ClientContext before;
  setTimeout(before, kCallTimeout);
  EchoResponse response;
  REQUIRE_OK(stub->Unary(&before, EchoRequest(), &response));

  RawH2Client raw("127.0.0.1", gateway.port());
  // After the preface and SETTINGS: a frame header with an unknown length
  // and type, then noise. No HTTP/2 peer can make sense of this.
  std::string garbage("\xff\xff\xff\xfe\x07\x00\x00\x00\x01", 9);
  for (int i = 0; i < 64; ++i) garbage += static_cast<char>((i * 37 + 11) & 0xff);
  raw.writeRaw(garbage);
  CHECK(raw.waitForGoawayOrClose(5s));

  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_payload("after garbage " + std::to_string(i));
    REQUIRE_OK(stub->Unary(&context, request, &response));
    CHECK(response.payload() == request.payload());
  }
  // A fresh connection works too.
  auto fresh = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  REQUIRE_OK(fresh->Unary(&context, EchoRequest(), &response));
}

TEST_CASE_METHOD(SingleBackendFixture, "an HTTP/1.1 request gets a readable 505 saying the port speaks h2c",
                 "[e2e][bad-input]") {
  auto expectRefusal = [](const std::string& answer) {
    INFO(answer);
    CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 505 "));
    CHECK_THAT(answer, Catch::Contains("connection: close") && Catch::Contains("h2c"));
  };
  SECTION("curl's request") {
    HttpReply reply = httpRaw(gateway.address(), "GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    expectRefusal(reply.headers + "\r\n\r\n" + reply.body);
  }
  SECTION("an h2c upgrade, sent a few bytes at a time, with a body") {
    int fd = connectTcp(gateway.address());
    const std::string request =
        "POST /sluice.example.Echo/Unary HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\n"
        "upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\ncontent-length: 5\r\n\r\nhello";
    for (size_t at = 0; at < request.size(); at += 3) {
      REQUIRE(::send(fd, request.data() + at, std::min<size_t>(3, request.size() - at), MSG_NOSIGNAL) > 0);
      std::this_thread::sleep_for(1ms);
    }
    auto answer = readUntilClosed(fd, 5s);
    ::close(fd);
    REQUIRE(answer.has_value());  // the gateway ended the connection (its FIN right after the answer)
    expectRefusal(*answer);
  }
  // gRPC on the same port is untouched.
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoResponse response;
  REQUIRE_OK(stub->Unary(&context, EchoRequest(), &response));
}

}  // namespace
}  // namespace sluice::test
