// The rate_limit filter through a real gateway: calls per route, buckets per
// metadata value, streamed messages, and the retry hint the client receives.
#include <catch2/catch.hpp>

#include "test/support/e2e_fixture.h"
#include "test/support/raw_h2_client.h"

#include <csignal>
#include <fstream>

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

nlohmann::json rateLimitGateway(const std::string& backend, const nlohmann::json& rules) {
  nlohmann::json config = catchAllConfig(backend);
  auto& chain = config["listeners"][0]["filters"];
  nlohmann::json entry = {{"name", "rate_limit"}, {"config", {{"rules", rules}, {"max_keys", 100}}}};
  chain.insert(chain.begin(), entry);
  return config;
}

grpc::Status unary(example::Echo::Stub& stub, const std::string& tenant = "",
                   grpc::ClientContext* use = nullptr) {
  grpc::ClientContext own;
  grpc::ClientContext& context = use != nullptr ? *use : own;
  setTimeout(context, kCallTimeout);
  if (!tenant.empty()) context.AddMetadata("x-tenant", tenant);
  EchoRequest request;
  EchoResponse response;
  return stub.Unary(&context, request, &response);
}

// `n` calls of sluice.example.Other, each with a tenant of its own
// (x-tenant: tenant-0, tenant-1, ...): a client cycling a key's values.
void cycleTenants(grpc::Channel& channel, int n) {
  for (int i = 0; i < n; ++i) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    ctx.AddMetadata("x-tenant", "tenant-" + std::to_string(i));
    EchoResponse resp;
    REQUIRE_OK(callUnaryMethod(channel, "/sluice.example.Other/Unary", ctx, EchoRequest(), &resp));
  }
}

}  // namespace

TEST_CASE("rate_limit: calls over the limit get RESOURCE_EXHAUSTED and a retry hint", "[e2e][rate_limit]") {
  TestBackend backend("primary");
  GatewayProcess gateway(rateLimitGateway(backend.address(), nlohmann::json::parse(R"([
      {"match": {"method": "/sluice.example.Echo/Unary"}, "calls": {"rate": 3, "per": "hour"}}
  ])")));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  for (int i = 0; i < 3; ++i) REQUIRE_OK(unary(*stub));

  grpc::ClientContext context;
  grpc::Status limited = unary(*stub, "", &context);
  REQUIRE_STATUS(limited, grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(limited.error_message().find("3 calls per hour") != std::string::npos);
  CHECK(backend.stats().calls.load() == 3);
  auto hint = metadataValue(context.GetServerTrailingMetadata(), "grpc-retry-pushback-ms");
  REQUIRE(hint.has_value());
  CHECK(std::stoll(*hint) > 1000 * 1000);  // about 20 minutes for a token at 3 per hour

  // On the wire: a trailers-only reply, the hint next to grpc-status.
  RawH2Client raw("127.0.0.1", gateway.port());
  RawResponse response = raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame("")));
  INFO(response.describe());
  CHECK(response.trailersOnly());
  CHECK(response.grpcStatus() == 8);
  CHECK(response.header("grpc-retry-pushback-ms").has_value());

  // Other methods are not limited by that rule.
  grpc::ClientContext other;
  setTimeout(other, kCallTimeout);
  EchoRequest request;
  request.set_response_count(1);
  auto reader = stub->ServerStream(&other, request);
  EchoResponse r;
  while (reader->Read(&r)) {
  }
  REQUIRE_OK(reader->Finish());
}

