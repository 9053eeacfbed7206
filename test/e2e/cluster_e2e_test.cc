// Upstream clusters end to end: load-balancing policies and weights, health
// checks with retries when a backend dies, backend GOAWAY, the backend's
// stream limit, circuit breakers, and backends that do not speak gRPC.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include <nghttp2/nghttp2.h>
#include <poll.h>

#include "codecs/grpc/grpc_headers.h"
#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/http_client.h"
#include "test/support/raw_h2_client.h"
#include "test/support/scripted_resolver.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;


nlohmann::json weighted(const std::string& address, int weight) {
  return {{"address", address}, {"weight", weight}};
}

nlohmann::json configWith(const nlohmann::json& cluster_json, const nlohmann::json& route_extra = {}) {
  nlohmann::json r = route("prefix", "/", cluster_json["name"]);
  if (!route_extra.is_null()) r.update(route_extra);
  return gatewayConfig(nlohmann::json::array({r}), nlohmann::json::array({cluster_json}));
}

// Backend name -> calls answered, over `n` sequential unary calls.
std::map<std::string, int> distribution(example::Echo::Stub& stub, int n, const std::string& hash_key = "") {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    if (!hash_key.empty()) ctx.AddMetadata("x-user", hash_key);
    EchoResponse resp;
    auto status = stub.Unary(&ctx, EchoRequest(), &resp);
    INFO(describe(status));
    REQUIRE(status.ok());
    seen[resp.backend()]++;
  }
  return seen;
}

grpc::Status unary(example::Echo::Stub& stub, uint32_t sleep_ms = 0, EchoResponse* out = nullptr) {
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoRequest req;
  req.set_sleep_ms(sleep_ms);
  EchoResponse resp;
  auto s = stub.Unary(&ctx, req, &resp);
  if (out != nullptr) *out = resp;
  return s;
}

// A unary call the backend answers UNAVAILABLE: a failure outlier detection counts.
void failUnavailable(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoRequest req;
  req.set_status_code(14);
  EchoResponse resp;
  CHECK(stub.Unary(&ctx, req, &resp).error_code() == grpc::StatusCode::UNAVAILABLE);
}

// A TCP server on loopback that accepts and then either stays silent or
// answers with bytes that are not HTTP/2, and closes the connection at once
// if told to. It counts the connections it accepted.
class BadBackend {
 public:
  explicit BadBackend(std::string reply, bool close_at_once = false)
      : reply_(std::move(reply)), close_at_once_(close_at_once) {
    fd_ = listenOnLoopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~BadBackend() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (int c : clients_) ::close(c);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }

 private:
  void serve() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      accepted_++;
      if (!reply_.empty()) (void)!::write(c, reply_.data(), reply_.size());
      if (close_at_once_) {
        ::close(c);
      } else {
        clients_.push_back(c);  // kept open: the gateway must not wait forever on it
      }
    }
  }
  std::string reply_;
  bool close_at_once_ = false;
  std::atomic<int> accepted_{0};
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> clients_;
  std::thread thread_;
};

// An HTTP/2 server (nghttp2) that resets every stream it is sent, with `code`.
class ResettingBackend {
 public:
  explicit ResettingBackend(uint32_t code = NGHTTP2_INTERNAL_ERROR) : code_(code) {
    fd_ = listenOnLoopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~ResettingBackend() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int resets() const { return resets_; }

 private:
  static int onBeginHeaders(nghttp2_session* s, const nghttp2_frame* frame, void* self) {
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      auto* backend = static_cast<ResettingBackend*>(self);
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, backend->code_);
      backend->resets_++;
    }
    return 0;
  }
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      nghttp2_session_callbacks* cbs;
      nghttp2_session_callbacks_new(&cbs);
      nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, onBeginHeaders);
      nghttp2_session* session;
      nghttp2_session_server_new(&session, cbs, this);
      nghttp2_session_callbacks_del(cbs);
      nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, nullptr, 0);
      // One connection at a time is enough: the gateway multiplexes.
      while (!stop_) {
        const uint8_t* out;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(session, &out)) > 0) (void)!::send(c, out, static_cast<size_t>(n), MSG_NOSIGNAL);
        pollfd cp{c, POLLIN, 0};
        if (::poll(&cp, 1, 100) <= 0) continue;
        uint8_t buf[16384];
        ssize_t got = ::recv(c, buf, sizeof(buf), 0);
        if (got <= 0 || nghttp2_session_mem_recv(session, buf, static_cast<size_t>(got)) < 0) break;
      }
      nghttp2_session_del(session);
      ::close(c);
    }
  }
  const uint32_t code_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> resets_{0};
  std::thread thread_;
};

// A unary call whose backend sleeps 5 s, from a client that waits up to
// kCallTimeout: its status, and how long it took.
struct TimedStatus {
  grpc::Status status;
  std::chrono::steady_clock::duration took;
};
TimedStatus sleepingUnary(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoRequest req;
  req.set_sleep_ms(5000);
  EchoResponse resp;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = stub.Unary(&ctx, req, &resp);
  return {status, std::chrono::steady_clock::now() - start};
}

}  // namespace

