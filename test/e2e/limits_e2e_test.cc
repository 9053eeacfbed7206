// Listener limits end to end: each one hit by a client gets its documented
// answer, and abusive clients (rapid reset, PING floods, silent peers) lose
// their own connection only.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <nghttp2/nghttp2.h>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/frame_socket.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

// A grpc++ client on its own connection that keeps calling; counts failures.
class WellBehavedClient {
 public:
  explicit WellBehavedClient(const std::string& address)
      : stub_(example::Echo::NewStub(makeChannel(address))), thread_([this] { run(); }) {}
  ~WellBehavedClient() { finish(); }
  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int ok() const { return ok_; }
  int failed() const { return failed_; }
  std::string firstFailure;

 private:
  void run() {
    while (!stop_) {
      grpc::ClientContext ctx;
      setTimeout(ctx, kCallTimeout);
      EchoResponse resp;
      auto s = stub_->Unary(&ctx, EchoRequest(), &resp);
      if (s.ok()) {
        ok_++;
      } else if (failed_++ == 0) {
        firstFailure = describe(s);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  std::unique_ptr<example::Echo::Stub> stub_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0};
  std::atomic<int> failed_{0};
  std::thread thread_;
};

nlohmann::json limited(const std::string& backend, const nlohmann::json& limits) {
  auto config = catchAllConfig(backend);
  config["listeners"][0].update(limits);
  return config;
}

// max_buffered_response_bytes at `limit`, with the admin endpoint and no keepalive PINGs.
nlohmann::json bufferLimited(const std::string& backend, uint64_t limit) {
  auto config = limited(backend, {{"max_buffered_response_bytes", limit}, {"keepalive_interval_ms", 0}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  return config;
}

// With stream windows of 0, `paused` opens `calls` ServerStream calls of
// `count` messages of `size` bytes each, then reads for 4 s (and stays open).
FrameSocket::Seen pauseServerStreams(FrameSocket& paused, uint32_t calls, int count, int size) {
  paused.setStreamWindow(0);
  EchoRequest request;
  request.set_response_count(count);
  request.set_response_size(size);
  for (uint32_t i = 0; i < calls; ++i) paused.openServerStream(1 + 2 * i, request);
  return paused.readUntilClosed(std::chrono::seconds(4));
}

}  // namespace

TEST_CASE("a rapid-reset client is disconnected, a well-behaved client sees no error", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"rst_stream_burst", 100}, {"rst_stream_rate", 10}}),
                         GatewayProcess::Options{"info", std::chrono::milliseconds{10000}, {}, {}, {}});
  WellBehavedClient good(gateway.address());
  FrameSocket attacker(gateway.port());
  // Any code counts: a reset with NO_ERROR is a reset all the same.
  const char code = GENERATE(char{0x08}, char{0x00});  // CANCEL, NO_ERROR
  INFO("RST_STREAM code " << static_cast<int>(code));
  // A deadline the reset comes at does not make it an ordinary one: the
  // stream must also have lived long enough.
  const std::string timeout = GENERATE(std::string(), FrameSocket::literal("grpc-timeout", "1m"));
  INFO("with grpc-timeout: " << !timeout.empty());
  std::string burst;
  for (uint32_t i = 0; i < 2000; ++i) {
    uint32_t stream = 1 + 2 * i;
    // Whole requests, each of which starts a call (an incomplete one would
    // be a malformed request, which the MadeYouReset budget counts instead).
    burst += FrameSocket::requestHeaders(stream, "/sluice.example.Echo/Unary", true, timeout);
    burst += FrameSocket::frame(kRstStream, 0, stream, std::string("\0\0\0", 3) + code);
  }
  attacker.send(burst);
  auto seen = attacker.readUntilClosed(std::chrono::seconds(5));
  CHECK(seen.goaway);
  CHECK(seen.goaway_code == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(seen.closed);
  // The gateway says why.
  CHECK(waitFor(
      [&] {
        return gateway.logs().find("calls the client reset before their end, past rst_stream_burst and "
                                   "rst_stream_rate") !=
               std::string::npos;
      },
      std::chrono::seconds(2)));
  // The good client goes on being served after the attack (slowly, under a sanitizer).
  const int served = good.ok();
  CHECK(waitFor([&] { return good.ok() > served + 10; }, std::chrono::seconds(5)));
  good.finish();
  INFO("first failure of the good client: " << good.firstFailure);
  CHECK(good.failed() == 0);
}

// A client whose deadlines expire (each a RST_STREAM CANCEL) far faster than
// rst_stream_rate, while its other calls finish, is no rapid-reset attacker:
// every call a backend served gives a reset back. Before, nghttp2's bucket
// counted every RST_STREAM and ended the connection, failing the calls on it.
TEST_CASE("a client that lets calls finish may cancel others past rst_stream_burst", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"rst_stream_burst", 20}, {"rst_stream_rate", 1}}));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  constexpr int kThreads = 4, kRounds = 25;  // 100 deadlines, five times the burst, in about a second
  std::atomic<int> ok{0}, expired{0}, other{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        grpc::ClientContext served;
        setTimeout(served, kCallTimeout);
        EchoResponse response;
        if (stub->Unary(&served, EchoRequest(), &response).ok()) ++ok; else ++other;
        grpc::ClientContext late;
        setTimeout(late, std::chrono::milliseconds(30));
        EchoRequest slow;
        slow.set_sleep_ms(1000);
        const grpc::Status s = stub->Unary(&late, slow, &response);
        if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) ++expired; else ++other;
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(ok == kThreads * kRounds);
  CHECK(expired == kThreads * kRounds);
  CHECK(other == 0);
  CHECK(gateway.logs().find("rst_stream_burst") == std::string::npos);
}

// A client whose backend hangs: every call ends at its deadline with the
// client's RST_STREAM CANCEL and none finishes to pay one back. Those resets
// are not a rapid-reset attack; before, past the bucket the connection
// closed and took the client's healthy calls with it.
TEST_CASE("a client whose calls all end at their deadline keeps its connection past rst_stream_burst",
          "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"rst_stream_burst", 20}, {"rst_stream_rate", 1}}));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // A long-lived healthy stream on the same connection.
  grpc::ClientContext healthy_ctx;
  setTimeout(healthy_ctx, kCallTimeout);
  auto healthy = stub->Bidi(&healthy_ctx);
  REQUIRE(healthy->Write(EchoRequest()));
  EchoResponse first;
  REQUIRE(healthy->Read(&first));
  constexpr int kThreads = 8, kRounds = 10;  // 80 deadlines, four times the burst
  std::atomic<int> expired{0}, other{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        grpc::ClientContext late;
        setTimeout(late, std::chrono::milliseconds(200));
        EchoRequest slow;
        slow.set_sleep_ms(2000);
        EchoResponse response;
        const grpc::Status s = stub->Unary(&late, slow, &response);
        if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) ++expired; else ++other;
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(expired == kThreads * kRounds);
  CHECK(other == 0);
  CHECK(gateway.logs().find("rst_stream_burst") == std::string::npos);
  // The healthy stream is still served on the same connection.
  REQUIRE(healthy->Write(EchoRequest()));
  EchoResponse second;
  CHECK(healthy->Read(&second));
  healthy->WritesDone();
  CHECK(healthy->Finish().ok());
}

