// Route retries at their edges: an attempt that fails before the pool has
// even returned it, a cluster with no endpoint left to try, and a streamed
// request that outgrows the replay buffer while the call waits to retry.
// In each the client must get an answer that is true to what the backend
// received: never a crash, a hang, or an OK for a request cut short.
#include <catch2/catch.hpp>

#include <thread>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Linux refuses a TCP connect to a multicast address at once (ENETUNREACH),
// so the pool fails a stream to it inside newStream, before it returns.
constexpr const char* kUnreachableA = "224.0.0.1:50051";
constexpr const char* kUnreachableB = "224.0.0.2:50051";

nlohmann::json retryConfig(const nlohmann::json& cluster_json, const nlohmann::json& retry) {
  nlohmann::json r = route("prefix", "/", cluster_json["name"]);
  r["retry"] = retry;
  auto config = gatewayConfig(nlohmann::json::array({r}), nlohmann::json::array({cluster_json}));
  config["workers"] = 1;  // round robin then starts at the first endpoint
  return config;
}

grpc::Status unaryCall(example::Echo::Stub& stub, std::chrono::milliseconds timeout = kCallTimeout) {
  grpc::ClientContext ctx;
  setTimeout(ctx, timeout);
  EchoResponse resp;
  return stub.Unary(&ctx, EchoRequest(), &resp);
}

// A call the backend answers UNAVAILABLE at once (trailers-only).
grpc::Status unavailableCall(example::Echo::Stub& stub) {
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoRequest req;
  req.set_status_code(14);
  EchoResponse resp;
  return stub.Unary(&ctx, req, &resp);
}