TEST_CASE("a backend that resets every stream: INTERNAL, outlier ejection, others keep serving", "[e2e][cluster]") {
  TestBackend good("good");
  ResettingBackend resetting;
  auto routes = nlohmann::json::array({route("service", "sluice.example.Other", "good"),
                                       route("prefix", "/", "mixed")});
  auto mixed = cluster("mixed", {resetting.address(), good.address()});
  mixed["outlier_detection"] = {{"consecutive_failures", 2}, {"base_ejection_ms", 60000}, {"max_ejection_percent", 50}};
  auto config = gatewayConfig(routes, nlohmann::json::array({cluster("good", {good.address()}), mixed}));
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto channel = makeChannel(gateway.address());
  auto echo = example::Echo::NewStub(channel);
  auto other = example::Other::NewStub(channel);
  int reset_answers = 0;
  for (int i = 0; i < 10; ++i) {
    auto s = unary(*echo);
    if (s.ok()) continue;
    CHECK(s.error_code() == grpc::StatusCode::INTERNAL);  // RST_STREAM(INTERNAL_ERROR), as gRPC maps it
    CHECK_THAT(s.error_message(), Catch::Contains("mixed") && Catch::Contains("reset"));
    ++reset_answers;
  }
  // Two resets eject the endpoint; every later call goes to the good one.
  CHECK(reset_answers == 2);
  CHECK(resetting.resets() == 2);
  CHECK_THAT(gateway.logs(), Catch::Contains("ejected " + resetting.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse resp;
  REQUIRE_OK(other->Unary(&ctx, EchoRequest(), &resp));
}

TEST_CASE("a backend's RST_STREAM reaches the client as the status gRPC maps it to, a refusal is no fault",
          "[e2e][cluster]") {
  struct Case {
    uint32_t h2_code;
    grpc::StatusCode expected;
  };
  for (const Case& c : {Case{NGHTTP2_CANCEL, grpc::StatusCode::CANCELLED},
                        Case{NGHTTP2_ENHANCE_YOUR_CALM, grpc::StatusCode::RESOURCE_EXHAUSTED},
                        Case{NGHTTP2_PROTOCOL_ERROR, grpc::StatusCode::INTERNAL},
                        Case{NGHTTP2_INADEQUATE_SECURITY, grpc::StatusCode::PERMISSION_DENIED},
                        Case{NGHTTP2_REFUSED_STREAM, grpc::StatusCode::UNAVAILABLE}}) {
    ResettingBackend resetting(c.h2_code);
    auto cl = cluster("r", {resetting.address()});
    cl["outlier_detection"] = {{"consecutive_failures", 2}, {"base_ejection_ms", 60000}, {"max_ejection_percent", 100}};
    auto config = configWith(cl);
    config["workers"] = 1;
    config["admin"] = {{"address", "127.0.0.1:0"}};
    GatewayProcess gateway(config);
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    for (int i = 0; i < 2; ++i) {
      auto s = unary(*stub);
      INFO(nghttp2_http2_strerror(c.h2_code) << ", call " << i << ": " << describe(s));
      CHECK(s.error_code() == c.expected);
    }
    // Whatever code it maps to, the reply is counted as the backend's failure.
    auto stats = readStats(gateway.adminAddress());
    INFO(nghttp2_http2_strerror(c.h2_code));
    CHECK(statValue(stats, "listener.grpc.local_reply.upstream_failure") == 2);
    CHECK(statValue(stats, "listener.grpc.local_reply.filter") == 0);
    // Two resets in a row eject the endpoint, but not two refusals: a
    // backend shedding load or shutting down never processed those calls.
    const bool ejected = gateway.logs().find("ejected " + resetting.address()) != std::string::npos;
    INFO(nghttp2_http2_strerror(c.h2_code));
    CHECK(ejected == (c.h2_code != NGHTTP2_REFUSED_STREAM));
  }
}

TEST_CASE("round_robin and random honour endpoint weights", "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  std::string policy = GENERATE(std::string("round_robin"), std::string("random"), std::string("least_request"));
  INFO("lb_policy " << policy);
  nlohmann::json c = {{"name", "weighted"}, {"lb_policy", policy},
                      {"endpoints", nlohmann::json::array({weighted(a.address(), 3), b.address()})}};
  GatewayProcess gateway(configWith(c));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto seen = distribution(*stub, 400);
  // Expect 300 : 100. Round robin is exact; the random ones within a wide margin.
  CHECK(seen["a"] + seen["b"] == 400);
  CHECK(seen["a"] >= 255);
  CHECK(seen["a"] <= 345);
  if (policy == "round_robin") CHECK(seen["a"] == 300);
}

TEST_CASE("ring_hash sends the same key to the same endpoint", "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  TestBackend c("c");
  nlohmann::json cl = {{"name", "sticky"}, {"lb_policy", "ring_hash"}, {"hash_header", "x-user"},
                       {"endpoints", {a.address(), b.address(), c.address()}}};
  GatewayProcess gateway(configWith(cl));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  std::set<std::string> used;
  for (int k = 0; k < 30; ++k) {
    auto seen = distribution(*stub, 5, "user-" + std::to_string(k));
    INFO("key user-" << k);
    CHECK(seen.size() == 1);
    used.insert(seen.begin()->first);
  }
  CHECK(used.size() >= 2);  // 30 keys over 3 endpoints do not all land on one
}

TEST_CASE("ring_hash on a -bin header keys by its bytes, padded base64 or not", "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  TestBackend c("c");
  nlohmann::json cl = {{"name", "sticky"}, {"lb_policy", "ring_hash"}, {"hash_header", "x-user-bin"},
                       {"endpoints", {a.address(), b.address(), c.address()}}};
  GatewayProcess gateway(configWith(cl));
  RawH2Client client("127.0.0.1", gateway.port());
  std::set<std::string> used;
  for (int k = 0; k < 20; ++k) {
    // Five bytes: padded base64 ends in "=", gRPC C-core sends it without.
    const std::string padded = grpc_headers::base64Encode("user" + std::string(1, static_cast<char>('A' + k)));
    REQUIRE(padded.back() == '=');
    const std::string unpadded = padded.substr(0, padded.find('='));
    INFO("key " << padded);
    const std::string endpoint = rawEchoBackend(client, {{"x-user-bin", padded}});
    CHECK(rawEchoBackend(client, {{"x-user-bin", unpadded}}) == endpoint);
    used.insert(endpoint);
  }
  CHECK(used.size() >= 2);  // 20 keys over 3 endpoints do not all land on one
}

TEST_CASE("ring_hash over many heavy endpoints keeps a bounded ring", "[e2e][cluster]") {
  TestBackend a("a");
  // 200 endpoints of weight 1000: 12.8 million ring nodes at 64 per unit of
  // weight, per worker, if nothing bounded them.
  nlohmann::json endpoints = nlohmann::json::array({{{"address", a.address()}, {"weight", 1000}}});
  // Nobody listens on 127.0.0.3; on 127.0.0.1 these ports could be `a`'s.
  for (int i = 1; i < 200; ++i) {
    endpoints.push_back({{"address", "127.0.0.3:" + std::to_string(40000 + i)}, {"weight", 1000}});
  }
  nlohmann::json cl = {{"name", "big"}, {"lb_policy", "ring_hash"}, {"hash_header", "x-user"}, {"endpoints", endpoints}};
  auto config = configWith(cl);
  config["workers"] = 2;
  const auto started = std::chrono::steady_clock::now();
  GatewayProcess gateway(config);
  const auto took = std::chrono::steady_clock::now() - started;
  INFO(gateway.rssKiB() << " KiB resident, "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms to start");
  // Unbounded, the ring took about 0.8 GB per worker and the start timed out.
  CHECK(gateway.rssKiB() < 200 * 1024);
  CHECK(took < std::chrono::seconds(8));
  // Keys still spread over the endpoints: some land on the live one. A key
  // lands there about once in 150 (1 in 200 endpoints, fewer while dead ones
  // wait out their reconnect backoff): 400 keys missed it one run in 30, so
  // the test tries up to 4000 and stops at the first answer.
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  int answered = 0;
  for (int i = 0; i < 4000 && answered == 0; ++i) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    ctx.AddMetadata("x-user", "user-" + std::to_string(i));
    EchoResponse response;
    if (stub->Unary(&ctx, EchoRequest(), &response).ok()) answered++;
  }
  CHECK(answered >= 1);
}

TEST_CASE("ring_hash without the header, and unknown policies are config errors", "[e2e][cluster]") {
  auto bad = configWith({{"name", "x"}, {"lb_policy", "ring_hash"}, {"endpoints", {"127.0.0.1:1"}}});
  auto r = runValidate(bad.dump());
  CHECK(r.exitCode == 2);
  CHECK_THAT(r.output, Catch::Contains("/clusters/0/hash_header"));
  auto bad2 = configWith({{"name", "x"}, {"lb_policy", "fastest"}, {"endpoints", {"127.0.0.1:1"}}});
  r = runValidate(bad2.dump());
  CHECK(r.exitCode == 2);
  CHECK_THAT(r.output, Catch::Contains("/clusters/0/lb_policy"));
  auto bad3 = configWith({{"name", "x"}, {"endpoints", {"no-such-host.invalid:80"}},
                          {"health_check", {{"interval_ms", 100}, {"timeout_ms", 500}}}});
  r = runValidate(bad3.dump());
  CHECK(r.exitCode == 2);
  CHECK_THAT(r.output, Catch::Contains("/clusters/0/endpoints/0") && Catch::Contains("cannot resolve"));
  CHECK_THAT(r.output, Catch::Contains("/clusters/0/health_check/timeout_ms"));
}

TEST_CASE("host-name endpoints are resolved", "[e2e][cluster]") {
  TestBackend a("a");
  nlohmann::json c = {{"name", "named"}, {"endpoints", {"localhost:" + std::to_string(a.port())}}};
  GatewayProcess gateway(configWith(c));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  EchoResponse resp;
  REQUIRE_OK(unary(*stub, 0, &resp));
  CHECK(resp.backend() == "a");
}

TEST_CASE("host names are re-resolved off the loop: a hung resolver delays no call, a new address gets new connections",
          "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b", "127.0.0.2", a.port());  // same port, the address the name moves to
  ScriptedResolver resolver;
  resolver.answer("svc.sluice-test", "127.0.0.1", 0);
  auto config = configWith({{"name", "named"},
                            {"endpoints", {"svc.sluice-test:" + std::to_string(a.port())}},
                            {"dns_refresh_ms", 100}});
  config["workers"] = 1;  // every call on the worker doing the lookups
  GatewayProcess::Options options;
  options.extraEnv = resolver.env();
  GatewayProcess gateway(config, options);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  EchoResponse resp;
  REQUIRE_OK(unary(*stub, 0, &resp));
  CHECK(resp.backend() == "a");

  // The resolver now takes 2 s per lookup, and the name has a new address.
  resolver.answer("svc.sluice-test", "127.0.0.2", 2000);
  auto slowest = std::chrono::steady_clock::duration::zero();
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(3000);
  int calls = 0;
  bool moved = false;
  while (std::chrono::steady_clock::now() < until) {
    const auto start = std::chrono::steady_clock::now();
    auto status = unary(*stub, 0, &resp);
    slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
    INFO(describe(status));
    REQUIRE(status.ok());
    // On the old address until the slow lookup answers, then on the new one.
    if (resp.backend() == "b") moved = true;
    CHECK(resp.backend() == (moved ? "b" : "a"));
    ++calls;
  }
  INFO(calls << " calls");
  // Blocking lookups stall calls for the whole 2 s.
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() < 1000);
  REQUIRE(waitFor([&] { return gateway.logs().find("now resolves to 127.0.0.2") != std::string::npos; },
                     std::chrono::seconds(5)));
  REQUIRE_OK(unary(*stub, 0, &resp));
  CHECK(resp.backend() == "b");  // the old backend still answers, but the name is elsewhere

  // The old backend going changes nothing: no call is on it.
  a.stop();
  bool reached_b = waitFor(
      [&] {
        EchoResponse r;
        return unary(*stub, 0, &r).ok() && r.backend() == "b";
      },
      std::chrono::seconds(10));
  CHECK(reached_b);

  // A lookup that hangs does not hold up a stop.
  resolver.answer("svc.sluice-test", "127.0.0.2", 20000);
  // The 2 s lookup under way ends, and the next one, which hangs, starts.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  const auto stopping = std::chrono::steady_clock::now();
  CHECK(gateway.stop() == 0);
  CHECK(std::chrono::steady_clock::now() - stopping < std::chrono::seconds(5));
}