// "MadeYouReset" (CVE-2025-8671): the client never resets a stream itself;
// it makes the gateway do it (a stream error), after each request has
// started a backend call: a stream WINDOW_UPDATE past 2^31-1 (nghttp2 tells
// the gateway of it), or DATA that breaks the request's content-length
// (nghttp2 resets those streams without telling: counted as they close).
TEST_CASE("a client that makes the gateway reset its streams is disconnected past rst_stream_burst",
          "[e2e][limits]") {
  enum class Break { WindowOverflow, ShortOfContentLength, PastContentLength };
  const Break how = GENERATE(Break::WindowOverflow, Break::ShortOfContentLength, Break::PastContentLength);
  INFO("how the streams break the rules: " << static_cast<int>(how));
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"rst_stream_burst", 100}, {"rst_stream_rate", 10}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config, GatewayProcess::Options{"info", std::chrono::milliseconds{10000}, {}, {}, {}});
  WellBehavedClient good(gateway.address());
  FrameSocket attacker(gateway.port());
  example::EchoRequest request;
  request.set_payload("x");
  // In batches of 100, each given time to be reset: a burst past
  // max_concurrent_streams would be refused (and counted) for that alone.
  const std::string message = grpcFrame(request.SerializeAsString());
  for (uint32_t batch = 0; batch < 20; ++batch) {
    std::string burst;
    for (uint32_t i = batch * 100; i < (batch + 1) * 100; ++i) {
      uint32_t stream = 1 + 2 * i;
      switch (how) {
        case Break::WindowOverflow:
          burst += FrameSocket::requestHeaders(stream, "/sluice.example.Echo/Bidi", true);
          burst += FrameSocket::frame(kData, 0, stream, message);
          burst += FrameSocket::frame(kWindowUpdate, 0, stream, std::string("\x7f\xff\xff\xff", 4));
          break;
        case Break::ShortOfContentLength:  // END_STREAM with fewer bytes than said
          burst += FrameSocket::requestHeaders(stream, "/sluice.example.Echo/Bidi", true,
                                               FrameSocket::literal("content-length", "100"));
          burst += FrameSocket::frame(kData, 0x1, stream, message);
          break;
        case Break::PastContentLength:  // more bytes than said
          burst += FrameSocket::requestHeaders(stream, "/sluice.example.Echo/Bidi", true,
                                               FrameSocket::literal("content-length", "1"));
          burst += FrameSocket::frame(kData, 0, stream, message);
          break;
      }
    }
    if (!attacker.send(burst)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  auto seen = attacker.readUntilClosed(std::chrono::seconds(5));
  CHECK(seen.goaway);
  CHECK(seen.goaway_code == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(seen.closed);
  // (The streams' RST_STREAM FLOW_CONTROL_ERROR frames may not precede the
  // GOAWAY: nghttp2 sends it first and nothing after it.)
  CHECK(waitFor([&] { return gateway.logs().find("streams the client made the gateway reset") != std::string::npos; },
                std::chrono::seconds(2)));
  // The bucket's 100 (and what it refilled meanwhile) reached the backend,
  // not 2000. The resets nghttp2 makes unannounced count as their streams
  // close, after the rest of what was read has started its calls too.
  good.finish();
  INFO("good client calls: " << good.ok() << " ok, " << good.failed() << " failed");
  const int64_t reached = statValue(gateway.adminAddress(), "cluster.echo.upstream_rq_total") - good.ok() - good.failed();
  CHECK(reached < (how == Break::WindowOverflow ? 200 : 400));
  INFO("first failure of the good client: " << good.firstFailure);
  CHECK(good.failed() == 0);
}

TEST_CASE("replies dropped because the client broke its connection are not logged one by one as too large",
          "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(catchAllConfig(backend.address()));
  FrameSocket client(gateway.port());
  // 200 requests without content-type, each answered at once (415), then
  // DATA on stream 0, a connection error, in the same write: the session
  // ends with the replies still queued.
  std::string burst;
  for (uint32_t i = 0; i < 200; ++i) {
    std::string block = "\x83\x86";
    block += '\x04';
    block += static_cast<char>(std::string("/sluice.example.Echo/Unary").size());
    block += "/sluice.example.Echo/Unary";
    burst += FrameSocket::frame(kHeaders, 0x5, 1 + 2 * i, block + FrameSocket::literal(":authority", "x"));
  }
  burst += FrameSocket::frame(kData, 0, 0, "x");
  client.send(burst);
  auto seen = client.readUntilClosed(std::chrono::seconds(5));
  CHECK(seen.closed);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(logCount(gateway, "header block could not be sent") == 0);
}

// A client's HTTP/2 error is answered with GOAWAY and then an orderly close.
// Closing at once, with the client's later bytes unread, made the kernel
// answer with a TCP reset, which on a real network can throw the GOAWAY away
// before the client reads it (and with it the last stream id that says which
// calls it may send again). A client that never closes is closed all the same.
TEST_CASE("a client's protocol error gets GOAWAY and a FIN, not a reset, however much it sent after",
          "[e2e][limits]") {
  TestBackend backend("b");
  auto config = catchAllConfig(backend.address());
  config["workers"] = 1;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  FrameSocket client(gateway.port());
  // DATA on stream 0 (a connection error), then 32 MiB of frames the gateway
  // does not read before it would have closed, sent while we read.
  std::string burst = FrameSocket::frame(kData, 0, 0, "x");
  const std::string ping = FrameSocket::frame(kPing, 0, 0, std::string(8, 'p'));
  while (burst.size() < (32u << 20)) burst += ping;
  std::thread sending([&] { (void)client.send(burst); });
  auto seen = client.readUntilClosed(std::chrono::seconds(5));
  sending.join();
  CHECK(seen.goaway);
  CHECK(seen.goaway_code == NGHTTP2_PROTOCOL_ERROR);
  CHECK(seen.closed);
  CHECK_FALSE(seen.reset);
  // The client keeps its socket open: the gateway closes it after its linger.
  CHECK(waitFor([&] { return statValue(gateway.adminAddress(), "listener.grpc.downstream_cx_active") == 0; },
                std::chrono::seconds(5)));
}

// A connection lingering after its error is counted once (a preface whose
// first frame is not SETTINGS is a protocol error, not also a preface
// timeout), and holds up no shutdown: it has no calls, its GOAWAY and FIN
// are out.
TEST_CASE("a connection lingering after its protocol error counts once and holds up no shutdown", "[e2e][limits]") {
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"preface_timeout_ms", 300}});
  config["workers"] = 1;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  std::vector<std::unique_ptr<FrameSocket>> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(std::make_unique<FrameSocket>(gateway.port(), 0, FrameSocket::Opening::Nothing));
    // The magic, then a PING where SETTINGS must come first.
    REQUIRE(clients.back()->send(std::string(kPreface) + FrameSocket::frame(kPing, 0, 0, std::string(8, 'p'))));
  }
  for (auto& c : clients) {
    auto seen = c->readUntilClosed(std::chrono::seconds(3));
    CHECK(seen.goaway);
    CHECK_FALSE(seen.reset);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // past preface_timeout_ms, inside the linger
  const auto stats = readStats(gateway.adminAddress());
  CHECK(statValue(stats, "listener.grpc.downstream_protocol_errors") == 5);
  CHECK(statValue(stats, "listener.grpc.downstream_cx_preface_timeout") == 0);
  CHECK(statValue(stats, "listener.grpc.downstream_cx_active") == 5);  // the clients have not closed
  const auto stopping = std::chrono::steady_clock::now();
  gateway.signal(SIGTERM);
  CHECK(waitFor([&] { return !gateway.running(); }, std::chrono::seconds(5)));
  CHECK(std::chrono::steady_clock::now() - stopping < std::chrono::milliseconds(1000));
}

