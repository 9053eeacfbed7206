// A user's filter that goes wrong, through sluice_test_gateway (build/sluice
// plus test/gateway's test_faults filter) with a real grpc++ client and
// backend: a throwing hook ends only its own call, with INTERNAL; a throwing
// factory is a config error; a timer may end its call from its callback; a
// second resume does not release a later filter's pause.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

// test_faults (then `extra` entries) in front of the router and proxy, with an
// admin endpoint for the counters.
nlohmann::json faultConfig(const std::string& backend, const std::vector<nlohmann::json>& extra = {}) {
  nlohmann::json config = catchAllConfig(backend);
  auto& chain = config["listeners"][0]["filters"];
  for (auto it = extra.rbegin(); it != extra.rend(); ++it) chain.insert(chain.begin(), *it);
  chain.insert(chain.begin(), nlohmann::json{{"name", "test_faults"}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  return config;
}

GatewayProcess::Options testGatewayOptions() {
  GatewayProcess::Options options;
  options.binary = testGatewayBinary();
  return options;
}

// A unary call with x-test-fault: `fault` (none when empty) and any extra metadata.
grpc::Status unaryWithFault(example::Echo::Stub& stub, const std::string& fault,
                            std::multimap<std::string, std::string> metadata = {},
                            grpc::ClientContext* out_context = nullptr) {
  grpc::ClientContext local;
  grpc::ClientContext& context = out_context != nullptr ? *out_context : local;
  setTimeout(context, kCallTimeout);
  if (!fault.empty()) context.AddMetadata("x-test-fault", fault);
  for (const auto& [key, value] : metadata) context.AddMetadata(key, value);
  EchoRequest request;
  request.set_payload("hello");
  EchoResponse response;
  return stub.Unary(&context, request, &response);
}

// A ServerStream call with payload "orig" and `count` responses, the
// test_faults `fault` asked for: the payloads the client read (the call must
// end OK).
std::vector<std::string> serverStreamWithFault(example::Echo::Stub& stub, const std::string& fault, int count,
                                               grpc::ClientContext& context) {
  setTimeout(context, kCallTimeout);
  context.AddMetadata("x-test-fault", fault);
  EchoRequest request;
  request.set_payload("orig");
  request.set_response_count(count);
  auto reader = stub.ServerStream(&context, request);
  std::vector<std::string> payloads;
  EchoResponse response;
  while (reader->Read(&response)) payloads.push_back(response.payload());
  INFO(fault << ": " << payloads.size() << " messages read");
  REQUIRE_OK(reader->Finish());
  return payloads;
}

struct FaultFixture {
  explicit FaultFixture(const std::vector<nlohmann::json>& extra = {})
      : gateway(faultConfig(backend.address(), extra), testGatewayOptions()),
        stub(example::Echo::NewStub(makeChannel(gateway.address()))) {}
  TestBackend backend{"primary"};
  GatewayProcess gateway;
  std::unique_ptr<example::Echo::Stub> stub;
};

}  // namespace

TEST_CASE("a filter that throws ends its own call with INTERNAL, and the gateway serves on", "[filter_faults]") {
  FaultFixture f;
  const std::vector<std::string> faults = {"create",           "create_non_std",   "request_headers",
                                           "request_message",  "request_end",      "response_headers",
                                           "response_message", "response_trailers"};
  for (const auto& fault : faults) {
    INFO("fault: " << fault);
    grpc::Status status = unaryWithFault(*f.stub, fault);
    CHECK(status.error_code() == grpc::StatusCode::INTERNAL);
    CHECK(status.error_message() == "filter \"test_faults\" failed");
    // The gateway is still there, and so is the call after it.
    grpc::ClientContext context;
    REQUIRE_OK(unaryWithFault(*f.stub, "", {}, &context));
    CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-test-faults") == "seen");
  }
  // Thrown before the request went on: the backend saw only the calls that
  // got past the request hooks (response_*) and the good ones.
  CHECK(f.backend.stats().calls == 3 + static_cast<int>(faults.size()));
  CHECK(statValue(f.gateway.adminAddress(), "listener.grpc.local_reply.filter_error") ==
        static_cast<int64_t>(faults.size()));
  // The first is logged; the rest fall in the same second (one line a second
  // per worker, with a count of those left out).
  CHECK(logCount(f.gateway, "filter \"test_faults\" creating its filter for a call threw: test_faults: thrown in "
                            "createFilter") == 1);
}

TEST_CASE("an onStreamDone, a timer or posted work that throws is logged, and the call is unharmed",
          "[filter_faults]") {
  FaultFixture f;
  for (const std::string fault : {"stream_done", "timer_throw", "posted_throw"}) {
    INFO("fault: " << fault);
    REQUIRE_OK(unaryWithFault(*f.stub, fault));
  }
  // One line a second at most per worker: wait out the throttle between them
  // would slow the test; at least the first is there, naming what threw.
  CHECK(waitFor([&] { return logCount(f.gateway, "threw: test_faults: thrown in") >= 1; }, std::chrono::seconds(2)));
  REQUIRE_OK(unaryWithFault(*f.stub, ""));
  CHECK(f.gateway.running());
}

TEST_CASE("a timer of the call's (StreamContext::timer) that throws ends the call with INTERNAL, not at its deadline",
          "[filter_faults]") {
  FaultFixture f;
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    grpc::Status status = unaryWithFault(*f.stub, "call_timer_throw");
    CHECK(status.error_code() == grpc::StatusCode::INTERNAL);
    // Named as a hook that throws is: the timer was armed in test_faults' hook.
    CHECK(status.error_message() == "filter \"test_faults\" failed");
    // The timer fires after 30 ms; the deadline is 10 s away.
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  }
  // It may end the call itself, which destroys the timer running it.
  grpc::Status status = unaryWithFault(*f.stub, "call_timer_deny");
  CHECK(status.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(status.error_message() == "denied by a timer of the call");
  REQUIRE_OK(unaryWithFault(*f.stub, ""));
  CHECK(f.backend.stats().calls == 1);
  CHECK(statValue(f.gateway.adminAddress(), "listener.grpc.local_reply.filter_error") == 3);
  CHECK(logCount(f.gateway, "filter \"test_faults\" in a timer a filter armed for its call (StreamContext::timer) "
                            "threw: test_faults: thrown in a timer of the call") >= 1);
}

TEST_CASE("a timer callback may end its call, which destroys the timer running it", "[filter_faults]") {
  FaultFixture f;
  for (int i = 0; i < 3; ++i) {
    grpc::Status status = unaryWithFault(*f.stub, "deny_after_hold");
    CHECK(status.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(status.error_message() == "denied after a hold");
  }
  REQUIRE_OK(unaryWithFault(*f.stub, ""));
  CHECK(f.backend.stats().calls == 1);
}

TEST_CASE("a filter resuming twice does not release a later filter's pause", "[filter_faults]") {
  // The second test_faults entry is a gate: it holds calls marked x-test-gate
  // for 400 ms, then refuses them.
  const nlohmann::json gate = {{"name", "test_faults"}, {"config", {{"gate_ms", 400}}}};
  FaultFixture f(std::vector<nlohmann::json>{gate});
  grpc::Status status = unaryWithFault(*f.stub, "double_continue", {{"x-test-gate", "1"}});
  CHECK(status.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(status.error_message() == "gate closed");
  CHECK(f.backend.stats().calls == 0);
  // Without the gate, the one resume that counts lets the call through.
  REQUIRE_OK(unaryWithFault(*f.stub, "double_continue"));
  CHECK(f.backend.stats().calls == 1);
}

TEST_CASE("a factory returning no filter leaves that call to the rest of the chain", "[filter_faults]") {
  FaultFixture f;
  grpc::ClientContext context;
  REQUIRE_OK(unaryWithFault(*f.stub, "no_filter", {}, &context));
  CHECK_FALSE(metadataValue(context.GetServerTrailingMetadata(), "x-test-faults").has_value());
  CHECK(f.backend.stats().calls == 1);
}

TEST_CASE("a filter config factory that throws or fails silently is a config error at its entry", "[filter_faults]") {
  TestBackend backend("primary");
  struct Case {
    std::string fault;
    std::string message;
  };
  for (const auto& c : std::vector<Case>{
           {"throw", "filter \"test_faults\" failed reading its config: test_faults: thrown reading its config"},
           {"json", "filter \"test_faults\" failed reading its config: [json.exception.out_of_range.403]"},
           {"null", "filter \"test_faults\" refused its config without saying why"}}) {
    INFO("config_fault: " << c.fault);
    nlohmann::json config = faultConfig(backend.address());
    config["listeners"][0]["filters"][0]["config"] = {{"config_fault", c.fault}};
    ProcessResult r = runValidate(config.dump(), {}, testGatewayBinary());
    CHECK(r.exitCode == 2);
    CHECK(r.output.find("/listeners/0/filters/0/config: " + c.message) != std::string::npos);
  }

  SECTION("a reload to such a config keeps the running one") {
    GatewayProcess gateway(faultConfig(backend.address()), testGatewayOptions());
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    nlohmann::json bad = faultConfig(backend.address());
    bad["listeners"][0]["filters"][0]["config"] = {{"config_fault", "throw"}};
    std::ofstream(gateway.configPath()) << bad.dump();
    gateway.signal(SIGHUP);
    CHECK(waitFor([&] { return logCount(gateway, "failed reading its config") >= 1; }, std::chrono::seconds(5)));
    REQUIRE_OK(unaryWithFault(*stub, ""));
    CHECK(gateway.running());
  }
}

}  // namespace sluice::test

namespace sluice::test {

// test_faults, then an access_log entry writing to a file of its own
// (removed at the end), in front of the router and proxy.
struct AccessLoggedFaults {
  AccessLoggedFaults()
      : gateway(faultConfig(backend.address(), {{{"name", "access_log"}, {"config", {{"path", log}}}}}),
                testGatewayOptions()),
        stub(example::Echo::NewStub(makeChannel(gateway.address()))) {}
  ~AccessLoggedFaults() { std::filesystem::remove_all(dir); }
  // Waits up to 5 s for at least `n` lines, and returns every line so far.
  std::vector<nlohmann::json> lines(size_t n) {
    std::vector<nlohmann::json> out;
    REQUIRE(waitFor(
        [&] {
          out.clear();
          std::ifstream in(log);
          for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
          return out.size() >= n;
        },
        std::chrono::seconds(5)));
    return out;
  }
  TestBackend backend{"primary"};
  std::string dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("sluice-faults-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  std::string log = dir + "/access.log";
  GatewayProcess gateway;
  std::unique_ptr<example::Echo::Stub> stub;
};

TEST_CASE("a call whose filter could not be created is still seen by the access log after it", "[filter_faults]") {
  AccessLoggedFaults f;
  CHECK(unaryWithFault(*f.stub, "create").error_code() == grpc::StatusCode::INTERNAL);
  REQUIRE_OK(unaryWithFault(*f.stub, ""));
  const auto lines = f.lines(2);
  CHECK(lines[0]["grpc_status"] == 13);
  CHECK(lines[0]["grpc_message"] == "filter \"test_faults\" failed");
  CHECK(lines[1]["grpc_status"] == 0);
}

// A filter that encodes trailers again once the call has ended (from its
// onStreamDone) changes nothing: before, the call's status became what it
// wrote, and the access log after it logged OK for a call the client saw
// fail.
TEST_CASE("trailers a filter encodes after the call ended do not change the status the access log sees",
          "[filter_faults]") {
  AccessLoggedFaults f;
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  context.AddMetadata("x-test-fault", "done_encode_trailers");
  EchoRequest request;
  request.set_status_code(7);
  request.set_status_message("no");
  EchoResponse response;
  CHECK(f.stub->Unary(&context, request, &response).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  const auto lines = f.lines(1);
  CHECK(lines[0]["grpc_status"] == 7);
  CHECK(lines[0]["grpc_message"] == "no");
}

// max_message_bytes holds for messages as the filters leave them too: one a
// filter grew past it fails the call, and is neither sent to the backend
// nor to the client.
TEST_CASE("a message a filter grows past max_message_bytes fails the call with RESOURCE_EXHAUSTED",
          "[filter_faults]") {
  TestBackend backend("primary");
  nlohmann::json config = faultConfig(backend.address());
  config["listeners"][0]["max_message_bytes"] = 2048;
  GatewayProcess gateway(config, testGatewayOptions());
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  for (const char* fault : {"grow_request", "grow_response"}) {
    INFO(fault);
    grpc::Status s = unaryWithFault(*stub, fault);
    CHECK(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK_THAT(s.error_message(), Catch::Contains("as the filters left it, is over max_message_bytes (2048)"));
  }
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.local_reply.message_too_large") == 2);
  // A grown request never reached the backend whole: only the grow_response
  // call was answered there.
  CHECK(backend.stats().calls.load() == 1);
  REQUIRE_OK(unaryWithFault(*stub, ""));
}

TEST_CASE("a timer a filter's factory keeps re-arming on every worker does not stop the gateway from exiting",
          "[filter_faults]") {
  TestBackend backend("primary");
  nlohmann::json config = faultConfig(backend.address());
  config["listeners"][0]["filters"][0]["config"] = {{"worker_timer_ms", 50}};
  config["workers"] = 2;
  config["drain_timeout_ms"] = 2000;
  GatewayProcess gateway(config, testGatewayOptions());
  // Connections spread over both workers, so that each loop gets a timer.
  for (int i = 0; i < 4; ++i) {
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    REQUIRE_OK(unaryWithFault(*stub, ""));
  }
  const auto signalled = std::chrono::steady_clock::now();
  gateway.signal(SIGTERM);
  // The drain has nothing to wait for; the timers alone held both loops
  // (and the process) forever, and the factory's destructor then touched
  // loops already freed (AddressSanitizer's heap-use-after-free).
  CHECK(waitFor([&] { return !gateway.running(); }, std::chrono::seconds(5)));
  CHECK(std::chrono::steady_clock::now() - signalled < std::chrono::seconds(5));
  CHECK(gateway.stop() == 0);
  CHECK_THAT(gateway.logs(), !Catch::Contains("handle(s) still open"));
}

// A call's filter state goes when the call does, which may be after a reload
// freed the rest of its config: the state must go before that config (its
// filter factories) does.
TEST_CASE("a call's filter state goes before the config it ran on, when a reload retired that config",
          "[filter_faults]") {
  TestBackend backend("primary");
  nlohmann::json config = faultConfig(backend.address());
  config["workers"] = 1;
  GatewayProcess gateway(config, testGatewayOptions());
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.AddMetadata("x-test-fault", "state_uses_factory");
    auto stream = stub->Bidi(&context);
    EchoRequest request;
    request.set_payload("before");
    REQUIRE(stream->Write(request));
    EchoResponse response;
    REQUIRE(stream->Read(&response));
    // A new config (a new factory); the call holds the old one until it ends.
    config["drain_timeout_ms"] = 4000;
    REQUIRE(reloadWithSighup(gateway, config.dump(), 1));
    request.set_payload("after");
    REQUIRE(stream->Write(request));
    REQUIRE(stream->Read(&response));
    CHECK(response.payload() == "after");
    REQUIRE(stream->WritesDone());
    REQUIRE_OK(stream->Finish());
  }
  REQUIRE_OK(unaryWithFault(*stub, ""));
  CHECK(gateway.running());
  CHECK(gateway.stop() == 0);
  CHECK_THAT(gateway.logs(), !Catch::Contains("outlived its filter factory"));
}

TEST_CASE("a trailer hook reads the backend's status as ctx.status() and ctx.statusMessage()", "[filter_faults]") {
  FaultFixture f;
  {
    grpc::ClientContext context;
    REQUIRE_OK(unaryWithFault(*f.stub, "", {}, &context));
    CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-test-faults-status") == "0:");
  }
  // A failure comes as trailers only: the hook sees it all the same.
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoRequest request;
  request.set_status_code(5);
  request.set_status_message("no such thing");
  EchoResponse response;
  REQUIRE_STATUS(f.stub->Unary(&context, request, &response), grpc::StatusCode::NOT_FOUND);
  CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-test-faults-status") == "5:no such thing");
}

TEST_CASE("a header field a filter sets that HTTP/2 cannot carry ends the call, naming the filter",
          "[filter_faults]") {
  FaultFixture f;
  const std::vector<std::pair<std::string, std::string>> faults = {
      {"bad_request_value", "the value of header \"x-injected\" holds NUL, CR or LF: \"a\\x0d\\x0ax-evil: 1\""},
      {"bad_request_name", "the header name \"Bad Key\" is not a lower-case HTTP token"},
      {"bad_request_te", "te is \"gzip\": HTTP/2 allows only \"trailers\""},
      {"bad_value_while_paused", "the value of header \"x-injected\" holds NUL, CR or LF: \"a\\x00b\""},
      {"bad_trailer_value", "the value of header \"x-count\" holds NUL, CR or LF: \"12\\x0a\""}};
  for (const auto& [fault, logged] : faults) {
    INFO("fault: " << fault);
    grpc::Status status = unaryWithFault(*f.stub, fault);
    CHECK(status.error_code() == grpc::StatusCode::INTERNAL);
    CHECK(status.error_message() == "filter \"test_faults\" failed");
    CHECK(waitFor([&] { return logCount(f.gateway, logged) == 1; }, std::chrono::seconds(3)));
    // Failures are logged at most once a second per worker.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  }
  CHECK(logCount(f.gateway, "filter \"test_faults\" in onRequestHeaders failed: it left a header field") == 3);
  CHECK(logCount(f.gateway, "filter \"test_faults\" while paused failed: it left a header field") == 1);
  CHECK(logCount(f.gateway, "filter \"test_faults\" in onResponseTrailers failed: it left a header field") == 1);
  // The request ones never reached the backend; the trailer one did (the
  // backend answered, the hook broke the answer).
  CHECK(f.backend.stats().calls == 1);
  CHECK(statValue(f.gateway.adminAddress(), "listener.grpc.local_reply.filter_error") == 5);
  // Calls that change nothing, or change it well, go on as before.
  grpc::ClientContext context;
  REQUIRE_OK(unaryWithFault(*f.stub, "", {}, &context));
  CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-test-faults") == "seen");
}

// A timer of the call's that changes a header field while the call goes on
// (not paused) was checked only at the next hook, as that hook's filter's
// doing: now right after it runs, as its own filter's.
TEST_CASE("a header field a filter's timer sets that HTTP/2 cannot carry is that timer's filter's failure",
          "[filter_faults]") {
  FaultFixture f;
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  context.AddMetadata("x-test-fault", "timer_bad_trailer");
  EchoRequest request;
  request.set_sleep_ms(300);  // the backend answers long after the timer ran
  EchoResponse response;
  const grpc::Status status = f.stub->Unary(&context, request, &response);
  CHECK(status.error_code() == grpc::StatusCode::INTERNAL);
  CHECK(status.error_message() == "filter \"test_faults\" failed");
  CHECK(waitFor(
      [&] {
        return logCount(f.gateway, "filter \"test_faults\" in work it ran for the call (a timer, CallHandle) failed: "
                                   "it left a header field HTTP/2 cannot carry: the value of header \"x-from-timer\"") == 1;
      },
      std::chrono::seconds(3)));
}

// What a filter leaves as the end of a call must be one a client can read:
// trailers without a valid grpc-status made grpcio 1.51 crash (SIGILL), and
// fields HTTP/2 cannot carry, in sendLocalReply's extra trailers or set in
// onStreamDone while the trailers were still queued, reset the stream.
TEST_CASE("a filter's end of a call without a valid grpc-status, or with bad extra or late trailers, is INTERNAL",
          "[filter_faults]") {
  FaultFixture f;
  const std::vector<std::pair<std::string, std::string>> faults = {
      {"answer_without_status", "filter \"test_faults\" failed: it ended the call without grpc-status in the trailers"},
      {"trailer_status_removed", "filter \"test_faults\" failed: it ended the call without grpc-status in the trailers"},
      {"trailer_status_garbage",
       "filter \"test_faults\" failed: it ended the call with grpc-status \"abc\", not a code from 0 to 16"},
      {"trailer_status_twice",
       "filter \"test_faults\" failed: it ended the call with more than one grpc-status in the trailers"},
      {"local_reply_bad_extra",
       "filter \"test_faults\" failed: in sendLocalReply: it left a header field HTTP/2 cannot carry: the value of "
       "header \"x-why\" holds NUL, CR or LF"},
      {"local_reply_status_extra",
       "filter \"test_faults\" failed: in sendLocalReply: its extra trailers set grpc-status or grpc-message"}};
  for (const auto& [fault, logged] : faults) {
    INFO("fault: " << fault);
    const size_t logged_before = logCount(f.gateway, logged);
    grpc::Status status = unaryWithFault(*f.stub, fault);
    CHECK(status.error_code() == grpc::StatusCode::INTERNAL);
    CHECK(status.error_message() == "filter \"test_faults\" failed");
    CHECK(waitFor([&] { return logCount(f.gateway, logged) == logged_before + 1; }, std::chrono::seconds(3)));
    // Failures are logged at most once a second per worker.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  }
  CHECK(statValue(f.gateway.adminAddress(), "listener.grpc.local_reply.filter_error") == 6);
  {
    // Changed in onStreamDone, after the call ended OK with a message: the
    // trailers were still queued behind it.
    INFO("fault: done_bad_trailer");
    grpc::Status status = unaryWithFault(*f.stub, "done_bad_trailer");
    CHECK(status.error_code() == grpc::StatusCode::INTERNAL);
    CHECK(status.error_message() == "a filter broke the call's trailers after it ended");
    CHECK(waitFor(
        [&] {
          return logCount(f.gateway,
                          "filter \"test_faults\" in onStreamDone failed: it changed the response trailers after the "
                          "call ended") == 1;
        },
        std::chrono::seconds(3)));
  }
  // Calls that change nothing go on as before.
  REQUIRE_OK(unaryWithFault(*f.stub, ""));
}

// A message a filter encodes from its own response hook goes on from that
// filter (not through its hook again) and ahead of the event the hook
// handles: one injected from the trailer hook reaches the client before the
// trailers. Before, it started at the terminal: the copying filter saw its
// own copies (for ever), and the summary was dropped behind the trailers.
TEST_CASE("messages a filter injects from its response hooks reach the client, in place, once",
          "[filter_faults]") {
  FaultFixture f;
  auto streamWithFault = [&](const std::string& fault, grpc::ClientContext& context) {
    return serverStreamWithFault(*f.stub, fault, 3, context);
  };
  {
    grpc::ClientContext context;
    const auto payloads = streamWithFault("inject_copy", context);
    CHECK(payloads == std::vector<std::string>{"copy", "orig", "copy", "orig", "copy", "orig"});
    CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-test-faults-seen") == "3");
  }
  {
    grpc::ClientContext context;
    const auto payloads = streamWithFault("inject_summary", context);
    CHECK(payloads == std::vector<std::string>{"orig", "orig", "orig", "summary"});
  }
  {
    // Trailers encoded from a message hook end the stream after that message.
    grpc::ClientContext context;
    const auto payloads = streamWithFault("end_after_first_message", context);
    CHECK(payloads == std::vector<std::string>{"orig"});
  }
}

// A filter that sends the client a message of its own before letting the
// call go on: the backend's answer still passes every filter's response
// hooks. (The reply's start was fixed by the first event of the call, so
// the backend's answer skipped every filter after that one.)
TEST_CASE("after a filter's early message, the backend's answer passes every response hook", "[filter_faults]") {
  const nlohmann::json metadata = {{"name", "metadata"},
                                   {"config", {{"response_trailers", {{"set", {{"x-served-by", "sluice"}}}}}}}};
  FaultFixture f(std::vector<nlohmann::json>{metadata});
  grpc::ClientContext context;
  const auto payloads = serverStreamWithFault(*f.stub, "early_message", 2, context);
  CHECK(payloads == std::vector<std::string>{"early", "orig", "orig"});
  CHECK(metadataValue(context.GetServerTrailingMetadata(), "x-served-by") == "sluice");
}

TEST_CASE("a filter that answers a call itself sends a gRPC response the strictest clients accept",
          "[filter_faults]") {
  // A second test_faults entry after the first: the reply must not pass its
  // hooks (nor the router's and proxy's), which never saw the call.
  FaultFixture f(std::vector<nlohmann::json>{nlohmann::json{{"name", "test_faults"}}});
  RawH2Client raw("127.0.0.1", f.gateway.port());
  RawRequest request = RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(EchoRequest().SerializeAsString()));
  request.headers.emplace_back("x-test-fault", "answer_itself");
  RawResponse response = raw.request(request);
  INFO(response.describe());
  CHECK(response.status == 200);
  // In the headers, where grpc-go and grpc-java look for it.
  bool content_type = false;
  for (const auto& [name, value] : response.headers) content_type |= name == "content-type" && value == "application/grpc";
  CHECK(content_type);
  CHECK(response.grpcStatus() == 0);
  EchoResponse echo;
  REQUIRE(response.body.size() > 5);
  CHECK(echo.ParseFromString(response.body.substr(5)));
  CHECK(echo.payload() == "self");
  CHECK(f.backend.stats().calls == 0);
  std::vector<std::string> hooks;
  for (const auto& [name, value] : response.trailers) {
    if (name == "x-test-faults-hook") hooks.push_back(value);
  }
  CHECK(hooks == std::vector<std::string>{"answerer"});
}

}  // namespace sluice::test
