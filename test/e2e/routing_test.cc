// Routing: by service and by method to different backends, by request
// metadata, weighted clusters, unknown services and methods (UNIMPLEMENTED),
// and a cluster whose endpoint is down (UNAVAILABLE).
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "codecs/grpc/grpc_headers.h"
#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

// Backends named alpha, beta and gamma, each alone in cluster "<name>-cluster".
struct ThreeBackends {
  TestBackend alpha{"alpha"};
  TestBackend beta{"beta"};
  TestBackend gamma{"gamma"};
  nlohmann::json clusters() const {
    return nlohmann::json::array({
        cluster("alpha-cluster", {alpha.address()}),
        cluster("beta-cluster", {beta.address()}),
        cluster("gamma-cluster", {gamma.address()}),
    });
  }
};

TEST_CASE("routing by service and by method to two backends", "[e2e][routing]") {
  TestBackend alpha("alpha");
  TestBackend beta("beta");
  const auto routes = nlohmann::json::array({
      route("service", "sluice.example.Other", "beta-cluster"),
      route("method", "/sluice.example.Echo/Bidi", "beta-cluster"),
      route("prefix", "/", "alpha-cluster"),
  });
  const auto clusters = nlohmann::json::array({
      cluster("alpha-cluster", {alpha.address()}),
      cluster("beta-cluster", {beta.address()}),
  });
  GatewayProcess gateway(gatewayConfig(routes, clusters));
  auto channel = makeChannel(gateway.address());
  auto echo = example::Echo::NewStub(channel);
  auto other = example::Other::NewStub(channel);

  SECTION("a service route") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    REQUIRE_OK(other->Unary(&context, EchoRequest(), &response));
    CHECK(response.backend() == "beta");
    CHECK(response.method() == "/sluice.example.Other/Unary");
  }

  SECTION("a method route") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    auto stream = echo->Bidi(&context);
    REQUIRE(stream->Write(EchoRequest()));
    EchoResponse response;
    REQUIRE(stream->Read(&response));
    REQUIRE(stream->WritesDone());
    REQUIRE_OK(stream->Finish());
    CHECK(response.backend() == "beta");
  }

  SECTION("the other methods of the same service fall through to the prefix route") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    REQUIRE_OK(echo->Unary(&context, EchoRequest(), &response));
    CHECK(response.backend() == "alpha");

    grpc::ClientContext streamContext;
    setTimeout(streamContext, kCallTimeout);
    auto reader = echo->ServerStream(&streamContext, EchoRequest());
    REQUIRE(reader->Read(&response));
    CHECK(response.backend() == "alpha");
    while (reader->Read(&response)) {
    }
    REQUIRE_OK(reader->Finish());
  }

  CHECK(alpha.stats().calls.load() + beta.stats().calls.load() >= 1);
}

TEST_CASE("unknown service or method is UNIMPLEMENTED and names the method",
          "[e2e][routing][status]") {
  TestBackend backend("only");
  // No catch-all: only Other (any method) and Echo/Unary are routed.
  const auto routes = nlohmann::json::array({
      route("service", "sluice.example.Other", "backend"),
      route("method", "/sluice.example.Echo/Unary", "backend"),
  });
  GatewayProcess gateway(
      gatewayConfig(routes, nlohmann::json::array({cluster("backend", {backend.address()})})));
  auto channel = makeChannel(gateway.address());

  SECTION("routed calls still work") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    REQUIRE_OK(example::Echo::NewStub(channel)->Unary(&context, EchoRequest(), &response));
  }

  SECTION("unknown method of a known service") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    auto reader = example::Echo::NewStub(channel)->ServerStream(&context, EchoRequest());
    EchoResponse response;
    CHECK_FALSE(reader->Read(&response));
    grpc::Status status = reader->Finish();
    REQUIRE_STATUS(status, grpc::StatusCode::UNIMPLEMENTED);
    CHECK_THAT(status.error_message(), Catch::Contains("/sluice.example.Echo/ServerStream"));
  }

  SECTION("unknown service") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    grpc::Status status =
        callUnaryMethod(*channel, "/nowhere.v1.Missing/Find", context, EchoRequest(), &response);
    REQUIRE_STATUS(status, grpc::StatusCode::UNIMPLEMENTED);
    CHECK_THAT(status.error_message(), Catch::Contains("/nowhere.v1.Missing/Find"));
  }

  SECTION("the gateway answers trailers-only, as a gRPC server does") {
    RawH2Client raw("127.0.0.1", gateway.port());
    RawResponse response =
        raw.request(RawRequest::grpc("/nowhere.v1.Missing/Find", grpcFrame("")));
    INFO(response.describe());
    CHECK(response.trailersOnly());
    CHECK(response.grpcStatus() == 12);
    CHECK_THAT(response.grpcMessage(), Catch::Contains("/nowhere.v1.Missing/Find"));
  }

  CHECK(backend.stats().calls.load() <= 1);
}