// HPACK lets a small frame stand for a huge header list: one 4000-byte value
// put in the dynamic table, then 1-byte references to it. Past 4 times
// max_header_list_bytes the gateway stops decoding fields into the call
// (nghttp2 skips the rest of the block unchecked) and resets the stream;
// such streams count toward the same budget as other stream errors.
TEST_CASE("a header block far past max_header_list_bytes resets its stream, and many of them end the connection",
          "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"max_header_list_bytes", 4096},
                                                     {"rst_stream_burst", 20},
                                                     {"rst_stream_rate", 1}}));
  std::string big_entry = std::string("\x40\x01x\x7f\xa1\x1e", 6) + std::string(4000, 'a');  // 127 + 3873
  std::string references(200, '\xbe');  // indexed: the newest dynamic entry (index 62)
  FrameSocket one(gateway.port());
  one.send(FrameSocket::requestHeaders(1, "/sluice.example.Echo/Unary", true, big_entry + references));
  std::optional<FrameSocket::Frame> reset;
  while (auto f = one.nextFrame(std::chrono::seconds(5))) {
    if (f->type == kRstStream) {
      reset = f;
      break;
    }
  }
  REQUIRE(reset);
  CHECK(reset->stream == 1);
  CHECK(reset->payload == std::string("\0\0\0\x02", 4));  // INTERNAL_ERROR
  // Just over the limit is still answered RESOURCE_EXHAUSTED (the existing test), and
  // the connection goes on: a well-formed request on it is served.
  one.send(FrameSocket::requestHeaders(3, "/sluice.example.Echo/Unary", true));
  one.send(FrameSocket::frame(kData, 0x1, 3, grpcFrame("")));
  bool answered = false;
  while (auto f = one.nextFrame(std::chrono::seconds(5))) {
    if (f->type == kHeaders && f->stream == 3 && (f->flags & 0x1) != 0) {
      answered = true;
      break;
    }
  }
  CHECK(answered);

  FrameSocket many(gateway.port());
  std::string burst;
  for (uint32_t i = 0; i < 100; ++i) {
    burst += FrameSocket::requestHeaders(1 + 2 * i, "/sluice.example.Echo/Unary", true, big_entry + references);
  }
  many.send(burst);
  auto seen = many.readUntilClosed(std::chrono::seconds(5));
  CHECK(seen.goaway);
  CHECK(seen.goaway_code == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(seen.closed);
}

TEST_CASE("a PING flood from a client that does not read closes that connection only", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"max_pending_acks", 100}, {"connection_buffer_bytes", 16384}}),
                         GatewayProcess::Options{"debug", std::chrono::milliseconds{10000}, {}, {}, {}});
  WellBehavedClient good(gateway.address());
  FrameSocket attacker(gateway.port());
  std::string ping = FrameSocket::frame(kPing, 0, 0, std::string(8, 'p'));
  std::string flood;
  for (int i = 0; i < 20000; ++i) flood += ping;
  // The gateway's answers pile up unread; past the limit it gives up on us.
  bool cut = false;
  for (int i = 0; i < 40 && !cut; ++i) cut = !attacker.send(flood);
  auto seen = attacker.readUntilClosed(std::chrono::seconds(5));
  CHECK((cut || seen.closed));
  good.finish();
  INFO("first failure of the good client: " << good.firstFailure);
  CHECK(good.failed() == 0);
}

TEST_CASE("a client that stops reading loses its connection once the gateway has given up on it",
          "[e2e][limits]") {
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"idle_timeout_ms", 300}, {"keepalive_interval_ms", 0}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  const std::string admin = gateway.adminAddress();
  FrameSocket client(gateway.port());
  // Windows wide open, then a server-streaming call of 64 MB that the client
  // never reads: the kernel's buffers and the gateway's fill up.
  std::string settings;
  settings += std::string("\x00\x04", 2) + std::string("\x7f\xff\xff\xff", 4);  // INITIAL_WINDOW_SIZE
  client.send(FrameSocket::frame(kSettings, 0x1, 0, ""));  // ack the gateway's SETTINGS
  client.send(FrameSocket::frame(kSettings, 0, 0, settings));
  uint32_t increment = 0x7fffffff - 65535;
  std::string wu;
  for (int s = 24; s >= 0; s -= 8) wu += static_cast<char>((increment >> s) & 0xff);
  client.send(FrameSocket::frame(kWindowUpdate, 0, 0, wu));
  EchoRequest req;
  req.set_response_count(1000);
  req.set_response_size(65536);
  client.openServerStream(1, req);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // The call ends (the client cancels it); the connection, now idle, is
  // told GOAWAY, which cannot reach a client that does not read.
  client.send(FrameSocket::frame(kRstStream, 0, 1, std::string("\0\0\0\x08", 4)));
  const std::string active = "listener.grpc.downstream_cx_active";
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (statValue(admin, active) != 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(statValue(admin, active) == 0);
  CHECK_THAT(gateway.logs(), Catch::Contains("stopped reading"));
}

TEST_CASE("max_concurrent_streams: grpc++ queues, a client ignoring it loses its connection", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"max_concurrent_streams", 2}}));
  FrameSocket raw(gateway.port());
  raw.send(FrameSocket::frame(kSettings, 0x1, 0, ""));  // ack the gateway's SETTINGS
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  raw.send(FrameSocket::requestHeaders(1) + FrameSocket::requestHeaders(3) + FrameSocket::requestHeaders(5));
  auto seen = raw.readUntilClosed(std::chrono::milliseconds(800));
  bool refused = false;
  std::string resets;
  for (auto [stream, code] : seen.resets) {
    resets += std::to_string(stream) + ":" + std::to_string(code) + " ";
    refused = refused || (stream == 5 && (code == 7 || code == 1));
  }
  INFO("resets: " << resets << (seen.goaway ? " goaway " + std::to_string(seen.goaway_code) : ""));
  // Once our SETTINGS are acknowledged, nghttp2 treats the excess stream as a
  // connection error (GOAWAY PROTOCOL_ERROR); before that, REFUSED_STREAM.
  CHECK((refused || (seen.goaway && seen.goaway_code == 1)));

  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  std::vector<std::thread> calls;
  std::atomic<int> ok{0};
  for (int i = 0; i < 6; ++i) {
    calls.emplace_back([&] {
      grpc::ClientContext ctx;
      setTimeout(ctx, kCallTimeout);
      EchoRequest req;
      req.set_sleep_ms(150);
      EchoResponse resp;
      if (stub->Unary(&ctx, req, &resp).ok()) ok++;
    });
  }
  int most = 0;
  for (int i = 0; i < 30; ++i) {
    most = std::max(most, backend.stats().active.load());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& t : calls) t.join();
  CHECK(ok == 6);
  CHECK(most <= 2);
}

TEST_CASE("request headers over max_header_list_bytes get RESOURCE_EXHAUSTED", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"max_header_list_bytes", 4096}}));
  RawH2Client client("127.0.0.1", gateway.port());
  auto req = RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(""));
  req.headers.emplace_back("x-big", std::string(8000, 'a'));
  auto resp = client.request(req);
  INFO(resp.describe());
  CHECK(resp.grpcStatus() == 8);
  CHECK_THAT(resp.grpcMessage(), Catch::Contains("4096"));
  // The same connection goes on serving.
  auto ok = client.request(RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame("")));
  CHECK(ok.grpcStatus() == 0);
}

