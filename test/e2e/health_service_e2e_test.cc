// health_service: the gateway answers grpc.health.v1.Health/Check itself, as
// a Kubernetes gRPC probe or a load balancer's gRPC health check asks it:
// for itself (""), and for services by their clusters' endpoints.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/http_client.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

nlohmann::json healthConfig(const std::string& backend) {
  nlohmann::json config = catchAllConfig(backend);
  // Three misses in a row: one check slower than 100 ms on a loaded machine
  // must not flip the service. A stopped backend refuses at once, so it is
  // still seen within about 300 ms.
  config["clusters"][0]["health_check"] = {
      {"interval_ms", 100}, {"timeout_ms", 100}, {"unhealthy_threshold", 3}, {"healthy_threshold", 1}};
  config["listeners"][0]["health_service"] = {{"services", {{"sluice.example.Echo", {"echo"}}}}};
  return config;
}

std::string serving(grpc::Channel& channel, const std::string& service) {
  std::string answer;
  grpc::Status status = checkHealth(channel, service, &answer);
  return status.ok() ? answer : describe(status);
}

}  // namespace

TEST_CASE("health_service: the gateway answers Check for itself, and for a service by its clusters",
          "[e2e][health_service]") {
  TestBackend backend("primary");
  GatewayProcess gateway(healthConfig(backend.address()));
  auto channel = makeChannel(gateway.address());

  CHECK(serving(*channel, "") == "SERVING");
  // The backend's own health service does not know this name (NOT_FOUND):
  // SERVING is the gateway's answer, from the cluster's endpoints.
  CHECK(serving(*channel, "sluice.example.Echo") == "SERVING");
  std::string answer;
  grpc::Status unknown = checkHealth(*channel, "nope.Unknown", &answer);
  CHECK(unknown.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK_THAT(unknown.error_message(), Catch::Contains("nope.Unknown"));

  // The cluster's only endpoint fails its health checks: the service is
  // NOT_SERVING, the gateway itself still SERVING.
  backend.stop();
  CHECK(waitFor([&] { return serving(*channel, "sluice.example.Echo") == "NOT_SERVING"; }, 5s));
  CHECK(serving(*channel, "") == "SERVING");
  backend.start();
  CHECK(waitFor([&] { return serving(*channel, "sluice.example.Echo") == "SERVING"; }, 5s));

  // Other calls go through as before.
  auto stub = example::Echo::NewStub(channel);
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  example::EchoResponse response;
  REQUIRE_OK(stub->Unary(&context, example::EchoRequest(), &response));
}

TEST_CASE("health_service: without it, Check is a call like any other, for the backend", "[e2e][health_service]") {
  TestBackend backend("primary");
  nlohmann::json config = healthConfig(backend.address());
  config["listeners"][0].erase("health_service");
  GatewayProcess gateway(config);
  auto channel = makeChannel(gateway.address());
  CHECK(serving(*channel, "") == "SERVING");  // grpc++'s own health service
  std::string answer;
  CHECK(checkHealth(*channel, "sluice.example.Echo", &answer).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("health_service: malformed Check requests get a gRPC error, the connection goes on",
          "[e2e][health_service]") {
  TestBackend backend("primary");
  GatewayProcess gateway(healthConfig(backend.address()));
  RawH2Client raw("127.0.0.1", gateway.port());
  const std::string check = "/grpc.health.v1.Health/Check";

  RawResponse garbage = raw.request(RawRequest::grpc(check, grpcFrame("\xff\xff")));
  INFO(garbage.describe());
  CHECK(garbage.grpcStatus() == 13);
  CHECK_THAT(garbage.grpcMessage(), Catch::Contains("malformed HealthCheckRequest"));

  RawResponse compressed = raw.request(RawRequest::grpc(check, grpcFrame("", 1)));
  INFO(compressed.describe());
  CHECK(compressed.grpcStatus() == 12);

  RawResponse empty = raw.request(RawRequest::grpc(check));
  INFO(empty.describe());
  CHECK(empty.grpcStatus() == 13);
  CHECK_THAT(empty.grpcMessage(), Catch::Contains("one request message"));

  // An unknown service's name comes back clipped: it goes in a header.
  RawResponse long_name =
      raw.request(RawRequest::grpc(check, grpcFrame(std::string("\x0a\xac\x02", 3) + std::string(300, 'n'))));
  INFO(long_name.describe());
  CHECK(long_name.grpcStatus() == 5);
  CHECK_THAT(long_name.grpcMessage(), Catch::Contains("(clipped)"));

  // Unknown fields are skipped, as protobuf does: a newer client's request.
  RawResponse ok = raw.request(RawRequest::grpc(check, grpcFrame(std::string("\x10\x07\x0a\x00", 4))));
  INFO(ok.describe());
  CHECK(ok.status == 200);
  CHECK(ok.grpcStatus() == 0);
  CHECK(ok.body == grpcFrame(std::string("\x08\x01", 2)));
  CHECK(ok.header("content-type") == "application/grpc");
}

TEST_CASE("health_service: Watch streams a service's status as it changes, and ends when the gateway drains",
          "[e2e][health_service]") {
  TestBackend backend("primary");
  nlohmann::json config = healthConfig(backend.address());
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["drain_timeout_ms"] = 60000;
  GatewayProcess gateway(config);
  auto channel = makeChannel(gateway.address());

  {
    HealthWatcher watch(*channel, "sluice.example.Echo", 30s);
    CHECK(watch.next() == "SERVING");
    // Each change once, as it happens.
    backend.stop();
    CHECK(watch.next() == "NOT_SERVING");
    backend.start();
    CHECK(watch.next() == "SERVING");
  }
  {
    HealthWatcher unknown(*channel, "nope.Unknown", 30s);
    CHECK(unknown.next() == "SERVICE_UNKNOWN");
  }

  HealthWatcher watch(*channel, "sluice.example.Echo", 30s);
  CHECK(watch.next() == "SERVING");
  HealthWatcher gateway_itself(*channel, "", 30s);
  CHECK(gateway_itself.next() == "SERVING");
  // Open Watches count in the method metrics while they run (a client's
  // Watch lasts hours): started, and the messages sent.
  {
    const std::string text = http(gateway.adminAddress(), "GET", "/stats/prometheus").body;
    INFO(text.substr(0, 2000));
    CHECK(metric(text, "grpc_server_started_total", {"grpc_method=\"Watch\""}) == 4);  // 2 ended, 2 open
    CHECK(metric(text, "grpc_server_msg_sent_total", {"grpc_method=\"Watch\""}) == 6);  // 3 + 1 ended, 1 + 1 open
  }

  // A drain: every watcher hears NOT_SERVING and its call ends, so that its
  // client looks elsewhere, and the gateway stops long before the 60 s
  // drain_timeout_ms a never-ending call would have held it.
  const auto drain_started = std::chrono::steady_clock::now();
  REQUIRE(http(gateway.adminAddress(), "POST", "/drain").status == 200);
  CHECK(watch.next() == "NOT_SERVING");
  CHECK(watch.next() == std::nullopt);
  grpc::Status ended = watch.finish();
  CHECK(ended.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(ended.error_message(), Catch::Contains("draining"));
  CHECK(gateway_itself.next() == "NOT_SERVING");
  CHECK(waitFor([&] { return !gateway.running(); }, 10s));
  CHECK(std::chrono::steady_clock::now() - drain_started < 10s);
  CHECK(gateway.stop() == 0);
}

// A Watch used to end at each reload (its old config's clusters stop their
// health checks): every gRPC client checking health itself (gRFC A17) then
// marked the gateway TRANSIENT_FAILURE until its Watch was answered again.
TEST_CASE("health_service: a Watch goes on across reloads, answering from the new config, which it does not hold",
          "[e2e][health_service]") {
  TestBackend backend("primary");
  ClosedPort nothing_there;
  const fs::path dir = fs::temp_directory_path() / ("sluice-watch-reload-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto withLog = [&](nlohmann::json config, const std::string& file) {
    // An access log whose file the config holds open: once the old config
    // is let go of, so is its file.
    nlohmann::json log = {{"name", "access_log"}, {"config", {{"path", (dir / file).string()}}}};
    auto& filters = config["listeners"][0]["filters"];
    filters.insert(filters.begin(), log);
    return config;
  };
  nlohmann::json first = withLog(healthConfig(backend.address()), "first.log");
  GatewayProcess gateway(first);
  auto channel = makeChannel(gateway.address());
  auto holdsOpen = [&](const std::string& file) {
    std::error_code ec;
    for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(gateway.pid()) + "/fd", ec)) {
      if (fs::read_symlink(fd.path(), ec) == dir / file) return true;
    }
    return false;
  };
  {
    // The log opens its file with its first line.
    auto stub = example::Echo::NewStub(channel);
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    example::EchoResponse response;
    REQUIRE_OK(stub->Unary(&context, example::EchoRequest(), &response));
  }
  REQUIRE(waitFor([&] { return holdsOpen("first.log"); }, 5s));

  HealthWatcher service(*channel, "sluice.example.Echo", 60s);
  CHECK(service.next() == "SERVING");
  HealthWatcher itself(*channel, "", 60s);
  CHECK(itself.next() == "SERVING");

  // The service's cluster now points where nothing listens: the Watch follows
  // the new cluster's health checks.
  nlohmann::json moved = withLog(healthConfig(nothing_there.address()), "second.log");
  REQUIRE(reloadWithSighup(gateway, moved.dump(), 1));
  CHECK(service.next() == "NOT_SERVING");
  // Both Watches moved to the new config: the old one, and its log file, are let go of.
  CHECK(waitFor([&] { return !holdsOpen("first.log"); }, 5s));

  // Back to the backend, then a config without the service.
  REQUIRE(reloadWithSighup(gateway, withLog(healthConfig(backend.address()), "third.log").dump(), 2));
  CHECK(service.next() == "SERVING");
  nlohmann::json dropped = withLog(healthConfig(backend.address()), "fourth.log");
  dropped["listeners"][0]["health_service"]["services"] = nlohmann::json::object();
  REQUIRE(reloadWithSighup(gateway, dropped.dump(), 3));
  CHECK(service.next() == "SERVICE_UNKNOWN");

  // No health service at all: what a server without one answers, so the
  // client stops checking.
  nlohmann::json none = withLog(healthConfig(backend.address()), "fifth.log");
  none["listeners"][0].erase("health_service");
  REQUIRE(reloadWithSighup(gateway, none.dump(), 4));
  CHECK(itself.next() == std::nullopt);
  grpc::Status ended = itself.finish();
  CHECK(ended.error_code() == grpc::StatusCode::UNIMPLEMENTED);
  CHECK_THAT(ended.error_message(), Catch::Contains("health_service is no longer configured"));
  CHECK(service.next() == std::nullopt);
  CHECK(service.finish().error_code() == grpc::StatusCode::UNIMPLEMENTED);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// A Watch waits on the gateway itself, so the listener's idle timeout must
// not end it, even one shorter than the gateway's 500 ms look.
TEST_CASE("health_service: a quiet Watch outlives a short stream_idle_timeout_ms", "[e2e][health_service]") {
  TestBackend backend("primary");
  nlohmann::json config = healthConfig(backend.address());
  config["listeners"][0]["stream_idle_timeout_ms"] = 100;
  GatewayProcess gateway(config);
  auto channel = makeChannel(gateway.address());
  const auto started = std::chrono::steady_clock::now();
  HealthWatcher watch(*channel, "sluice.example.Echo", 1500ms);
  CHECK(watch.next() == "SERVING");
  CHECK(watch.next() == std::nullopt);
  grpc::Status ended = watch.finish();
  INFO(describe(ended));
  CHECK(ended.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(std::chrono::steady_clock::now() - started >= 1400ms);
}

}  // namespace sluice::test