TEST_CASE("backend down is UNAVAILABLE and names the cluster", "[e2e][routing][status]") {
  ClosedPort closed;
  GatewayProcess gateway(catchAllConfig(closed.address(), "inventory-cluster"));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));

  SECTION("unary") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    grpc::Status status = stub->Unary(&context, EchoRequest(), &response);
    REQUIRE_STATUS(status, grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(status.error_message(), Catch::Contains("inventory-cluster"));
  }

  SECTION("bidi") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    auto stream = stub->Bidi(&context);
    stream->Write(EchoRequest());
    stream->WritesDone();
    EchoResponse response;
    CHECK_FALSE(stream->Read(&response));
    grpc::Status status = stream->Finish();
    REQUIRE_STATUS(status, grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(status.error_message(), Catch::Contains("inventory-cluster"));
  }
}

// The backend that answers one unary call carrying `metadata`.
std::string answeredBy(example::Echo::Stub& stub, const std::vector<std::pair<std::string, std::string>>& metadata) {
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  for (const auto& [key, value] : metadata) context.AddMetadata(key, value);
  EchoResponse response;
  grpc::Status status = stub.Unary(&context, EchoRequest(), &response);
  INFO(describe(status));
  REQUIRE(status.ok());
  return response.backend();
}

TEST_CASE("routing by request metadata: exact, prefix, present and inverted header matches", "[e2e][routing]") {
  ThreeBackends backends;
  auto by_headers = [](const nlohmann::json& headers, const std::string& to) {
    return nlohmann::json{{"match", {{"prefix", "/sluice.example.Echo/"}, {"headers", headers}}}, {"cluster", to}};
  };
  const auto routes = nlohmann::json::array({
      by_headers({{{"name", "x-tenant"}, {"exact", "acme"}}, {{"name", "x-env"}, {"prefix", "stag"}, {"invert", true}}},
                 "beta-cluster"),
      by_headers({{{"name", "X-Canary"}, {"present", true}}}, "gamma-cluster"),
      route("prefix", "/", "alpha-cluster"),
  });
  GatewayProcess gateway(gatewayConfig(routes, backends.clusters()));
  auto channel = makeChannel(gateway.address());
  auto echo = example::Echo::NewStub(channel);

  CHECK(answeredBy(*echo, {}) == "alpha");
  CHECK(answeredBy(*echo, {{"x-tenant", "acme"}}) == "beta");
  CHECK(answeredBy(*echo, {{"x-tenant", "acme"}, {"x-env", "prod"}}) == "beta");
  CHECK(answeredBy(*echo, {{"x-tenant", "acme"}, {"x-env", "staging"}}) == "alpha");
  CHECK(answeredBy(*echo, {{"x-tenant", "acme-2"}}) == "alpha");
  CHECK(answeredBy(*echo, {{"x-canary", ""}}) == "gamma");
  CHECK(answeredBy(*echo, {{"x-tenant", "acme"}, {"x-canary", "1"}}) == "beta");  // the first route that matches
  // The headers only add to the method match: another service falls through.
  auto other = example::Other::NewStub(channel);
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  context.AddMetadata("x-canary", "1");
  EchoResponse response;
  REQUIRE_OK(other->Unary(&context, EchoRequest(), &response));
  CHECK(response.backend() == "alpha");
}