// grpc++ backends accept 8 KiB of metadata (their SETTINGS_MAX_HEADER_LIST_SIZE)
// and close the whole connection on a block past it: one client's call with
// 10 KB of metadata used to end every other client's call sharing it.
TEST_CASE("request headers over the backend's SETTINGS_MAX_HEADER_LIST_SIZE fail that call alone, unsent",
          "[e2e][limits]") {
  TestBackend backend("b");
  auto config = catchAllConfig(backend.address());
  config["workers"] = 1;  // every call shares the one backend connection
  GatewayProcess gateway(config);
  auto others = example::Echo::NewStub(makeChannel(gateway.address()));
  // Calls of other clients in flight on the backend connection.
  std::vector<std::thread> streams;
  std::atomic<int> finished_ok{0};
  for (int i = 0; i < 3; ++i) {
    streams.emplace_back([&] {
      grpc::ClientContext ctx;
      setTimeout(ctx, std::chrono::seconds(20));
      EchoRequest req;
      req.set_response_count(10);
      req.set_response_interval_ms(100);
      auto reader = others->ServerStream(&ctx, req);
      EchoResponse resp;
      int n = 0;
      while (reader->Read(&resp)) ++n;
      if (reader->Finish().ok() && n == 10) finished_ok++;
    });
  }
  REQUIRE(waitFor([&] { return backend.stats().active.load() == 3; }, std::chrono::seconds(5)));
  auto big = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  ctx.AddMetadata("x-junk", std::string(10000, 'a'));
  EchoResponse resp;
  grpc::Status s = big->Unary(&ctx, EchoRequest(), &resp);
  CHECK(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(s.error_message(), Catch::Contains("exceed the 8192 bytes endpoint") &&
                                    Catch::Contains("SETTINGS_MAX_HEADER_LIST_SIZE"));
  for (auto& t : streams) t.join();
  CHECK(finished_ok == 3);
  CHECK(backend.stats().calls.load() == 3);  // the oversized call never reached it
  // Under the backend's limit, metadata passes as before.
  grpc::ClientContext fits;
  setTimeout(fits, kCallTimeout);
  fits.AddMetadata("x-junk", std::string(6000, 'a'));
  REQUIRE_OK(big->Unary(&fits, EchoRequest(), &resp));
  // Binary metadata counts at its decoded size, as grpc++ counts it: 6500
  // bytes (8668 characters of base64 on the wire) are within its 8 KiB.
  grpc::ClientContext binary;
  setTimeout(binary, kCallTimeout);
  binary.AddMetadata("x-junk-bin", std::string(6500, '\x01'));
  REQUIRE_OK(big->Unary(&binary, EchoRequest(), &resp));
}

// Each such block is answered, but a client sending them one after another
// (HPACK lets ~80 bytes stand for one) spends the budget of streams it made
// the gateway reset, as a block past the cutoff does.
TEST_CASE("request header blocks over max_header_list_bytes, one after another, end the connection past rst_stream_burst",
          "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"max_header_list_bytes", 4096},
                                                     {"rst_stream_burst", 20},
                                                     {"rst_stream_rate", 1}}));
  RawH2Client client("127.0.0.1", gateway.port());
  auto req = RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(""));
  req.headers.emplace_back("x-big", std::string(8000, 'a'));
  int answered = 0;
  for (int i = 0; i < 40 && !client.goawayReceived() && !client.connectionClosed(); ++i) {
    auto resp = client.request(req, std::chrono::seconds(2));
    if (resp.grpcStatus() == 8) ++answered;
  }
  CHECK(answered >= 20);
  CHECK(answered < 40);
  CHECK(client.goawayReceived());
  CHECK(client.goawayErrorCode() == std::optional<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  CHECK_THAT(gateway.logs(), Catch::Contains("header blocks over max_header_list_bytes"));
  // Other clients are served.
  RawH2Client other("127.0.0.1", gateway.port());
  CHECK(other.request(RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(""))).grpcStatus() == 0);
}

// Frames that make no progress cost the gateway their handling for free:
// past Envoy's limits for them (CVE-2019-9513/9515/9518) the connection ends,
// and others go on.
TEST_CASE("floods of frames that make no progress end that connection only", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(catchAllConfig(backend.address()));
  FrameSocket flooder(gateway.port());
  // One call open (its request not ended), which the floods ride on.
  REQUIRE(flooder.send(FrameSocket::requestHeaders(1, "/sluice.example.Echo/Bidi", true)));
  std::string flood;
  const std::string kind = GENERATE(std::string("empty DATA"), std::string("padded empty DATA"),
                                    std::string("PRIORITY"), std::string("WINDOW_UPDATE"));
  INFO(kind);
  for (int i = 0; i < 500; ++i) {
    if (kind == "empty DATA") flood += FrameSocket::frame(kData, 0, 1, "");
    // PADDED, a pad length of 0 and no data: as empty as the above.
    if (kind == "padded empty DATA") flood += FrameSocket::frame(kData, 0x08, 1, std::string(1, '\0'));
    // Stream 1 depends on stream 0, weight 16: a valid PRIORITY.
    if (kind == "PRIORITY") flood += FrameSocket::frame(2, 0, 1, std::string("\x00\x00\x00\x00\x0f", 5));
    if (kind == "WINDOW_UPDATE") flood += FrameSocket::frame(kWindowUpdate, 0, 1, std::string("\x00\x00\x00\x01", 4));
  }
  REQUIRE(flooder.send(flood));
  auto seen = flooder.readUntilClosed(std::chrono::seconds(3));
  CHECK(seen.goaway);
  CHECK(seen.goaway_code == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK_THAT(gateway.logs(), Catch::Contains("a flood of"));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse resp;
  REQUIRE_OK(stub->Unary(&ctx, EchoRequest(), &resp));
}

// The other side of those limits: a client that hands back window credit in
// small steps (a stream and a connection WINDOW_UPDATE for every 4 KiB it
// reads, as Go's x/net/http2 does) while the gateway sends it DATA frames of
// up to 256 KiB makes many updates per frame, and is no flood.
TEST_CASE("a client returning window credit every 4 KiB of large DATA frames is not a flood", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(catchAllConfig(backend.address()));
  FrameSocket client(gateway.port());
  // SETTINGS_MAX_FRAME_SIZE 1 MiB, 4 MiB stream windows, and the
  // connection's window opened by 16 MiB.
  REQUIRE(client.send(FrameSocket::frame(kSettings, 0, 0, std::string("\x00\x05\x00\x10\x00\x00", 6))));
  client.setStreamWindow(4u << 20);
  REQUIRE(client.send(FrameSocket::frame(kWindowUpdate, 0, 0, std::string("\x00\xff\x00\x00", 4))));
  EchoRequest request;
  request.set_response_count(100);
  request.set_response_size(65536);
  client.openServerStream(1, request);
  // Responses pile up in the gateway meanwhile: they go out in large frames.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  size_t received = 0, unacked = 0, largest_frame = 0;
  bool ended = false, goaway = false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ended && !goaway && std::chrono::steady_clock::now() < until) {
    auto frame = client.nextFrame(std::chrono::seconds(2));
    if (!frame) break;
    if (frame->type == kGoaway) goaway = true;
    if (frame->type == kHeaders && frame->stream == 1 && (frame->flags & 0x1) != 0) ended = true;
    if (frame->type != kData || frame->stream != 1) continue;
    received += frame->payload.size();
    unacked += frame->payload.size();
    largest_frame = std::max(largest_frame, frame->payload.size());
    for (; unacked >= 4096; unacked -= 4096) {
      const std::string credit("\x00\x00\x10\x00", 4);  // 4096
      REQUIRE(client.send(FrameSocket::frame(kWindowUpdate, 0, 1, credit) + FrameSocket::frame(kWindowUpdate, 0, 0, credit)));
    }
  }
  INFO(received << " bytes received, in frames of up to " << largest_frame);
  CHECK(largest_frame > 64u * 1024);
  CHECK_FALSE(goaway);
  CHECK(ended);
  CHECK(received >= 100u * 65536);
  CHECK_THAT(gateway.logs(), !Catch::Contains("a flood of"));
}

TEST_CASE("request headers of a connection's open calls count against max_held_request_header_bytes",
          "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(
      limited(backend.address(), {{"max_header_list_bytes", 8192}, {"max_held_request_header_bytes", 16384}}));
  auto withHeaders = [](const char* path, int big_headers) {
    auto req = RawRequest::grpc(path, grpcFrame(""));
    for (int i = 0; i < big_headers; ++i) req.headers.emplace_back("x-big-" + std::to_string(i), std::string(1000, 'h'));
    return req;
  };
  RawH2Client client("127.0.0.1", gateway.port());
  SECTION("a call that ends gives its share back") {
    for (int i = 0; i < 10; ++i) {  // 10 x ~3.4 KB in turn: never more than one held
      auto resp = client.request(withHeaders("/sluice.example.Echo/Unary", 3));
      INFO("call " << i << ": " << resp.describe());
      REQUIRE(resp.grpcStatus() == 0);
    }
  }
  SECTION("the call that would pass it is refused; a smaller one still fits") {
    for (int i = 0; i < 4; ++i) {  // ~13.6 KB held by four open calls
      auto open = withHeaders("/sluice.example.Echo/Bidi", 3);
      open.body.clear();
      open.endStream = false;
      open.returnOnceSent = true;
      client.request(open);
    }
    auto refused = client.request(withHeaders("/sluice.example.Echo/Unary", 3));
    INFO(refused.describe());
    CHECK(refused.grpcStatus() == 8);
    CHECK_THAT(refused.grpcMessage(), Catch::Contains("max_held_request_header_bytes"));
    auto small = client.request(withHeaders("/sluice.example.Echo/Unary", 0));
    INFO(small.describe());
    CHECK(small.grpcStatus() == 0);
    // Another connection has its own budget.
    RawH2Client other("127.0.0.1", gateway.port());
    CHECK(other.request(withHeaders("/sluice.example.Echo/Unary", 3)).grpcStatus() == 0);
  }
}

