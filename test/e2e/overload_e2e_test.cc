// overload: the gateway's heap against overload.max_heap_bytes. A client
// holding tens of MiB in a request message it never finishes pushes the heap
// past a share of it; new calls are then refused (UNAVAILABLE, saying why) or
// new connections closed, and both come back once that memory is freed.
#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/frame_socket.h"
#include "test/support/http_client.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

// The holder below keeps 40 MiB; while its buffer grows from 32 to 40 MiB
// both are held for a moment (72 MiB). Shares of 25% (32 MiB) are passed by
// the 40 MiB, and 100% is not reached even by that peak.
constexpr uint64_t kMaxHeap = 128u << 20;

nlohmann::json overloadConfig(const std::string& backend, int refuse_calls_percent, int refuse_connections_percent,
                              int reset_calls_percent = 100) {
  auto config = catchAllConfig(backend);
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["workers"] = 2;
  config["overload"] = {{"max_heap_bytes", kMaxHeap},
                        {"refuse_calls_percent", refuse_calls_percent},
                        {"refuse_connections_percent", refuse_connections_percent},
                        {"reset_calls_percent", reset_calls_percent},
                        {"check_interval_ms", 20}};
  config["listeners"][0]["max_message_bytes"] = 48u << 20;
  config["listeners"][0]["max_incomplete_request_bytes"] = 96u << 20;
  // The holder never reads again: no keepalive PING may end its connection.
  config["listeners"][0]["keepalive_interval_ms"] = 0;
  return config;
}

// A 40 MiB request message sent all but its last 4 MiB, on a stream left
// open: the gateway holds it (a buffer of 40 MiB) waiting for the rest.
RawResponse sendPartialMessage(RawH2Client& raw) {
  std::string partial(5, '\0');
  partial[1] = '\x02';  // length 0x02800000: 40 MiB
  partial[2] = '\x80';
  partial += std::string(36u << 20, 'h');
  RawRequest request = RawRequest::grpc("/sluice.example.Echo/ClientStream", partial);
  request.endStream = false;
  request.returnOnceSent = true;
  return raw.request(request, std::chrono::seconds(30));
}

std::unique_ptr<RawH2Client> holdHeap(const GatewayProcess& gateway) {
  auto raw = std::make_unique<RawH2Client>("127.0.0.1", gateway.port());
  RawResponse response = sendPartialMessage(*raw);
  INFO(response.describe());
  REQUIRE_FALSE(response.timedOut);
  REQUIRE_FALSE(response.streamClosed);  // the call stays open, waiting for the rest
  return raw;
}

grpc::Status unary(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse response;
  return stub.Unary(&ctx, EchoRequest(), &response);
}

bool statReaches(const GatewayProcess& gateway, const std::string& name, int64_t value) {
  return waitFor([&] { return statValue(gateway.adminAddress(), name) == value; }, std::chrono::seconds(5));
}

}  // namespace

