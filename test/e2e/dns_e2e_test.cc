// Host names with several addresses, end to end through the preloaded
// scripted resolver: dns_addresses "all" makes an endpoint of every address
// and follows the answers (endpoints added and removed, calls on a removed
// one finishing there); "first" keeps one endpoint on one address.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/http_client.h"
#include "test/support/scripted_resolver.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;


constexpr char kName[] = "svc.sluice-test";

// A gateway on one worker (the one doing the lookups) routing everything to
// cluster "named": `name_port` under dns_addresses `mode`, refreshed every 100 ms.
nlohmann::json namedClusterConfig(int name_port, const std::string& mode, const nlohmann::json& extra = {}) {
  nlohmann::json c = cluster("named", {std::string(kName) + ":" + std::to_string(name_port)});
  c["dns_refresh_ms"] = 100;
  c["dns_addresses"] = mode;
  if (!extra.is_null()) c.update(extra);
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "named")}), nlohmann::json::array({c}));
  config["workers"] = 1;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  return config;
}

// Backend name -> calls answered, over `n` sequential unary calls (all must succeed).
std::map<std::string, int> spread(example::Echo::Stub& stub, int n) {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoResponse resp;
    auto status = stub.Unary(&ctx, EchoRequest(), &resp);
    INFO(describe(status));
    REQUIRE(status.ok());
    ++seen[resp.backend()];
  }
  return seen;
}

nlohmann::json namedCluster(const GatewayProcess& gateway) {
  auto clusters = nlohmann::json::parse(http(gateway.adminAddress(), "GET", "/clusters").body);
  REQUIRE(clusters.size() == 1);
  return clusters[0];
}

// The endpoints /clusters lists for the cluster: address -> health check state.
std::map<std::string, std::string> listedEndpoints(const GatewayProcess& gateway) {
  std::map<std::string, std::string> out;
  const nlohmann::json listed = namedCluster(gateway);
  for (const auto& ep : listed["endpoints"]) {
    CHECK(ep["host"] == kName);
    out[ep["address"].get<std::string>()] = ep["health_check"].get<std::string>();
  }
  return out;
}

// A server-streaming call of `count` responses, one every `interval_ms`.
struct SlowStream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<EchoResponse>> reader;
  SlowStream(example::Echo::Stub& stub, int count, int interval_ms) {
    setTimeout(ctx, std::chrono::seconds(30));
    EchoRequest req;
    req.set_response_count(count);
    req.set_response_interval_ms(interval_ms);
    reader = stub.ServerStream(&ctx, req);
  }
  // Reads to the end: the backend that answered, how many responses, the status.
  std::string finish(int& responses, grpc::Status& status) {
    std::string backend;
    EchoResponse resp;
    responses = 0;
    while (reader->Read(&resp)) {
      backend = resp.backend();
      ++responses;
    }
    status = reader->Finish();
    return backend;
  }
};