TEST_CASE("request messages waiting for their backend count against max_incomplete_request_bytes", "[e2e][limits]") {
  // A backend host whose listening socket never accepts: the gateway's
  // connection is made (by the kernel) but no SETTINGS come, so every
  // message of every call waits in the gateway until connect_timeout_ms.
  int mute = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(mute, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(::listen(mute, 16) == 0);
  socklen_t len = sizeof(a);
  ::getsockname(mute, reinterpret_cast<sockaddr*>(&a), &len);
  auto config = limited("127.0.0.1:" + std::to_string(ntohs(a.sin_port)),
                        {{"max_message_bytes", 4 << 20}, {"max_incomplete_request_bytes", 8 << 20}});
  config["clusters"][0]["connect_timeout_ms"] = 4000;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // Each call sends a small message, then a whole 3.5 MB one, which the
  // gateway receives (credit for a message still arriving goes back at
  // once) and can only queue. One connection, five calls, one after the
  // other so that no two messages are arriving at once: 17.5 MB held.
  constexpr int kCalls = 5;
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<std::thread> calls;
  for (int i = 0; i < kCalls; ++i) {
    calls.emplace_back([&, i] {
      grpc::ClientContext ctx;
      setTimeout(ctx, kCallTimeout);
      EchoResponse resp;
      auto writer = stub->ClientStream(&ctx, &resp);
      EchoRequest big;
      big.set_payload(std::string(3500000, 'r'));
      if (writer->Write(EchoRequest()) && writer->Write(big)) writer->WritesDone();
      statuses[i] = writer->Finish();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  for (auto& t : calls) t.join();
  ::close(mute);
  int exhausted = 0;
  for (int i = 0; i < kCalls; ++i) {
    INFO("call " << i << ": " << describe(statuses[i]));
    if (statuses[i].error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      CHECK_THAT(statuses[i].error_message(), Catch::Contains("max_incomplete_request_bytes"));
      ++exhausted;
    } else {
      CHECK(statuses[i].error_code() == grpc::StatusCode::UNAVAILABLE);  // the backend never spoke
    }
  }
  // 8 MiB hold two such calls, not five.
  CHECK(exhausted >= 2);
  CHECK(exhausted <= 3);
}

TEST_CASE("whole request messages held behind a paused filter count against max_incomplete_request_bytes",
          "[e2e][limits]") {
  // A fault delay pauses the request side; the window credit of a message
  // arriving meanwhile goes back as it arrives, so each held call could
  // keep a whole max_message_bytes message outside the budget.
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"max_message_bytes", 1 << 20}, {"max_incomplete_request_bytes", 2 << 20}});
  auto& chain = config["listeners"][0]["filters"];
  chain.insert(chain.begin(), nlohmann::json::parse(
                                  R"({"name": "fault", "config": {"rules": [
                                        {"match": {"prefix": "/"}, "delay": {"ms": 8000}}]}})"));
  GatewayProcess gateway(config);
  RawH2Client client("127.0.0.1", gateway.port());
  const std::string message = grpcFrame(std::string((1 << 20) - 64, 'm'));
  for (int i = 0; i < 2; ++i) {  // two held calls with a whole message each: within the 2 MiB
    auto held = RawRequest::grpc("/sluice.example.Echo/Bidi", message);
    held.endStream = false;
    held.returnOnceSent = true;
    auto sent = client.request(held);
    INFO(sent.describe());
    REQUIRE_FALSE(sent.streamClosed);
  }
  auto third = client.request(RawRequest::grpc("/sluice.example.Echo/Unary", message), std::chrono::seconds(5));
  INFO(third.describe());
  CHECK(third.grpcStatus() == 8);
  CHECK_THAT(third.grpcMessage(), Catch::Contains("max_incomplete_request_bytes"));
}

TEST_CASE("max_connections refuses the connection over the limit", "[e2e][limits]") {
  TestBackend backend("b");
  // Two workers: the limit holds across them (each holds one of the two).
  auto config = limited(backend.address(), {{"max_connections", 2}});
  config["workers"] = 2;
  GatewayProcess gateway(config);
  RawH2Client first("127.0.0.1", gateway.port());
  RawH2Client second("127.0.0.1", gateway.port());
  REQUIRE(first.request(RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(""))).grpcStatus() == 0);
  REQUIRE(second.request(RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(""))).grpcStatus() == 0);
  FrameSocket third(gateway.port());
  CHECK(third.readUntilClosed(std::chrono::seconds(2)).closed);
  CHECK_THAT(gateway.logs(), Catch::Contains("max_connections (2) reached"));
  // Clients reconnecting in a loop do not flood the log: at most a line a
  // second per worker (before, a line per connection).
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 200; ++i) {
    FrameSocket again(gateway.port());
    CHECK(again.readUntilClosed(std::chrono::seconds(2)).closed);
  }
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
  INFO(seconds.count() << " s of reconnecting");
  CHECK(logCount(gateway, "max_connections (2) reached") <= 2 * (static_cast<size_t>(seconds.count()) + 2));
  CHECK(first.request(RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(""))).grpcStatus() == 0);
}

TEST_CASE("max_message_bytes holds both ways, and the calls over it are counted as message_too_large",
          "[e2e][limits]") {
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"max_message_bytes", 4096}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto call = [&](size_t request_bytes, uint32_t response_bytes) {
    EchoRequest request;
    request.set_payload(std::string(request_bytes, 'q'));
    request.set_response_size(response_bytes);
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoResponse response;
    return stub->Unary(&ctx, request, &response);
  };
  // Just under the limit both ways (a few bytes of protobuf framing on top).
  REQUIRE_OK(call(4000, 4000));
  grpc::Status big_request = call(5000, 10);
  REQUIRE_STATUS(big_request, grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(big_request.error_message(), Catch::Contains("exceeds the limit of 4096 bytes"));
  grpc::Status big_response = call(10, 5000);
  REQUIRE_STATUS(big_response, grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(big_response.error_message(), Catch::Contains("upstream cluster") &&
                                               Catch::Contains("exceeds the limit of 4096 bytes"));
  REQUIRE_OK(call(10, 10));
  auto stats = readStats(gateway.adminAddress());
  CHECK(statValue(stats, "listener.grpc.local_reply.message_too_large") == 2);
  CHECK(statValue(stats, "listener.grpc.local_reply.filter") == 0);
  CHECK(statValue(stats, "listener.grpc.local_reply.upstream_failure") == 0);
}

TEST_CASE("request messages left unfinished on many streams are bounded per connection", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(
      limited(backend.address(), {{"max_message_bytes", 1 << 20}, {"max_incomplete_request_bytes", 2 << 20}}));
  RawH2Client raw("127.0.0.1", gateway.port());
  // Each stream announces a 1 MiB message and sends 600 KB of it, then waits.
  std::string partial(5, '\0');
  partial[2] = '\x10';  // length 0x00100000: 1 MiB
  partial += std::string(600000, 'p');
  std::optional<RawResponse> refused;
  int open_streams = 0;
  for (int i = 0; i < 8 && !refused; ++i) {
    RawRequest request = RawRequest::grpc("/sluice.example.Echo/ClientStream", partial);
    request.endStream = false;
    // The stream stays open either way (the client has not ended it): a
    // refused call shows as a status.
    RawResponse response = raw.request(request, std::chrono::milliseconds(300));
    if (response.grpcStatus().has_value()) {
      refused = response;
    } else {
      ++open_streams;
    }
  }
  REQUIRE(refused.has_value());
  INFO(refused->describe());
  CHECK(open_streams >= 1);  // one such message alone is within the limit
  CHECK(refused->grpcStatus() == 8);  // RESOURCE_EXHAUSTED
  CHECK_THAT(refused->grpcMessage(), Catch::Contains("max_incomplete_request_bytes"));
  // Other connections are not affected.
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse resp;
  REQUIRE_OK(stub->Unary(&ctx, EchoRequest(), &resp));
}

TEST_CASE("a response that ends before its request frees the stream slot (RST_STREAM NO_ERROR)",
          "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"max_concurrent_streams", 2}}));
  RawH2Client raw("127.0.0.1", gateway.port());
  // The backend ends a bidi call at a message that asks for a status, while
  // the client is still sending; the gateway itself ends a malformed path.
  EchoRequest failing;
  failing.set_status_code(9);
  failing.set_status_message("stop here");
  RawRequest proxied = RawRequest::grpc("/sluice.example.Echo/Bidi", grpcFrame(failing.SerializeAsString()));
  proxied.endStream = false;
  RawRequest local = RawRequest::grpc("/nomethod", grpcFrame(""));
  local.endStream = false;
  // Three times the stream limit on one connection: each stream must be
  // closed by the gateway, or the client runs out of streams.
  for (int i = 0; i < 3; ++i) {
    for (const RawRequest* request : {&proxied, &local}) {
      RawResponse response = raw.request(*request, std::chrono::seconds(3));
      INFO("round " << i << ", " << request->path << ": " << response.describe());
      REQUIRE_FALSE(response.timedOut);
      CHECK(response.streamClosed);
      CHECK(response.rstStreamCode == std::optional<uint32_t>(0));  // NO_ERROR, after the status
      CHECK(response.grpcStatus() == (request == &proxied ? 9 : 12));
    }
  }
  RawResponse ok = raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame("")));
  INFO(ok.describe());
  CHECK(ok.grpcStatus() == 0);
  CHECK_FALSE(ok.rstStreamCode.has_value());  // a finished request gets no reset
}