TEST_CASE("past overload.refuse_calls_percent new calls get UNAVAILABLE until the heap is freed",
          "[e2e][overload]") {
  TestBackend backend("b");
  GatewayProcess gateway(overloadConfig(backend.address(), 25, 100));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  REQUIRE_OK(unary(*stub));
  // The idle gateway is far below the 32 MiB share.
  REQUIRE(statReaches(gateway, "overload.refusing_calls", 0));
  CHECK(statValue(gateway.adminAddress(), "overload.heap_bytes") > 0);
  CHECK(statValue(gateway.adminAddress(), "overload.heap_bytes") < (16 << 20));
  CHECK(statValue(gateway.adminAddress(), "overload.max_heap_bytes") == static_cast<int64_t>(kMaxHeap));

  auto holder = holdHeap(gateway);
  REQUIRE(statReaches(gateway, "overload.refusing_calls", 1));
  CHECK(statValue(gateway.adminAddress(), "overload.heap_bytes") >= (32 << 20));
  CHECK(statValue(gateway.adminAddress(), "overload.heap_bytes") < (128 << 20));
  CHECK(statValue(gateway.adminAddress(), "overload.refusing_connections") == 0);
  // A call on the connection already open, and one on a new connection
  // (accepted: only calls are refused), each answered with the reason.
  auto fresh = example::Echo::NewStub(makeChannel(gateway.address()));
  const int backend_calls = backend.stats().calls.load();  // the holder's call included
  for (auto* s : {stub.get(), fresh.get()}) {
    grpc::Status refused = unary(*s);
    REQUIRE_STATUS(refused, grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(refused.error_message(), Catch::Contains("overloaded") && Catch::Contains("overload.max_heap_bytes"));
  }
  CHECK(backend.stats().calls.load() == backend_calls);  // neither reached the backend
  CHECK(http(gateway.adminAddress(), "GET", "/ready").status == 200);
  CHECK_THAT(gateway.logs(), Catch::Contains("refusing new calls"));
  auto stats = readStats(gateway.adminAddress());
  CHECK(statValue(stats, "listener.grpc.local_reply.overload") == 2);
  CHECK(statValue(stats, "listener.grpc.downstream_rq_refused") == 2);
  auto prometheus = http(gateway.adminAddress(), "GET", "/stats/prometheus").body;
  CHECK(metric(prometheus, "sluice_local_replies_total", {"reason=\"overload\""}) == 2);
  CHECK(metric(prometheus, "sluice_overload_refusing_calls", {}) == 1);
  CHECK(metric(prometheus, "sluice_overload_heap_bytes", {}) >= (32 << 20));
  checkWithPromtool(prometheus, "overload_metrics.txt");

  // The holder's connection closes: its partial message is freed, and calls
  // are taken again at the next check.
  holder.reset();
  REQUIRE(statReaches(gateway, "overload.refusing_calls", 0));
  REQUIRE_OK(unary(*stub));
  REQUIRE_OK(unary(*fresh));
  CHECK_THAT(gateway.logs(), Catch::Contains("accepting new calls again"));
}

// The heap's share held by calls leaves out the message buffers the pool
// keeps, counted as the allocator counts them: mimalloc gives a 128 KiB
// buffer 192 KiB, and pooled buffers counted by their capacity left a
// phantom ~64 KiB each (16 MiB per worker with a full pool) in an idle
// gateway's heap, which could keep overload refusing calls with none open.
TEST_CASE("an idle gateway's heap reads idle after a burst of 128 KiB messages filled its buffer pool",
          "[e2e][overload]") {
  TestBackend backend("b");
  auto config = overloadConfig(backend.address(), 100, 100);
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  REQUIRE_OK(unary(*stub));
  std::vector<std::thread> callers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 64; ++i) {
    callers.emplace_back([&] {
      grpc::ClientContext ctx;
      setTimeout(ctx, kCallTimeout);
      EchoRequest request;
      request.set_payload(std::string(128 * 1024, 'p'));
      EchoResponse response;
      if (stub->Unary(&ctx, request, &response).ok()) ++ok;
    });
  }
  for (auto& t : callers) t.join();
  REQUIRE(ok == 64);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a check or more after the burst
  auto stats = readStats(gateway.adminAddress());
  const int64_t pooled = statValue(stats, "process.pooled_buffer_bytes");
  const int64_t held = statValue(stats, "overload.heap_bytes");
  INFO("pooled " << pooled << ", held by calls " << held << ", heap " << statValue(stats, "process.heap_bytes"));
  CHECK(pooled >= (2 << 20));  // the burst filled the pool (less of it under AddressSanitizer)
  // An idle gateway: ~1 MiB with its caches. Counted by capacity, the pool's
  // 128 KiB buffers left half their size again (mimalloc's rounding).
  CHECK(held < (1 << 20) + pooled / 8);
}

TEST_CASE("past overload.refuse_connections_percent new connections are closed and /ready says overloaded",
          "[e2e][overload]") {
  TestBackend backend("b");
  GatewayProcess gateway(overloadConfig(backend.address(), 100, 25));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  REQUIRE_OK(unary(*stub));
  REQUIRE(statReaches(gateway, "overload.refusing_connections", 0));

  auto holder = holdHeap(gateway);
  REQUIRE(statReaches(gateway, "overload.refusing_connections", 1));
  CHECK(statValue(gateway.adminAddress(), "overload.refusing_calls") == 0);
  // A new connection is closed before a byte of HTTP/2 is answered.
  FrameSocket refused(gateway.port());
  CHECK(refused.readUntilClosed(std::chrono::seconds(2)).closed);
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.downstream_cx_overload_refused") >= 1);
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.downstream_cx_refused") == 0);
  auto ready = http(gateway.adminAddress(), "GET", "/ready");
  CHECK(ready.status == 503);
  CHECK(ready.body == "overloaded\n");
  // Connections already open go on taking calls (refuse_calls_percent 100
  // is not reached).
  REQUIRE_OK(unary(*stub));
  CHECK_THAT(gateway.logs(), Catch::Contains("closing new connections as they are accepted"));

  holder.reset();
  REQUIRE(statReaches(gateway, "overload.refusing_connections", 0));
  CHECK(http(gateway.adminAddress(), "GET", "/ready").status == 200);
  auto fresh = example::Echo::NewStub(makeChannel(gateway.address()));
  REQUIRE_OK(unary(*fresh));
  CHECK_THAT(gateway.logs(), Catch::Contains("accepting new connections again"));
}