TEST_CASE("dns_addresses all: an endpoint per address, following the answers, a removed endpoint's calls finish there",
          "[e2e][cluster][dns]") {
  TestBackend a("a");
  TestBackend b("b", "127.0.0.2", a.port());
  TestBackend c("c", "127.0.0.3", a.port());
  const std::string port = std::to_string(a.port());
  ScriptedResolver resolver;
  resolver.answer(kName, "127.0.0.1,127.0.0.2", 0);
  GatewayProcess::Options options;
  options.extraEnv = resolver.env();
  GatewayProcess gateway(
      namedClusterConfig(a.port(), "all",
                         {{"health_check", {{"interval_ms", 500}, {"timeout_ms", 400}, {"unhealthy_threshold", 2}}}}),
      options);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));

  // Both addresses take calls, round robin.
  auto seen = spread(*stub, 10);
  CHECK(seen["a"] == 5);
  CHECK(seen["b"] == 5);
  CHECK(listedEndpoints(gateway) ==
        std::map<std::string, std::string>{{"127.0.0.1:" + port, "healthy"}, {"127.0.0.2:" + port, "healthy"}});

  // Four 6 s streams, two on each backend; then 127.0.0.2 leaves the answer
  // and 127.0.0.3 joins it.
  std::vector<std::unique_ptr<SlowStream>> streams;
  for (int i = 0; i < 4; ++i) streams.push_back(std::make_unique<SlowStream>(*stub, 60, 100));
  REQUIRE(waitFor([&] { return a.stats().active == 2 && b.stats().active == 2; }, std::chrono::seconds(5)));
  resolver.answer(kName, "127.0.0.1,127.0.0.3", 0);
  REQUIRE(waitFor([&] { return gateway.logs().find("now also resolves to 127.0.0.3") != std::string::npos; },
                  std::chrono::seconds(5)));
  CHECK(gateway.logs().find("no longer resolves to 127.0.0.2: endpoint removed (2 call(s) still on it)") !=
        std::string::npos);
  CHECK(listedEndpoints(gateway) ==
        std::map<std::string, std::string>{{"127.0.0.1:" + port, "healthy"}, {"127.0.0.3:" + port, "healthy"}});

  // New calls go to the answer's addresses only, while b's streams go on.
  const int b_calls = b.stats().calls;
  seen = spread(*stub, 10);
  CHECK(seen["a"] == 5);
  CHECK(seen["c"] == 5);
  CHECK(b.stats().calls == b_calls);
  CHECK(b.stats().active == 2);
  // Still in use: not deleted.
  CHECK(gateway.logs().find("removed endpoint 127.0.0.2:" + port) == std::string::npos);

  std::map<std::string, int> finished;
  for (auto& s : streams) {
    int responses = 0;
    grpc::Status status;
    const std::string backend = s->finish(responses, status);
    INFO(backend << ": " << describe(status));
    CHECK(status.ok());
    CHECK(responses == 60);
    ++finished[backend];
  }
  CHECK(finished == std::map<std::string, int>{{"a", 2}, {"b", 2}});

  // Its connection closes once its calls are done, and the endpoint goes.
  CHECK(waitFor([&] { return gateway.logs().find("removed endpoint 127.0.0.2:" + port + " (" + kName + ") is gone") !=
                             std::string::npos; },
                std::chrono::seconds(10)));
  CHECK(waitFor([&] { return namedCluster(gateway)["connections"] == 2; }, std::chrono::seconds(5)));

  // An added endpoint is health-checked like the others.
  c.stop(std::chrono::milliseconds(0));
  CHECK(waitFor([&] { return listedEndpoints(gateway)["127.0.0.3:" + port] == "unhealthy"; },
                std::chrono::seconds(10)));

  // A name that stops resolving keeps its endpoints.
  resolver.script({});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(listedEndpoints(gateway).size() == 2);
  seen = spread(*stub, 4);
  CHECK(seen["a"] == 4);
  CHECK(gateway.stop() == 0);
}

// Backends a (127.0.0.1) and b (127.0.0.2) on one port, and the name
// answering both, in that order.
struct TwoAddresses {
  TestBackend a{"a"};
  TestBackend b{"b", "127.0.0.2", a.port()};
  ScriptedResolver resolver;
  GatewayProcess::Options options;
  TwoAddresses() {
    resolver.answer(kName, "127.0.0.1,127.0.0.2", 0);
    options.extraEnv = resolver.env();
  }
};

