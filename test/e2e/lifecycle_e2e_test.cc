// Process lifecycle end to end: graceful drain on SIGTERM with streams of all
// four kinds open, and live reload on SIGHUP (good and broken configs).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/frame_socket.h"
#include "test/support/http_client.h"
#include "test/support/raw_h2_client.h"
#include "test/support/scripted_resolver.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

constexpr int kPerKind = 100;
// Each call takes about 4 steps. All 400 must be open at the backend at
// once before the signal: calls of 6 s leave a slow machine (400 client and
// 400 backend threads under ASan on two cores) 5 s to start them.
constexpr uint32_t kStepMs = 1500;

// A plain unary call; the backend's name in `resp`.
grpc::Status quickCall(example::Echo::Stub& stub, EchoResponse& resp) {
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  return stub.Unary(&ctx, EchoRequest(), &resp);
}

// One call of each kind, each lasting about 4 * kStepMs; returns "" or what went wrong.
std::string unaryCall(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, std::chrono::seconds(20));
  EchoRequest req;
  req.set_sleep_ms(4 * kStepMs);
  EchoResponse resp;
  auto s = stub.Unary(&ctx, req, &resp);
  return s.ok() ? "" : "unary: " + describe(s);
}

std::string serverStreamCall(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, std::chrono::seconds(20));
  EchoRequest req;
  req.set_response_count(4);
  req.set_response_interval_ms(kStepMs);
  auto reader = stub.ServerStream(&ctx, req);
  EchoResponse resp;
  int n = 0;
  while (reader->Read(&resp)) ++n;
  auto s = reader->Finish();
  if (!s.ok()) return "server stream: " + describe(s);
  return n == 4 ? "" : "server stream: " + std::to_string(n) + " messages";
}

std::string clientStreamCall(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, std::chrono::seconds(20));
  EchoResponse resp;
  auto writer = stub.ClientStream(&ctx, &resp);
  for (int i = 0; i < 4; ++i) {
    if (!writer->Write(EchoRequest())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(kStepMs));
  }
  writer->WritesDone();
  auto s = writer->Finish();
  if (!s.ok()) return "client stream: " + describe(s);
  return resp.received_messages() == 4 ? "" : "client stream: " + std::to_string(resp.received_messages());
}

std::string bidiCall(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, std::chrono::seconds(20));
  auto stream = stub.Bidi(&ctx);
  int got = 0;
  for (int i = 0; i < 4; ++i) {
    if (!stream->Write(EchoRequest())) break;
    EchoResponse resp;
    if (stream->Read(&resp)) ++got;
    std::this_thread::sleep_for(std::chrono::milliseconds(kStepMs));
  }
  stream->WritesDone();
  auto s = stream->Finish();
  if (!s.ok()) return "bidi: " + describe(s);
  return got == 4 ? "" : "bidi: " + std::to_string(got) + " responses";
}

}  // namespace