TEST_CASE("routing by a path regex, and by suffix, contains and regex header matches", "[e2e][routing]") {
  ThreeBackends backends;
  auto with_header = [](const nlohmann::json& header, const std::string& to) {
    return nlohmann::json{{"match", {{"prefix", "/"}, {"headers", {header}}}}, {"cluster", to}};
  };
  const auto routes = nlohmann::json::array({
      with_header({{"name", "x-user"}, {"suffix", "@beta.example"}}, "beta-cluster"),
      with_header({{"name", "x-class"}, {"contains", "batch"}}, "gamma-cluster"),
      with_header({{"name", "x-tenant"}, {"regex", "t-[0-9]{3}"}}, "beta-cluster"),
      {{"match", {{"regex", "/sluice\\.example\\.Echo/(Unary|Bidi)"}}}, {"cluster", "gamma-cluster"}},
      route("prefix", "/", "alpha-cluster"),
  });
  GatewayProcess gateway(gatewayConfig(routes, backends.clusters()));
  auto channel = makeChannel(gateway.address());
  auto echo = example::Echo::NewStub(channel);
  auto other = example::Other::NewStub(channel);

  CHECK(answeredBy(*echo, {}) == "gamma");  // Echo/Unary: the path regex
  CHECK(answeredBy(*echo, {{"x-user", "ann@beta.example"}}) == "beta");
  CHECK(answeredBy(*echo, {{"x-user", "ann@beta.example.org"}}) == "gamma");
  CHECK(answeredBy(*echo, {{"x-class", "nightly-batch"}}) == "gamma");
  CHECK(answeredBy(*echo, {{"x-tenant", "t-042"}}) == "beta");
  // Other/Unary matches neither the path regex nor, with these, a header.
  auto other_by = [&](std::vector<std::pair<std::string, std::string>> metadata) {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    for (const auto& [k, v] : metadata) context.AddMetadata(k, v);
    EchoResponse response;
    grpc::Status status = other->Unary(&context, EchoRequest(), &response);
    INFO(describe(status));
    REQUIRE(status.ok());
    return response.backend();
  };
  CHECK(other_by({}) == "alpha");
  CHECK(other_by({{"x-tenant", "t-0421"}}) == "alpha");  // the regex must match the whole value
  CHECK(other_by({{"x-tenant", "xt-042"}}) == "alpha");
  CHECK(other_by({{"x-tenant", "t-042"}}) == "beta");
  CHECK(other_by({{"x-class", "batch"}}) == "gamma");
  // A server-streaming call of Echo is not in the path regex.
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoRequest request;
  request.set_response_count(1);
  auto reader = echo->ServerStream(&context, request);
  EchoResponse response;
  REQUIRE(reader->Read(&response));
  CHECK(response.backend() == "alpha");
  while (reader->Read(&response)) {
  }
  REQUIRE_OK(reader->Finish());
}

TEST_CASE("weighted clusters split calls by weight, a weight of 0 gets none", "[e2e][routing]") {
  TestBackend stable("stable");
  TestBackend canary("canary");
  TestBackend off("off");
  nlohmann::json split = {{"match", {{"prefix", "/"}}},
                          {"weighted_clusters",
                           {{{"cluster", "stable"}, {"weight", 75}},
                            {{"cluster", "canary"}, {"weight", 25}},
                            {{"cluster", "off"}, {"weight", 0}}}}};
  const auto clusters = nlohmann::json::array({
      cluster("stable", {stable.address()}),
      cluster("canary", {canary.address()}),
      cluster("off", {off.address()}),
  });
  auto config = gatewayConfig(nlohmann::json::array({split}), clusters);
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto echo = example::Echo::NewStub(makeChannel(gateway.address()));
  constexpr int kCalls = 400;
  std::map<std::string, int> seen;
  for (int i = 0; i < kCalls; ++i) ++seen[answeredBy(*echo, {})];
  INFO("stable " << seen["stable"] << ", canary " << seen["canary"]);
  // Binomial, p = 0.25 over 400: mean 100, standard deviation 8.7; these
  // bounds are over 5 deviations out.
  CHECK(seen["canary"] >= 55);
  CHECK(seen["canary"] <= 145);
  CHECK(seen["stable"] + seen["canary"] == kCalls);
  CHECK(seen["off"] == 0);
  // Each cluster's own counters see its share.
  CHECK(statValue(gateway.adminAddress(), "cluster.canary.upstream_rq_total") == seen["canary"]);
}

