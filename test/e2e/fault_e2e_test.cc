// The fault filter through a real gateway: aborts and delays on the calls a
// rule matches, the share of calls drawn, faults callers ask for by metadata,
// the bound on calls held at once, and the counters that say what happened.
#include <catch2/catch.hpp>

#include <future>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/http_client.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

nlohmann::json faultGateway(const std::string& backend, const std::string& fault_config) {
  nlohmann::json config = catchAllConfig(backend);
  config["admin"] = {{"address", "127.0.0.1:0"}};
  auto& chain = config["listeners"][0]["filters"];
  nlohmann::json entry = {{"name", "fault"}, {"config", nlohmann::json::parse(fault_config)}};
  chain.insert(chain.begin(), entry);
  return config;
}

struct Timed {
  grpc::Status status;
  std::chrono::milliseconds took{0};
  EchoResponse response;
};

Timed unary(example::Echo::Stub& stub, const std::vector<std::pair<std::string, std::string>>& metadata = {},
            std::chrono::milliseconds timeout = kCallTimeout, bool echo_metadata = false) {
  grpc::ClientContext context;
  setTimeout(context, timeout);
  for (const auto& [k, v] : metadata) context.AddMetadata(k, v);
  EchoRequest request;
  request.set_echo_metadata(echo_metadata);
  Timed out;
  auto start = Clock::now();
  out.status = stub.Unary(&context, request, &out.response);
  out.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return out;
}

}  // namespace

TEST_CASE("fault: an abort answers the matched calls itself, counted as a fault", "[e2e][fault]") {
  TestBackend backend("primary");
  GatewayProcess gateway(faultGateway(backend.address(), R"({"rules": [
      {"match": {"method": "/sluice.example.Echo/Unary"},
       "abort": {"code": "UNAVAILABLE", "message": "chaos drill"}}]})"));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  for (int i = 0; i < 5; ++i) {
    Timed call = unary(*stub);
    REQUIRE_STATUS(call.status, grpc::StatusCode::UNAVAILABLE);
    CHECK(call.status.error_message() == "chaos drill");
  }
  CHECK(backend.stats().calls.load() == 0);

  // Methods no rule matches go through untouched.
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoRequest request;
  request.set_response_count(2);
  auto reader = stub->ServerStream(&context, request);
  EchoResponse response;
  int received = 0;
  while (reader->Read(&response)) ++received;
  REQUIRE_OK(reader->Finish());
  CHECK(received == 2);

  auto stats = readStats(gateway.adminAddress());
  CHECK(statValue(stats, "listener.grpc.local_reply.fault") == 5);
  CHECK(statValue(stats, "listener.grpc.local_reply.upstream_failure") == 0);
  CHECK(statValue(stats, "filter.fault_aborts_injected") == 5);
  CHECK(stats.count("filter.fault_delays_injected") == 0);
  std::string text = http(gateway.adminAddress(), "GET", "/stats/prometheus").body;
  CHECK(metric(text, "sluice_local_replies_total", {"reason=\"fault\""}) == 5);
  CHECK(metric(text, "sluice_filter_fault_aborts_injected_total", {}) == 5);
  // Refused by a filter before the method ever got through: no series of its own.
  CHECK(metric(text, "grpc_server_handled_total", {"grpc_code=\"UNAVAILABLE\"", "grpc_method=\"(other)\""}) == 5);
  checkWithPromtool(text, gateway.logPath() + ".prom");
}

TEST_CASE("fault: a delay holds the call, its deadline still running", "[e2e][fault]") {
  TestBackend backend("primary");
  GatewayProcess gateway(faultGateway(backend.address(), R"({"rules": [
      {"match": {"method": "/sluice.example.Echo/Unary"}, "delay": {"ms": 1000}},
      {"match": {"method": "/sluice.example.Echo/ClientStream"}, "delay": {"ms": 300}}]})"));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));

  Timed delayed = unary(*stub);
  REQUIRE_OK(delayed.status);
  CHECK(delayed.took >= 1000ms);
  CHECK(backend.stats().calls.load() == 1);

  // A deadline shorter than the delay ends the call where it waits: the
  // backend never sees it. (Slack for a loaded machine: the delay would end
  // it at 1000 ms.)
  Timed late = unary(*stub, {}, 150ms);
  REQUIRE_STATUS(late.status, grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(late.took < 900ms);
  std::this_thread::sleep_for(1000ms);
  CHECK(backend.stats().calls.load() == 1);

  // Messages a client streams during the delay wait, then all arrive, in order.
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoResponse response;
  auto start = Clock::now();
  auto writer = stub->ClientStream(&context, &response);
  for (const char* part : {"a", "b", "c"}) {
    EchoRequest request;
    request.set_payload(part);
    REQUIRE(writer->Write(request));
  }
  REQUIRE(writer->WritesDone());
  REQUIRE_OK(writer->Finish());
  CHECK(Clock::now() - start >= 300ms);
  CHECK(response.received_messages() == 3);
  CHECK(response.payload() == "abc");

  CHECK(statValue(gateway.adminAddress(), "filter.fault_delays_injected") == 3);
}