TEST_CASE("SIGTERM drains 100 open calls of each kind, late calls get UNAVAILABLE, exit 0", "[e2e][lifecycle]") {
  TestBackend backend("b");
  auto config = catchAllConfig(backend.address());
  config["drain_timeout_ms"] = 15000;
  GatewayProcess gateway(config, GatewayProcess::Options{"info", std::chrono::milliseconds{10000}, {}, {}, {}});
  auto channel = makeChannel(gateway.address());
  auto stub = example::Echo::NewStub(channel);

  std::vector<std::string> problems(4 * kPerKind);
  std::vector<std::thread> threads;
  using CallFn = std::string (*)(example::Echo::Stub&);
  const CallFn kinds[] = {unaryCall, serverStreamCall, clientStreamCall, bidiCall};
  for (int k = 0; k < 4; ++k) {
    for (int i = 0; i < kPerKind; ++i) {
      threads.emplace_back([&, k, i] { problems[k * kPerKind + i] = kinds[k](*stub); });
    }
  }
  REQUIRE(waitFor([&] { return backend.stats().active >= 4 * kPerKind; }, std::chrono::seconds(10)));
  auto signalled = std::chrono::steady_clock::now();
  gateway.signal(SIGTERM);
  // Once the signal is handled, give the workers a moment to stop
  // accepting, then try a new call.
  REQUIRE(waitFor([&] { return gateway.logs().find("draining 400") != std::string::npos; }, std::chrono::seconds(5)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  {
    auto late = example::Echo::NewStub(makeChannel(gateway.address()));
    grpc::ClientContext ctx;
    setTimeout(ctx, std::chrono::seconds(5));
    EchoResponse resp;
    auto s = late->Unary(&ctx, EchoRequest(), &resp);
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  for (auto& t : threads) t.join();
  int failures = 0;
  for (const auto& p : problems) {
    if (!p.empty() && failures++ < 5) UNSCOPED_INFO(p);
  }
  CHECK(failures == 0);
  REQUIRE(waitFor([&] { return !gateway.running(); }, std::chrono::seconds(15)));
  CHECK(std::chrono::steady_clock::now() - signalled < std::chrono::seconds(15));
  CHECK(gateway.stop() == 0);
  CHECK_THAT(gateway.logs(), Catch::Contains("draining 400 active stream(s)"));
}

// Such calls were refused (REFUSED_STREAM), which grpc-go and grpc-java
// retry, but gRPC's C-core clients (C++, Python) fail with UNAVAILABLE: every
// drain under load cost those clients a few failed calls.
TEST_CASE("a call that reaches a draining connection before the final GOAWAY is served",
          "[e2e][lifecycle]") {
  TestBackend backend("b");
  auto config = catchAllConfig(backend.address());
  config["drain_timeout_ms"] = 5000;
  config["workers"] = 1;  // the one worker drains as the log says so, not later
  GatewayProcess gateway(config, GatewayProcess::Options{"debug", std::chrono::milliseconds{10000}, {}, {}, {}});
  RawH2Client raw("127.0.0.1", gateway.port());
  EchoRequest request;
  const std::string body = grpcFrame(request.SerializeAsString());
  REQUIRE(raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", body)).grpcStatus() == 0);
  gateway.signal(SIGTERM);
  // The gateway's first GOAWAY (and its PING) are on their way; this client
  // has not read them yet, so its next call goes out on this connection, as
  // a busy client's may. The final GOAWAY follows the PING answer (this
  // client does not read, so none comes) or 1 s: the call goes out well
  // within that, and is served like any call in flight.
  REQUIRE(waitFor([&] { return gateway.logs().find("draining") != std::string::npos; }, std::chrono::seconds(5)));
  RawResponse late = raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", body), std::chrono::seconds(3));
  INFO(late.describe());
  CHECK_FALSE(late.rstStreamCode.has_value());
  CHECK(late.grpcStatus() == std::optional<int>(0));
  CHECK(backend.stats().calls.load() == 2);
  // The drain ends with the final GOAWAY and the gateway exits on its own: a
  // SIGTERM sent into its exit (stop()) would end it by the signal instead.
  CHECK(waitFor([&] { return !gateway.running(); }, std::chrono::seconds(10)));
  CHECK(gateway.stop() == 0);
}

// A drain used to end at drain_timeout_ms by closing every socket: the
// calls still open (a subscription, an upload) saw "Socket closed" and
// whatever the gateway had queued for them was lost.
TEST_CASE("calls still open at drain_timeout_ms end with UNAVAILABLE saying why, after what was queued",
          "[e2e][lifecycle]") {
  TestBackend backend("b");
  auto config = catchAllConfig(backend.address());
  config["drain_timeout_ms"] = 1500;
  GatewayProcess gateway(config, GatewayProcess::Options{"info", std::chrono::milliseconds{10000}, {}, {}, {}});
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));

  // A subscription that outlives the drain, reading all it is sent.
  std::string streamed;
  std::thread subscription([&] {
    grpc::ClientContext ctx;
    setTimeout(ctx, std::chrono::seconds(20));
    EchoRequest req;
    req.set_response_count(1000);
    req.set_response_interval_ms(50);
    auto reader = stub->ServerStream(&ctx, req);
    EchoResponse resp;
    int n = 0;
    while (reader->Read(&resp)) ++n;
    auto s = reader->Finish();
    streamed = std::to_string(n) + " messages, " + describe(s);
  });
  // A unary call its backend takes longer over than the drain allows.
  grpc::Status slow;
  std::thread unary([&] {
    grpc::ClientContext ctx;
    setTimeout(ctx, std::chrono::seconds(20));
    EchoRequest req;
    req.set_sleep_ms(15000);
    EchoResponse resp;
    slow = stub->Unary(&ctx, req, &resp);
  });
  // A client that stops reading: its socket closes after the grace all the same.
  FrameSocket stalled(gateway.port(), /*receive_buffer=*/4096);
  EchoRequest forever;
  forever.set_response_count(100000);
  forever.set_response_size(16384);
  stalled.openServerStream(1, forever);
  REQUIRE(waitFor([&] { return backend.stats().active.load() == 3; }, std::chrono::seconds(5)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // some messages stream

  const auto signalled = std::chrono::steady_clock::now();
  gateway.signal(SIGTERM);
  subscription.join();
  unary.join();
  const auto ended = std::chrono::steady_clock::now() - signalled;
  INFO(streamed);
  CHECK_THAT(streamed, Catch::Contains("UNAVAILABLE") &&
                           Catch::Contains("drain_timeout_ms (1500) passed before the call ended"));
  CHECK(std::stoi(streamed) >= 20);  // it streamed through the drain until then
  CHECK(slow.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(slow.error_message(), Catch::Contains("the gateway is shutting down: drain_timeout_ms (1500)"));
  CHECK(ended >= std::chrono::milliseconds(1400));
  CHECK(ended < std::chrono::milliseconds(4000));
  // The backend's calls were cancelled, not left running.
  CHECK(waitFor([&] { return backend.stats().active.load() == 0; }, std::chrono::seconds(5)));
  // The stalled client held its connection open past the calls' end: it is
  // closed 1 s later, and the gateway exits.
  REQUIRE(waitFor([&] { return !gateway.running(); }, std::chrono::seconds(5)));
  CHECK(std::chrono::steady_clock::now() - signalled < std::chrono::milliseconds(5000));
  CHECK(gateway.stop() == 0);
  CHECK_THAT(gateway.logs(), Catch::Contains("drain timeout: ending 3 stream(s) still active with UNAVAILABLE"));
  CHECK_THAT(gateway.logs(), Catch::Contains("closing 1 connection(s) whose clients did not read"));
}

TEST_CASE("a late answer to a keepalive PING does not end a drain's first phase early", "[e2e][lifecycle]") {
  TestBackend backend("b");
  auto config = catchAllConfig(backend.address());
  config["drain_timeout_ms"] = 5000;
  config["workers"] = 1;
  config["listeners"][0]["keepalive_interval_ms"] = 200;
  GatewayProcess gateway(config);
  FrameSocket client(gateway.port());
  // Every frame up to the first one of `type` that is not an ACK, or nothing.
  auto until = [&](uint8_t type, std::chrono::milliseconds limit) -> std::optional<FrameSocket::Frame> {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      auto f = client.nextFrame(std::chrono::milliseconds(50));
      if (f && f->type == type && (f->flags & 0x1) == 0) return f;
    }
    return std::nullopt;
  };
  auto ack = [&](const std::string& payload) { client.send(FrameSocket::frame(kPing, 0x1, 0, payload)); };
  // A keepalive PING, left unanswered for now.
  auto keepalive = until(kPing, std::chrono::seconds(5));
  REQUIRE(keepalive);
  gateway.signal(SIGTERM);
  // The first GOAWAY ("finish up") and the drain's own PING, in either
  // order (nghttp2 sends PINGs ahead of other frames).
  bool first_goaway = false;
  std::optional<FrameSocket::Frame> drain_ping;
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
       (!first_goaway || !drain_ping) && std::chrono::steady_clock::now() < end;) {
    auto f = client.nextFrame(std::chrono::milliseconds(50));
    if (f && f->type == kGoaway) first_goaway = true;
    if (f && f->type == kPing && (f->flags & 0x1) == 0) drain_ping = f;
  }
  REQUIRE(first_goaway);
  REQUIRE(drain_ping);
  REQUIRE(drain_ping->payload != keepalive->payload);
  // The keepalive's answer comes late: the client has not seen the GOAWAY
  // by it, so the final GOAWAY must still wait. (Looked for briefly: the
  // drain's 1 s timer sends it anyway.)
  ack(keepalive->payload);
  CHECK_FALSE(until(kGoaway, std::chrono::milliseconds(300)));
  // The drain PING's answer: now the final GOAWAY.
  ack(drain_ping->payload);
  CHECK(until(kGoaway, std::chrono::milliseconds(500)));
  // With no call left the drain ends and the gateway exits on its own: a
  // SIGTERM sent into its exit (stop()) would end it by the signal instead.
  CHECK(waitFor([&] { return !gateway.running(); }, std::chrono::seconds(10)));
  CHECK(gateway.stop() == 0);
}

namespace {

// The first child process of this test process whose name is `comm`, or -1.
pid_t childNamed(const std::string& comm) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces, so read from its ')'.
    const size_t open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || line.substr(open + 1, close - open - 1) != comm) {
      continue;
    }
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == ::getpid()) return static_cast<pid_t>(std::stol(pid));
  }
  return -1;
}

}  // namespace