TEST_CASE("an attempt that fails before the pool returns it is retried, then answered", "[e2e][retry]") {
  nlohmann::json c = cluster("void", {kUnreachableA, kUnreachableB});
  auto config = retryConfig(c, {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 1}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // The retry finds the request's message and end already buffered; its
  // attempt fails inside newStream like the first one did.
  for (int i = 0; i < 3; ++i) {
    auto s = unaryCall(*stub);
    INFO(describe(s));
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(s.error_message(), Catch::Contains("224.0.0."));
  }
  CHECK(gateway.running());
  // Each call was retried once: two attempts per call.
  auto stats = readStats(gateway.adminAddress());
  CHECK(statValue(stats, "cluster.void.upstream_rq_retry") == 3);
  CHECK(statValue(stats, "cluster.void.upstream_rq_total") == 6);
  CHECK(statValue(stats, "cluster.void.upstream_rq_unsent") == 6);  // none got past the connect
}

TEST_CASE("a cluster with no endpoint to try answers UNAVAILABLE once the retries are used up", "[e2e][retry]") {
  ClosedPort gone;
  nlohmann::json c = cluster("gone", {gone.address()});
  c["health_check"] = {{"interval_ms", 100}, {"timeout_ms", 100}, {"unhealthy_threshold", 1}};
  c["panic_threshold_percent"] = 0;  // else its one endpoint is tried anyway, in panic
  auto config = retryConfig(c, {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 2}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // Until the first health check fails the calls try (and fail) to connect;
  // after it, no endpoint can be chosen at all.
  bool saw_no_endpoint = false;
  int calls = 0;
  for (auto until = Clock::now() + 5s; !saw_no_endpoint && Clock::now() < until; ++calls) {
    auto start = Clock::now();
    auto s = unaryCall(*stub, 5s);
    INFO(describe(s));
    REQUIRE(s.error_code() == grpc::StatusCode::UNAVAILABLE);
    // Two retries with backoffs of at most 250 ms each, not the client's 5 s.
    CHECK(Clock::now() - start < 2s);
    saw_no_endpoint = s.error_message().find("no healthy endpoint") != std::string::npos;
  }
  CHECK(saw_no_endpoint);
  // Every attempt counts, those that found no endpoint too; none reached a backend.
  auto stats = readStats(gateway.adminAddress());
  CHECK(statValue(stats, "cluster.gone.upstream_rq_total") == 3 * calls);
  CHECK(statValue(stats, "cluster.gone.upstream_rq_retry") == 2 * calls);
  CHECK(statValue(stats, "cluster.gone.upstream_rq_unsent") == 3 * calls);
}

TEST_CASE("a streamed request that outgrows the replay buffer while waiting to retry is not cut short",
          "[e2e][retry]") {
  TestBackend backend("alive");
  nlohmann::json c = cluster("pair", {kUnreachableA, backend.address()});
  // A long backoff (full jitter over 5 s), so the second message arrives
  // while the call waits to retry on "alive".
  GatewayProcess gateway(retryConfig(c, {{"retry_on", {"UNAVAILABLE"}},
                                         {"num_retries", 1},
                                         {"backoff_base_ms", 5000},
                                         {"backoff_max_ms", 5000}}));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse resp;
  auto writer = stub->ClientStream(&ctx, &resp);
  // Two 40 KiB messages: together past the default 64 KiB replay buffer.
  EchoRequest req;
  req.set_payload(std::string(40 * 1024, 'a'));
  REQUIRE(writer->Write(req));
  std::this_thread::sleep_for(100ms);
  req.set_payload(std::string(40 * 1024, 'b'));
  writer->Write(req);
  writer->WritesDone();
  auto s = writer->Finish();
  INFO(describe(s) << "; backend received " << resp.received_messages() << " message(s)");
  if (s.ok()) {
    // Only when the backoff drew less than 100 ms: the retry started before
    // the second message and carried both.
    CHECK(resp.received_messages() == 2);
  } else {
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(s.error_message(), Catch::Contains("replay buffer") && Catch::Contains("224.0.0.1"));
    CHECK(backend.stats().calls.load() == 0);
  }
}

TEST_CASE("retries past the cluster's retry budget are not made, the backend's reply goes through", "[e2e][retry]") {
  TestBackend backend("failing");
  nlohmann::json c = cluster("one", {backend.address()});
  const bool wide = GENERATE(false, true);
  INFO("min_retry_concurrency 10: " << wide);
  if (wide) c["circuit_breakers"] = {{"retry_budget", {{"min_retry_concurrency", 10}}}};
  auto config = retryConfig(c, {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 1}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // Ten calls at once, each attempt failing after 1 s: their retries all
  // overlap. The default budget (20% of requests in flight, at least 3)
  // lets three of them retry.
  constexpr int kCalls = 10;
  std::vector<grpc::Status> results(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext ctx;
      setTimeout(ctx, kCallTimeout);
      EchoRequest req;
      req.set_sleep_ms(1000);
      req.set_status_code(14);
      req.set_status_message("overloaded");
      EchoResponse resp;
      results[i] = stub->Unary(&ctx, req, &resp);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : results) {
    INFO(describe(s));
    // Retried or not, the client gets the backend's own reply.
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(s.error_message() == "overloaded");
  }
  const int retried = wide ? kCalls : 3;
  CHECK(backend.stats().calls == kCalls + retried);
  auto stats = readStats(gateway.adminAddress());
  CHECK(statValue(stats, "cluster.one.upstream_rq_retry") == retried);
  CHECK(statValue(stats, "cluster.one.upstream_rq_retry_overflow") == kCalls - retried);
  // The places are given back: a later failing call retries again.
  CHECK(unavailableCall(*stub).error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(statValue(gateway.adminAddress(), "cluster.one.upstream_rq_retry") == retried + 1);
}

// A call waiting out its backoff holds no place under max_requests; its
// retry used to be sent whatever the count, so a failure storm's retries
// pushed the backend past the limit its operator set.
TEST_CASE("a retry finds no room under max_requests: the call ends with its failure, not retried",
          "[e2e][retry]") {
  TestBackend backend("b");
  nlohmann::json c = cluster("one", {backend.address()});
  c["circuit_breakers"] = {{"max_requests", 2}, {"retry_budget", {{"min_retry_concurrency", 10}}}};
  auto config = retryConfig(c, {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 1}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // Its first attempt fails at once; the retry waits 600 ms (the backend's
  // pushback), by which time two slow calls fill max_requests.
  grpc::Status failing;
  std::thread first([&] {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoRequest req;
    req.set_status_code(14);
    req.set_status_message("busy");
    (*req.mutable_response_trailers())["grpc-retry-pushback-ms"] = "600";
    EchoResponse resp;
    failing = stub->Unary(&ctx, req, &resp);
  });
  REQUIRE(waitFor([&] { return backend.stats().calls.load() == 1; }, std::chrono::seconds(5)));
  std::vector<std::thread> slow;
  for (int i = 0; i < 2; ++i) {
    slow.emplace_back([&] {
      grpc::ClientContext ctx;
      setTimeout(ctx, kCallTimeout);
      EchoRequest req;
      req.set_sleep_ms(1500);
      EchoResponse resp;
      CHECK(stub->Unary(&ctx, req, &resp).ok());
    });
  }
  first.join();
  for (auto& t : slow) t.join();
  INFO(describe(failing));
  CHECK(failing.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(failing.error_message(),
             Catch::Contains("busy; not retried: cluster 'one': circuit breaker max_requests (2) reached"));
  CHECK(backend.stats().calls.load() == 3);  // the retry never reached it
  CHECK(statValue(gateway.adminAddress(), "cluster.one.upstream_rq_overflow") == 1);
}

TEST_CASE("an attempt no backend processed goes to another endpoint outside the retry budget", "[e2e][retry]") {
  TestBackend backend("alive");
  // No room at all in the budget; round robin starts at the unreachable one.
  nlohmann::json c = cluster("pair", {kUnreachableA, backend.address()});
  c["circuit_breakers"] = {{"retry_budget", {{"budget_percent", 0}, {"min_retry_concurrency", 0}}}};
  auto config = retryConfig(c, {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 1}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // The connect fails before the request left the gateway: the same attempt
  // goes to the other endpoint (no retry, so no budget involved).
  REQUIRE_OK(unaryCall(*stub));
  CHECK(statValue(gateway.adminAddress(), "cluster.pair.upstream_rq_retry") == 0);
  CHECK(statValue(gateway.adminAddress(), "cluster.pair.upstream_cx_connect_fail") == 1);
  // A reply that the backend did process is not (whether or not this call
  // first met the unreachable endpoint again, once its backoff ran out).
  CHECK(unavailableCall(*stub).error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(statValue(gateway.adminAddress(), "cluster.pair.upstream_rq_retry_overflow") == 1);
}

TEST_CASE("a backend's grpc-retry-pushback-ms sets when the gateway retries, or that it does not", "[e2e][retry]") {
  TestBackend backend("pushing-back");
  // A backoff of at most 1 ms, so any longer wait is the pushback's.
  auto config = retryConfig(cluster("one", {backend.address()}),
                            {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 2}, {"backoff_base_ms", 1},
                             {"backoff_max_ms", 1}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  struct Outcome {
    grpc::Status status;
    std::chrono::milliseconds took;
    std::optional<std::string> pushback_seen;  // the trailer as the client got it
  };
  auto call = [&](const std::string& pushback, std::chrono::milliseconds timeout) {
    grpc::ClientContext ctx;
    setTimeout(ctx, timeout);
    EchoRequest req;
    req.set_status_code(14);
    req.set_status_message("busy");
    (*req.mutable_response_trailers())["grpc-retry-pushback-ms"] = pushback;
    EchoResponse resp;
    auto start = Clock::now();
    Outcome out;
    out.status = stub->Unary(&ctx, req, &resp);
    out.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    out.pushback_seen = metadataValue(ctx.GetServerTrailingMetadata(), "grpc-retry-pushback-ms");
    return out;
  };

  SECTION("a delay: each retry waits (at least) that") {
    Outcome o = call("400", kCallTimeout);
    REQUIRE_STATUS(o.status, grpc::StatusCode::UNAVAILABLE);
    CHECK(o.status.error_message() == "busy");
    CHECK(backend.stats().calls.load() == 3);  // the retries used up
    CHECK(o.took >= 800ms);
    CHECK(o.pushback_seen == "400");  // the last reply passes through as it came
  }
  SECTION("a negative or malformed value: no retry") {
    for (const char* value : {"-1", "soon", ""}) {
      INFO("pushback \"" << value << "\"");
      int before = backend.stats().calls.load();
      Outcome o = call(value, kCallTimeout);
      REQUIRE_STATUS(o.status, grpc::StatusCode::UNAVAILABLE);
      CHECK(o.status.error_message() == "busy");
      CHECK(backend.stats().calls.load() == before + 1);
    }
    CHECK(statValue(gateway.adminAddress(), "cluster.one.upstream_rq_retry") == 0);
  }
  SECTION("a delay past the deadline: no retry, the reply at once") {
    // The largest, too: no overflow in comparing it with the time left.
    for (const char* value : {"5000", "9223372036854775807", "99999999999999999999"}) {
      INFO("pushback " << value);
      int before = backend.stats().calls.load();
      Outcome o = call(value, 2000ms);
      REQUIRE_STATUS(o.status, grpc::StatusCode::UNAVAILABLE);
      CHECK(backend.stats().calls.load() == before + 1);
    }
  }
  SECTION("a call without a deadline waits at most a minute") {
    grpc::ClientContext ctx;  // no deadline
    EchoRequest req;
    req.set_status_code(14);
    (*req.mutable_response_trailers())["grpc-retry-pushback-ms"] = "120000";
    EchoResponse resp;
    REQUIRE_STATUS(stub->Unary(&ctx, req, &resp), grpc::StatusCode::UNAVAILABLE);
    CHECK(backend.stats().calls.load() == 1);
    CHECK(metadataValue(ctx.GetServerTrailingMetadata(), "grpc-retry-pushback-ms") == "120000");
  }
  SECTION("0: retried (not a refusal)") {
    REQUIRE_STATUS(call("0", kCallTimeout).status, grpc::StatusCode::UNAVAILABLE);
    CHECK(backend.stats().calls.load() == 3);
  }
}

TEST_CASE("a backend's grpc-message is escaped in the gateway's log and reaches the client whole", "[e2e][retry]") {
  TestBackend backend("b");
  GatewayProcess gateway(retryConfig(cluster("echo", {backend.address()}),
                                     {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 1}}));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // Decoded, a message with a line break could forge a line of the log.
  const std::string message = "down\n[2026-01-01 00:00:00.000] [warn] forged line";
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoRequest req;
  req.set_status_code(14);
  req.set_status_message(message);
  EchoResponse resp;
  grpc::Status s = stub->Unary(&ctx, req, &resp);
  CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(s.error_message() == message);
  CHECK(backend.stats().calls == 2);
  const std::string logs = gateway.logs();
  INFO(logs);
  CHECK(logs.find("\n[2026-01-01 00:00:00.000] [warn] forged line") == std::string::npos);
  CHECK_THAT(logs, Catch::Contains(R"(attempt 1 failed ("down\n[2026-01-01 00:00:00.000] [warn] forged line"))"));
}

TEST_CASE("a retry budget out of range is a config error at its path", "[e2e][retry]") {
  nlohmann::json c = cluster("one", {"127.0.0.1:1"});
  c["circuit_breakers"] = {{"retry_budget", {{"budget_percent", 101}, {"min_retry_concurency", 3}}}};
  auto r = runValidate(retryConfig(c, {{"retry_on", {"UNAVAILABLE"}}}).dump());
  CHECK(r.exitCode == 2);
  CHECK_THAT(r.output, Catch::Contains("/clusters/0/circuit_breakers/retry_budget/budget_percent"));
  CHECK_THAT(r.output, Catch::Contains("/clusters/0/circuit_breakers/retry_budget/min_retry_concurency"));
}

}  // namespace
}  // namespace sluice::test
