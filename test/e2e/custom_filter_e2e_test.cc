// examples/custom_filter's gateway (an outside project built against the
// installed Sluice) through real grpc++ calls: its message_counter filter
// counts streamed messages, rejects mid-stream, and pauses calls on a timer.
//
// Hidden ([.]) because they need that binary: the ctest "embedding: installed
// package builds and runs examples/custom_filter" builds it and runs these
// with SLUICE_E2E_BINARY pointing at it.
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <thread>
#include <vector>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/http_client.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

nlohmann::json counterGateway(const std::string& backend, const nlohmann::json& counterConfig) {
  nlohmann::json config = catchAllConfig(backend);
  config["admin"] = {{"address", "127.0.0.1:0"}};
  nlohmann::json entry = {{"name", "message_counter"}, {"config", counterConfig}};
  auto& chain = config["listeners"][0]["filters"];
  chain.insert(chain.begin(), entry);
  return config;
}

struct CounterFixture {
  explicit CounterFixture(const nlohmann::json& counterConfig)
      : gateway(counterGateway(backend.address(), counterConfig)),
        stub(example::Echo::NewStub(makeChannel(gateway.address()))) {}
  TestBackend backend{"primary"};
  GatewayProcess gateway;
  std::unique_ptr<example::Echo::Stub> stub;
};

}  // namespace

TEST_CASE("custom filter: counts the messages of streaming calls", "[.][custom_filter]") {
  CounterFixture f(nlohmann::json::object());

  SECTION("bidi: five each way") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    auto stream = f.stub->Bidi(&context);
    for (int i = 0; i < 5; ++i) {
      EchoRequest request;
      request.set_payload("m" + std::to_string(i));
      REQUIRE(stream->Write(request));
      EchoResponse response;
      REQUIRE(stream->Read(&response));
    }
    REQUIRE(stream->WritesDone());
    REQUIRE_OK(stream->Finish());
    CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-message-count-request") == "5");
    CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-message-count-response") == "5");
  }
  SECTION("client streaming: four in, one out") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    auto writer = f.stub->ClientStream(&context, &response);
    for (int i = 0; i < 4; ++i) REQUIRE(writer->Write(EchoRequest()));
    REQUIRE(writer->WritesDone());
    REQUIRE_OK(writer->Finish());
    CHECK(response.received_messages() == 4);
    CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-message-count-request") == "4");
    CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-message-count-response") == "1");
  }
}

TEST_CASE("custom filter: leaves messages out of a stream (DropMessage), past every flow-control window",
          "[.][custom_filter]") {
  // 200 dropped messages of 64 KiB: 12.5 MiB, past the client's stream window
  // (1 MiB) and the backend's (8 MiB), so their bytes must count as delivered.
  constexpr int kDropped = 200;
  const std::string big(64 * 1024, 'x');
  SECTION("request messages the backend never sees") {
    CounterFixture f(nlohmann::json{{"drop_request_containing", "secret"}});
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    auto writer = f.stub->ClientStream(&context, &response);
    for (int i = 0; i < kDropped; ++i) {
      EchoRequest request;
      request.set_payload("secret" + big);
      REQUIRE(writer->Write(request));
      if (i % 50 == 0) {
        request.set_payload("kept");
        REQUIRE(writer->Write(request));
      }
    }
    REQUIRE(writer->WritesDone());
    REQUIRE_OK(writer->Finish());
    CHECK(response.received_messages() == 4);
    CHECK(response.received_bytes() == 16);
    CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-message-count-request") ==
          std::to_string(kDropped + 4));
    CHECK(statValue(f.gateway.adminAddress(), "filter.messages_dropped") == kDropped);
    std::string text = http(f.gateway.adminAddress(), "GET", "/stats/prometheus").body;
    CHECK(text.find("sluice_filter_messages_dropped_total " + std::to_string(kDropped)) != std::string::npos);
    checkWithPromtool(text, f.gateway.logPath() + ".prom");
  }
  SECTION("response messages the client never sees") {
    CounterFixture f(nlohmann::json{{"drop_response_containing", "secret"}});
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    auto stream = f.stub->Bidi(&context);
    // The backend echoes each request; the writer runs beside the reader,
    // as the dropped echoes are never read.
    std::thread writer([&] {
      for (int i = 0; i < kDropped; ++i) {
        EchoRequest request;
        request.set_payload(i % 50 == 0 ? "kept-" + std::to_string(i) : "secret" + big);
        if (!stream->Write(request)) return;
      }
      stream->WritesDone();
    });
    std::vector<std::string> read;
    EchoResponse response;
    while (stream->Read(&response)) read.push_back(response.payload());
    writer.join();
    REQUIRE_OK(stream->Finish());
    CHECK(read == std::vector<std::string>{"kept-0", "kept-50", "kept-100", "kept-150"});
    CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-message-count-response") == "4");
    CHECK(statValue(f.gateway.adminAddress(), "filter.messages_dropped") == kDropped - 4);
  }
}