TEST_CASE("SIGHUP and SIGUSR1 sent while the gateway starts wait for it, never end it", "[e2e][lifecycle]") {
  // A host name the resolver answers after 1.5 s: the gateway is still
  // loading its config when the signals come (their default would end it).
  TestBackend backend("b");
  ScriptedResolver resolver;
  resolver.answer("slow.sluice-test", "127.0.0.1", 1500);
  GatewayProcess::Options options;
  options.extraEnv = resolver.env();
  options.logLevel = "info";
  std::atomic<bool> signalled{false};
  std::thread signaller([&] {
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
         std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
      const pid_t pid = childNamed("sluice");
      if (pid < 0) continue;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // well into the lookup
      ::kill(pid, SIGHUP);
      ::kill(pid, SIGUSR1);
      signalled = true;
      return;
    }
  });
  GatewayProcess gateway(catchAllConfig("slow.sluice-test:" + std::to_string(backend.port())), options);
  signaller.join();
  REQUIRE(signalled);
  CHECK(gateway.running());
  // Both handled once it had started: the reload (which looks the name up
  // again, 1.5 s) and the log reopening.
  CHECK(waitFor([&] { return gateway.logs().find("config reloaded") != std::string::npos; }, std::chrono::seconds(10)));
  CHECK_THAT(gateway.logs(), Catch::Contains("reopening log files"));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse resp;
  CHECK(stub->Unary(&ctx, EchoRequest(), &resp).ok());
  CHECK(gateway.stop() == 0);
}

TEST_CASE("SIGHUP reloads routes for new calls while open streams keep their backend", "[e2e][lifecycle]") {
  TestBackend a("a");
  TestBackend b("b");
  auto clusters = nlohmann::json::array({cluster("a", {a.address()}), cluster("b", {b.address()})});
  auto to = [&](const std::string& c) { return gatewayConfig(nlohmann::json::array({route("prefix", "/", c)}), clusters); };
  GatewayProcess gateway(to("a"), GatewayProcess::Options{"info", std::chrono::milliseconds{10000}, {}, {}, {}});
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto backendOfUnary = [&] {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoResponse resp;
    auto s = stub->Unary(&ctx, EchoRequest(), &resp);
    INFO(describe(s));
    REQUIRE(s.ok());
    return resp.backend();
  };
  REQUIRE(backendOfUnary() == "a");

  grpc::ClientContext streamCtx;
  setTimeout(streamCtx, std::chrono::seconds(20));
  auto stream = stub->Bidi(&streamCtx);
  EchoResponse resp;
  REQUIRE(stream->Write(EchoRequest()));
  REQUIRE(stream->Read(&resp));
  REQUIRE(resp.backend() == "a");

  std::ofstream(gateway.configPath()) << to("b").dump(2);
  gateway.signal(SIGHUP);
  REQUIRE(waitFor([&] { return gateway.logs().find("config reloaded") != std::string::npos; }, std::chrono::seconds(5)));
  // The log line follows the first worker; the others take the config a
  // moment later, and this client's connection may be on any of them.
  CHECK(waitFor([&] { return backendOfUnary() == "b"; }, std::chrono::seconds(2)));
  REQUIRE(stream->Write(EchoRequest()));
  REQUIRE(stream->Read(&resp));
  CHECK(resp.backend() == "a");  // the open stream stays on its backend

  SECTION("a broken config changes nothing and is logged") {
    std::ofstream(gateway.configPath()) << R"({"listeners": [], "clusters": "oops"})";
    gateway.signal(SIGHUP);
    REQUIRE(waitFor([&] { return gateway.logs().find("reload refused") != std::string::npos; },
                    std::chrono::seconds(5)));
    CHECK_THAT(gateway.logs(), Catch::Contains("/clusters"));
    CHECK(backendOfUnary() == "b");
  }
  REQUIRE(stream->WritesDone());
  REQUIRE_OK(stream->Finish());
}

