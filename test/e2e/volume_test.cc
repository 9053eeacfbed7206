// Volume: 8 MiB messages both ways, 1,000 concurrent calls on one connection,
// and a 512 MiB bidi stream read slowly while the gateway's memory must stay
// flat (end-to-end backpressure).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <thread>

#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using example::EchoRequest;
using example::EchoResponse;

constexpr size_t kBigMessage = 8u << 20;

TEST_CASE_METHOD(SingleBackendFixture, "8 MiB messages both ways", "[e2e][volume]") {
  const std::string big = example::makePattern(kBigMessage);
  grpc::ClientContext context;
  setTimeout(context, 30s);

  SECTION("unary echo") {
    EchoRequest request;
    request.set_payload(big);
    EchoResponse response;
    REQUIRE_OK(stub->Unary(&context, request, &response));
    CHECK(response.payload().size() == kBigMessage);
    CHECK(response.payload() == big);
  }

  SECTION("client streaming up, 8 MiB down") {
    EchoResponse response;
    auto writer = stub->ClientStream(&context, &response);
    EchoRequest request;
    request.set_payload(big);
    request.set_response_size(kBigMessage);
    REQUIRE(writer->Write(request));
    request.clear_response_size();
    REQUIRE(writer->Write(request));
    REQUIRE(writer->WritesDone());
    REQUIRE_OK(writer->Finish());
    CHECK(response.received_messages() == 2);
    CHECK(response.received_bytes() == 2 * kBigMessage);
    CHECK(response.payload().size() == kBigMessage);
    CHECK(example::checkPattern(response.payload()));
  }

  SECTION("bidi echo, several in a row") {
    auto stream = stub->Bidi(&context);
    for (int i = 0; i < 3; ++i) {
      EchoRequest request;
      request.set_payload(big);
      REQUIRE(stream->Write(request));
      EchoResponse response;
      REQUIRE(stream->Read(&response));
      CHECK(response.payload() == big);
    }
    REQUIRE(stream->WritesDone());
    REQUIRE_OK(stream->Finish());
  }
}

TEST_CASE_METHOD(SingleBackendFixture, "1000 concurrent calls on one connection",
                 "[e2e][volume]") {
  constexpr int kCalls = 1000;
  struct Call {
    grpc::ClientContext context;
    EchoRequest request;
    EchoResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<EchoResponse>> reader;
  };
  grpc::CompletionQueue queue;
  std::vector<std::unique_ptr<Call>> calls;
  // All started before any is awaited: one channel, one connection, up to a
  // thousand streams open on it at once.
  for (int i = 0; i < kCalls; ++i) {
    auto call = std::make_unique<Call>();
    setTimeout(call->context, 60s);
    call->request.set_payload("call " + std::to_string(i));
    call->reader = stub->PrepareAsyncUnary(&call->context, call->request, &queue);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call.get());
    calls.push_back(std::move(call));
  }

  int finished = 0;
  int failures = 0;
  std::string firstFailure;
  const auto deadline = std::chrono::system_clock::now() + 90s;
  while (finished < kCalls) {
    void* tag = nullptr;
    bool ok = false;
    if (queue.AsyncNext(&tag, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT) break;
    ++finished;
    auto* call = static_cast<Call*>(tag);
    // The payload check catches answers crossed between streams.
    if (!ok || !call->status.ok() || call->response.payload() != call->request.payload()) {
      if (failures++ == 0) {
        firstFailure = call->request.payload() + ": " + describe(call->status) + ", payload \"" +
                       call->response.payload() + "\"";
      }
    }
  }
  INFO("first failure: " << firstFailure);
  CHECK(finished == kCalls);
  CHECK(failures == 0);
  for (auto& call : calls) call->context.TryCancel();
  queue.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (queue.Next(&tag, &ok)) {
  }
  CHECK(backend.stats().calls.load() == kCalls);
}

// Samples the gateway's resident memory until destroyed.
class RssSampler {
 public:
  explicit RssSampler(GatewayProcess& gateway)
      : gateway_(gateway), thread_([this] { run(); }) {}
  ~RssSampler() {
    stop_ = true;
    thread_.join();
  }
  long maxKiB() const { return max_.load(); }
  int samples() const { return samples_.load(); }