// Threads of `pid` named "sluice-dns" (HostResolver's lookup threads) now.
int lookupThreads(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "comm");
    std::string name;
    if (std::getline(in, name) && name == "sluice-dns") ++n;
  }
  return n;
}

// The most lookup threads seen at once over `window`, sampled every 5 ms.
int mostLookupThreads(pid_t pid, std::chrono::milliseconds window) {
  int most = 0;
  const auto until = std::chrono::steady_clock::now() + window;
  while (std::chrono::steady_clock::now() < until) {
    most = std::max(most, lookupThreads(pid));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return most;
}

TEST_CASE("host name lookups run on at most dns_lookup_threads threads, and a name is looked up once for all workers",
          "[e2e][cluster][dns]") {
  TestBackend a("a");
  ScriptedResolver resolver;
  std::vector<std::string> names;
  nlohmann::json endpoints = nlohmann::json::array();
  for (int i = 0; i < 6; ++i) {
    names.push_back("n" + std::to_string(i) + ".sluice-test");
    endpoints.push_back(names.back() + ":" + std::to_string(a.port()));
  }
  resolver.answerAll(names, "127.0.0.1", 0);
  // A gateway whose one cluster names `named` (refreshed every 100 ms), after a first call through it.
  auto start = [&](const nlohmann::json& named, int workers, std::optional<int> lookup_threads) {
    auto config = configWith({{"name", "named"}, {"endpoints", named}, {"dns_refresh_ms", 100}});
    config["workers"] = workers;
    if (lookup_threads) config["dns_lookup_threads"] = *lookup_threads;
    GatewayProcess::Options options;
    options.extraEnv = resolver.env();
    auto gateway = std::make_unique<GatewayProcess>(config, options);
    auto stub = example::Echo::NewStub(makeChannel(gateway->address()));
    EchoResponse resp;
    REQUIRE_OK(unary(*stub, 0, &resp));
    return gateway;
  };

  SECTION("6 names refreshed by 2 workers every 100 ms, slow to answer: never more than 2 threads") {
    auto gateway_ptr = start(endpoints, 2, 2);
    GatewayProcess& gateway = *gateway_ptr;
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    EchoResponse resp;

    // 12 lookups per round (6 names, 2 workers) taking 300 ms each: one
    // thread per lookup would be 12 at once.
    resolver.answerAll(names, "127.0.0.1", 300);
    int most = mostLookupThreads(gateway.pid(), std::chrono::milliseconds(2000));
    CHECK(most >= 1);
    CHECK(most <= 2);
    REQUIRE_OK(unary(*stub, 0, &resp));

    // Every name still gets its turn: all six moves are seen.
    resolver.answerAll(names, "127.0.0.2", 20);
    for (const auto& name : names) {
      INFO(name);
      CHECK(waitFor([&] { return gateway.logs().find(name + " now resolves to 127.0.0.2") != std::string::npos; },
                    std::chrono::seconds(10)));
    }
  }

  SECTION("names whose lookups hang: stuck ones let others run, on at most twice dns_lookup_threads threads") {
    auto gateway_ptr = start(endpoints, 1, 1);
    GatewayProcess& gateway = *gateway_ptr;
    // Six lookups that hang: each one stuck past 5 s no longer counts
    // against the cap, and let another start; one thread each (a thread
    // every 5 s) until every name had one.
    resolver.answerAll(names, "127.0.0.1", 60000);
    CHECK(mostLookupThreads(gateway.pid(), std::chrono::milliseconds(11500)) == 2);
  }

  SECTION("1 name refreshed by 4 workers: one lookup at a time, shared") {
    auto gateway_ptr = start(nlohmann::json::array({endpoints[0]}), 4, std::nullopt);
    GatewayProcess& gateway = *gateway_ptr;

    resolver.answerAll(names, "127.0.0.1", 300);
    int most = mostLookupThreads(gateway.pid(), std::chrono::milliseconds(2000));
    CHECK(most == 1);
    // Each worker's cluster still gets the answer.
    resolver.answerAll(names, "127.0.0.2", 20);
    CHECK(waitFor([&] { return logCount(gateway, names[0] + " now resolves to 127.0.0.2") == 4; },
                  std::chrono::seconds(10)));
  }
}

TEST_CASE("a backend killed under load: health checks and retries hide it, and it comes back", "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  nlohmann::json c = {{"name", "pair"},
                      {"endpoints", {a.address(), b.address()}},
                      {"health_check", {{"interval_ms", 200}, {"timeout_ms", 150}, {"unhealthy_threshold", 1},
                                        {"healthy_threshold", 1}}}};
  // grpc++'s Shutdown (how TestBackend stops) answers calls that reach it in
  // its last moments with CANCELLED, which the gateway passes on faithfully;
  // retrying it is the operator's choice, made here as one would in production.
  nlohmann::json retry = {{"retry", {{"retry_on", {"UNAVAILABLE", "CANCELLED"}}, {"num_retries", 2}}}};
  GatewayProcess gateway(configWith(c, retry));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::string first_failure;
  std::thread load([&] {
    while (!stop) {
      auto s = unary(*stub);
      if (s.ok()) {
        ok++;
      } else if (failed++ == 0) {
        first_failure = describe(s);
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  b.stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  int a_calls_mid = a.stats().calls;
  b.start();  // same port
  // After a health check passes, b takes calls again.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (b.stats().calls < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop = true;
  load.join();
  INFO("first failure: " << first_failure);
  CHECK(failed == 0);
  CHECK(ok > 50);
  CHECK(a.stats().calls > a_calls_mid);
  CHECK(b.stats().calls >= 5);
}

TEST_CASE("one worker runs the health checks and every worker routes on its results", "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  nlohmann::json c = {{"name", "pair"},
                      {"endpoints", {a.address(), b.address()}},
                      {"health_check", {{"interval_ms", 200}, {"timeout_ms", 200}, {"unhealthy_threshold", 2}}}};
  auto config = configWith(c);
  config["workers"] = 4;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  // Two endpoints checked every 200 ms: 10 checks a second from one worker,
  // 40 from four. Measured over what the clock says passed.
  auto checks = [&] {
    return statValue(gateway.adminAddress(), "cluster.pair.health_check.success") +
           statValue(gateway.adminAddress(), "cluster.pair.health_check.failure");
  };
  const int64_t before = checks();
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const int64_t made = checks() - before;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(made << " checks in " << seconds << " s");
  CHECK(made >= 5);
  CHECK(made <= 15 * seconds + 4);  // one worker's 10 a second, with room; four would make 40

  // b goes: once the checking worker marks it, no worker sends it a call
  // (there is no retry to hide a call that would try it).
  b.stop(std::chrono::milliseconds(0));
  REQUIRE(waitFor(
      [&] {
        auto clusters = nlohmann::json::parse(http(gateway.adminAddress(), "GET", "/clusters").body);
        for (const auto& ep : clusters[0]["endpoints"]) {
          if (ep["address"] == b.address()) return ep["health_check"] == "unhealthy";
        }
        return false;
      },
      std::chrono::seconds(5)));
  // The report reaches the other workers' loops a moment after the checking
  // worker (a post; 300 ms is ample). Then not one call may try b: a call
  // that did would fail (no retry), and b's backoff would hide the next.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Eight connections: spread over the workers by the kernel.
  for (int conn = 0; conn < 8; ++conn) {
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    for (int i = 0; i < 5; ++i) {
      EchoResponse resp;
      grpc::Status status = unary(*stub, 0, &resp);
      INFO("connection " << conn << " call " << i << ": " << describe(status));
      CHECK(status.ok());
      CHECK(resp.backend() == "a");
    }
  }
}

TEST_CASE("health checks are not stopped by the max_connections circuit breaker", "[e2e][cluster]") {
  grpc::EnableDefaultHealthCheckService(true);
  TestBackend a("a");
  TestBackend b("b");
  // One connection allowed per worker: the checks of one endpoint keep it
  // busy, and the other's checks must still get through.
  nlohmann::json c = {{"name", "pair"},
                      {"endpoints", {a.address(), b.address()}},
                      {"circuit_breakers", {{"max_connections", 1}}},
                      {"health_check", {{"interval_ms", 200}, {"timeout_ms", 200}, {"unhealthy_threshold", 3}}}};
  auto config = configWith(c);
  config["workers"] = 1;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  // Enough for 7 checks of each: three refused in a row (what the breaker
  // did) mark an endpoint unhealthy; one slow answer on a busy machine does not.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto clusters = nlohmann::json::parse(http(gateway.adminAddress(), "GET", "/clusters").body);
  INFO(clusters.dump(2));
  REQUIRE(clusters[0]["endpoints"].size() == 2);
  for (const auto& ep : clusters[0]["endpoints"]) CHECK(ep["healthy"] == true);
  CHECK(gateway.logs().find("circuit breaker max_connections") == std::string::npos);
  // Calls still go through (to whichever endpoint the breaker leaves them).
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  CHECK(unary(*stub).ok());
}

TEST_CASE("a backend shutting down gracefully (GOAWAY) loses none of its open streams", "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  nlohmann::json c = {{"name", "pair"}, {"endpoints", {a.address(), b.address()}}};
  nlohmann::json retry = {{"retry", {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 1}}}};
  GatewayProcess gateway(configWith(c, retry));
  auto channel = makeChannel(gateway.address());
  auto stub = example::Echo::NewStub(channel);
  constexpr int kStreams = 16;
  constexpr int kResponses = 4;
  std::atomic<int> complete{0};
  std::vector<std::string> problems(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext ctx;
      setTimeout(ctx, kCallTimeout);
      EchoRequest req;
      req.set_response_count(kResponses);
      req.set_response_interval_ms(80);
      auto reader = stub->ServerStream(&ctx, req);
      EchoResponse resp;
      int n = 0;
      while (reader->Read(&resp)) ++n;
      auto s = reader->Finish();
      if (s.ok() && n == kResponses) {
        complete++;
      } else {
        problems[i] = describe(s) + " after " + std::to_string(n) + " messages";
      }
    });
  }
  // Every stream has reached a backend: one arriving at b while it shuts
  // down would be CANCELLED by grpc++, which this route does not retry.
  REQUIRE(waitFor([&] { return a.stats().calls.load() + b.stats().calls.load() == kStreams; }, std::chrono::seconds(5)));
  // grpc++ Shutdown sends GOAWAY and lets calls run until the grace deadline:
  // 3 s, ample for streams of 320 ms.
  b.stop(std::chrono::seconds(3));
  for (auto& t : threads) t.join();
  for (const auto& p : problems) CHECK(p.empty());
  CHECK(complete == kStreams);
  // New calls reach the remaining backend (the refused connect is retried there).
  for (int i = 0; i < 5; ++i) REQUIRE_OK(unary(*stub));
}

