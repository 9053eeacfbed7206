// Memory bounds per client connection, read from the gateway's own heap
// figure (process.heap_bytes, which falls as calls end, unlike the RSS):
// messages held behind a paused filter, and backends' response windows for
// a client that does not read.
#include <catch2/catch.hpp>

#include <algorithm>
#include <thread>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/frame_socket.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using example::EchoRequest;

// catchAllConfig with an admin endpoint, for the heap figure.
nlohmann::json withAdmin(nlohmann::json config) {
  config["admin"] = {{"address", "127.0.0.1:0"}};
  return config;
}

int64_t heapBytes(GatewayProcess& gateway) { return statValue(gateway.adminAddress(), "process.heap_bytes"); }

// The most the heap stood above `idle` over a second of samples.
int64_t peakHeapGrowth(GatewayProcess& gateway, int64_t idle) {
  int64_t peak = 0;
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(100ms);
    peak = std::max(peak, heapBytes(gateway) - idle);
  }
  return peak;
}

// Sends `calls` requests of `path` with `body` on one connection, each left
// open (no END_STREAM) once its body is written.
void openCalls(RawH2Client& raw, const std::string& path, const std::string& body, int calls) {
  for (int call = 0; call < calls; ++call) {
    RawRequest request = RawRequest::grpc(path, body);
    request.endStream = false;
    request.returnOnceSent = true;
    RawResponse sent = raw.request(request, 20s);
    INFO("call " << call << ": " << sent.describe());
    REQUIRE_FALSE(sent.connectionClosed);
  }
}

}  // namespace

// Messages held behind a paused filter count what they hold, not their wire
// bytes: empty messages are 5 bytes each on the wire and some 80 in the
// gateway, so 20 calls each sending a window's worth of them at a delaying
// filter grew the heap by about 300 MB, over a 64 MiB
// max_incomplete_request_bytes that counted 20 MB.
TEST_CASE("empty messages held by a paused filter count against max_incomplete_request_bytes as what they hold",
          "[e2e][volume]") {
  TestBackend backend("primary");
  nlohmann::json config = withAdmin(catchAllConfig(backend.address()));
  auto& chain = config["listeners"][0]["filters"];
  chain.insert(chain.begin(), nlohmann::json::parse(R"({"name": "fault", "config": {"rules": [
      {"match": {"prefix": "/"}, "delay": {"ms": 30000}}]}})"));
  GatewayProcess gateway(config);
  const int64_t idle = heapBytes(gateway);
  // 200,000 empty messages: 1,000,000 bytes, within each call's 1 MiB window.
  std::string messages;
  for (int i = 0; i < 200'000; ++i) messages += grpcFrame("");
  RawH2Client raw("127.0.0.1", gateway.port());
  openCalls(raw, "/sluice.example.Echo/Bidi", messages, 20);
  const int64_t grown = heapBytes(gateway) - idle;
  INFO("the heap grew by " << grown / 1024 << " KiB");
  CHECK(grown < 128ll << 20);
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.local_reply.message_too_large") > 0);
}

// A client that holds many streaming calls open and does not read: each
// call's backend could send a whole stream window (8 MiB) ahead of it, so 100
// calls made the gateway hold about 1 GB before max_buffered_response_bytes
// reset the stalled ones 2 s later (and held it for good from a client that
// kept reading a trickle). Now each call starts with a 256 KiB window and is
// lent the rest from the connection's max_buffered_response_bytes.
TEST_CASE("calls a client does not read hold the base window each, the rest lent by the connection's budget",
          "[e2e][volume]") {
  TestBackend backend("primary");
  GatewayProcess gateway(withAdmin(catchAllConfig(backend.address())));
  const int64_t idle = heapBytes(gateway);
  EchoRequest ask;
  ask.set_response_count(1000);
  ask.set_response_size(64 * 1024);
  RawH2Client raw("127.0.0.1", gateway.port());
  openCalls(raw, "/sluice.example.Echo/Bidi", grpcFrame(ask.SerializeAsString()), 100);
  // Well within the 2 s after which stalled calls are reset: the backends
  // have long filled every window they were given.
  const int64_t peak = peakHeapGrowth(gateway, idle);
  INFO("the heap grew by up to " << peak / 1024 << " KiB");
  // 64 MiB lent, and 100 x (256 KiB window + 256 KiB stream buffer) at most.
  CHECK(peak < 200ll << 20);
  CHECK(peak > 16ll << 20);  // the backends did fill what they were given
}

