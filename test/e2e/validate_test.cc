// `sluice --validate`: bad configs exit 2 and point at the bad value by its
// JSON pointer on stderr; `--config` refuses the same configs the same way.
#include <catch2/catch.hpp>

#include <functional>

#include "test/support/configs.h"
#include "test/support/gateway_process.h"

namespace sluice::test {
namespace {

// Two routes and two endpoints, so indexes 1 exist to point at.
nlohmann::json validConfig() {
  return gatewayConfig(
      nlohmann::json::array({route("service", "sluice.example.Other", "catalog"),
                             route("prefix", "/", "catalog")}),
      nlohmann::json::array({cluster("catalog", {"127.0.0.1:50061", "127.0.0.1:50062"})}));
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
  CHECK_THAT(directory.errorOutput, Catch::Contains("config file \"/tmp\" is a directory"));
  // spdlog's own aliases are not names the config's log_level takes either.
  ProcessResult level = runSluice({"--validate", "/dev/null", "--log-level", "warning"});
  CHECK(level.exitCode == 2);
  CHECK_THAT(level.errorOutput, Catch::Contains("unknown log level \"warning\" (known: trace, debug, info, warn"));
}

TEST_CASE("sluice --validate prints control characters of a config escaped, never raw", "[e2e][validate]") {
  // A NUL in a key used to end the printed line there, losing what followed.
  nlohmann::json config = validConfig();
  config["listeners"][0][std::string("a\0b\x1b[31m", 8)] = 1;
  ProcessResult result = runValidate(config.dump(2));
  INFO(result.output);
  CHECK(result.exitCode == 2);
  CHECK_THAT(result.errorOutput, Catch::Contains("/listeners/0/a\\x00b\\x1b[31m: unknown key"));
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