TEST_CASE("more concurrent calls than the backend's stream limit open another connection", "[e2e][cluster]") {
  example::EchoBackend backend("limited");
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&backend.echoService());
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 4);
  auto server = builder.BuildAndStart();
  REQUIRE(port != 0);
  nlohmann::json c = {{"name", "limited"}, {"endpoints", {"127.0.0.1:" + std::to_string(port)}}};
  {
    GatewayProcess gateway(configWith(c));
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    constexpr int kCalls = 20;
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kCalls; ++i) {
      threads.emplace_back([&] {
        if (unary(*stub, 3000).ok()) ok++;
      });
    }
    // One connection of 4 streams would hold at most 4 at the backend at once.
    CHECK(waitFor([&] { return backend.stats().active == kCalls; }, std::chrono::milliseconds(2500)));
    for (auto& t : threads) t.join();
    CHECK(ok == kCalls);
  }
  server->Shutdown(std::chrono::system_clock::now());
}

TEST_CASE("circuit breakers fail fast with UNAVAILABLE naming the limit", "[e2e][cluster]") {
  TestBackend a("a");
  nlohmann::json c = {{"name", "guarded"}, {"endpoints", {a.address()}},
                      {"circuit_breakers", {{"max_requests", 2}}}};
  GatewayProcess gateway(configWith(c));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  std::atomic<int> ok{0};
  std::atomic<int> refused{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      auto s = unary(*stub, 2000);  // the first two hold the breaker while the rest start
      if (s.ok()) {
        ok++;
      } else if (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
                 s.error_message().find("max_requests (2)") != std::string::npos) {
        refused++;
      } else {
        other++;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 2);
  CHECK(refused == 4);
  CHECK(other == 0);
}

// Five calls in a row to a cluster of only `bad`: the first failure puts the
// endpoint in reconnect backoff (50-100 ms, doubling), so the calls right
// after it fail fast without a connection each.
void checkBackedOff(BadBackend& bad) {
  GatewayProcess gateway(configWith({{"name", "bad"}, {"endpoints", {bad.address()}}}));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  int backed_off = 0;
  for (int i = 0; i < 5; ++i) {
    auto s = unary(*stub);
    INFO("call " << i << ": " << s.error_message());
    REQUIRE_STATUS(s, grpc::StatusCode::UNAVAILABLE);
    if (s.error_message().find("reconnect backoff") != std::string::npos) backed_off++;
  }
  // How many land in a backoff window depends on how fast the machine runs
  // the calls; that each one that did made no connection does not.
  CHECK(backed_off >= 1);
  INFO(backed_off << " backed off");
  CHECK(waitFor([&] { return bad.accepted() == 5 - backed_off; }, std::chrono::seconds(2)));
}

TEST_CASE("backends that do not speak HTTP/2 fail their calls clearly, others keep serving", "[e2e][cluster]") {
  TestBackend good("good");
  BadBackend silent("");
  BadBackend garbage("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
  auto routes = nlohmann::json::array({route("service", "sluice.example.Other", "good"),
                                       route("method", "/sluice.example.Echo/Unary", "silent"),
                                       route("prefix", "/", "garbage")});
  auto clusters = nlohmann::json::array({cluster("good", {good.address()}), cluster("silent", {silent.address()}),
                                         cluster("garbage", {garbage.address()})});
  clusters[1]["connect_timeout_ms"] = 400;
  GatewayProcess gateway(gatewayConfig(routes, clusters));
  auto channel = makeChannel(gateway.address());
  auto echo = example::Echo::NewStub(channel);
  auto other = example::Other::NewStub(channel);

  auto s = unary(*echo);
  REQUIRE_STATUS(s, grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(s.error_message(), Catch::Contains("silent") && Catch::Contains("no HTTP/2 SETTINGS"));

  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  auto reader = echo->ServerStream(&ctx, EchoRequest());
  EchoResponse resp;
  while (reader->Read(&resp)) {
  }
  auto gs = reader->Finish();
  REQUIRE_STATUS(gs, grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(gs.error_message(), Catch::Contains("garbage"));

  grpc::ClientContext octx;
  setTimeout(octx, kCallTimeout);
  EchoResponse oresp;
  REQUIRE_OK(other->Unary(&octx, EchoRequest(), &oresp));
  CHECK(oresp.backend() == "good");
}

TEST_CASE("a backend that accepts and then fails before HTTP/2 SETTINGS is backed off like a refused connect",
          "[e2e][cluster]") {
  SECTION("it closes the connection at once") {
    BadBackend closing("", /*close_at_once=*/true);
    checkBackedOff(closing);
  }
  SECTION("it answers with bytes that are not HTTP/2") {
    BadBackend garbage("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
    checkBackedOff(garbage);
  }
}

// A call waiting on a connect that fails was never sent: it goes to another
// endpoint, as a gRPC client's own round_robin would send it, instead of
// failing while the cluster has one that serves (a backend restarting, of
// two, failed every call that waited on its reconnect).
TEST_CASE("calls waiting on a connect that fails go to another endpoint", "[e2e][cluster]") {
  TestBackend good("good");
  BadBackend closing("", /*close_at_once=*/true);  // fails each connect before SETTINGS
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "pair")}),
                              nlohmann::json::array({cluster("pair", {closing.address(), good.address()})}));
  config["workers"] = 1;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // Concurrent calls, so that several wait on the failing connect at once.
  constexpr int kThreads = 4, kRounds = 10;
  std::atomic<int> ok{0};
  std::mutex failures_mutex;
  std::string failures;
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        grpc::Status s = unary(*stub);
        if (s.ok()) {
          ++ok;
        } else {
          std::lock_guard lock(failures_mutex);
          failures += describe(s) + "\n";
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  INFO(failures);
  CHECK(ok == kThreads * kRounds);
  CHECK(closing.accepted() >= 1);  // calls were sent its way, and went on
  CHECK(statValue(gateway.adminAddress(), "cluster.pair.upstream_cx_connect_fail") >= 1);
}

// The failed connect that withdrew the call may eject its endpoint, the
// cluster's only one: the call then fails with that connect's error, and
// the access log's endpoint stays the one it tried, not "no healthy
// endpoint" with none.
TEST_CASE("a call whose only endpoint fails its connect, and is ejected for it, fails naming the connect",
          "[e2e][cluster]") {
  BadBackend closing("", /*close_at_once=*/true);
  nlohmann::json c = cluster("only", {closing.address()});
  c["panic_threshold_percent"] = 0;
  c["outlier_detection"] = {{"consecutive_failures", 1}};
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "only")}), nlohmann::json::array({c}));
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::Status s = unary(*stub);
  REQUIRE_STATUS(s, grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(s.error_message(), Catch::Contains("endpoint " + closing.address() + " closed"));
  CHECK_THAT(s.error_message(), !Catch::Contains("no healthy endpoint"));
}