TEST_CASE("a reload that changes a cluster closes the old one's idle backend connections, even while a stream keeps it alive",
          "[e2e][lifecycle]") {
  TestBackend a("a");
  TestBackend b("b");
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "two")}),
                              nlohmann::json::array({cluster("two", {a.address(), b.address()})}));
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["workers"] = 1;
  GatewayProcess gateway(config, GatewayProcess::Options{"info", std::chrono::milliseconds{10000}, {}, {}, {}});
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  for (int i = 0; i < 4; ++i) REQUIRE_OK(callEmptyUnary(*stub));  // round robin: a connection to each
  grpc::ClientContext stream_ctx;
  setTimeout(stream_ctx, std::chrono::seconds(20));
  auto stream = stub->Bidi(&stream_ctx);  // keeps the first config alive
  EchoResponse resp;
  REQUIRE(stream->Write(EchoRequest()));
  REQUIRE(stream->Read(&resp));
  const std::string admin = gateway.adminAddress();
  REQUIRE(statValue(admin, "cluster.two.upstream_cx_active") == 2);

  // A change to the cluster: one left unchanged would keep its connections.
  auto changed = config;
  changed["clusters"][0]["connect_timeout_ms"] = 4000;
  std::ofstream(gateway.configPath()) << changed.dump(2);
  REQUIRE(http(admin, "POST", "/reload").status == 200);
  // Only the stream's connection is left; the new config has opened none yet.
  CHECK(waitFor([&] { return statValue(admin, "cluster.two.upstream_cx_active") == 1; }, std::chrono::seconds(3)));
  REQUIRE(stream->Write(EchoRequest()));
  REQUIRE(stream->Read(&resp));  // the stream goes on on its connection
  REQUIRE(stream->WritesDone());
  REQUIRE_OK(stream->Finish());
  REQUIRE_OK(callEmptyUnary(*stub));
}

TEST_CASE("a reload cannot change workers, and one without log_level goes back to the command line's",
          "[e2e][lifecycle]") {
  TestBackend backend("b");
  auto config = catchAllConfig(backend.address());
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["workers"] = 2;
  config["log_level"] = "debug";
  GatewayProcess gateway(config, GatewayProcess::Options{"info", std::chrono::milliseconds{10000}, {}, {}, {}});
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto call = [&] { return callEmptyUnary(*stub); };
  REQUIRE_OK(call());
  CHECK(waitFor([&] { return gateway.logs().find("[debug]") != std::string::npos; }, std::chrono::seconds(2)));

  // workers: refused with the reason, the old config serving on.
  auto fewer = config;
  fewer["workers"] = 1;
  std::ofstream(gateway.configPath()) << fewer.dump(2);
  HttpReply refused = http(gateway.adminAddress(), "POST", "/reload");
  CHECK(refused.status == 400);
  CHECK_THAT(refused.body, Catch::Contains("config error at /workers: workers cannot change on reload (2 running, 1 in the new config"));
  REQUIRE_OK(call());

  // No log_level: the command line's info again, so a call logs no debug line.
  auto quiet = config;
  quiet.erase("log_level");
  std::ofstream(gateway.configPath()) << quiet.dump(2);
  REQUIRE(http(gateway.adminAddress(), "POST", "/reload").status == 200);
  const size_t before = gateway.logs().size();
  REQUIRE_OK(call());
  REQUIRE_OK(call());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(gateway.logs().find("[debug]", before) == std::string::npos);
}