TEST_CASE("custom filter: rejects a stream mid-way with sendLocalReply", "[.][custom_filter]") {
  CounterFixture f(nlohmann::json{{"max_request_messages", 3}, {"reject_payload_containing", "forbidden"}});

  SECTION("too many messages") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    auto stream = f.stub->Bidi(&context);
    for (int i = 0; i < 3; ++i) {
      EchoRequest request;
      request.set_payload("ok " + std::to_string(i));
      REQUIRE(stream->Write(request));
      EchoResponse response;
      REQUIRE(stream->Read(&response));  // the backend answered: the call was flowing
      CHECK(response.payload() == "ok " + std::to_string(i));
    }
    stream->Write(EchoRequest());
    EchoResponse response;
    CHECK_FALSE(stream->Read(&response));
    grpc::Status status = stream->Finish();
    REQUIRE_STATUS(status, grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK(status.error_message() == "more than 3 request messages");
  }
  SECTION("a message the filter refuses") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    auto writer = f.stub->ClientStream(&context, &response);
    EchoRequest fine;
    fine.set_payload("fine");
    REQUIRE(writer->Write(fine));
    EchoRequest bad;
    bad.set_payload("this is forbidden");
    writer->Write(bad);
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    REQUIRE_STATUS(status, grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(status.error_message() == "request message 2 contains a forbidden byte string");
  }
}

TEST_CASE("custom filter: pauses calls and resumes them from a timer", "[.][custom_filter]") {
  CounterFixture f(nlohmann::json{{"hold_ms", 300}});
  auto start = std::chrono::steady_clock::now();
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  auto stream = f.stub->Bidi(&context);
  // Written while the call is held: queued behind the filter, then delivered in order.
  for (int i = 0; i < 3; ++i) {
    EchoRequest request;
    request.set_payload("held " + std::to_string(i));
    REQUIRE(stream->Write(request));
  }
  for (int i = 0; i < 3; ++i) {
    EchoResponse response;
    REQUIRE(stream->Read(&response));
    CHECK(response.payload() == "held " + std::to_string(i));
  }
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(300));
  REQUIRE(stream->WritesDone());
  REQUIRE_OK(stream->Finish());
  CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-message-count-request") == "3");
}

TEST_CASE("custom filter: its factory is closed once, at stop, after the workers", "[.][custom_filter]") {
  TestBackend backend{"primary"};
  nlohmann::json config = counterGateway(backend.address(), nlohmann::json::object());
  config["workers"] = 2;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto call = [&] { return callEmptyUnary(*stub); };
  // A call held open across a reload keeps the old config alive; when it
  // ends, that config's factory is let go of, not closed.
  grpc::ClientContext held;
  setTimeout(held, kCallTimeout);
  auto stream = stub->Bidi(&held);
  EchoRequest request;
  REQUIRE(stream->Write(request));
  EchoResponse echoed;
  REQUIRE(stream->Read(&echoed));
  gateway.signal(SIGHUP);
  REQUIRE(waitFor([&] { return gateway.logs().find("config reloaded") != std::string::npos; }, std::chrono::seconds(5)));
  REQUIRE_OK(call());
  REQUIRE(stream->WritesDone());
  REQUIRE_OK(stream->Finish());
  REQUIRE_OK(call());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(gateway.logs().find("message_counter: closed") == std::string::npos);
  CHECK(gateway.stop() == 0);
  const std::string logs = gateway.logs();
  size_t closes = 0;
  for (size_t at = logs.find("message_counter: closed"); at != std::string::npos;
       at = logs.find("message_counter: closed", at + 1)) {
    ++closes;
  }
  INFO(logs);
  CHECK(closes == 1);  // the current config's factory; each worker closed it before, and the old one too
}

TEST_CASE("custom filter: a response it holds stops the backend, not the gateway's memory", "[.][custom_filter]") {
  // 128 MiB of responses, held for 2 s at the response headers. Meanwhile the
  // gateway stops returning the backend's window once stream_buffer_bytes
  // (256 KiB) wait behind the filter, so it holds about one stream window
  // (8 MiB), not everything the backend would send.
  CounterFixture f(nlohmann::json{{"hold_response_ms", 2000}});
  const long before = f.gateway.rssKiB();
  grpc::ClientContext context;
  setTimeout(context, std::chrono::seconds(60));
  EchoRequest request;
  request.set_response_count(2048);
  request.set_response_size(65536);
  auto reader = f.stub->ServerStream(&context, request);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const long grown = f.gateway.rssKiB() - before;
  INFO("gateway RSS grew by " << grown << " KiB while the response was held");
  CHECK(grown < 48 * 1024);
  // Released, everything arrives, in order and whole.
  EchoResponse response;
  int count = 0;
  while (reader->Read(&response)) {
    if (response.payload().size() != 65536) break;
    ++count;
  }
  REQUIRE_OK(reader->Finish());
  CHECK(count == 2048);
  CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-message-count-response") == "2048");
}

TEST_CASE("custom filter: its config is validated with JSON paths", "[.][custom_filter]") {
  nlohmann::json config =
      counterGateway("127.0.0.1:1", {{"hold_ms", "soon"}, {"trailer_prefix", "grpc-x"}, {"colour", "red"}});
  ProcessResult result = runValidate(config.dump());
  INFO(result.output);
  CHECK(result.exitCode == 2);
  CHECK(result.output.find("/listeners/0/filters/0/config/hold_ms") != std::string::npos);
  CHECK(result.output.find("/listeners/0/filters/0/config/trailer_prefix") != std::string::npos);
  CHECK(result.output.find("/listeners/0/filters/0/config/colour: unknown key") != std::string::npos);
}

}  // namespace sluice::test
