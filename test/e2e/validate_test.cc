// `sluice --validate`: bad configs exit 2 and point at the bad value by its
// JSON pointer on stderr; `--config` refuses the same configs the same way.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

// Two routes and two endpoints, so indexes 1 exist to point at.
nlohmann::json validConfig() {
  return gatewayConfig(
      nlohmann::json::array({route("service", "sluice.example.Other", "catalog"),
                             route("prefix", "/", "catalog")}),
      nlohmann::json::array({cluster("catalog", {"127.0.0.1:50061", "127.0.0.1:50062"})}));
}

// A directory of the test's own, for files a test writes itself.
std::string scratchDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "sluice-validate-XXXXXX").string();
  REQUIRE(::mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

struct BadConfig {
  const char* what;
  std::function<void(nlohmann::json&)> breakIt;
  const char* path;  // the JSON pointer stderr must mention
};

std::vector<BadConfig> badConfigs() {
  return {
      {"unknown key in a listener", [](auto& c) { c["listeners"][0]["bogus_key"] = 1; },
       "/listeners/0/bogus_key"},
      {"unknown top-level key", [](auto& c) { c["listners"] = nlohmann::json::array(); },
       "/listners"},
      {"wrong type", [](auto& c) { c["listeners"][0]["max_message_bytes"] = "lots"; },
       "/listeners/0/max_message_bytes"},
      {"wrong type of a route list",
       [](auto& c) { c["listeners"][0]["filters"][0]["config"]["routes"] = "all"; },
       "/listeners/0/filters/0/config/routes"},
      {"unknown cluster name",
       [](auto& c) { c["listeners"][0]["filters"][0]["config"]["routes"][1]["cluster"] = "nope"; },
       "/listeners/0/filters/0/config/routes/1/cluster"},
      {"unknown filter", [](auto& c) { c["listeners"][0]["filters"][1]["name"] = "no_such_filter"; },
       "/listeners/0/filters/1"},
      {"listener address without a port",
       [](auto& c) { c["listeners"][0]["address"] = "127.0.0.1"; }, "/listeners/0/address"},
      {"listener address with a port out of range",
       [](auto& c) { c["listeners"][0]["address"] = "127.0.0.1:99999"; }, "/listeners/0/address"},
      {"two listeners on one address",
       [](auto& c) {
         c["listeners"][0]["address"] = "127.0.0.1:50990";
         auto second = c["listeners"][0];
         second["name"] = "second";
         c["listeners"].push_back(second);
       },
       "/listeners/1/address"},
      {"endpoint address that is not one",
       [](auto& c) { c["clusters"][0]["endpoints"][1] = "not an address"; },
       "/clusters/0/endpoints/1"},
      {"one endpoint listed twice in a cluster",
       [](auto& c) { c["clusters"][0]["endpoints"][1] = c["clusters"][0]["endpoints"][0]; },
       "/clusters/0/endpoints/1"},
      // C calls would stop at the NUL: 127.0.0.1 would be bound, "junk" never seen.
      {"a NUL inside an address",
       [](auto& c) { c["listeners"][0]["address"] = std::string("127.0.0.1\0junk:50990", 21); },
       "/listeners/0/address"},
      // getaddrinfo reads hexadecimal the inet_aton way: 0x7f.1 is 127.0.0.1.
      {"an endpoint numbered in hexadecimal",
       [](auto& c) { c["clusters"][0]["endpoints"][1] = "0x7f.1:50061"; },
       "/clusters/0/endpoints/1"},
      {"a retry policy that can keep no request",
       [](auto& c) {
         c["listeners"][0]["filters"][0]["config"]["routes"][0]["retry"] = {{"retry_on", {"UNAVAILABLE"}},
                                                                            {"replay_buffer_bytes", 0}};
       },
       "/listeners/0/filters/0/config/routes/0/retry/replay_buffer_bytes"},
      {"ring_hash on the id every call has its own of",
       [](auto& c) {
         c["clusters"][0]["lb_policy"] = "ring_hash";
         c["clusters"][0]["hash_header"] = "x-request-id";
       },
       "/clusters/0/hash_header"},
  };
}

TEST_CASE("sluice --validate accepts a valid config", "[e2e][validate]") {
  ProcessResult result = runValidate(validConfig().dump(2));
  INFO(result.output);
  CHECK(result.exitCode == 0);
}

TEST_CASE("sluice --validate rejects bad configs and names the JSON path", "[e2e][validate]") {
  for (const auto& bad : badConfigs()) {
    nlohmann::json config = validConfig();
    bad.breakIt(config);
    ProcessResult result = runValidate(config.dump(2));
    INFO(bad.what << "\n--- sluice output ---\n" << result.output);
    CHECK(result.exitCode == 2);
    CHECK_THAT(result.errorOutput, Catch::Contains(bad.path));
  }
}

TEST_CASE("sluice --validate rejects JSON that does not parse", "[e2e][validate]") {
  ProcessResult result = runValidate("{\"listeners\": [");
  INFO(result.output);
  CHECK(result.exitCode == 2);
}

TEST_CASE("sluice's command line: a flag given twice, a directory, an unknown log level", "[e2e][validate]") {
  ProcessResult twice = runSluice({"--validate", "/dev/null", "--validate", "/dev/null"});
  CHECK(twice.exitCode == 2);
  CHECK_THAT(twice.errorOutput, Catch::Contains("--validate given twice"));
  // --log-level too, though it has a default.
  ProcessResult level_twice = runSluice({"--validate", "/dev/null", "--log-level", "debug", "--log-level", "warn"});
  CHECK(level_twice.exitCode == 2);
  CHECK_THAT(level_twice.errorOutput, Catch::Contains("--log-level given twice"));
  ProcessResult directory = runSluice({"--validate", "/tmp"});
  CHECK(directory.exitCode == 2);
  CHECK_THAT(directory.errorOutput, Catch::Contains("cannot read config file \"/tmp\": it is a directory"));
  // spdlog's own aliases are not names the config's log_level takes either.
  ProcessResult level = runSluice({"--validate", "/dev/null", "--log-level", "warning"});
  CHECK(level.exitCode == 2);
  CHECK_THAT(level.errorOutput, Catch::Contains("unknown log level \"warning\" (known: trace, debug, info, warn"));
}

TEST_CASE("sluice's command line: a flag without its value, --ready-file at the config file", "[e2e][validate]") {
  ProcessResult forgot = runSluice({"--config", "--validate", "x.json"});
  CHECK(forgot.exitCode == 2);
  CHECK_THAT(forgot.errorOutput, Catch::Contains("--config needs a value"));
  ProcessResult empty = runSluice({"--config", ""});
  CHECK(empty.exitCode == 2);
  CHECK_THAT(empty.errorOutput, Catch::Contains("--config needs a value, got an empty one"));
  ProcessResult neither = runSluice({"--log-level", "warn"});
  CHECK(neither.exitCode == 2);
  CHECK_THAT(neither.errorOutput, Catch::Contains("give exactly one of --config and --validate"));
  // The ready file would have replaced the config, and the next reload read it.
  const std::string dir = scratchDir();
  const std::string file = dir + "/gw.json";
  std::ofstream(file) << validConfig().dump(2);
  ProcessResult clobber = runSluice({"--config", file, "--ready-file", dir + "/./gw.json"});
  CHECK(clobber.exitCode == 2);
  CHECK_THAT(clobber.errorOutput, Catch::Contains("is the config file"));
  std::ifstream in(file);
  CHECK(nlohmann::json::parse(in) == validConfig());
  std::filesystem::remove_all(dir);
}

// Only a regular file of at most 16 MiB is read: a FIFO blocked worker 0's
// loop (calls, admin, SIGTERM) until a writer came; a huge file or device
// ran the process out of memory on a reload.
TEST_CASE("sluice reads only a bounded regular file as its config", "[e2e][validate]") {
  const std::string dir = scratchDir();
  const std::string fifo = dir + "/fifo.json";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  ProcessResult from_fifo = runSluice({"--validate", fifo});
  CHECK(from_fifo.exitCode == 2);
  CHECK_THAT(from_fifo.errorOutput, Catch::Contains("it is not a regular file"));
  ProcessResult from_device = runSluice({"--validate", "/dev/zero"});
  CHECK(from_device.exitCode == 2);
  CHECK_THAT(from_device.errorOutput, Catch::Contains("it is not a regular file"));
  const std::string big = dir + "/big.json";
  {
    std::ofstream out(big);
    out << validConfig().dump() << std::string(17 << 20, ' ');
  }
  ProcessResult too_big = runSluice({"--validate", big});
  CHECK(too_big.exitCode == 2);
  CHECK_THAT(too_big.errorOutput, Catch::Contains("more than the 16 MiB a JSON file may have"));
  // The parser stopped at a NUL byte: what followed was never read.
  ProcessResult after_nul = runValidate(validConfig().dump() + std::string("\0{\"bogus\": 1}", 13));
  CHECK(after_nul.exitCode == 2);
  CHECK_THAT(after_nul.errorOutput, Catch::Contains("a NUL byte at offset"));

  // A reload finding a FIFO at the config's path is refused at once; the
  // gateway goes on serving and stops when told.
  TestBackend backend("primary");
  GatewayProcess gateway(catchAllConfig(backend.address()));
  std::filesystem::remove(gateway.configPath());
  REQUIRE(::mkfifo(gateway.configPath().c_str(), 0600) == 0);
  gateway.signal(SIGHUP);
  CHECK(waitFor([&] { return gateway.logs().find("it is not a regular file") != std::string::npos; },
                std::chrono::seconds(5)));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext context;
  setTimeout(context, kCallTimeout);
  example::EchoRequest request;
  example::EchoResponse response;
  REQUIRE_OK(stub->Unary(&context, request, &response));
  CHECK(gateway.stop() == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("sluice --validate prints control characters of a config escaped, never raw", "[e2e][validate]") {
  // A NUL in a key used to end the printed line there, losing what followed.
  nlohmann::json config = validConfig();
  config["listeners"][0][std::string("a\0b\x1b[31m", 8)] = 1;
  ProcessResult result = runValidate(config.dump(2));
  INFO(result.output);
  CHECK(result.exitCode == 2);
  CHECK_THAT(result.errorOutput, Catch::Contains("/listeners/0/a\\x00b\\x1b[31m: the key holds a NUL character"));
  CHECK(result.errorOutput.find('\0') == std::string::npos);
  CHECK(result.errorOutput.find('\x1b') == std::string::npos);
}

TEST_CASE("sluice --config with a bad config exits 2 before listening", "[e2e][validate]") {
  nlohmann::json config = validConfig();
  config["listeners"][0]["filters"][0]["config"]["routes"][1]["cluster"] = "nope";
  try {
    GatewayProcess gateway(config);
    FAIL("the gateway started with a route to an unknown cluster");
  } catch (const std::runtime_error& error) {
    CHECK_THAT(std::string(error.what()), Catch::Contains("exited with 2") &&
                                 Catch::Contains("/listeners/0/filters/0/config/routes/1/cluster"));
  }
}

}  // namespace
}  // namespace sluice::test