TEST_CASE("a reload looks its host names up off the loop: calls go on meanwhile, then reach the new endpoint",
          "[e2e][lifecycle][dns]") {
  TestBackend a("a");
  TestBackend b("b");
  ScriptedResolver resolver;
  resolver.answer("moved.sluice-test", "127.0.0.1", 3000);  // every lookup takes 3 s
  auto configTo = [&](const std::string& endpoint, int admin_timeout_ms) {
    auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "c")}),
                                nlohmann::json::array({cluster("c", {endpoint})}));
    config["workers"] = 1;  // the reload runs on the loop serving every call
    config["admin"] = {{"address", "127.0.0.1:0"}, {"request_timeout_ms", admin_timeout_ms}};
    return config;
  };
  GatewayProcess::Options options{"info", std::chrono::milliseconds{10000}, {}, resolver.env(), {}};
  GatewayProcess gateway(configTo(a.address(), 5000), options);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto call = [&](EchoResponse& resp) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    return stub->Unary(&ctx, EchoRequest(), &resp);
  };
  EchoResponse resp;
  REQUIRE_OK(call(resp));
  REQUIRE(resp.backend() == "a");

  const std::string moved = "moved.sluice-test:" + std::to_string(b.port());
  std::ofstream(gateway.configPath()) << configTo(moved, 5000).dump(2);
  const auto started = std::chrono::steady_clock::now();
  // The first reload's client sends a stray CRLF after its request: it must
  // not be taken for a second reload (which would answer 409 instead).
  std::optional<std::string> first;
  std::jthread reloading([&] {
    int fd = connectTcp(gateway.adminAddress());
    const std::string request = "POST /reload HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n";
    bool sent = ::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    sent = sent && ::write(fd, "\r\n", 2) == 2;
    if (sent) first = readUntilClosed(fd, std::chrono::seconds(10));
    ::close(fd);
  });
  CHECK(waitFor([&] { return gateway.logs().find("looking up 1 host name(s)") != std::string::npos; },
                std::chrono::seconds(5)));
  // A second reload while the first waits for its lookup is refused, at once.
  HttpReply second = http(gateway.adminAddress(), "POST", "/reload");
  CHECK(second.status == 409);
  CHECK_THAT(second.body, Catch::Contains("another reload is still looking up host names"));
  // Calls on the same loop are not held up by the lookup (a lookup on the
  // loop stalled them for its whole 3 s), and still go to the old backend.
  auto slowest = std::chrono::steady_clock::duration::zero();
  int calls = 0;
  int elsewhere = 0;
  while (std::chrono::steady_clock::now() - started < std::chrono::milliseconds(2500)) {
    const auto start = std::chrono::steady_clock::now();
    auto status = call(resp);
    slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
    INFO(describe(status));
    REQUIRE(status.ok());
    if (resp.backend() != "a") ++elsewhere;
    ++calls;
  }
  reloading.join();
  INFO(calls << " calls during the reload; its answer: " << first.value_or("(none)"));
  CHECK(elsewhere == 0);
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() < 1000);
  REQUIRE(first.has_value());
  CHECK(first->rfind("HTTP/1.1 200", 0) == 0);
  CHECK_THAT(*first, Catch::EndsWith("reloaded\n"));
  CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(2900));
  REQUIRE_OK(call(resp));
  CHECK(resp.backend() == "b");

  // The cluster changed, so its name is looked up again (a reload that
  // keeps a cluster does not look its names up).
  auto changedTo = [&](const std::string& endpoint, int admin_timeout_ms) {
    auto config = configTo(endpoint, admin_timeout_ms);
    config["clusters"][0]["connect_timeout_ms"] = 4000;
    return config;
  };
  SECTION("an admin client that stops waiting gets 503, and the reload still happens") {
    std::ofstream(gateway.configPath()) << configTo(moved, 500).dump(2);
    REQUIRE(http(gateway.adminAddress(), "POST", "/reload").status == 200);  // the new admin limit
    std::ofstream(gateway.configPath()) << changedTo(moved, 500).dump(2);
    HttpReply late = http(gateway.adminAddress(), "POST", "/reload");  // 3 s
    CHECK(late.status == 503);
    CHECK_THAT(late.body, Catch::Contains("the request goes on"));
    CHECK(waitFor([&] { return logCount(gateway, "config reloaded") == 3; }, std::chrono::seconds(6)));
  }

  SECTION("a SIGHUP while a reload looks names up reloads again once it is done") {
    std::ofstream(gateway.configPath()) << changedTo(moved, 5000).dump(2);
    gateway.signal(SIGHUP);
    REQUIRE(waitFor([&] { return logCount(gateway, "looking up 1 host name(s)") == 2; }, std::chrono::seconds(5)));
    // The file changes and is signalled again while the lookup runs.
    std::ofstream(gateway.configPath()) << configTo(a.address(), 5000).dump(2);
    gateway.signal(SIGHUP);
    CHECK(waitFor([&] { return logCount(gateway, "config reloaded") == 3; }, std::chrono::seconds(8)));
    REQUIRE_OK(call(resp));
    CHECK(resp.backend() == "a");  // the file as of the second signal
  }

  SECTION("a client that half-closes after its request still gets the answer that comes later") {
    // As `printf 'POST /reload ...' | nc -N` sends it: the socket's EOF came
    // before the answer, and used to close it unanswered.
    std::ofstream(gateway.configPath()) << changedTo(moved, 5000).dump(2);
    int fd = connectTcp(gateway.adminAddress());
    const std::string request = "POST /reload HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n";
    REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    ::shutdown(fd, SHUT_WR);
    const std::optional<std::string> answer = readUntilClosed(fd, std::chrono::seconds(10));
    ::close(fd);
    REQUIRE(answer.has_value());
    CHECK(answer->rfind("HTTP/1.1 200", 0) == 0);
    CHECK_THAT(*answer, Catch::EndsWith("reloaded\n"));
  }

  SECTION("a name that does not resolve refuses the reload, naming its path") {
    std::ofstream(gateway.configPath()) << configTo("gone.sluice-test:1", 5000).dump(2);
    HttpReply refused = http(gateway.adminAddress(), "POST", "/reload");
    CHECK(refused.status == 400);
    CHECK_THAT(refused.body, Catch::Contains("/clusters/0/endpoints/0"));
    CHECK_THAT(refused.body, Catch::Contains("cannot resolve host \"gone.sluice-test\""));
    REQUIRE_OK(call(resp));
    CHECK(resp.backend() == "b");  // the old config keeps serving
  }
}