TEST_CASE("idle connections close, but never one with an active stream", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"idle_timeout_ms", 300}}));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoRequest req;
  req.set_response_count(5);
  req.set_response_interval_ms(250);  // 1 s, over three idle periods
  auto reader = stub->ServerStream(&ctx, req);
  EchoResponse resp;
  int n = 0;
  while (reader->Read(&resp)) ++n;
  REQUIRE_OK(reader->Finish());
  CHECK(n == 5);

  FrameSocket idle(gateway.port());
  auto seen = idle.readUntilClosed(std::chrono::seconds(3));
  CHECK(seen.goaway);
  CHECK(seen.closed);
}

// The idle close was one GOAWAY and the socket closed at once: a call the
// client sent just then met a closed socket ("Broken pipe"), which no gRPC
// library retries.
TEST_CASE("an idle connection closes in two steps: a call sent as the first GOAWAY came is served",
          "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"idle_timeout_ms", 300}}));
  FrameSocket client(gateway.port());
  auto lastStreamId = [](const FrameSocket::Frame& goaway) {
    const auto* p = reinterpret_cast<const uint8_t*>(goaway.payload.data());
    return ((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]) & 0x7fffffffu;
  };
  std::optional<FrameSocket::Frame> notice;
  while (!notice) {
    auto frame = client.nextFrame(std::chrono::seconds(3));
    if (!frame) break;
    if (frame->type == kGoaway) notice = frame;
  }
  REQUIRE(notice.has_value());
  CHECK(lastStreamId(*notice) == 0x7fffffffu);  // nothing refused yet
  // The client has not answered the PING: it is still sending.
  EchoRequest request;
  request.set_response_count(1);
  client.openServerStream(1, request);
  bool data = false, trailers = false;
  std::optional<uint32_t> final_last;
  while (auto frame = client.nextFrame(std::chrono::seconds(3))) {
    if (frame->type == kData && frame->stream == 1) data = true;
    if (frame->type == kHeaders && frame->stream == 1 && (frame->flags & 0x1)) trailers = true;
    if (frame->type == kGoaway) final_last = lastStreamId(*frame);
  }
  CHECK(data);
  CHECK(trailers);
  CHECK(final_last == std::optional<uint32_t>(1));  // the final GOAWAY names the call it served
  CHECK(backend.stats().calls.load() == 1);
}

TEST_CASE("a connection without a whole HTTP/2 preface in preface_timeout_ms is closed, one with it stays",
          "[e2e][limits]") {
  TestBackend backend("b");
  // No idle or keepalive clock: only the preface's can close these.
  auto config = limited(backend.address(),
                        {{"preface_timeout_ms", 300}, {"idle_timeout_ms", 0}, {"keepalive_interval_ms", 0}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  const auto start = std::chrono::steady_clock::now();
  FrameSocket silent(gateway.port(), 0, FrameSocket::Opening::Nothing);
  FrameSocket magic_only(gateway.port(), 0, FrameSocket::Opening::Nothing);  // the magic, never its SETTINGS
  REQUIRE(magic_only.send(std::string(kPreface)));
  FrameSocket speaks(gateway.port());
  // A client that took a while to speak, but spoke in time.
  FrameSocket late(gateway.port(), 0, FrameSocket::Opening::Nothing);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  REQUIRE(late.send(std::string(kPreface) + FrameSocket::frame(kSettings, 0, 0, "")));
  CHECK(silent.readUntilClosed(std::chrono::seconds(3)).closed);
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(250));
  CHECK(magic_only.readUntilClosed(std::chrono::seconds(3)).closed);
  // Well past the timeout, the connections that spoke are open and serve calls.
  CHECK_FALSE(speaks.readUntilClosed(std::chrono::milliseconds(600)).closed);
  CHECK_FALSE(late.readUntilClosed(std::chrono::milliseconds(100)).closed);
  EchoRequest request;
  request.set_response_count(1);
  speaks.openServerStream(1, request);
  bool answered = false;
  while (!answered) {
    auto f = speaks.nextFrame(std::chrono::seconds(5));
    if (!f) break;
    answered = f->type == kHeaders && f->stream == 1;
  }
  CHECK(answered);
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.downstream_cx_preface_timeout") == 2);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse response;
  REQUIRE_OK(stub->Unary(&ctx, EchoRequest(), &response));
}

TEST_CASE("a client that stops answering PINGs is dropped", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"keepalive_interval_ms", 200}, {"keepalive_timeout_ms", 200},
                                                     {"idle_timeout_ms", 0}}));
  FrameSocket silent(gateway.port());  // reads, never answers
  auto seen = silent.readUntilClosed(std::chrono::seconds(3));
  CHECK(seen.closed);
}

TEST_CASE("keepalive counts only acknowledgements of the gateway's own PINGs", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"keepalive_interval_ms", 200}, {"keepalive_timeout_ms", 600},
                                                     {"idle_timeout_ms", 0}}));
  FrameSocket honest(gateway.port());
  int answered = 0;
  auto kept = honest.readUntilClosed(std::chrono::milliseconds(1500), [&](const std::string& payload) {
    honest.send(FrameSocket::frame(kPing, 0x1, 0, payload));
    ++answered;
  });
  CHECK(answered >= 3);
  CHECK_FALSE(kept.closed);
  // Prompt ACKs, but not of the PINGs the gateway sent: a client must not
  // keep a connection alive with them (e.g. one that never reads).
  FrameSocket forger(gateway.port());
  int forged = 0;
  auto dropped = forger.readUntilClosed(std::chrono::milliseconds(3000), [&](const std::string&) {
    forger.send(FrameSocket::frame(kPing, 0x1, 0, std::string(8, '\x5a')));
    ++forged;
  });
  CHECK(forged >= 1);
  CHECK(dropped.closed);
}