TEST_CASE("fault: after the router, a route's timeout bounds the delay", "[e2e][fault]") {
  TestBackend backend("primary");
  nlohmann::json config = faultGateway(backend.address(), R"({"rules": [{"delay": {"ms": 2000}}]})");
  auto& chain = config["listeners"][0]["filters"];
  std::swap(chain[0], chain[1]);  // router, then fault, then proxy
  REQUIRE(chain[0]["name"] == "router");
  chain[0]["config"]["routes"][0]["timeout_ms"] = 200;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  Timed call = unary(*stub);  // the client's own deadline is 10 s
  REQUIRE_STATUS(call.status, grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(call.took < 2000ms);
  auto stats = readStats(gateway.adminAddress());
  CHECK(statValue(stats, "listener.grpc.local_reply.deadline") == 1);
  CHECK(statValue(stats, "filter.fault_delays_injected") == 1);
  CHECK(backend.stats().calls.load() == 0);
}

TEST_CASE("fault: percent draws that share of the calls", "[e2e][fault]") {
  TestBackend backend("primary");
  GatewayProcess gateway(faultGateway(backend.address(), R"({"rules": [
      {"abort": {"code": "INTERNAL", "percent": 25}}]})"));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  int aborted = 0;
  for (int i = 0; i < 400; ++i) {
    Timed call = unary(*stub);
    if (call.status.error_code() == grpc::StatusCode::INTERNAL) {
      ++aborted;
    } else {
      REQUIRE_OK(call.status);
    }
  }
  // 100 expected; five standard deviations (8.7) either side.
  CHECK(aborted > 56);
  CHECK(aborted < 144);
  CHECK(backend.stats().calls.load() == 400 - aborted);
  CHECK(statValue(gateway.adminAddress(), "filter.fault_aborts_injected") == aborted);
}

