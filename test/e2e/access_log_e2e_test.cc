// The access_log filter through a real gateway: one JSON line per call with
// its status, counters, peer and upstream; rotation on SIGUSR1; stdout.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/frame_socket.h"
#include "test/support/http_client.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "sluice-access-log-e2e-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

nlohmann::json accessLogGateway(const std::string& backend, const nlohmann::json& logConfig) {
  nlohmann::json config = catchAllConfig(backend);
  auto& chain = config["listeners"][0]["filters"];
  nlohmann::json entry = {{"name", "access_log"}, {"config", logConfig}};
  chain.insert(chain.begin(), entry);
  return config;
}

std::vector<nlohmann::json> jsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.front() == '{') out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The line is written when the stream ends, which may be just after the
// client saw its status: wait for it rather than race.
std::vector<nlohmann::json> waitForLines(const std::function<std::string()>& read, size_t count) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<nlohmann::json> lines;
  while (std::chrono::steady_clock::now() < until) {
    lines = jsonLines(read());
    if (lines.size() >= count) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return lines;
}

}  // namespace

TEST_CASE("access_log: one line per call with status, counters, peer and upstream", "[e2e][access_log]") {
  TempDir dir;
  fs::path file = dir.path / "access.log";
  TestBackend backend("primary");
  GatewayProcess gateway(accessLogGateway(backend.address(), {{"path", file.string()},
                                                              {"request_metadata", {"x-request-id"}}}));
  auto channel = makeChannel(gateway.address());
  auto stub = example::Echo::NewStub(channel);

  {  // 1: unary OK
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.AddMetadata("x-request-id", "req-1");
    EchoRequest request;
    request.set_payload("12345");
    EchoResponse response;
    REQUIRE_OK(stub->Unary(&context, request, &response));
  }
  {  // 2: client streaming, 4 messages in, 1 out
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoResponse response;
    auto writer = stub->ClientStream(&context, &response);
    for (int i = 0; i < 4; ++i) {
      EchoRequest request;
      request.set_payload("abc");
      REQUIRE(writer->Write(request));
    }
    REQUIRE(writer->WritesDone());
    REQUIRE_OK(writer->Finish());
  }
  {  // 3: an error from the backend
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_status_code(grpc::StatusCode::FAILED_PRECONDITION);
    request.set_status_message("nope");
    EchoResponse response;
    REQUIRE_STATUS(stub->Unary(&context, request, &response), grpc::StatusCode::FAILED_PRECONDITION);
  }
  {  // 4: server streaming, 3 messages out
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_response_count(3);
    request.set_response_size(100);
    auto reader = stub->ServerStream(&context, request);
    EchoResponse response;
    while (reader->Read(&response)) {
    }
    REQUIRE_OK(reader->Finish());
  }

  auto lines = waitForLines([&] { return readFile(file); }, 4);
  INFO(readFile(file));
  REQUIRE(lines.size() == 4);
  for (const auto& l : lines) {
    CHECK(l["peer"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
    CHECK(l["cluster"] == "echo");
    CHECK(l["upstream"] == backend.address());
    CHECK(l["attempts"] == 1);
    CHECK(l["retries"] == 0);
    CHECK(l["duration_ms"].get<double>() >= 0);
    CHECK(l["time"].get<std::string>().size() == 24);
  }
  CHECK(lines[0]["method"] == "/sluice.example.Echo/Unary");
  CHECK(lines[0]["status"] == "OK");
  CHECK(lines[0]["grpc_status"] == 0);
  CHECK(lines[0]["request_messages"] == 1);
  CHECK(lines[0]["response_messages"] == 1);
  CHECK(lines[0]["request_bytes"].get<int>() >= 5);
  CHECK(lines[0]["metadata"]["x-request-id"] == "req-1");
  // The call's id: the client's, else the one the gateway made (a UUID), one per call.
  CHECK(lines[0]["request_id"] == "req-1");
  std::set<std::string> made;
  for (size_t i = 1; i < lines.size(); ++i) {
    INFO(lines[i].dump());
    REQUIRE(lines[i]["request_id"].is_string());
    CHECK(lines[i]["request_id"].get<std::string>().size() == 36);
    made.insert(lines[i]["request_id"].get<std::string>());
  }
  CHECK(made.size() == 3);
  CHECK(lines[1]["method"] == "/sluice.example.Echo/ClientStream");
  CHECK(lines[1]["request_messages"] == 4);
  CHECK(lines[1]["response_messages"] == 1);
  CHECK(lines[2]["status"] == "FAILED_PRECONDITION");
  CHECK(lines[2]["grpc_status"] == 9);
  CHECK(lines[2]["grpc_message"] == "nope");
  CHECK(lines[3]["method"] == "/sluice.example.Echo/ServerStream");
  CHECK(lines[3]["response_messages"] == 3);
  CHECK(lines[3]["response_bytes"].get<int>() >= 300);
}

TEST_CASE("access_log: a call ended with its connection says which side closed it", "[e2e][access_log]") {
  TestBackend backend("b");
  // A server stream of 10 s: it outlives both connections below.
  EchoRequest request;
  request.set_response_count(100);
  request.set_response_interval_ms(100);
  // The one line logged for a call opened over a hand-made connection that
  // `end` then ends, through a gateway with `keepalive` (its interval and
  // timeout, ms; 0: off).
  auto lineAfter = [&](uint32_t keepalive, const std::function<void(std::unique_ptr<FrameSocket>&)>& end) {
    TempDir dir;
    fs::path file = dir.path / "access.log";
    auto config = accessLogGateway(backend.address(), {{"path", file.string()}});
    config["listeners"][0]["keepalive_interval_ms"] = keepalive;
    config["listeners"][0]["keepalive_timeout_ms"] = std::max<uint32_t>(keepalive, 1);
    GatewayProcess gateway(config);
    auto client = std::make_unique<FrameSocket>(gateway.port());
    client->openServerStream(1, request);
    REQUIRE(waitFor([&] { return backend.stats().active.load() == 1; }, std::chrono::seconds(5)));
    end(client);
    auto lines = waitForLines([&] { return readFile(file); }, 1);
    INFO(readFile(file));
    REQUIRE(lines.size() == 1);
    // Either way the backend's call is cancelled.
    CHECK(waitFor([&] { return backend.stats().active.load() == 0; }, std::chrono::seconds(5)));
    return lines[0];
  };
  // The client closes its socket mid-call.
  auto lost = lineAfter(0, [](std::unique_ptr<FrameSocket>& client) { client.reset(); });
  CHECK(lost["status"] == "CANCELLED");
  // (a reset: the socket closed with the gateway's frames unread)
  CHECK_THAT(lost["grpc_message"].get<std::string>(), Catch::StartsWith("connection lost: "));
  // The client answers no PING: the gateway closes the connection.
  auto cut = lineAfter(200, [](std::unique_ptr<FrameSocket>& client) {
    CHECK(client->readUntilClosed(std::chrono::seconds(3)).closed);
  });
  CHECK(cut["status"] == "UNAVAILABLE");
  CHECK(cut["grpc_message"] == "the gateway closed the connection: no answer to a keepalive PING within 200 ms");
  // The client breaks the protocol (a WINDOW_UPDATE of 0 on the connection):
  // the gateway sends GOAWAY and closes the connection.
  auto broke = lineAfter(0, [](std::unique_ptr<FrameSocket>& client) {
    REQUIRE(client->send(FrameSocket::frame(kWindowUpdate, 0, 0, std::string(4, '\0'))));
    auto seen = client->readUntilClosed(std::chrono::seconds(3));
    CHECK(seen.goaway);
    CHECK(seen.closed);
  });
  CHECK(broke["status"] == "UNAVAILABLE");
  CHECK(broke["grpc_message"] == "the gateway closed the connection: GOAWAY PROTOCOL_ERROR sent");
}

TEST_CASE("access_log: sample_percent logs a share of the calls, and always the failed and slow ones",
          "[e2e][access_log]") {
  TempDir dir;
  fs::path file = dir.path / "access.log";
  TestBackend backend("primary");
  auto unary = [](example::Echo::Stub& stub, int status_code, uint32_t sleep_ms) {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    request.set_status_code(status_code);
    request.set_sleep_ms(sleep_ms);
    EchoResponse response;
    return stub.Unary(&context, request, &response);
  };
  auto start = [&](const nlohmann::json& sampling) {
    nlohmann::json log = sampling;
    log["path"] = file.string();
    auto config = accessLogGateway(backend.address(), log);
    config["admin"] = {{"address", "127.0.0.1:0"}};
    return std::make_unique<GatewayProcess>(config);
  };
  // Every call decided, `calls` in all: its line written, or counted out.
  auto decided = [&](GatewayProcess& gateway, size_t calls) {
    return waitFor(
        [&] {
          auto stats = readStats(gateway.adminAddress());
          auto out = stats.count("filter.access_log_sampled_out") ? stats["filter.access_log_sampled_out"] : 0;
          return jsonLines(readFile(file)).size() + static_cast<size_t>(out) == calls;
        },
        5s);
  };

  SECTION("none sampled: only failed and slow calls") {
    auto gateway = start({{"sample_percent", 0}, {"always_log_slower_than_ms", 1500}});
    auto stub = example::Echo::NewStub(makeChannel(gateway->address()));
    for (int i = 0; i < 20; ++i) REQUIRE_OK(unary(*stub, 0, 0));
    for (int i = 0; i < 3; ++i) REQUIRE_STATUS(unary(*stub, grpc::StatusCode::NOT_FOUND, 0), grpc::StatusCode::NOT_FOUND);
    REQUIRE_OK(unary(*stub, 0, 1700));
    REQUIRE(decided(*gateway, 24));
    int failed = 0, slow = 0, other = 0;
    for (const auto& line : jsonLines(readFile(file))) {
      if (line["status"] == "NOT_FOUND") {
        ++failed;
      } else if (line["duration_ms"].get<double>() >= 1500) {
        ++slow;
      } else {
        ++other;  // only a fast call that took 1.5 s on a loaded machine
      }
    }
    CHECK(failed == 3);
    CHECK(slow == 1);
    CHECK(other == 0);
  }
  SECTION("failed calls sampled too when always_log_failed is off") {
    auto gateway = start({{"sample_percent", 0}, {"always_log_failed", false}});
    auto stub = example::Echo::NewStub(makeChannel(gateway->address()));
    for (int i = 0; i < 3; ++i) REQUIRE_STATUS(unary(*stub, grpc::StatusCode::NOT_FOUND, 0), grpc::StatusCode::NOT_FOUND);
    REQUIRE_OK(unary(*stub, 0, 0));
    REQUIRE(decided(*gateway, 4));
    CHECK(readFile(file).empty());
  }
  SECTION("a quarter of 400 calls") {
    auto gateway = start({{"sample_percent", 25}});
    auto stub = example::Echo::NewStub(makeChannel(gateway->address()));
    for (int i = 0; i < 400; ++i) REQUIRE_OK(unary(*stub, 0, 0));
    REQUIRE(decided(*gateway, 400));
    size_t logged = jsonLines(readFile(file)).size();
    // 100 expected; five standard deviations (8.7) either side.
    CHECK(logged > 56);
    CHECK(logged < 144);
  }
}

TEST_CASE("access_log: requests the gateway refuses before the filters run get a line too", "[e2e][access_log]") {
  TempDir dir;
  fs::path file = dir.path / "access.log";
  TestBackend backend("primary");
  nlohmann::json config =
      accessLogGateway(backend.address(), {{"path", file.string()}, {"request_metadata", {"x-auth-principal"}}});
  config["listeners"][0]["max_header_list_bytes"] = 4096;
  GatewayProcess gateway(config);

  RawH2Client raw("127.0.0.1", gateway.port());
  const std::string unary = "/sluice.example.Echo/Unary";
  RawRequest get = RawRequest::grpc(unary);
  get.method = "GET";
  CHECK(raw.request(get).status == 405);
  RawRequest text = RawRequest::grpc(unary);
  text.headers = {{"content-type", "text/plain"}, {"te", "trailers"}};
  CHECK(raw.request(text).status == 415);
  CHECK(raw.request(RawRequest::grpc("/nomethod")).grpcStatus() == 12);
  RawRequest timeout = RawRequest::grpc(unary);
  timeout.headers.emplace_back("grpc-timeout", "soon");
  timeout.headers.emplace_back("x-auth-principal", "admin");  // forged: no filter ever looked at it
  CHECK(raw.request(timeout).grpcStatus() == 13);
  {  // a real client whose metadata is over the listener's limit
    auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.AddMetadata("x-big", std::string(8192, 'b'));
    EchoResponse response;
    REQUIRE_STATUS(stub->Unary(&context, EchoRequest(), &response), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // And a call that goes through, after them on the same connection.
  RawRequest ok = RawRequest::grpc(unary, grpcFrame(""));
  ok.headers.emplace_back("x-auth-principal", "svc");
  CHECK(raw.request(ok).grpcStatus() == 0);

  auto lines = waitForLines([&] { return readFile(file); }, 6);
  INFO(readFile(file));
  REQUIRE(lines.size() == 6);
  // Refused or not, each has its id, for a client's report to be found by.
  std::set<std::string> ids;
  for (const auto& l : lines) {
    if (l["request_id"].is_string()) ids.insert(l["request_id"].get<std::string>());
  }
  CHECK(ids.size() == 6);
  CHECK(lines[0]["method"] == unary);
  CHECK(lines[0]["http_status"] == 405);
  CHECK(lines[0]["grpc_message"] == "HTTP 405");
  CHECK(lines[1]["http_status"] == 415);
  CHECK(lines[2]["method"] == "/nomethod");
  CHECK(lines[2]["status"] == "UNIMPLEMENTED");
  CHECK(lines[2]["grpc_message"].get<std::string>().find("malformed method name") != std::string::npos);
  CHECK(lines[3]["status"] == "INTERNAL");
  CHECK(lines[3]["grpc_message"].get<std::string>().find("malformed grpc-timeout") != std::string::npos);
  // Metadata of a refused call is logged as the client's, not as vouched for.
  CHECK(lines[3]["client_metadata"]["x-auth-principal"] == "admin");
  CHECK_FALSE(lines[3].contains("metadata"));
  CHECK(lines[5]["metadata"]["x-auth-principal"] == "svc");
  CHECK_FALSE(lines[5].contains("client_metadata"));
  CHECK(lines[4]["method"] == unary);
  CHECK(lines[4]["status"] == "RESOURCE_EXHAUSTED");
  CHECK(lines[4]["grpc_message"] == "request headers exceed the limit of 4096 bytes (max_header_list_bytes)");
  CHECK(lines[5]["status"] == "OK");
  CHECK(lines[5]["upstream"] == backend.address());
  for (size_t i = 0; i < 5; ++i) {
    INFO("line " << i);
    CHECK(lines[i]["upstream"].is_null());
    CHECK(lines[i]["cluster"].is_null());
    CHECK(lines[i]["attempts"] == 0);
    CHECK(lines[i]["peer"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
  }
  for (size_t i = 2; i < 6; ++i) CHECK_FALSE(lines[i].contains("http_status"));
  CHECK(backend.stats().calls.load() == 1);
}

// A request its DATA proves malformed (more bytes than its content-length)
// is reset by the gateway's HTTP/2 layer, not by the client: the line says so.
TEST_CASE("access_log: a request the gateway's HTTP/2 layer resets is not logged as the client's reset",
          "[e2e][access_log]") {
  TempDir dir;
  fs::path file = dir.path / "access.log";
  TestBackend backend("primary");
  GatewayProcess gateway(accessLogGateway(backend.address(), {{"path", file.string()}}));
  RawH2Client raw("127.0.0.1", gateway.port());
  RawRequest longer = RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(std::string(20, 'x')));
  longer.headers.emplace_back("content-length", "3");
  RawResponse reset = raw.request(longer);
  INFO(reset.describe());
  CHECK(reset.rstStreamCode == 1u);  // PROTOCOL_ERROR
  CHECK(raw.request(RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(""))).grpcStatus() == 0);
  auto lines = waitForLines([&] { return readFile(file); }, 2);
  INFO(readFile(file));
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["status"] == "INTERNAL");
  CHECK(lines[0]["grpc_message"] == "the gateway reset the stream (PROTOCOL_ERROR): the request broke an HTTP/2 rule");
  CHECK(lines[1]["status"] == "OK");
}

TEST_CASE("access_log: a retry that finds no endpoint counts as an attempt, and names no upstream",
          "[e2e][access_log]") {
  TempDir dir;
  fs::path file = dir.path / "access.log";
  TestBackend backend("only");
  auto config = accessLogGateway(backend.address(), {{"path", file.string()}});
  config["workers"] = 1;
  // The one endpoint is ejected by its first failure, and without panic
  // routing the retries find no endpoint to try.
  auto& cluster = config["clusters"][0];
  cluster["panic_threshold_percent"] = 0;
  cluster["outlier_detection"] = {{"consecutive_failures", 1}, {"max_ejection_percent", 100}};
  for (auto& f : config["listeners"][0]["filters"]) {
    if (f["name"] == "router") {
      for (auto& r : f["config"]["routes"]) r["retry"] = {{"retry_on", {"UNAVAILABLE"}}, {"num_retries", 2}};
    }
  }
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoRequest request;
  request.set_status_code(14);
  EchoResponse response;
  REQUIRE_STATUS(stub->Unary(&context, request, &response), grpc::StatusCode::UNAVAILABLE);
  CHECK(backend.stats().calls == 1);
  auto lines = waitForLines([&] { return readFile(file); }, 1);
  REQUIRE(lines.size() == 1);
  INFO(lines[0].dump());
  CHECK(lines[0]["attempts"] == 3);
  CHECK(lines[0]["retries"] == 2);
  CHECK(lines[0]["upstream"].is_null());
  CHECK(lines[0]["grpc_status"] == 14);
}

TEST_CASE("access_log: SIGUSR1 reopens the file for log rotation", "[e2e][access_log]") {
  TempDir dir;
  fs::path file = dir.path / "access.log";
  fs::path rotated = dir.path / "access.log.1";
  TestBackend backend("primary");
  GatewayProcess gateway(accessLogGateway(backend.address(), {{"path", file.string()}}));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto unary = [&] {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    EchoRequest request;
    EchoResponse response;
    REQUIRE_OK(stub->Unary(&context, request, &response));
  };
  unary();
  REQUIRE(waitForLines([&] { return readFile(file); }, 1).size() == 1);
  fs::rename(file, rotated);  // what logrotate does
  unary();
  REQUIRE(waitForLines([&] { return readFile(rotated); }, 2).size() == 2);

  gateway.signal(SIGUSR1);
  // The reopen is asked for right after this line; lines after it go to the new file.
  REQUIRE(waitFor([&] { return logCount(gateway, "reopening log files") == 1; }, std::chrono::seconds(5)));
  REQUIRE(gateway.running());  // SIGUSR1 must not kill the gateway
  unary();
  unary();
  CHECK(waitForLines([&] { return readFile(file); }, 2).size() == 2);
  CHECK(jsonLines(readFile(rotated)).size() == 2);
  CHECK(gateway.stop() == 0);
}

TEST_CASE("access_log: stdout when no path is given", "[e2e][access_log]") {
  TestBackend backend("primary");
  GatewayProcess::Options options;
  options.logLevel = "warn";  // keep the gateway's own log lines out of the way
  GatewayProcess gateway(accessLogGateway(backend.address(), nlohmann::json::object()), options);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  EchoRequest request;
  EchoResponse response;
  REQUIRE_OK(stub->Unary(&context, request, &response));
  auto lines = waitForLines([&] { return gateway.logs(); }, 1);
  INFO(gateway.logs());
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["method"] == "/sluice.example.Echo/Unary");
  CHECK(lines[0]["status"] == "OK");
}

}  // namespace sluice::test

namespace sluice::test {

TEST_CASE("access_log: a log target that takes nothing never stops the calls", "[e2e][access_log]") {
  TestBackend backend("b");
  TempDir dir;
  fs::path fifo = dir.path / "access.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);  // and nobody ever reads it
  auto config = accessLogGateway(backend.address(), {{"path", fifo.string()}});
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  for (int i = 0; i < 200; ++i) {
    grpc::ClientContext context;
    setTimeout(context, std::chrono::milliseconds(2000));
    EchoRequest request;
    EchoResponse response;
    REQUIRE_OK(stub->Unary(&context, request, &response));
  }
  CHECK_THAT(gateway.logs(), Catch::Contains("access_log: cannot open"));
  CHECK(gateway.stop() == 0);
}

TEST_CASE("access_log: configs kept alive by open streams across reloads share one writer per file",
          "[e2e][access_log]") {
  TestBackend backend("b");
  TempDir dir;
  const fs::path file = dir.path / "access.log";
  auto config = accessLogGateway(backend.address(), {{"path", file.string()}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto threads = [&] {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(fmt::format("/proc/{}/task", gateway.pid()))) ++n;
    return n;
  };
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  REQUIRE_OK(callEmptyUnary(*stub));
  const size_t before = threads();
  // Each stream keeps the config it began on alive; a reload follows each.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReaderWriter<EchoRequest, EchoResponse>>> streams;
  for (int i = 0; i < 5; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    setTimeout(*contexts.back(), std::chrono::seconds(30));
    streams.push_back(stub->Bidi(contexts.back().get()));
    EchoResponse resp;
    REQUIRE(streams.back()->Write(EchoRequest()));
    REQUIRE(streams.back()->Read(&resp));
    REQUIRE(http(gateway.adminAddress(), "POST", "/reload").status == 200);
  }
  REQUIRE_OK(callEmptyUnary(*stub));
  CHECK(threads() == before);  // not one writer thread per config kept alive
  for (auto& stream : streams) {
    REQUIRE(stream->WritesDone());
    REQUIRE_OK(stream->Finish());
  }
  // Every config's calls reached the one file: 2 unary calls and 5 streams.
  CHECK(waitFor([&] { return jsonLines(readFile(file)).size() == 7; }, std::chrono::seconds(3)));
}

TEST_CASE("access_log: lines a failing target loses are counted in access_log_dropped", "[e2e][access_log]") {
  // /dev/full fails every write (ENOSPC), as a full disk does.
  TestBackend backend("b");
  auto config = accessLogGateway(backend.address(), {{"path", "/dev/full"}});
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  for (int i = 0; i < 20; ++i) REQUIRE_OK(callEmptyUnary(*stub));
  // A worker adds what the sink dropped when it writes its next line.
  int64_t dropped = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((dropped = statValue(gateway.adminAddress(), "filter.access_log_dropped")) < 19 &&
         std::chrono::steady_clock::now() < until) {
    REQUIRE_OK(callEmptyUnary(*stub));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(dropped >= 19);
  CHECK_THAT(gateway.logs(), Catch::Contains("access_log: write to /dev/full failed"));
}

TEST_CASE("access_log: a reload that retires a log stuck on its target does not hold up the worker",
          "[e2e][access_log]") {
  TestBackend backend("b");
  TempDir dir;
  fs::path fifo = dir.path / "access.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // A reader that never reads: the gateway can open the FIFO, and its pipe
  // fills after some 64 KiB of lines.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(reader >= 0);
  auto config = accessLogGateway(backend.address(), {{"path", fifo.string()}});
  config["workers"] = 1;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto timedCall = [&] {
    grpc::ClientContext context;
    setTimeout(context, std::chrono::milliseconds(5000));
    EchoResponse response;
    const auto start = std::chrono::steady_clock::now();
    REQUIRE_OK(stub->Unary(&context, EchoRequest(), &response));
    return std::chrono::steady_clock::now() - start;
  };
  // A call that keeps the first config alive across the reload.
  grpc::ClientContext held;
  setTimeout(held, kCallTimeout);
  auto stream = stub->Bidi(&held);
  REQUIRE(stream->Write(EchoRequest()));
  EchoResponse echoed;
  REQUIRE(stream->Read(&echoed));
  for (int i = 0; i < 400; ++i) timedCall();  // the pipe is full; more lines wait in the sink
  gateway.signal(SIGHUP);
  REQUIRE(waitFor([&] { return logCount(gateway, "config reloaded") >= 1; }, std::chrono::seconds(5)));
  // The first config's last call ends: its access log is let go of while its
  // writer is stuck on the pipe. That must not stall the worker's next calls.
  REQUIRE(stream->WritesDone());
  REQUIRE_OK(stream->Finish());
  std::chrono::steady_clock::duration slowest{};
  for (int i = 0; i < 5; ++i) slowest = std::max(slowest, timedCall());
  INFO("slowest call after the retirement: "
       << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() << " ms");
  CHECK(slowest < std::chrono::milliseconds(900));  // held by the retired log: about 2 s
  // Let the lines out, so the stop does not wait on the pipe either.
  std::atomic<bool> draining{true};
  std::thread drain([&] {
    char buf[65536];
    while (draining) {
      if (::read(reader, buf, sizeof(buf)) <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  CHECK(gateway.stop() == 0);
  draining = false;
  drain.join();
  ::close(reader);
}

}  // namespace sluice::test