// Cluster "pair" of `a` and `b`, ejecting after 3 failures in a row for a
// minute, at most one of the two; the gateway with `workers` workers.
static nlohmann::json outlierPairConfig(const TestBackend& a, const TestBackend& b, int workers) {
  nlohmann::json c = {{"name", "pair"},
                      {"endpoints", {a.address(), b.address()}},
                      {"outlier_detection", {{"consecutive_failures", 3}, {"base_ejection_ms", 60000},
                                             {"max_ejection_percent", 50}}}};
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "pair")}), nlohmann::json::array({c}));
  config["workers"] = workers;
  return config;
}

TEST_CASE("outlier detection ejects an endpoint that keeps answering UNAVAILABLE", "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  GatewayProcess gateway(outlierPairConfig(a, b, 1));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto call = [&](int status) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoRequest req;
    req.set_status_code(status);
    EchoResponse resp;
    return stub->Unary(&ctx, req, &resp).error_code();
  };
  // Every backend answers these with UNAVAILABLE: both collect failures, the
  // first to reach 3 is ejected, and 50% means the other one stays in.
  for (int i = 0; i < 8; ++i) CHECK(call(14) == grpc::StatusCode::UNAVAILABLE);
  auto logs = gateway.logs();
  bool a_out = logs.find("ejected " + a.address()) != std::string::npos;
  bool b_out = logs.find("ejected " + b.address()) != std::string::npos;
  CHECK(a_out != b_out);
  TestBackend& kept = a_out ? b : a;
  TestBackend& ejected = a_out ? a : b;
  int kept_before = kept.stats().calls;
  int ejected_before = ejected.stats().calls;
  for (int i = 0; i < 6; ++i) CHECK(call(0) == grpc::StatusCode::OK);
  CHECK(kept.stats().calls - kept_before == 6);
  CHECK(ejected.stats().calls == ejected_before);
}

TEST_CASE("a per-try timeout retries on another endpoint, within the attempts allowed", "[e2e][cluster]") {
  TestBackend first("first");
  TestBackend second("second");
  nlohmann::json c = {{"name", "pair"}, {"endpoints", {first.address(), second.address()}}};
  nlohmann::json r = route("prefix", "/", "pair");
  r["retry"] = {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 1}, {"per_try_timeout_ms", 200}};
  auto config = gatewayConfig(nlohmann::json::array({r}), nlohmann::json::array({c}));
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // Every try sleeps 5 s: the first (round robin: "first") is cut at 200 ms
  // and retried on "second", which is cut too; the call ends after two tries.
  const auto [s, took] = sleepingUnary(*stub);
  REQUIRE_STATUS(s, grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK_THAT(s.error_message(), Catch::Contains("within the per-try timeout"));
  CHECK(took < std::chrono::milliseconds(3000));  // about 400 ms; 5 s had a try run out
  CHECK(first.stats().calls == 1);
  CHECK(second.stats().calls == 1);
  grpc::ClientContext quick;
  setTimeout(quick, kCallTimeout);
  EchoResponse resp;
  REQUIRE_OK(stub->Unary(&quick, EchoRequest(), &resp));
}

// Envoy's rule: each try has per_try_timeout_ms from the end of the client's
// request until the backend's response headers. A client stream slower than
// that, or a server stream longer, is the client's and the backend's time to
// take, not a try that ran out (before, both were cut at the per-try timeout,
// counted against a healthy endpoint, and the upload replayed).
TEST_CASE("the per-try timeout counts from the end of the request to the response's headers", "[e2e][cluster]") {
  TestBackend backend("b");
  nlohmann::json r = route("prefix", "/", "one");
  r["retry"] = {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 2}, {"per_try_timeout_ms", 300}};
  nlohmann::json c = cluster("one", {backend.address()});
  c["outlier_detection"] = {{"consecutive_failures", 1}};
  GatewayProcess gateway(gatewayConfig(nlohmann::json::array({r}), nlohmann::json::array({c})));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  constexpr int kMessages = 6;
  constexpr auto kInterval = std::chrono::milliseconds(150);  // 6 × 150 ms, three times the per-try timeout

  SECTION("a client stream slower than the per-try timeout") {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoResponse resp;
    auto writer = stub->ClientStream(&ctx, &resp);
    for (int i = 0; i < kMessages; ++i) {
      std::this_thread::sleep_for(kInterval);
      EchoRequest req;
      req.set_payload("part");
      REQUIRE(writer->Write(req));
    }
    REQUIRE(writer->WritesDone());
    REQUIRE_OK(writer->Finish());
    CHECK(resp.received_messages() == kMessages);
  }
  SECTION("a server stream longer than the per-try timeout") {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoRequest req;
    req.set_response_count(kMessages);
    req.set_response_interval_ms(kInterval.count());
    auto reader = stub->ServerStream(&ctx, req);
    EchoResponse resp;
    int read = 0;
    while (reader->Read(&resp)) ++read;
    REQUIRE_OK(reader->Finish());
    CHECK(read == kMessages);
  }
  // One try each, none ejected the endpoint: the next call gets through.
  CHECK(backend.stats().calls == 1);
  grpc::ClientContext quick;
  setTimeout(quick, kCallTimeout);
  EchoResponse resp;
  REQUIRE_OK(stub->Unary(&quick, EchoRequest(), &resp));
}

TEST_CASE("num_retries 0 still times each try with per_try_timeout_ms", "[e2e][cluster]") {
  TestBackend backend("b");
  nlohmann::json r = route("prefix", "/", "one");
  r["retry"] = {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 0}, {"per_try_timeout_ms", 300}};
  GatewayProcess gateway(gatewayConfig(nlohmann::json::array({r}),
                                       nlohmann::json::array({cluster("one", {backend.address()})})));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  const auto [s, took] = sleepingUnary(*stub);
  REQUIRE_STATUS(s, grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK_THAT(s.error_message(), Catch::Contains("within the per-try timeout (300 ms"));
  CHECK(took < std::chrono::milliseconds(2500));
  CHECK(backend.stats().calls == 1);
  CHECK(backend.stats().waitUntil([&] { return backend.stats().cancelled >= 1; }, std::chrono::seconds(3)));
}