TEST_CASE("fault: callers ask for faults by metadata where a rule allows it", "[e2e][fault]") {
  TestBackend backend("primary");
  GatewayProcess gateway(faultGateway(backend.address(), R"({"rules": [
      {"match": {"prefix": "/", "headers": [{"name": "x-chaos", "present": true}]},
       "delay": {"from_header": true, "max_ms": 500}, "abort": {"from_header": true}},
      {"match": {"prefix": "/", "headers": [{"name": "x-abort-only", "present": true}]},
       "abort": {"from_header": true}}]})"));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  const std::pair<std::string, std::string> chaos{"x-chaos", "1"};

  REQUIRE_OK(unary(*stub, {chaos}).status);  // asked for nothing

  Timed exhausted = unary(*stub, {chaos, {"x-sluice-fault-abort", "RESOURCE_EXHAUSTED"}});
  REQUIRE_STATUS(exhausted.status, grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(exhausted.status.error_message() == "fault injected");
  REQUIRE_STATUS(unary(*stub, {chaos, {"x-sluice-fault-abort", "14"}}).status, grpc::StatusCode::UNAVAILABLE);

  // A delay is capped at max_ms; the headers never reach the backend.
  Timed slow = unary(*stub, {chaos, {"x-sluice-fault-delay-ms", "5000"}}, kCallTimeout, true);
  REQUIRE_OK(slow.status);
  CHECK(slow.took >= 500ms);
  CHECK(slow.took < 3000ms);
  CHECK(slow.response.request_metadata().count("x-sluice-fault-delay-ms") == 0);
  CHECK(slow.response.request_metadata().count("x-chaos") == 1);

  // Delay, then abort.
  Timed both = unary(*stub, {chaos, {"x-sluice-fault-delay-ms", "200"}, {"x-sluice-fault-abort", "ABORTED"}});
  REQUIRE_STATUS(both.status, grpc::StatusCode::ABORTED);
  CHECK(both.took >= 200ms);

  // A malformed request for a fault is refused, saying why.
  Timed bad_delay = unary(*stub, {chaos, {"x-sluice-fault-delay-ms", "soon"}});
  REQUIRE_STATUS(bad_delay.status, grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(bad_delay.status.error_message().find("x-sluice-fault-delay-ms \"soon\" is not a number") != std::string::npos);
  Timed bad_code = unary(*stub, {chaos, {"x-sluice-fault-abort", "OK"}});
  REQUIRE_STATUS(bad_code.status, grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(bad_code.status.error_message().find("x-sluice-fault-abort \"OK\"") != std::string::npos);
  Timed twice = unary(*stub, {chaos, {"x-sluice-fault-abort", "INTERNAL"}, {"x-sluice-fault-abort", "INTERNAL"}});
  REQUIRE_STATUS(twice.status, grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(twice.status.error_message().find("sent more than once") != std::string::npos);

  // Values read strictly: digits only, a status other than OK by its exact name or number.
  for (const char* value : {"", "+5", "-1", "1.5", "0x10", "5ms"}) {
    INFO("delay " << value);
    REQUIRE_STATUS(unary(*stub, {chaos, {"x-sluice-fault-delay-ms", value}}).status,
                   grpc::StatusCode::INVALID_ARGUMENT);
  }
  for (const char* value : {"", "0", "17", "unavailable", "+14", "99999999999999999999"}) {
    INFO("abort " << value);
    REQUIRE_STATUS(unary(*stub, {chaos, {"x-sluice-fault-abort", value}}).status, grpc::StatusCode::INVALID_ARGUMENT);
  }
  // A delay past 64 bits is only a very long one: capped like any other.
  Timed huge = unary(*stub, {chaos, {"x-sluice-fault-delay-ms", "99999999999999999999"}});
  REQUIRE_OK(huge.status);
  CHECK(huge.took >= 500ms);
  // "0": no delay asked for.
  REQUIRE_OK(unary(*stub, {chaos, {"x-sluice-fault-delay-ms", "0"}}).status);

  // A rule reading one kind from metadata still keeps the other header from the backend.
  Timed abort_only = unary(*stub, {{"x-abort-only", "1"}, {"x-sluice-fault-delay-ms", "100"}}, kCallTimeout, true);
  REQUIRE_OK(abort_only.status);
  CHECK(abort_only.response.request_metadata().count("x-sluice-fault-delay-ms") == 0);

  // Calls no rule matches pass the headers on untouched, unfaulted.
  Timed unmatched = unary(*stub, {{"x-sluice-fault-abort", "INTERNAL"}}, kCallTimeout, true);
  REQUIRE_OK(unmatched.status);
  CHECK(unmatched.response.request_metadata().count("x-sluice-fault-abort") == 1);
}

TEST_CASE("fault: max_active_faults bounds the calls held at once", "[e2e][fault]") {
  TestBackend backend("primary");
  GatewayProcess gateway(faultGateway(backend.address(), R"({"max_active_faults": 1, "rules": [
      {"delay": {"ms": 1500}}]})"));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  std::string admin = gateway.adminAddress();

  auto held = std::async(std::launch::async, [&] { return unary(*stub); });
  REQUIRE(waitFor([&] { return readStats(admin).count("filter.fault_delays_injected") == 1; }, 5s));
  Timed passed = unary(*stub);  // the one place is taken: no delay
  REQUIRE_OK(passed.status);
  CHECK(passed.took < 1500ms);
  CHECK(statValue(admin, "filter.fault_overflow") == 1);
  Timed first = held.get();
  REQUIRE_OK(first.status);
  CHECK(first.took >= 1500ms);

  // A call that ends during its delay gives the place back at once.
  REQUIRE_STATUS(unary(*stub, {}, 200ms).status, grpc::StatusCode::DEADLINE_EXCEEDED);
  REQUIRE(waitFor([&] { return statValue(admin, "listener.grpc.downstream_rq_active") == 0; }, 5s));
  Timed again = unary(*stub);
  REQUIRE_OK(again.status);
  CHECK(again.took >= 1500ms);
  auto stats = readStats(admin);
  CHECK(statValue(stats, "filter.fault_delays_injected") == 3);
  CHECK(statValue(stats, "filter.fault_overflow") == 1);
}

TEST_CASE("fault: calls held before a reload still count against max_active_faults after it", "[e2e][fault]") {
  TestBackend backend("primary");
  const std::string before = R"({"max_active_faults": 1, "rules": [{"delay": {"ms": 3000}}]})";
  GatewayProcess gateway(faultGateway(backend.address(), before));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  std::string admin = gateway.adminAddress();

  auto held = std::async(std::launch::async, [&] { return unary(*stub); });
  REQUIRE(waitFor([&] { return readStats(admin).count("filter.fault_delays_injected") == 1; }, 5s));
  // A reload that changes the entry: its calls still share the one place
  // with the call the old config holds.
  const std::string after = R"({"max_active_faults": 1, "rules": [{"delay": {"ms": 2500}}]})";
  REQUIRE(reloadWithSighup(gateway, faultGateway(backend.address(), after).dump(2), 1));
  Timed passed = unary(*stub);
  REQUIRE_OK(passed.status);
  CHECK(passed.took < 2500ms);
  CHECK(statValue(admin, "filter.fault_overflow") == 1);
  REQUIRE_OK(held.get().status);
}

}  // namespace sluice::test