TEST_CASE("a reload does not look up the host names of the clusters it keeps, and refreshes them instead",
          "[e2e][lifecycle][dns]") {
  TestBackend a("a");
  TestBackend b("b");
  ScriptedResolver resolver;
  resolver.answer("kept.sluice-test", "127.0.0.1", 0);
  nlohmann::json kept = cluster("kept", {"kept.sluice-test:" + std::to_string(a.port())});
  kept["dns_refresh_ms"] = 600000;  // no refresh of its own in this test
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "kept")}),
                              nlohmann::json::array({kept, cluster("other", {b.address()})}));
  config["workers"] = 1;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess::Options options{"debug", std::chrono::milliseconds{10000}, {}, resolver.env(), {}};
  GatewayProcess gateway(config, options);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  REQUIRE_OK(callEmptyUnary(*stub));

  // The name stops resolving; a reload that changes only the other cluster
  // neither waits for it nor fails on it.
  resolver.script({});
  config["clusters"][1]["connect_timeout_ms"] = 4000;
  std::ofstream(gateway.configPath()) << config.dump(2);
  HttpReply reply = http(gateway.adminAddress(), "POST", "/reload");
  INFO(reply.body);
  CHECK(reply.status == 200);
  CHECK(gateway.logs().find("reload: looking up") == std::string::npos);
  // The kept cluster looks its name up after the reload (its own refresh
  // is ten minutes away), and keeps its address meanwhile.
  CHECK(waitFor([&] { return logCount(gateway, "cannot resolve kept.sluice-test") >= 1; }, std::chrono::seconds(3)));
  REQUIRE_OK(callEmptyUnary(*stub));

  // A change to the cluster itself looks the name up, and fails on it.
  config["clusters"][0]["connect_timeout_ms"] = 4000;
  std::ofstream(gateway.configPath()) << config.dump(2);
  reply = http(gateway.adminAddress(), "POST", "/reload");
  CHECK(reply.status == 400);
  CHECK_THAT(reply.body, Catch::Contains("cannot resolve host \"kept.sluice-test\""));
  REQUIRE_OK(callEmptyUnary(*stub));
}

TEST_CASE("a reload whose lookups outlast reload_resolve_timeout_ms fails, and the next one is not held up",
          "[e2e][lifecycle][dns]") {
  TestBackend a("a");
  ScriptedResolver resolver;
  resolver.answer("slow.sluice-test", "127.0.0.1", 3000);
  auto configTo = [&](const std::string& endpoint) {
    auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "c")}),
                                nlohmann::json::array({cluster("c", {endpoint})}));
    config["admin"] = {{"address", "127.0.0.1:0"}};
    config["reload_resolve_timeout_ms"] = 500;
    return config;
  };
  GatewayProcess::Options options{"info", std::chrono::milliseconds{10000}, {}, resolver.env(), {}};
  GatewayProcess gateway(configTo(a.address()), options);

  std::ofstream(gateway.configPath()) << configTo("slow.sluice-test:" + std::to_string(a.port())).dump(2);
  const auto started = std::chrono::steady_clock::now();
  HttpReply refused = http(gateway.adminAddress(), "POST", "/reload");
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(refused.status == 400);
  CHECK_THAT(refused.body, Catch::Contains("/clusters/0/endpoints/0"));
  CHECK_THAT(refused.body,
             Catch::Contains("no answer for host \"slow.sluice-test\" within 500 ms (reload_resolve_timeout_ms)"));
  CHECK(took < std::chrono::milliseconds(2500));  // the timeout, not the 3 s lookup
  CHECK(gateway.logs().find("no answer for host \"slow.sluice-test\" within 500 ms") != std::string::npos);

  // The next reload starts at once: nothing is left waiting.
  std::ofstream(gateway.configPath()) << configTo(a.address()).dump(2);
  CHECK(http(gateway.adminAddress(), "POST", "/reload").status == 200);
}

TEST_CASE("a stop does not wait for a reload's lookups", "[e2e][lifecycle][dns]") {
  TestBackend a("a");
  ScriptedResolver resolver;
  resolver.answer("slow.sluice-test", "127.0.0.1", 20000);
  auto configTo = [&](const std::string& endpoint) {
    auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "c")}),
                                nlohmann::json::array({cluster("c", {endpoint})}));
    config["reload_resolve_timeout_ms"] = 15000;
    return config;
  };
  GatewayProcess::Options options{"info", std::chrono::milliseconds{10000}, {}, resolver.env(), {}};
  GatewayProcess gateway(configTo(a.address()), options);
  std::ofstream(gateway.configPath()) << configTo("slow.sluice-test:" + std::to_string(a.port())).dump(2);
  gateway.signal(SIGHUP);
  REQUIRE(waitFor([&] { return logCount(gateway, "reload: looking up 1 host name(s)") >= 1; }, std::chrono::seconds(5)));
  // The reload's lookup has 15 s left; the stop drains (nothing is open) and
  // exits without waiting for it.
  const auto stopping = std::chrono::steady_clock::now();
  CHECK(gateway.stop() == 0);
  const auto took = std::chrono::steady_clock::now() - stopping;
  INFO(std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms to stop");
  CHECK(took < std::chrono::seconds(3));
}