TEST_CASE("a backend's own DEADLINE_EXCEEDED is retried only when retry_on lists it", "[e2e][cluster]") {
  TestBackend backend("b");
  const bool listed = GENERATE(false, true);
  INFO("DEADLINE_EXCEEDED in retry_on: " << listed);
  nlohmann::json r = route("prefix", "/", "one");
  nlohmann::json retry_on = {"UNAVAILABLE"};
  if (listed) retry_on.push_back("DEADLINE_EXCEEDED");
  r["retry"] = {{"retry_on", retry_on}, {"num_retries", 2}, {"per_try_timeout_ms", 2000}};
  auto config = gatewayConfig(nlohmann::json::array({r}),
                              nlohmann::json::array({cluster("one", {backend.address()})}));
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // At once, long before the per-try timeout: the backend's own answer (a
  // dependency of its timed out), not a try the gateway cut short.
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoRequest req;
  req.set_status_code(4);
  EchoResponse resp;
  REQUIRE_STATUS(stub->Unary(&ctx, req, &resp), grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(backend.stats().calls == (listed ? 3 : 1));
}

TEST_CASE("a route timeout caps the call's deadline", "[e2e][cluster]") {
  TestBackend backend("b");
  nlohmann::json r = route("prefix", "/", "one");
  r["timeout_ms"] = 300;
  GatewayProcess gateway(gatewayConfig(nlohmann::json::array({r}), nlohmann::json::array({cluster("one", {backend.address()})})));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);  // 10 s from the client; the route says 300 ms
  EchoRequest req;
  req.set_sleep_ms(3000);
  EchoResponse resp;
  auto start = std::chrono::steady_clock::now();
  auto s = stub->Unary(&ctx, req, &resp);
  REQUIRE_STATUS(s, grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(2000));
  // The backend saw the shortened deadline (grpc-timeout) and the cancel.
  CHECK(backend.stats().waitUntil([&] { return backend.stats().cancelled >= 1; }, std::chrono::seconds(3)));
}

}  // namespace sluice::test

namespace sluice::test {
namespace {

// upstream_cx_active for `cluster` from the admin /stats text.
int upstreamConnections(const std::string& admin, const std::string& cluster) {
  std::string body = http(admin, "GET", "/stats").body;
  std::string key = "cluster." + cluster + ".upstream_cx_active: ";
  auto at = body.find(key);
  return at == std::string::npos ? -1 : std::stoi(body.substr(at + key.size()));
}

// Holds `calls` sleeping unary calls open at once and reads how many upstream
// connections carry them.
int connectionsForConcurrentCalls(const nlohmann::json& cluster_json, int calls) {
  TestBackend backend("b");
  nlohmann::json c = cluster_json;
  c["endpoints"] = {backend.address()};
  auto config = configWith(c);
  config["workers"] = 1;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < calls; ++i) {
    threads.emplace_back([&] {
      if (unary(*stub, 3000).ok()) ok++;
    });
  }
  CHECK(waitFor([&] { return backend.stats().active == calls; }, std::chrono::milliseconds(2500)));
  int connections = upstreamConnections(gateway.adminAddress(), c["name"]);
  for (auto& t : threads) t.join();
  CHECK(ok == calls);
  return connections;
}

}  // namespace

TEST_CASE("cluster max_concurrent_streams opens another upstream connection past its cap", "[e2e][cluster]") {
  // The grpc++ backend allows far more streams: one connection carries all nine...
  CHECK(connectionsForConcurrentCalls({{"name", "uncapped"}}, 9) == 1);
  // ... unless the cluster caps streams per connection.
  CHECK(connectionsForConcurrentCalls({{"name", "capped"}, {"max_concurrent_streams", 3}}, 9) == 3);
}

TEST_CASE("cluster connections_per_endpoint spreads calls over that many upstream connections", "[e2e][cluster]") {
  nlohmann::json spread = {{"name", "spread"}, {"connections_per_endpoint", 2}};
  // A lone call needs no second connection ...
  CHECK(connectionsForConcurrentCalls(spread, 1) == 1);
  // ... two calls at once get one each, and more share those two.
  CHECK(connectionsForConcurrentCalls(spread, 2) == 2);
  CHECK(connectionsForConcurrentCalls(spread, 8) == 2);
}

// A Bidi call that says something, stays quiet for `quiet`, then says
// something again; the status of the whole call.
static grpc::Status quietBidi(example::Echo::Stub& stub, std::chrono::milliseconds quiet) {
  grpc::ClientContext context;
  setTimeout(context, std::chrono::seconds(30));
  auto stream = stub.Bidi(&context);
  EchoRequest request;
  EchoResponse response;
  request.set_payload("first");
  if (!stream->Write(request) || !stream->Read(&response)) return stream->Finish();
  std::this_thread::sleep_for(quiet);
  request.set_payload("after");
  if (!stream->Write(request) || !stream->Read(&response)) return stream->Finish();
  stream->WritesDone();
  return stream->Finish();
}

TEST_CASE("upstream keepalive PINGs: off by default, on, a backend that permits them keeps quiet calls",
          "[e2e][cluster]") {
  SECTION("a backend that permits PINGs this often keeps a quiet call going") {
    example::EchoBackend echo("permissive");
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&echo.echoService());
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 500);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    auto server = builder.BuildAndStart();
    REQUIRE(port != 0);
    nlohmann::json c = {{"name", "b"}, {"endpoints", {"127.0.0.1:" + std::to_string(port)}},
                        {"keepalive_interval_ms", 1000}};
    {
      GatewayProcess gateway(configWith(c));
      auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
      REQUIRE_OK(quietBidi(*stub, std::chrono::seconds(6)));
      CHECK(gateway.logs().find("GOAWAY") == std::string::npos);
    }
    server->Shutdown(std::chrono::system_clock::now());
  }
  SECTION("a grpc++ backend with its default policy: PINGs every second end the connection, and the log says why") {
    TestBackend backend("b");
    nlohmann::json c = {{"name", "b"}, {"endpoints", {backend.address()}}, {"keepalive_interval_ms", 1000}};
    GatewayProcess gateway(configWith(c));
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    const grpc::Status status = quietBidi(*stub, std::chrono::seconds(6));
    INFO(describe(status));
    CHECK_FALSE(status.ok());
    CHECK(waitFor([&] {
      return gateway.logs().find("GOAWAY ENHANCE_YOUR_CALM") != std::string::npos &&
             gateway.logs().find("PINGs every 1000 ms (keepalive_interval_ms) are more than the backend permits") !=
                 std::string::npos;
    }, std::chrono::seconds(2)));
  }
  SECTION("by default no PING goes out: a quiet call to that backend is never cut") {
    TestBackend backend("b");
    GatewayProcess gateway(configWith({{"name", "b"}, {"endpoints", {backend.address()}}}));
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    REQUIRE_OK(quietBidi(*stub, std::chrono::seconds(4)));
    CHECK(gateway.logs().find("GOAWAY") == std::string::npos);
  }
}

// The kernel's timer state ("tr" of /proc/net/tcp: 2 is keepalive) of every
// established IPv4 socket whose remote port is `port`.
static std::vector<int> tcpTimersTo(int port) {
  std::vector<int> out;
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer;
    fields >> slot >> local >> remote >> state >> queues >> timer;
    if (state != "01" || remote.size() < 5) continue;
    if (std::stoi(remote.substr(remote.find(':') + 1), nullptr, 16) != port) continue;
    out.push_back(std::stoi(timer.substr(0, timer.find(':')), nullptr, 16));
  }
  return out;
}

TEST_CASE("backend connections carry TCP keepalive, for a backend host that vanishes", "[e2e][cluster]") {
  TestBackend backend("b");
  auto config = configWith({{"name", "b"}, {"endpoints", {backend.address()}}});
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  REQUIRE_OK(unary(*stub));
  // The gateway's connection to the backend is the one socket whose remote
  // port is the backend's; idle, its kernel timer is the keepalive one.
  std::vector<int> timers;
  REQUIRE(waitFor([&] {
    timers = tcpTimersTo(backend.port());
    return timers.size() == 1 && timers[0] == 2;
  }, std::chrono::seconds(3)));
}