TEST_CASE("rate_limit: one bucket per metadata value", "[e2e][rate_limit]") {
  TestBackend backend("primary");
  GatewayProcess gateway(rateLimitGateway(backend.address(), nlohmann::json::parse(R"([
      {"key": "x-tenant", "calls": {"rate": 2, "per": "hour"}}
  ])")));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  REQUIRE_OK(unary(*stub, "acme"));
  REQUIRE_OK(unary(*stub, "acme"));
  REQUIRE_STATUS(unary(*stub, "acme"), grpc::StatusCode::RESOURCE_EXHAUSTED);
  REQUIRE_OK(unary(*stub, "globex"));
  REQUIRE_OK(unary(*stub, "globex"));
  REQUIRE_STATUS(unary(*stub, "globex"), grpc::StatusCode::RESOURCE_EXHAUSTED);

  // Many distinct values: the table (max_keys 100) evicts, the gateway keeps
  // serving, and a long-idle key starts over with a full bucket.
  for (int i = 0; i < 300; ++i) REQUIRE_OK(unary(*stub, "tenant-" + std::to_string(i)));
  REQUIRE_OK(unary(*stub, "acme"));
}

// A rule limiting both calls and messages keeps one entry per caller, not
// one per kind: with two, each caller's messages bucket pushed out the
// calls bucket of another, and from half of max_keys callers on, no call
// was ever refused.
TEST_CASE("rate_limit: a rule with calls and messages limits as many callers as max_keys", "[e2e][rate_limit]") {
  TestBackend backend("primary");
  GatewayProcess gateway(rateLimitGateway(backend.address(), nlohmann::json::parse(R"([
      {"key": "x-tenant", "calls": {"rate": 2, "per": "hour"}, "messages": {"rate": 1000, "per": "second"}}
  ])")));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  constexpr int kTenants = 80;  // max_keys is 100
  int ok = 0;
  int limited = 0;
  for (int round = 0; round < 3; ++round) {
    for (int t = 0; t < kTenants; ++t) {
      grpc::Status s = unary(*stub, "tenant-" + std::to_string(t));
      if (s.ok()) ++ok;
      if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++limited;
    }
  }
  CHECK(ok == 2 * kTenants);
  CHECK(limited == kTenants);
}

// A caller must not earn fresh buckets by spelling its credential another way
// (auth accepts all of these spellings as one key or token): surrounding
// spaces, the Bearer scheme's case and spaces, a -bin value padded or not.
TEST_CASE("rate_limit: one bucket per caller however its value is spelled", "[e2e][rate_limit]") {
  TestBackend backend("primary");
  const std::string key = GENERATE(std::string("x-api-key"), std::string("authorization"), std::string("x-id-bin"));
  INFO("rule key: " << key);
  GatewayProcess gateway(rateLimitGateway(
      backend.address(), nlohmann::json::array({{{"key", key}, {"calls", {{"rate", 2}, {"per", "hour"}}}}})));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  std::vector<std::string> spellings;
  if (key == "x-api-key") spellings = {"k-1", " k-1", "k-1 ", "\tk-1  "};
  if (key == "authorization") spellings = {"Bearer tok", "bearer tok", "BEARER   tok", " Bearer tok "};
  // grpc++ sends binary values base64-encoded; the raw client sends them as
  // given, so both paddings of one value reach the gateway.
  if (key == "x-id-bin") spellings = {"aWQ=", "aWQ", " aWQ=", "aWQ "};  // "id"
  int ok = 0;
  for (const std::string& value : spellings) {
    RawH2Client raw("127.0.0.1", gateway.port());
    RawRequest request = RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(""));
    request.headers.emplace_back(key, value);
    RawResponse response = raw.request(request);
    INFO(value << ": " << response.describe());
    if (response.grpcStatus() == 0) ++ok;
  }
  CHECK(ok == 2);
  CHECK(backend.stats().calls.load() == 2);
}

TEST_CASE("rate_limit: streamed messages over the limit end the call mid-stream", "[e2e][rate_limit]") {
  TestBackend backend("primary");
  GatewayProcess gateway(rateLimitGateway(backend.address(), nlohmann::json::parse(R"([
      {"match": {"method": "/sluice.example.Echo/Bidi"}, "messages": {"rate": 1, "per": "hour", "burst": 3}}
  ])")));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  auto stream = stub->Bidi(&context);
  for (int i = 0; i < 3; ++i) {
    EchoRequest request;
    request.set_payload("m" + std::to_string(i));
    REQUIRE(stream->Write(request));
    EchoResponse response;
    REQUIRE(stream->Read(&response));
    CHECK(response.payload() == "m" + std::to_string(i));
  }
  EchoRequest fourth;
  stream->Write(fourth);
  EchoResponse response;
  CHECK_FALSE(stream->Read(&response));
  grpc::Status status = stream->Finish();
  REQUIRE_STATUS(status, grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(status.error_message().find("messages per hour") != std::string::npos);
}

TEST_CASE("rate_limit: callers cycling keys cannot refill another rule's shared bucket", "[e2e][rate_limit]") {
  TestBackend backend("primary");
  // max_keys is 100: 150 tenants on the keyed rule evict every keyed bucket.
  GatewayProcess gateway(rateLimitGateway(backend.address(), nlohmann::json::parse(R"([
      {"match": {"service": "sluice.example.Other"}, "key": "x-tenant", "calls": {"rate": 1000, "per": "second"}},
      {"calls": {"rate": 3, "per": "hour"}}
  ])")));
  auto channel = makeChannel(gateway.address());
  auto stub = example::Echo::NewStub(channel);
  for (int i = 0; i < 3; ++i) REQUIRE_OK(unary(*stub));
  REQUIRE_STATUS(unary(*stub), grpc::StatusCode::RESOURCE_EXHAUSTED);
  cycleTenants(*channel, 150);
  REQUIRE_STATUS(unary(*stub), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// A caller cycling a value it makes up, on a rule keyed by it, must not evict
// its own bucket of a rule keyed by who it is (each rule has its own keys).
TEST_CASE("rate_limit: callers cycling one rule's key cannot refill their bucket of another rule", "[e2e][rate_limit]") {
  TestBackend backend("primary");
  // max_keys is 100: 150 tenants would evict every bucket of a shared table.
  GatewayProcess gateway(rateLimitGateway(backend.address(), nlohmann::json::parse(R"([
      {"match": {"service": "sluice.example.Other"}, "key": "x-tenant", "calls": {"rate": 1000, "per": "second"}},
      {"key": "x-user", "calls": {"rate": 3, "per": "hour"}}
  ])")));
  auto channel = makeChannel(gateway.address());
  auto stub = example::Echo::NewStub(channel);
  auto asUser = [&] {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-user", "u1");
    return unary(*stub, "", &ctx);
  };
  for (int i = 0; i < 3; ++i) REQUIRE_OK(asUser());
  REQUIRE_STATUS(asUser(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  cycleTenants(*channel, 150);
  REQUIRE_STATUS(asUser(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_CASE("rate_limit: a reload that leaves the filter unchanged keeps its buckets", "[e2e][rate_limit]") {
  TestBackend backend("primary");
  auto config = rateLimitGateway(backend.address(), nlohmann::json::parse(R"([
      {"calls": {"rate": 3, "per": "hour"}}
  ])"));
  // "config reloaded" is logged by worker 0: with one worker, it has applied it.
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  for (int i = 0; i < 3; ++i) REQUIRE_OK(unary(*stub));
  REQUIRE_STATUS(unary(*stub), grpc::StatusCode::RESOURCE_EXHAUSTED);
  auto reload = [&](const nlohmann::json& next, size_t nth) { REQUIRE(reloadWithSighup(gateway, next.dump(2), nth)); };
  // Something else changes (the drain timeout): the callers' buckets stay empty.
  config["drain_timeout_ms"] = 5000;
  reload(config, 1);
  REQUIRE_STATUS(unary(*stub), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A filter added before it moves its JSON path: still the same entry.
  auto& chain = config["listeners"][0]["filters"];
  chain.insert(chain.begin(), nlohmann::json{{"name", "metadata"}, {"config", {{"request", {{"set", {{"x-via", "gw"}}}}}}}});
  reload(config, 2);
  REQUIRE_STATUS(unary(*stub), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // The limit itself changes: a new entry, full buckets.
  config["listeners"][0]["filters"][1]["config"]["rules"][0]["calls"]["rate"] = 4;
  reload(config, 3);
  REQUIRE_OK(unary(*stub));
}

}  // namespace sluice::test