TEST_CASE("a client that sends without reading stops being read: the gateway's queue stays bounded",
          "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"keepalive_interval_ms", 0}, {"idle_timeout_ms", 0}}));
  FrameSocket flooder(gateway.port(), 4096);
  // Requests for a malformed path, each answered by the gateway itself (a
  // trailers-only reply), on ever new streams.
  // Sends until nothing has gone out for 1 s (at most 20 s), then for 2 s more.
  size_t sent = 0, sent_at_stall = 0;
  bool stalled = false;
  uint32_t stream = 1;
  std::string pending;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last_progress = start, stalled_at = start;
  for (auto now = start; now - start < std::chrono::seconds(20); now = Clock::now()) {
    if (pending.empty()) {
      pending = FrameSocket::requestHeaders(stream, "/x");
      pending[4] = 0x5;  // END_HEADERS | END_STREAM
      stream += 2;
    }
    size_t n = flooder.sendSome(pending);
    pending.erase(0, n);
    sent += n;
    if (n > 0) last_progress = now;
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!stalled && now - last_progress >= std::chrono::seconds(1)) {
      stalled = true;
      stalled_at = now;
      sent_at_stall = sent;
    }
    if (stalled && now - stalled_at >= std::chrono::seconds(2)) break;
  }
  INFO("sent " << sent << " bytes, " << sent_at_stall << " before the first stall of 1 s");
  // Once the gateway's writes back up it reads no more, and the kernel's
  // buffers fill: the client can send (almost) nothing after that.
  REQUIRE(stalled);
  CHECK(sent - sent_at_stall < (1u << 20));
  // The gateway and its other clients go on.
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse resp;
  REQUIRE_OK(stub->Unary(&ctx, EchoRequest(), &resp));
}

TEST_CASE("calls of a client that does not read are reset past max_buffered_response_bytes", "[e2e][limits]") {
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"max_buffered_response_bytes", 4 << 20}, {"keepalive_interval_ms", 0}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  FrameSocket stuck(gateway.port());
  // Stream windows of 0: the client takes no response byte, while each
  // backend may send its window ahead: 256 KiB, and the first call to stream
  // is lent the connection's 4 MiB on top (the others find none left).
  stuck.setStreamWindow(0);
  EchoRequest request;
  request.set_response_count(1000);
  request.set_response_size(65536);
  constexpr int kCalls = 3;
  for (uint32_t stream = 1; stream < 2 * kCalls; stream += 2) {
    stuck.openServerStream(stream, request);
  }
  // After a grace of 2 s without any progress, the call holding the most
  // goes: that brings the connection back under the limit.
  auto seen = stuck.readUntilClosed(std::chrono::seconds(4));
  CHECK_FALSE(seen.closed);
  REQUIRE(seen.resets.size() == 1);
  CHECK(seen.resets.front().second == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.local_reply.slow_reader") == 1);
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.downstream_rq_active") == kCalls - 1);
  CHECK_THAT(gateway.logs(), Catch::Contains("max_buffered_response_bytes"));
  // A client that reads gets the whole stream, though the gateway holds
  // more than the limit for it (the backend's window, 8 MiB, runs ahead).
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoRequest big;
  big.set_response_count(200);
  big.set_response_size(65536);
  auto reader = stub->ServerStream(&ctx, big);
  EchoResponse resp;
  int got = 0;
  while (reader->Read(&resp)) ++got;
  REQUIRE_OK(reader->Finish());
  CHECK(got == 200);
}

TEST_CASE("past max_buffered_response_bytes only as many stalled calls are reset as bring the connection under it",
          "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(bufferLimited(backend.address(), 20 << 20));
  // A client that paused 4 streams, their backends' windows queued in the
  // gateway: 256 KiB each, and the 20 MiB the connection lends on top (8, 8
  // and 4.5 MiB): 21.5 MiB, over the limit by the base windows. Resetting
  // one call that was lent 8 MiB brings it under; the other three stay.
  FrameSocket paused(gateway.port());
  auto seen = pauseServerStreams(paused, 4, 1000, 65536);
  CHECK_FALSE(seen.closed);
  CHECK(seen.resets.size() == 1);
  for (const auto& [stream, code] : seen.resets) CHECK(code == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.local_reply.slow_reader") == 1);
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.downstream_rq_active") == 3);
  // The log names what the connection held when it was judged: over the limit.
  const std::string logs = gateway.logs();
  const size_t at = logs.find("response bytes, over max_buffered_response_bytes");
  REQUIRE(at != std::string::npos);
  const size_t held_start = logs.rfind("held ", at) + 5;
  CHECK(std::stoull(logs.substr(held_start, at - held_start)) > (20u << 20));
}

TEST_CASE("past max_buffered_response_bytes stalled calls are reset however little each holds", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(bufferLimited(backend.address(), 2 << 20));
  // 16 calls whose one 200 kB message (under stream_buffer_bytes, 256 KiB)
  // and status wait behind stream windows of 0: 3.2 MB together, of which
  // 2 MiB may stay.
  FrameSocket paused(gateway.port());
  auto seen = pauseServerStreams(paused, 16, 1, 200000);
  CHECK_FALSE(seen.closed);
  // 3,200,000 - 2,097,152 bytes over: 6 calls of 200 kB bring it under.
  CHECK(seen.resets.size() == 6);
  for (const auto& [stream, code] : seen.resets) CHECK(code == NGHTTP2_ENHANCE_YOUR_CALM);
  // The calls had ended (their status is kept, so slow_reader does not count them); the log says why.
  CHECK(logCount(gateway, "[info] [C1][S") == 6);
}

TEST_CASE("a client that stops reading altogether has its calls reset and their backend calls cancelled",
          "[e2e][limits]") {
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"max_buffered_response_bytes", 4 << 20}, {"keepalive_interval_ms", 0}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["workers"] = 1;
  GatewayProcess gateway(config);
  FrameSocket stuck(gateway.port(), 4096);  // reads nothing from here on
  // Windows wide open: the gateway writes until its socket is backed up,
  // and the resets then wait behind what the client does not read.
  stuck.setStreamWindow(16u << 20);
  stuck.send(FrameSocket::frame(kWindowUpdate, 0, 0, std::string("\x00\xff\x00\x00", 4)));
  EchoRequest request;
  request.set_response_count(100000);
  request.set_response_size(65536);
  // Enough calls that their base windows alone (256 KiB each, and as much
  // again in each call's buffer) pass the 4 MiB limit beyond what the
  // sockets take: the connection's 4 MiB of lent window on top.
  constexpr int kCalls = 24;
  for (uint32_t stream = 1; stream < 2 * kCalls; stream += 2) {
    stuck.openServerStream(stream, request);
  }
  // The resets cannot reach this client (its socket is full), but they end
  // the calls at once: the backend's calls are cancelled, not left
  // streaming into a gateway that throws the bytes away.
  CHECK(waitFor([&] { return backend.stats().cancelled.load() > 0; }, std::chrono::seconds(8)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto stats = readStats(gateway.adminAddress());
  const int64_t reset = statValue(stats, "listener.grpc.local_reply.slow_reader");
  INFO("backend: " << backend.stats().active.load() << " active, " << backend.stats().cancelled.load()
                   << " cancelled; " << reset << " reset");
  CHECK(reset > 0);
  CHECK(backend.stats().cancelled.load() == reset);
  CHECK(statValue(stats, "listener.grpc.downstream_rq_active") == kCalls - reset);
  // What stays is under the limit.
  CHECK(statValue(stats, "process.heap_bytes") < (64 << 20));
}

TEST_CASE("a client that reads slowly keeps its calls past max_buffered_response_bytes", "[e2e][limits]") {
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"max_buffered_response_bytes", 4 << 20}, {"keepalive_interval_ms", 0}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  FrameSocket slow(gateway.port(), 16384);
  // Windows wide open (16 MiB per stream and for the connection), so the
  // calls wait only for this client's reading: 16 KB every 100 ms.
  slow.setStreamWindow(16u << 20);
  slow.send(FrameSocket::frame(kWindowUpdate, 0, 0, std::string("\x00\xff\x00\x00", 4)));
  EchoRequest request;
  request.set_response_count(100000);
  request.set_response_size(65536);
  for (uint32_t stream : {1u, 3u}) {
    slow.openServerStream(stream, request);
  }
  auto seen = slow.readUntilClosed(std::chrono::seconds(5), {}, 16384, std::chrono::milliseconds(100));
  CHECK_FALSE(seen.closed);
  CHECK(seen.resets.empty());
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.local_reply.slow_reader") == 0);
}

TEST_CASE("a route's timeout ends the call with DEADLINE_EXCEEDED after what is queued, not a reset",
          "[e2e][limits]") {
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"keepalive_interval_ms", 0}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["listeners"][0]["filters"][0]["config"]["routes"][0]["timeout_ms"] = 300;
  GatewayProcess gateway(config);
  FrameSocket stuck(gateway.port());
  stuck.setStreamWindow(0);  // windows of 0
  EchoRequest request;
  request.set_response_count(100000);
  request.set_response_size(1000);
  // No grpc-timeout: the client has no deadline of its own and may still
  // read what is queued, then the status.
  stuck.openServerStream(1, request);
  auto seen = stuck.readUntilClosed(std::chrono::milliseconds(1500));
  CHECK(seen.resets.empty());
  auto stats = readStats(gateway.adminAddress());
  CHECK(statValue(stats, "listener.grpc.local_reply.deadline") == 1);
  CHECK(statValue(stats, "listener.grpc.downstream_rq_active") == 0);
  CHECK(waitFor([&] { return backend.stats().active.load() == 0; }, std::chrono::seconds(2)));  // cancelled
}