TEST_CASE("weighted clusters with a hash_header keep each caller on one cluster", "[e2e][routing]") {
  TestBackend v1("v1");
  TestBackend v2("v2");
  nlohmann::json split = {{"match", {{"prefix", "/"}}},
                          {"weighted_clusters", {{{"cluster", "v1"}, {"weight", 50}}, {{"cluster", "v2"}, {"weight", 50}}}},
                          {"hash_header", "X-User"}};
  const auto clusters = nlohmann::json::array({cluster("v1", {v1.address()}), cluster("v2", {v2.address()})});
  GatewayProcess gateway(gatewayConfig(nlohmann::json::array({split}), clusters));
  auto echo = example::Echo::NewStub(makeChannel(gateway.address()));
  std::map<std::string, int> users_per_cluster;
  for (int user = 0; user < 40; ++user) {
    const std::string id = "user-" + std::to_string(user);
    const std::string first = answeredBy(*echo, {{"x-user", id}});
    for (int i = 0; i < 4; ++i) {
      INFO(id << " call " << i);
      CHECK(answeredBy(*echo, {{"x-user", id}}) == first);
    }
    ++users_per_cluster[first];
  }
  // 40 users at 50/50: both clusters have some (all on one: 2 in 10^12).
  INFO("v1 " << users_per_cluster["v1"] << ", v2 " << users_per_cluster["v2"]);
  CHECK(users_per_cluster["v1"] > 0);
  CHECK(users_per_cluster["v2"] > 0);
  // Calls without the header draw at random.
  std::map<std::string, int> seen;
  for (int i = 0; i < 60; ++i) ++seen[answeredBy(*echo, {})];
  CHECK(seen["v1"] > 0);
  CHECK(seen["v2"] > 0);
}

TEST_CASE("weighted clusters hashing a -bin header draw by its bytes, padded base64 or not", "[e2e][routing]") {
  TestBackend v1("v1");
  TestBackend v2("v2");
  nlohmann::json split = {{"match", {{"prefix", "/"}}},
                          {"weighted_clusters", {{{"cluster", "v1"}, {"weight", 50}}, {{"cluster", "v2"}, {"weight", 50}}}},
                          {"hash_header", "x-user-bin"}};
  const auto clusters = nlohmann::json::array({cluster("v1", {v1.address()}), cluster("v2", {v2.address()})});
  GatewayProcess gateway(gatewayConfig(nlohmann::json::array({split}), clusters));
  RawH2Client client("127.0.0.1", gateway.port());
  std::map<std::string, int> users_per_cluster;
  for (int user = 0; user < 20; ++user) {
    // Five bytes: padded base64 ends in "=", gRPC C-core sends it without.
    const std::string padded = grpc_headers::base64Encode("user" + std::string(1, static_cast<char>('A' + user)));
    REQUIRE(padded.back() == '=');
    INFO("user " << padded);
    const std::string first = rawEchoBackend(client, {{"x-user-bin", padded}});
    CHECK(rawEchoBackend(client, {{"x-user-bin", padded.substr(0, padded.find('='))}}) == first);
    ++users_per_cluster[first];
  }
  CHECK(users_per_cluster.size() == 2);  // 20 users at 50/50 do not all land on one
}

}  // namespace
}  // namespace sluice::test