TEST_CASE("a reload takes a fresh answer, not one from a refresh lookup that started before the DNS change",
          "[e2e][lifecycle][dns]") {
  TestBackend a("a");
  TestBackend b("b", "127.0.0.2", a.port());  // the address the name moves to
  ScriptedResolver resolver;
  resolver.answer("svc.sluice-test", "127.0.0.1", 0);
  auto configWithRefresh = [&](int refresh_ms) {
    auto c = cluster("c", {"svc.sluice-test:" + std::to_string(a.port())});
    c["dns_refresh_ms"] = refresh_ms;
    auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "c")}), nlohmann::json::array({c}));
    config["workers"] = 1;
    return config;
  };
  GatewayProcess::Options options{"info", std::chrono::milliseconds{10000}, {}, resolver.env(), {}};
  GatewayProcess gateway(configWithRefresh(100), options);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  EchoResponse resp;
  REQUIRE_OK(quickCall(*stub, resp));
  REQUIRE(resp.backend() == "a");

  // A refresh lookup starts and takes 2 s to say 127.0.0.1; meanwhile the
  // name moves, and the operator reloads.
  resolver.answer("svc.sluice-test", "127.0.0.1", 2000);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  resolver.answer("svc.sluice-test", "127.0.0.2", 0);
  REQUIRE(reloadWithSighup(gateway, configWithRefresh(60000).dump(2), 1));
  // The reloaded cluster (refreshing only every minute) uses what its own
  // lookup found: the new address, not the refresh's stale answer.
  REQUIRE_OK(quickCall(*stub, resp));
  CHECK(resp.backend() == "b");
}

TEST_CASE("lookups that hang do not hold up other names for long, even with dns_lookup_threads 1",
          "[e2e][lifecycle][dns]") {
  TestBackend a("a");
  ScriptedResolver resolver;
  resolver.script({{"hang.sluice-test", "127.0.0.1", 0}, {"ok.sluice-test", "127.0.0.1", 0}});
  auto configTo = [&](const std::string& host) {
    auto c = cluster("c", {host + ":" + std::to_string(a.port())});
    c["dns_refresh_ms"] = 100;
    auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "c")}), nlohmann::json::array({c}));
    config["dns_lookup_threads"] = 1;
    config["reload_resolve_timeout_ms"] = 15000;
    return config;
  };
  GatewayProcess::Options options{"info", std::chrono::milliseconds{10000}, {}, resolver.env(), {}};
  GatewayProcess gateway(configTo("hang.sluice-test"), options);

  // The refresh lookup of hang.sluice-test now hangs, on the one lookup thread.
  resolver.script({{"hang.sluice-test", "127.0.0.1", 30000}, {"ok.sluice-test", "127.0.0.1", 20}});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // A reload naming only ok.sluice-test: its lookup waits until the hung one
  // counts as stuck (5 s), not for the hung one to end (30 s, past the 15 s
  // reload_resolve_timeout_ms).
  const auto started = std::chrono::steady_clock::now();
  std::ofstream(gateway.configPath()) << configTo("ok.sluice-test").dump(2);
  gateway.signal(SIGHUP);
  CHECK(waitFor([&] { return logCount(gateway, "config reloaded") >= 1; }, std::chrono::seconds(12)));
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(took < std::chrono::seconds(9));
  CHECK(gateway.logs().find("no answer for host") == std::string::npos);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  EchoResponse resp;
  REQUIRE_OK(quickCall(*stub, resp));
  // And the hung lookup does not hold up a stop.
  const auto stopping = std::chrono::steady_clock::now();
  CHECK(gateway.stop() == 0);
  CHECK(std::chrono::steady_clock::now() - stopping < std::chrono::seconds(5));
}