TEST_CASE("a deadline passing with response bytes the client has not taken resets the stream", "[e2e][limits]") {
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"keepalive_interval_ms", 0}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["workers"] = 1;
  GatewayProcess gateway(config);
  {  // the backend connection is up before the timed calls
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoResponse resp;
    REQUIRE_OK(stub->Unary(&ctx, EchoRequest(), &resp));
  }
  FrameSocket stuck(gateway.port());
  stuck.setStreamWindow(0);  // windows of 0
  // Stream 1: the backend finishes (its status waits behind its messages);
  // stream 3: the backend is still sending at the deadline.
  for (auto [stream, count] : {std::pair<uint32_t, uint32_t>{1, 10}, {3, 100000}}) {
    EchoRequest request;
    request.set_response_count(count);
    request.set_response_size(1000);
    stuck.openServerStream(stream, request, FrameSocket::literal("grpc-timeout", "1000m"));
  }
  auto seen = stuck.readUntilClosed(std::chrono::seconds(3));
  // Not a status queued behind messages the client does not take (the call
  // would hold its memory until the connection ends): RST_STREAM.
  std::map<uint32_t, uint32_t> resets(seen.resets.begin(), seen.resets.end());
  CHECK(resets == std::map<uint32_t, uint32_t>{{1, NGHTTP2_CANCEL}, {3, NGHTTP2_CANCEL}});
  // (Stream 3 ends either by the gateway's deadline or, a moment earlier, by
  // the backend's: it got what was left of the deadline as grpc-timeout.)
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.downstream_rq_active") == 0);
}

TEST_CASE("stream_idle_timeout_ms ends a silent stream with DEADLINE_EXCEEDED", "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"stream_idle_timeout_ms", 300}}));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  auto stream = stub->Bidi(&ctx);
  REQUIRE(stream->Write(EchoRequest()));
  EchoResponse resp;
  REQUIRE(stream->Read(&resp));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  while (stream->Read(&resp)) {
  }
  auto s = stream->Finish();
  REQUIRE_STATUS(s, grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK_THAT(s.error_message(), Catch::Contains("stream idle"));
}

// A client that takes no response byte: a status queued behind them would
// never reach it, and the calls would hold their memory (and the stream
// its slot) until the connection ends.
TEST_CASE("stream_idle_timeout_ms resets a stream whose client takes none of its response", "[e2e][limits]") {
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"keepalive_interval_ms", 0}, {"stream_idle_timeout_ms", 500}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["workers"] = 1;
  GatewayProcess gateway(config);
  FrameSocket stuck(gateway.port());
  stuck.setStreamWindow(0);  // windows of 0
  // Stream 1: the backend finishes (its status waits behind its messages);
  // stream 3: the backend is still sending, held back by the gateway.
  for (auto [stream, count] : {std::pair<uint32_t, uint32_t>{1, 10}, {3, 100000}}) {
    EchoRequest request;
    request.set_response_count(count);
    request.set_response_size(1000);
    stuck.openServerStream(stream, request);
  }
  auto seen = stuck.readUntilClosed(std::chrono::seconds(3));
  std::map<uint32_t, uint32_t> resets(seen.resets.begin(), seen.resets.end());
  CHECK(resets == std::map<uint32_t, uint32_t>{{1, NGHTTP2_CANCEL}, {3, NGHTTP2_CANCEL}});
  auto stats = readStats(gateway.adminAddress());
  CHECK(statValue(stats, "listener.grpc.local_reply.deadline") == 1);  // stream 1 ended with the backend's status
  CHECK(statValue(stats, "listener.grpc.downstream_rq_active") == 0);
  CHECK(waitFor([&] { return backend.stats().active.load() == 0; }, std::chrono::seconds(2)));  // cancelled
}

// A backend still sending does not keep such a stream alive: only the
// client taking response bytes does, while some wait for it.
TEST_CASE("stream_idle_timeout_ms resets a stream its client takes nothing of while its backend trickles",
          "[e2e][limits]") {
  TestBackend backend("b");
  auto config = limited(backend.address(), {{"keepalive_interval_ms", 0}, {"stream_idle_timeout_ms", 500}});
  GatewayProcess gateway(config);
  FrameSocket stuck(gateway.port());
  stuck.setStreamWindow(0);  // windows of 0
  EchoRequest request;
  request.set_response_count(40);  // one every 100 ms: 4 s
  request.set_response_size(200);
  request.set_response_interval_ms(100);
  const auto start = std::chrono::steady_clock::now();
  stuck.openServerStream(1, request);
  auto seen = stuck.readUntilClosed(std::chrono::milliseconds(2500));
  std::map<uint32_t, uint32_t> resets(seen.resets.begin(), seen.resets.end());
  INFO(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count()
       << " ms");
  CHECK(resets == std::map<uint32_t, uint32_t>{{1, NGHTTP2_CANCEL}});
}

TEST_CASE("stream_idle_timeout_ms spares a stream whose client is still reading what the gateway holds",
          "[e2e][limits]") {
  TestBackend backend("b");
  GatewayProcess gateway(limited(backend.address(), {{"stream_idle_timeout_ms", 3000}}));
  // Without BDP probing the client's window stays small, so its reading
  // shows as window updates every message or so. With it, grpc++ may grow
  // the window to megabytes and take seconds to reopen it: to the gateway
  // such a client is not reading (a slow sanitizer run failed so).
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto stub = example::Echo::NewStub(
      grpc::CreateCustomChannel(gateway.address(), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext ctx;
  setTimeout(ctx, std::chrono::seconds(30));
  EchoRequest request;
  request.set_response_count(300);
  request.set_response_size(64 * 1024);
  auto reader = stub->ServerStream(&ctx, request);
  EchoResponse response;
  int read = 0;
  const auto start = std::chrono::steady_clock::now();
  // ~2 MB/s: the backend soon fills its 8 MiB window and waits for the
  // gateway, which holds what the client has not read yet and takes more
  // from the backend only as it moves on. Only the bytes going out to the
  // client show the call is alive, for seconds at a time.
  while (reader->Read(&response)) {
    ++read;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  const grpc::Status status = reader->Finish();
  INFO(read << " messages in " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now() - start).count() << " ms");
  REQUIRE_OK(status);
  CHECK(read == 300);
}

}  // namespace sluice::test