TEST_CASE("with too few endpoints available, calls go to every endpoint (panic_threshold_percent)",
          "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  // Checks of a service neither backend serves: both end up unhealthy, as
  // with a health check pointed at the wrong service.
  nlohmann::json c = {{"name", "pair"},
                      {"endpoints", {a.address(), b.address()}},
                      {"health_check",
                       {{"interval_ms", 100}, {"timeout_ms", 100}, {"unhealthy_threshold", 1},
                        {"service", "no.such.Service"}}}};
  SECTION("by default (50%) the calls still reach both backends") {
    auto config = configWith(c);
    config["admin"] = {{"address", "127.0.0.1:0"}};
    config["workers"] = 1;  // the failures counted are the serving worker's
    GatewayProcess gateway(config);
    REQUIRE(waitFor([&] { return statValue(gateway.adminAddress(), "cluster.pair.health_check.failure") >= 4; },
                    std::chrono::seconds(5)));
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    auto seen = distribution(*stub, 10);
    CHECK(seen["a"] == 5);
    CHECK(seen["b"] == 5);
    CHECK(statValue(gateway.adminAddress(), "cluster.pair.lb_healthy_panic") >= 10);
  }
  SECTION("with panic_threshold_percent 0, no endpoint is chosen") {
    c["panic_threshold_percent"] = 0;
    auto config = configWith(c);
    config["admin"] = {{"address", "127.0.0.1:0"}};
    config["workers"] = 1;  // the failures counted are the serving worker's
    GatewayProcess gateway(config);
    REQUIRE(waitFor([&] { return statValue(gateway.adminAddress(), "cluster.pair.health_check.failure") >= 4; },
                    std::chrono::seconds(5)));
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    auto s = unary(*stub);
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(s.error_message(), Catch::Contains("no healthy endpoint"));
  }
}

TEST_CASE("an endpoint one worker ejects is ejected on every worker", "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  GatewayProcess gateway(outlierPairConfig(a, b, 4));
  // Eight connections: two on each worker.
  std::vector<std::unique_ptr<example::Echo::Stub>> stubs;
  for (int i = 0; i < 8; ++i) stubs.push_back(example::Echo::NewStub(makeChannel(gateway.address())));
  auto call = [&](example::Echo::Stub& stub) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoRequest req;
    req.set_status_code(14);  // only on "a"
    req.set_fail_only_on("a");
    EchoResponse resp;
    return stub.Unary(&ctx, req, &resp).error_code();
  };
  // Calls over every connection in turn until some worker has seen three
  // failures from "a" in a row.
  int calls = 0;
  while (logCount(gateway, "ejected " + a.address()) == 0 && calls < 200) call(*stubs[calls++ % stubs.size()]);
  REQUIRE(logCount(gateway, "ejected " + a.address()) == 1);
  // The other workers have it ejected too (a post away): none of the next
  // calls, two per connection and so four per worker, goes to "a".
  REQUIRE(waitFor([&] { return logCount(gateway, "ejected by another worker") == 3; }, std::chrono::seconds(5)));
  int a_before = a.stats().calls;
  for (int round = 0; round < 2; ++round) {
    for (auto& stub : stubs) CHECK(call(*stub) == grpc::StatusCode::OK);
  }
  CHECK(a.stats().calls == a_before);
  // Decided once, on one worker, and taken up by the three others.
  CHECK(logCount(gateway, "ejected " + a.address()) == 1);
  CHECK(logCount(gateway, "ejected by another worker") == 3);
}

TEST_CASE("the one endpoint of a cluster, ejected, still gets calls (panic)", "[e2e][cluster]") {
  TestBackend a("a");
  nlohmann::json c = {{"name", "solo"},
                      {"endpoints", {a.address()}},
                      {"outlier_detection", {{"consecutive_failures", 2}, {"base_ejection_ms", 60000}}}};
  GatewayProcess gateway(configWith(c));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  for (int i = 0; i < 2; ++i) failUnavailable(*stub);
  REQUIRE(waitFor([&] { return logCount(gateway, "ejected " + a.address()) == 1; }, std::chrono::seconds(2)));
  REQUIRE_OK(unary(*stub));
  CHECK(a.stats().calls == 3);
}

TEST_CASE("a stream that fails after its response began counts against its endpoint in outlier detection",
          "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  nlohmann::json c = {{"name", "pair"},
                      {"endpoints", {a.address(), b.address()}},
                      {"outlier_detection",
                       {{"consecutive_failures", 3}, {"base_ejection_ms", 60000}, {"max_ejection_percent", 50}}}};
  GatewayProcess gateway(configWith(c));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // One message, then UNAVAILABLE in the trailers: the response headers came
  // first and said nothing of how the call ends.
  for (int i = 0; i < 6; ++i) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoRequest req;
    req.set_response_count(1);
    req.set_status_code(14);
    auto reader = stub->ServerStream(&ctx, req);
    EchoResponse resp;
    CHECK(reader->Read(&resp));
    CHECK(reader->Finish().error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  // Ejected once, by the worker that counted (the others take it up).
  CHECK(waitFor([&] { return logCount(gateway, "ejected 127.0.0.1:") == 1; }, std::chrono::seconds(2)));
}

TEST_CASE("an endpoint back in service long enough is ejected for the base time again", "[e2e][cluster]") {
  TestBackend a("a");
  nlohmann::json c = {{"name", "solo"},
                      {"endpoints", {a.address()}},
                      {"outlier_detection", {{"consecutive_failures", 1}, {"base_ejection_ms", 1000}}}};
  GatewayProcess gateway(configWith(c));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto fail = [&] { failUnavailable(*stub); };
  // Connections up first, so the two timed failures take alike long: the
  // second must land within ±500 ms of the middle of its window.
  REQUIRE(unary(*stub).ok());
  // The lone endpoint still gets calls while ejected (panic routing).
  const auto first = std::chrono::steady_clock::now();
  fail();
  REQUIRE(waitFor([&] { return logCount(gateway, "for 1000 ms") == 1; }, std::chrono::seconds(2)));
  // Soon after the ejection ended (less than a period in service): the
  // second ejection is twice as long.
  std::this_thread::sleep_until(first + std::chrono::milliseconds(1500));
  fail();
  REQUIRE(waitFor([&] { return logCount(gateway, "for 2000 ms") == 1; }, std::chrono::seconds(2)));
  // Three base periods back in service (two would do): forgiven, the next
  // is 1000 ms again.
  std::this_thread::sleep_for(std::chrono::milliseconds(2000 + 3 * 1000 + 300));
  fail();
  CHECK(waitFor([&] { return logCount(gateway, "for 1000 ms") == 2; }, std::chrono::seconds(2)));
  CHECK(logCount(gateway, "for 3000 ms") == 0);
}

TEST_CASE("a restarted backend passes its next health check, whatever the reconnect backoff", "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  nlohmann::json c = {{"name", "pair"},
                      {"endpoints", {a.address(), b.address()}},
                      {"health_check",
                       {{"interval_ms", 100}, {"timeout_ms", 100}, {"unhealthy_threshold", 2}, {"healthy_threshold", 1}}}};
  auto config = configWith(c);
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  REQUIRE_OK(unary(*stub));
  b.stop();
  // Failed connects push the endpoint's reconnect backoff toward its 10 s cap.
  std::this_thread::sleep_for(std::chrono::seconds(5));
  b.start();  // same port
  const auto restarted = std::chrono::steady_clock::now();
  const bool back = waitFor(
      [&] {
        REQUIRE_OK(unary(*stub));
        return b.stats().calls > 0;
      },
      std::chrono::seconds(5));
  CHECK(back);
  // Without the health check ending the backoff, calls would wait out the
  // rest of it: seconds. A check needs a new connection and handshake to a
  // freshly started server, which a loaded machine may not finish in 100 ms.
  CHECK(std::chrono::steady_clock::now() - restarted < std::chrono::milliseconds(2500));
}

// The milliseconds of reconnect backoff a call's failure names, or -1.
long backoffLeftMs(const grpc::Status& status) {
  const std::string& m = status.error_message();
  const std::string marker = "reconnect backoff for ";
  const size_t at = m.find(marker);
  if (at == std::string::npos) return -1;
  return std::stol(m.substr(at + marker.size()));
}

TEST_CASE("a cluster's only backend restarted takes calls within about a second, without health checks",
          "[e2e][cluster]") {
  TestBackend b("b");
  auto config = configWith({{"name", "one"}, {"endpoints", {b.address()}}});
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  REQUIRE_OK(unary(*stub));
  b.stop();
  // Calls fail until the endpoint's reconnect backoff has seconds left:
  // long enough that waiting it out would show.
  long left = -1;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (left < 4000 && std::chrono::steady_clock::now() < until) {
    grpc::Status s = unary(*stub);
    REQUIRE_STATUS(s, grpc::StatusCode::UNAVAILABLE);
    left = std::max(left, backoffLeftMs(s));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(left >= 4000);
  b.start();  // same port
  const auto restarted = std::chrono::steady_clock::now();
  // With no endpoint out of backoff, a call tries to connect a second after
  // the last failed connect: the backend is found without waiting out the
  // rest of the backoff.
  CHECK(waitFor([&] { return unary(*stub).ok(); }, std::chrono::seconds(8)));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - restarted);
  INFO("back after " << took.count() << " ms; the backoff had " << left << " ms left");
  CHECK(took < std::chrono::milliseconds(2500));
}