TEST_CASE("past overload.reset_calls_percent the calls holding the most are reset, and no other",
          "[e2e][overload]") {
  TestBackend backend("b");
  // 1%: every call holding 1 MiB or more is reset, and only that floor
  // keeps the small call below from being reset too.
  GatewayProcess gateway(overloadConfig(backend.address(), 100, 100, 1));
  // A bidi call of small messages stays open throughout: it holds far less
  // than the 1 MiB a call must hold to be reset.
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext bidi_context;
  setTimeout(bidi_context, kCallTimeout);
  auto bidi = stub->Bidi(&bidi_context);
  EchoRequest ping;
  ping.set_payload("ping");
  EchoResponse pong;
  REQUIRE(bidi->Write(ping));
  REQUIRE(bidi->Read(&pong));

  RawH2Client holder("127.0.0.1", gateway.port());
  RawResponse held = sendPartialMessage(holder);
  INFO(held.describe());
  REQUIRE_FALSE(held.timedOut);
  // Reset at a check, perhaps while it still arrived (the client is then
  // told: RST_STREAM(ENHANCE_YOUR_CALM)), its message freed, the heap back
  // under the share, counted and logged.
  if (held.streamClosed) CHECK(held.rstStreamCode == std::optional<uint32_t>(11));
  REQUIRE(waitFor([&] { return statValue(gateway.adminAddress(), "listener.grpc.local_reply.overload") == 1; },
                  std::chrono::seconds(5)));
  REQUIRE(waitFor([&] { return statValue(gateway.adminAddress(), "overload.heap_bytes") < (16 << 20); },
                  std::chrono::seconds(5)));
  CHECK_THAT(gateway.logs(), Catch::Contains("reset (ENHANCE_YOUR_CALM): the call held") &&
                                 Catch::Contains("overload.reset_calls_percent"));
  // Only the call is reset: its connection takes the next one.
  RawResponse after = holder.request(RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame("")));
  INFO(after.describe());
  CHECK(after.grpcStatus() == 0);
  // The small call went on.
  REQUIRE(bidi->Write(ping));
  REQUIRE(bidi->Read(&pong));
  bidi->WritesDone();
  REQUIRE_OK(bidi->Finish());
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.local_reply.overload") == 1);
}

TEST_CASE("a reload turns overload on, changes its shares and turns it off", "[e2e][overload]") {
  TestBackend backend("b");
  auto config = overloadConfig(backend.address(), 25, 100);
  auto off = config;
  off.erase("overload");
  GatewayProcess gateway(off);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto holder = holdHeap(gateway);
  // Off: no overload figures, and calls go through however large the heap.
  // The process's heap is shown all the same, to choose max_heap_bytes by.
  CHECK(readStats(gateway.adminAddress()).count("overload.heap_bytes") == 0);
  CHECK(statValue(gateway.adminAddress(), "process.heap_bytes") >= (32 << 20));
  CHECK(statValue(gateway.adminAddress(), "process.pooled_buffer_bytes") >= 0);
  REQUIRE_OK(unary(*stub));

  REQUIRE(reloadWithSighup(gateway, config.dump(), 1));
  REQUIRE(statReaches(gateway, "overload.refusing_calls", 1));
  REQUIRE_STATUS(unary(*stub), grpc::StatusCode::UNAVAILABLE);

  config["overload"]["refuse_calls_percent"] = 100;  // 128 MiB: not reached by 40
  REQUIRE(reloadWithSighup(gateway, config.dump(), 2));
  REQUIRE(statReaches(gateway, "overload.refusing_calls", 0));
  REQUIRE_OK(unary(*stub));

  config["overload"]["refuse_calls_percent"] = 25;
  REQUIRE(reloadWithSighup(gateway, config.dump(), 3));
  REQUIRE(statReaches(gateway, "overload.refusing_calls", 1));
  // The checks go on at the interval after a reload, not only at it.
  holder.reset();
  REQUIRE(statReaches(gateway, "overload.refusing_calls", 0));
  holder = holdHeap(gateway);
  REQUIRE(statReaches(gateway, "overload.refusing_calls", 1));
  REQUIRE(reloadWithSighup(gateway, off.dump(), 4));
  REQUIRE(waitFor([&] { return readStats(gateway.adminAddress()).count("overload.refusing_calls") == 0; },
                  std::chrono::seconds(5)));
  REQUIRE_OK(unary(*stub));
  CHECK_THAT(gateway.logs(), Catch::Contains("overload: no longer configured"));
}

TEST_CASE("past overload.refuse_calls_percent the gateway's own health answer is NOT_SERVING",
          "[e2e][overload][health_service]") {
  TestBackend backend("b");
  auto config = overloadConfig(backend.address(), 25, 100);
  config["listeners"][0]["health_service"] = nlohmann::json::object();
  GatewayProcess gateway(config);
  auto channel = makeChannel(gateway.address());
  std::string answer;
  REQUIRE_OK(checkHealth(*channel, "", &answer));
  CHECK(answer == "SERVING");
  {
    auto holder = holdHeap(gateway);
    REQUIRE(statReaches(gateway, "overload.refusing_calls", 1));
    // Answered, not refused: a probe learns why it should look elsewhere.
    REQUIRE_OK(checkHealth(*channel, "", &answer));
    CHECK(answer == "NOT_SERVING");
  }
  REQUIRE(statReaches(gateway, "overload.refusing_calls", 0));
  REQUIRE_OK(checkHealth(*channel, "", &answer));
  CHECK(answer == "SERVING");
}

}  // namespace sluice::test