// A call's loan of window is its own until its stream closes: when its
// response has been sent in full but waits queued for a client that does
// not read, handing the loan on would let the next call fill another 8 MiB.
TEST_CASE("a finished call whose response waits for its client keeps its window loan", "[e2e][volume]") {
  TestBackend backend("primary");
  GatewayProcess gateway(withAdmin(catchAllConfig(backend.address())));
  const int64_t idle = heapBytes(gateway);
  EchoRequest ask;
  ask.set_response_count(100);  // 6.25 MiB (within a lent window), then OK
  ask.set_response_size(64 * 1024);
  // Stream windows of 0: every byte of every response stays in the gateway.
  FrameSocket stuck(gateway.port());
  stuck.setStreamWindow(0);
  for (uint32_t call = 0; call < 40; ++call) {
    stuck.openServerStream(1 + 2 * call, ask);
    std::this_thread::sleep_for(20ms);  // the backend sends what its window allows, or all
  }
  const int64_t peak = peakHeapGrowth(gateway, idle);
  INFO("the heap grew by up to " << peak / 1024 << " KiB");
  // 64 MiB lent, and 40 x (256 KiB window + 256 KiB stream buffer) at most;
  // handing loans on from finished calls let each take its whole 6.25 MiB
  // (321 MB).
  CHECK(peak < 128ll << 20);
  CHECK(peak > 32ll << 20);
}

// What waits for a client's socket is bounded by connection_buffer_bytes:
// the gateway stops serialising once that much is unwritten. It checked only
// what was pending before gathering a batch of up to that size, so a client
// that did not read (with windows that let everything through) had up to
// twice the limit held for it.
TEST_CASE("output waiting for a client that does not read stays within connection_buffer_bytes",
          "[e2e][volume]") {
  constexpr int64_t kLimit = 4 << 20;
  TestBackend backend("primary");
  nlohmann::json config = withAdmin(catchAllConfig(backend.address()));
  config["listeners"][0]["connection_buffer_bytes"] = kLimit;
  GatewayProcess gateway(config);
  const std::string admin = gateway.adminAddress();
  const std::string buffered = "listener.grpc.downstream_cx_tx_bytes_buffered";
  EchoRequest ask;
  ask.set_response_count(1000);
  ask.set_response_size(64 * 1024);
  {
    // Windows as large as HTTP/2 allows, and a small kernel buffer it never reads.
    FrameSocket stuck(gateway.port(), 16 * 1024);
    stuck.setStreamWindow(0x7fffffff);
    REQUIRE(stuck.send(FrameSocket::frame(kWindowUpdate, 0, 0, std::string("\x7f\xff\x00\x00", 4))));
    for (uint32_t call = 0; call < 4; ++call) stuck.openServerStream(1 + 2 * call, ask);
    int64_t peak = 0;
    for (int i = 0; i < 15; ++i) {
      std::this_thread::sleep_for(100ms);
      peak = std::max(peak, statValue(admin, buffered));
    }
    INFO("up to " << peak / 1024 << " KiB waited for the client");
    CHECK(peak > kLimit / 2);  // the backend's responses did fill it
    // The last frame gathered may pass the limit: 16 KiB, the client's
    // largest frame.
    CHECK(peak <= kLimit + (16 << 10) + 9);
  }
  // Closed, the connection's bytes are no longer held or counted.
  CHECK(waitFor([&] { return statValue(admin, buffered) == 0; }, 5s));
}

}  // namespace sluice::test