TEST_CASE("a healthy report from the checking worker ends the other workers' reconnect backoff", "[e2e][cluster]") {
  TestBackend b("b");
  nlohmann::json c = {{"name", "one"},
                      {"endpoints", {b.address()}},
                      {"health_check",
                       {{"interval_ms", 100}, {"timeout_ms", 100}, {"unhealthy_threshold", 2}, {"healthy_threshold", 1}}}};
  auto config = configWith(c);
  config["workers"] = 2;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  // Eight connections, spread over both workers by the kernel.
  std::vector<std::unique_ptr<example::Echo::Stub>> stubs;
  for (int i = 0; i < 8; ++i) {
    stubs.push_back(example::Echo::NewStub(makeChannel(gateway.address())));
    REQUIRE_OK(unary(*stubs.back()));
  }
  b.stop();
  // Calls keep failing for 6 s: with the only endpoint down, each worker
  // routes to it anyway (panic), and its failed connects push the backoff
  // toward seconds.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(6);
  while (std::chrono::steady_clock::now() < until) {
    for (auto& stub : stubs) CHECK_FALSE(unary(*stub).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  b.start();  // same port
  // The checking worker finds it back, and its report reaches the other.
  REQUIRE(waitFor(
      [&] {
        auto clusters = nlohmann::json::parse(http(gateway.adminAddress(), "GET", "/clusters").body);
        return clusters[0]["endpoints"][0]["health_check"] == "healthy";
      },
      std::chrono::seconds(5)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Every worker takes calls now, not once the rest of its backoff is over.
  for (size_t i = 0; i < stubs.size(); ++i) {
    EchoResponse resp;
    grpc::Status status = unary(*stubs[i], 0, &resp);
    INFO("connection " << i << ": " << describe(status));
    CHECK(status.ok());
  }
}

TEST_CASE("a reload keeps what the gateway knew of endpoint health, and the old config stops checking",
          "[e2e][cluster]") {
  TestBackend a("a");
  BadBackend silent("");  // accepts connections and never speaks HTTP/2
  nlohmann::json c = {{"name", "pair"},
                      {"endpoints", {a.address(), silent.address()}},
                      {"connect_timeout_ms", 3000},
                      {"health_check", {{"interval_ms", 200}, {"timeout_ms", 190}, {"unhealthy_threshold", 3}}}};
  auto config = configWith(c);
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  REQUIRE(waitFor([&] { return logCount(gateway, silent.address() + " is unhealthy") == 1; }, std::chrono::seconds(5)));
  // A call that keeps the old config's generation alive across the reload.
  std::thread held([&] { CHECK(unary(*stub, 2500).ok()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Checks that take 900 ms to fail: without what the old config knew, the
  // silent endpoint would look healthy that long after the reload.
  auto reloaded = config;
  reloaded["clusters"][0]["health_check"]["interval_ms"] = 1000;
  reloaded["clusters"][0]["health_check"]["timeout_ms"] = 900;
  REQUIRE(reloadWithSighup(gateway, reloaded.dump(), 1));
  // The new config starts out knowing the silent endpoint is unhealthy: no
  // call waits on it (each would hang until connect_timeout_ms).
  for (int i = 0; i < 10; ++i) {
    INFO("call " << i);
    grpc::ClientContext ctx;
    setTimeout(ctx, std::chrono::milliseconds(1000));
    EchoResponse resp;
    CHECK(stub->Unary(&ctx, EchoRequest(), &resp).ok());
  }
  // Only the new config checks it (about one failed check a second, each
  // waiting 900 ms; the old config's checks, had they gone on, fail five a
  // second).
  const std::string failed = "health check of " + silent.address() + " failed";
  const size_t before = logCount(gateway, failed);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const size_t in_a_second = logCount(gateway, failed) - before;
  CHECK(in_a_second <= 3);
  // ... and the new config does check it.
  CHECK(waitFor([&] { return logCount(gateway, failed) > before + in_a_second; }, std::chrono::seconds(3)));
  held.join();
}

TEST_CASE("a reload keeps a cluster it leaves unchanged running: connections, calls, health checks",
          "[e2e][cluster]") {
  TestBackend a("a");
  TestBackend b("b");
  nlohmann::json kept = {{"name", "kept"},
                         {"endpoints", {a.address()}},
                         {"health_check", {{"interval_ms", 100}, {"timeout_ms", 90}}}};
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "kept")}),
                              nlohmann::json::array({kept, cluster("other", {b.address()})}));
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["workers"] = 1;
  GatewayProcess gateway(config);
  const std::string admin = gateway.adminAddress();
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  for (int i = 0; i < 3; ++i) REQUIRE_OK(callEmptyUnary(*stub));
  auto stat = [&](const std::string& name) { return statValue(admin, "cluster.kept." + name); };
  const int64_t opened = stat("upstream_cx_total");
  REQUIRE(stat("upstream_cx_active") == 1);
  grpc::ClientContext stream_ctx;
  setTimeout(stream_ctx, std::chrono::seconds(20));
  auto stream = stub->Bidi(&stream_ctx);
  EchoResponse resp;
  REQUIRE(stream->Write(EchoRequest()));
  REQUIRE(stream->Read(&resp));

  // Only the other cluster changes.
  auto reloaded = config;
  reloaded["clusters"][1]["connect_timeout_ms"] = 4000;
  std::ofstream(gateway.configPath()) << reloaded.dump(2);
  REQUIRE(http(admin, "POST", "/reload").status == 200);
  for (int i = 0; i < 3; ++i) REQUIRE_OK(callEmptyUnary(*stub));
  CHECK(stat("upstream_cx_total") == opened);  // no new connection
  CHECK(stat("upstream_cx_active") == 1);
  REQUIRE(stream->Write(EchoRequest()));
  REQUIRE(stream->Read(&resp));
  // Its health checks go on (a retired cluster's stop), once per interval
  // (not twice: one checker).
  const int64_t checks = stat("health_check.success");
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const int64_t in_a_second = stat("health_check.success") - checks;
  CHECK(in_a_second >= 5);
  CHECK(in_a_second <= 11);

  // A change to it builds it anew: the next call opens a connection, and
  // the old one closes when the stream on it ends.
  auto changed = reloaded;
  changed["clusters"][0]["connect_timeout_ms"] = 4000;
  std::ofstream(gateway.configPath()) << changed.dump(2);
  REQUIRE(http(admin, "POST", "/reload").status == 200);
  REQUIRE_OK(callEmptyUnary(*stub));
  CHECK(stat("upstream_cx_total") == opened + 1);
  CHECK(stat("upstream_cx_active") == 2);
  REQUIRE(stream->Write(EchoRequest()));
  REQUIRE(stream->Read(&resp));
  REQUIRE(stream->WritesDone());
  REQUIRE_OK(stream->Finish());
  CHECK(waitFor([&] { return stat("upstream_cx_active") == 1; }, std::chrono::seconds(3)));
  REQUIRE_OK(callEmptyUnary(*stub));
}

TEST_CASE("a stream the client cancels after the backend answered counts as a success for outlier detection",
          "[e2e][cluster]") {
  TestBackend a("a");
  nlohmann::json c = {{"name", "solo"},
                      {"endpoints", {a.address()}},
                      {"outlier_detection", {{"consecutive_failures", 3}, {"base_ejection_ms", 60000}}}};
  GatewayProcess gateway(configWith(c));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto fail = [&] { failUnavailable(*stub); };
  fail();
  fail();
  {
    // A long stream the client leaves after its first message: the backend
    // did its part, and the failure count starts again.
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoRequest req;
    req.set_response_count(1000);
    req.set_response_interval_ms(10);
    auto reader = stub->ServerStream(&ctx, req);
    EchoResponse resp;
    REQUIRE(reader->Read(&resp));
    ctx.TryCancel();
    while (reader->Read(&resp)) {
    }
    CHECK(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);
  }
  fail();
  fail();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(logCount(gateway, "ejected ") == 0);
}

}  // namespace sluice::test