 private:
  void run() {
    while (!stop_) {
      long rss = gateway_.rssKiB();
      if (rss > 0) {
        max_ = std::max(max_.load(), rss);
        samples_++;
      }
      std::this_thread::sleep_for(25ms);
    }
  }

  GatewayProcess& gateway_;
  std::atomic<bool> stop_{false};
  std::atomic<long> max_{0};
  std::atomic<int> samples_{0};
  std::thread thread_;
};

TEST_CASE_METHOD(SingleBackendFixture, "512 MiB bidi stream to a slow reader keeps memory flat",
                 "[e2e][volume][slow]") {
  constexpr uint32_t kResponses = 8192;
  constexpr uint32_t kResponseSize = 64 * 1024;  // 8192 x 64 KiB = 512 MiB
  constexpr long kAllowedGrowthKiB = 64 * 1024;

  // Warm up first, so the idle figure includes connection pools and buffers
  // that any call allocates once.
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_response_count(16);
    request.set_response_size(kResponseSize);
    auto reader = stub->ServerStream(&context, request);
    EchoResponse response;
    while (reader->Read(&response)) {
    }
    REQUIRE_OK(reader->Finish());
  }
  std::this_thread::sleep_for(300ms);
  const long idleKiB = gateway.rssKiB();
  REQUIRE(idleKiB > 0);

  RssSampler sampler(gateway);
  grpc::ClientContext context;
  setTimeout(context, 120s);
  auto stream = stub->Bidi(&context);
  EchoRequest request;
  request.set_response_count(kResponses);
  request.set_response_size(kResponseSize);
  REQUIRE(stream->Write(request));
  REQUIRE(stream->WritesDone());

  // Read nothing for a while, then slowly: a gateway without backpressure
  // would buffer the backend's output here (loopback moves 512 MiB in
  // seconds).
  std::this_thread::sleep_for(2s);
  EchoResponse response;
  uint32_t received = 0;
  bool intact = true;
  while (stream->Read(&response)) {
    if (response.index() != received || response.payload().size() != kResponseSize) intact = false;
    // Checking every byte of 512 MiB would compete with the gateway for CPU.
    if (received % 64 == 0 && !example::checkPattern(response.payload())) intact = false;
    ++received;
    if (received < 256) std::this_thread::sleep_for(4ms);
  }
  grpc::Status status = stream->Finish();
  const long peakKiB = sampler.maxKiB();
  INFO("idle RSS " << idleKiB << " KiB, peak RSS " << peakKiB << " KiB over "
                   << sampler.samples() << " samples");
  REQUIRE_OK(status);
  CHECK(received == kResponses);
  CHECK(intact);
  CHECK(sampler.samples() > 10);
  CHECK(peakKiB - idleKiB < kAllowedGrowthKiB);
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {

TEST_CASE_METHOD(SingleBackendFixture, "a flood of empty messages to a backend that is not reading stays within flow control's bytes",
                 "[e2e][volume]") {
  // Empty messages are 5 bytes on the wire each. Flow control bounds the
  // wire bytes the gateway holds for one call (the client's window plus
  // stream_buffer_bytes, about 1.25 MiB: some 260,000 empty messages), so
  // what each held message costs beyond its bytes is what this measures.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const long idleKiB = gateway.rssKiB();
  grpc::ClientContext context;
  setTimeout(context, std::chrono::seconds(60));
  auto stream = stub->Bidi(&context);
  EchoRequest first;
  first.set_sleep_ms(30000);  // the backend answers the first message, and reads no more, for 30 s
  REQUIRE(stream->Write(first));
  std::atomic<uint64_t> written{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    const EchoRequest empty;
    while (!stop && written < 2'000'000 && stream->Write(empty)) written++;
  });
  // Until the writer is held up by flow control (no progress for 1 s).
  uint64_t seen = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  while (std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (written == seen) break;
    seen = written;
  }
  const long grownKiB = gateway.rssKiB() - idleKiB;
  INFO(written.load() << " empty messages written; the gateway grew by " << grownKiB << " KiB");
  stop = true;
  context.TryCancel();
  writer.join();
  CHECK(written > 100'000);
  CHECK(grownKiB < 6 * 1024);
}

}  // namespace sluice::test