TEST_CASE("at start the endpoints' host names are looked up all at once, and a name that hangs fails the start in time",
          "[e2e][lifecycle][dns]") {
  TestBackend a("a");
  ScriptedResolver resolver;
  std::vector<std::string> names;
  std::vector<std::string> endpoints;
  for (int i = 0; i < 6; ++i) {
    names.push_back("s" + std::to_string(i) + ".sluice-test");
    endpoints.push_back(names.back() + ":" + std::to_string(a.port()));
  }
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "c")}),
                              nlohmann::json::array({cluster("c", endpoints)}));

  SECTION("6 names taking 700 ms each: the gateway is up in about 700 ms, not 4.2 s") {
    resolver.answerAll(names, "127.0.0.1", 700);
    GatewayProcess::Options options{"info", std::chrono::milliseconds{10000}, {}, resolver.env(), {}};
    const auto started = std::chrono::steady_clock::now();
    GatewayProcess gateway(config.dump(2), options);
    const auto took = std::chrono::steady_clock::now() - started;
    INFO(std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms to start");
    CHECK(took < std::chrono::milliseconds(3500));  // one after another: 4.2 s and more
    CHECK(gateway.logs().find("looking up 6 host name(s) before loading") != std::string::npos);
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    EchoResponse resp;
    REQUIRE_OK(quickCall(*stub, resp));
  }

  SECTION("a name whose lookup hangs: the config error names it once reload_resolve_timeout_ms has passed") {
    std::vector<ScriptedResolver::Line> lines;
    for (const auto& name : names) lines.push_back({name, "127.0.0.1", name == names[3] ? 30000 : 0});
    resolver.script(lines);
    config["reload_resolve_timeout_ms"] = 1000;
    const auto started = std::chrono::steady_clock::now();
    ProcessResult result = runValidate(config.dump(2), resolver.env());
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK_FALSE(result.timedOut);
    CHECK(result.exitCode == 2);
    CHECK_THAT(result.output, Catch::Contains("/clusters/0/endpoints/3"));
    CHECK_THAT(result.output, Catch::Contains("no answer for host \"s3.sluice-test\" within 1000 ms"));
    CHECK(took < std::chrono::seconds(5));
  }

  SECTION("one name, hanging: the same") {
    resolver.answer(names[0], "127.0.0.1", 30000);
    auto one = gatewayConfig(nlohmann::json::array({route("prefix", "/", "c")}),
                             nlohmann::json::array({cluster("c", {endpoints[0]})}));
    one["reload_resolve_timeout_ms"] = 1000;
    ProcessResult result = runValidate(one.dump(2), resolver.env());
    CHECK_FALSE(result.timedOut);
    CHECK(result.exitCode == 2);
    CHECK_THAT(result.output, Catch::Contains("no answer for host \"s0.sluice-test\" within 1000 ms"));
  }

  SECTION("one lookup thread, its first name hanging: the others still get their turn") {
    std::vector<ScriptedResolver::Line> lines;
    for (const auto& name : names) lines.push_back({name, "127.0.0.1", name == names[0] ? 30000 : 0});
    resolver.script(lines);
    config["dns_lookup_threads"] = 1;
    config["reload_resolve_timeout_ms"] = 7000;  // the hung lookup counts as stuck after 5 s
    ProcessResult result = runValidate(config.dump(2), resolver.env());
    CHECK_FALSE(result.timedOut);
    CHECK(result.exitCode == 2);
    CHECK_THAT(result.output, Catch::Contains("no answer for host \"s0.sluice-test\" within 7000 ms"));
    for (size_t i = 1; i < names.size(); ++i) CHECK_THAT(result.output, !Catch::Contains(names[i]));
  }
}

// The soft and hard "Max open files" of a process, from /proc/PID/limits.
std::pair<uint64_t, uint64_t> openFileLimits(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(std::strlen("Max open files")));
    uint64_t soft = 0, hard = 0;
    fields >> soft >> hard;
    return {soft, hard};
  }
  return {0, 0};
}

TEST_CASE("the gateway raises its open-file limit to the hard limit, and says when even that is too low",
          "[e2e][lifecycle]") {
  TestBackend a("a");
  rlimit mine{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &mine) == 0);
  if (mine.rlim_max <= 1024) {
    WARN("the hard limit is 1024 or less: nothing to raise");
    return;
  }
  // The gateway inherits a soft limit of 1024, as from a default shell.
  rlimit lowered = mine;
  lowered.rlim_cur = 1024;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "c")}),
                              nlohmann::json::array({cluster("c", {a.address()})}));
  // Past the hard limit, where the config allows (10,000,000 at most; a hard
  // limit of "unlimited" or beyond leaves nothing to warn about).
  constexpr uint64_t kMaxConnectionsAllowed = 10000000;
  const bool expect_warning = mine.rlim_max != RLIM_INFINITY && mine.rlim_max < kMaxConnectionsAllowed;
  if (expect_warning) config["listeners"][0]["max_connections"] = static_cast<uint64_t>(mine.rlim_max) + 1;
  std::unique_ptr<GatewayProcess> gateway;
  try {
    gateway = std::make_unique<GatewayProcess>(config);
  } catch (...) {
    ::setrlimit(RLIMIT_NOFILE, &mine);
    throw;
  }
  ::setrlimit(RLIMIT_NOFILE, &mine);
  const auto [soft, hard] = openFileLimits(gateway->pid());
  if (mine.rlim_max != RLIM_INFINITY) CHECK(hard == mine.rlim_max);
  CHECK(soft == std::min<uint64_t>(mine.rlim_max, uint64_t{1} << 20));
  CHECK_THAT(gateway->logs(), Catch::Contains("raised the open-file limit from 1024 to"));
  if (expect_warning) CHECK_THAT(gateway->logs(), Catch::Contains("is below the listeners' max_connections"));
  auto stub = example::Echo::NewStub(makeChannel(gateway->address()));
  EchoResponse resp;
  REQUIRE_OK(quickCall(*stub, resp));
}

TEST_CASE("a second gateway on a listener address in use exits with an error instead of sharing the port",
          "[e2e][lifecycle]") {
  TestBackend backend("b");
  GatewayProcess first(catchAllConfig(backend.address()));
  auto config = catchAllConfig(backend.address());
  config["listeners"][0]["address"] = first.address();
  const std::string path =
      (std::filesystem::temp_directory_path() / ("sluice-second-" + std::to_string(::getpid()) + ".json")).string();
  {
    std::ofstream out(path);
    out << config.dump(2);
  }
  // SO_REUSEPORT would have let it bind next to the first one, and the
  // kernel would have split the clients between two gateways.
  ProcessResult second = runSluice({"--config", path}, std::chrono::seconds(10));
  std::filesystem::remove(path);
  CHECK_FALSE(second.timedOut);
  CHECK(second.exitCode == 1);
  CHECK_THAT(second.output, Catch::Contains("listener 'grpc' cannot listen on " + first.address() +
                                            ": address already in use"));
  // The first one serves on.
  auto stub = example::Echo::NewStub(makeChannel(first.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse response;
  REQUIRE_OK(stub->Unary(&ctx, EchoRequest(), &response));
}

}  // namespace sluice::test