TEST_CASE("dns_addresses first: one endpoint, kept on its address while the answer still has it", "[e2e][cluster][dns]") {
  TwoAddresses backends;
  auto& [a, b, resolver, options] = backends;
  GatewayProcess gateway(namedClusterConfig(a.port(), "first"), options);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  CHECK(spread(*stub, 6) == std::map<std::string, int>{{"a", 6}});
  CHECK(listedEndpoints(gateway).size() == 1);

  // The resolver rotates its answer: the endpoint stays where it is, on
  // refreshes and across a reload that changes the cluster (which looks the
  // name up afresh and builds the cluster anew).
  resolver.answer(kName, "127.0.0.2,127.0.0.1", 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  CHECK(gateway.logs().find("now resolves to") == std::string::npos);
  REQUIRE(reloadWithSighup(gateway, namedClusterConfig(a.port(), "first", {{"connect_timeout_ms", 4000}}).dump(), 1));
  CHECK(spread(*stub, 6) == std::map<std::string, int>{{"a", 6}});

  // Its address leaves the answer: the next connection goes to the first one.
  resolver.answer(kName, "127.0.0.2", 0);
  REQUIRE(waitFor([&] { return gateway.logs().find("now resolves to 127.0.0.2") != std::string::npos; },
                  std::chrono::seconds(5)));
  a.stop();
  CHECK(waitFor(
      [&] {
        grpc::ClientContext ctx;
        setTimeout(ctx, kCallTimeout);
        EchoResponse r;
        return stub->Unary(&ctx, EchoRequest(), &r).ok() && r.backend() == "b";
      },
      std::chrono::seconds(10)));
  CHECK(gateway.stop() == 0);
}

TEST_CASE("dns_addresses first: a name that moves takes new calls and checks along, open calls finish where they are",
          "[e2e][cluster][dns]") {
  TwoAddresses backends;
  auto& [a, b, resolver, options] = backends;
  // Health checks every 100 ms: each is a stream on the endpoint's
  // connection, which kept the old one in use for ever.
  GatewayProcess gateway(
      namedClusterConfig(a.port(), "first", {{"health_check", {{"interval_ms", 100}, {"timeout_ms", 90}}}}),
      options);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  CHECK(spread(*stub, 3) == std::map<std::string, int>{{"a", 3}});
  SlowStream held(*stub, 4, 400);
  REQUIRE(waitFor([&] { return a.stats().active == 1; }, std::chrono::seconds(5)));

  // The name moves while a backend still answers at the old address (a
  // blue/green cut-over): new calls go to the new one at once, though the
  // old connection is busy and its backend healthy.
  resolver.answer(kName, "127.0.0.2", 0);
  REQUIRE(waitFor([&] { return gateway.logs().find("now resolves to 127.0.0.2") != std::string::npos; },
                  std::chrono::seconds(5)));
  CHECK(spread(*stub, 6) == std::map<std::string, int>{{"b", 6}});
  CHECK(listedEndpoints(gateway) ==
        std::map<std::string, std::string>{{"127.0.0.2:" + std::to_string(a.port()), "healthy"}});
  int responses = 0;
  grpc::Status status;
  CHECK(held.finish(responses, status) == "a");
  CHECK(status.ok());
  CHECK(responses == 4);
  // The old address's connection closed once its call ended: stopping its
  // backend now touches nothing (checks and calls are on the new one).
  a.stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  CHECK(listedEndpoints(gateway) ==
        std::map<std::string, std::string>{{"127.0.0.2:" + std::to_string(a.port()), "healthy"}});
  CHECK(spread(*stub, 3) == std::map<std::string, int>{{"b", 3}});
}

// A host that takes TCP connections and never speaks (a hung or
// blackholed backend): a listening socket on `ip`:`port` nobody accepts from.
struct SilentHost {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  SilentHost(const std::string& ip, int port) {
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(::listen(fd, 16) == 0);
  }
  ~SilentHost() { ::close(fd); }
};

// Calls waiting on a connect to an address the name then leaves waited for
// that connect to time out (connect_timeout_ms), though they had reached no
// backend: a name usually changes address because its backend went away.
// Now they move at once: to the endpoint's new address ("first"), or, their
// endpoint removed ("all"), end as refused, which grpc++ retries by itself
// (on the new endpoint).
TEST_CASE("calls waiting on a connect to an address the name leaves go to its new address at once",
          "[e2e][cluster][dns]") {
  for (const std::string mode : {"first", "all"}) {
    INFO("dns_addresses " << mode);
    TestBackend a("a");
    SilentHost silent("127.0.0.3", a.port());
    ScriptedResolver resolver;
    resolver.answer(kName, "127.0.0.3", 0);
    GatewayProcess::Options options;
    options.extraEnv = resolver.env();
    // One connection at most: the connect given up must free its place
    // for the one that takes its calls.
    GatewayProcess gateway(namedClusterConfig(a.port(), mode,
                                              {{"connect_timeout_ms", 20000},
                                               {"circuit_breakers", {{"max_connections", 1}}}}),
                           options);
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    std::vector<std::future<std::pair<grpc::Status, std::string>>> calls;
    for (int i = 0; i < 3; ++i) {
      calls.push_back(std::async(std::launch::async, [&] {
        grpc::ClientContext ctx;
        setTimeout(ctx, std::chrono::seconds(8));
        EchoResponse resp;
        const grpc::Status status = stub->Unary(&ctx, EchoRequest(), &resp);
        return std::make_pair(status, resp.backend());
      }));
    }
    // The calls wait on the connect to the silent host...
    REQUIRE(waitFor([&] { return namedCluster(gateway)["connections"] == 1; }, std::chrono::seconds(5)));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // ... when the name moves to a backend that answers.
    resolver.answer(kName, "127.0.0.1", 0);
    for (auto& call : calls) {
      const auto [status, backend] = call.get();
      INFO(describe(status));
      CHECK(status.ok());
      CHECK(backend == "a");
    }
    CHECK(a.stats().calls == 3);
    CHECK(statValue(gateway.adminAddress(), "cluster.named.upstream_rq_overflow") == 0);
    // The connect to the silent host was given up, not counted as failed.
    CHECK(statValue(gateway.adminAddress(), "cluster.named.upstream_cx_connect_fail") == 0);
  }
}

// A name that moves is checked at its new address at once: a check still
// out to the old one finished later and counted for the new address, and
// the first check of the new one came an interval later (the README said
// "at once").
TEST_CASE("dns_addresses first: a name that moves is health-checked at its new address at once",
          "[e2e][cluster][dns]") {
  TwoAddresses backends;
  auto& [a, b, resolver, options] = backends;
  GatewayProcess gateway(
      namedClusterConfig(a.port(), "first", {{"health_check", {{"interval_ms", 10000}, {"timeout_ms", 5000}}}}),
      options);
  const std::string checked = "cluster.named.health_check.success";
  REQUIRE(waitFor([&] { return statValue(gateway.adminAddress(), checked) == 1; }, std::chrono::seconds(5)));
  resolver.answer(kName, "127.0.0.2", 0);
  REQUIRE(waitFor([&] { return gateway.logs().find("now resolves to 127.0.0.2") != std::string::npos; },
                  std::chrono::seconds(5)));
  // Well within the 10 s interval.
  CHECK(waitFor([&] { return statValue(gateway.adminAddress(), checked) == 2; }, std::chrono::seconds(3)));
  CHECK(statValue(gateway.adminAddress(), "cluster.named.health_check.failure") == 0);
}

// An address two names answer is the endpoint of the first: when that name
// dropped it, it left the cluster until the other name's next refresh
// (dns_refresh_ms, 30 s by default), and came back knowing nothing.
TEST_CASE("dns_addresses all: an address two names share passes to the other when the first drops it",
          "[e2e][cluster][dns]") {
  TestBackend a("a");
  TestBackend b("b", "127.0.0.2", a.port());
  const std::string port = std::to_string(a.port());
  ScriptedResolver resolver;
  resolver.script({{"one.sluice-test", "127.0.0.1", 0}, {"two.sluice-test", "127.0.0.1,127.0.0.2", 0}});
  GatewayProcess::Options options;
  options.extraEnv = resolver.env();
  nlohmann::json c = cluster("named", {"one.sluice-test:" + port, "two.sluice-test:" + port});
  c["dns_refresh_ms"] = 3000;
  c["dns_addresses"] = "all";
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "named")}), nlohmann::json::array({c}));
  config["workers"] = 1;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config, options);
  auto hostsByAddress = [&] {
    std::map<std::string, std::string> out;
    const nlohmann::json listed = namedCluster(gateway);
    for (const auto& ep : listed["endpoints"]) out[ep["address"]] = ep["host"];
    return out;
  };
  REQUIRE(hostsByAddress() == std::map<std::string, std::string>{{"127.0.0.1:" + port, "one.sluice-test"},
                                                                  {"127.0.0.2:" + port, "two.sluice-test"}});
  // "one" moves to 127.0.0.2 and answers last in its refresh (after "two").
  resolver.script({{"one.sluice-test", "127.0.0.2", 300}, {"two.sluice-test", "127.0.0.1,127.0.0.2", 0}});
  REQUIRE(waitFor([&] { return gateway.logs().find("one.sluice-test no longer resolves to 127.0.0.1") !=
                               std::string::npos; },
                  std::chrono::seconds(8)));
  // At once, not a refresh later: "two" still answers 127.0.0.1.
  CHECK(hostsByAddress() == std::map<std::string, std::string>{{"127.0.0.1:" + port, "two.sluice-test"},
                                                                {"127.0.0.2:" + port, "two.sluice-test"}});
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  CHECK(spread(*stub, 4) == std::map<std::string, int>{{"a", 2}, {"b", 2}});
}

TEST_CASE("dns_addresses all: an address the cluster already has is not a second endpoint", "[e2e][cluster][dns]") {
  TwoAddresses backends;
  auto& [a, b, resolver, options] = backends;
  auto config = namedClusterConfig(a.port(), "all");
  config["clusters"][0]["endpoints"].push_back(a.address());  // 127.0.0.1 as a literal too
  GatewayProcess gateway(config, options);
  const auto listed = namedCluster(gateway)["endpoints"];
  INFO(listed.dump(2));
  REQUIRE(listed.size() == 2);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto seen = spread(*stub, 10);
  CHECK(seen["a"] == 5);
  CHECK(seen["b"] == 5);
}

}  // namespace
}  // namespace sluice::test
