// fault filter config: every mistake reported at its JSON path. (What the
// faults do is tested end to end, test/e2e/fault_e2e_test.cc.)
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/config_errors.h"
#include "filters/fault/config.h"
#include "test/unit/config_helpers.h"

namespace sluice {
namespace {

using test::hasError;
using json = nlohmann::json;

FilterFactorySharedPtr build(const json& config, ConfigErrors& errors) {
  return test::buildFilter(filters::fault::FaultConfigFactory(), config, errors);
}

TEST_CASE("fault: config mistakes are all reported with their paths", "[fault]") {
  ConfigErrors errors;
  auto factory = build(json::parse(R"({
    "rules": [
      {"match": {"prefix": "no-slash"}, "delay": {"ms": 0, "percent": 101}},
      {"delay": {"ms": 10, "from_header": true}, "abort": {"percent": -1}},
      {"delay": {"ms": 10, "max_ms": 50}, "abort": {"code": "OK", "from_header": true}},
      {"abort": {"code": "TEAPOT", "message": 7}},
      {"match": {"service": "a.B"}},
      {"delay": {"from_header": "yes", "extra": 1}},
      "text"
    ],
    "max_active_faults": -3,
    "typo": 1
  })"),
                       errors);
  CHECK_FALSE(factory);
  INFO(errors.format());
  CHECK(hasError(errors, "/f/config/rules/0/match/prefix", "start with"));
  CHECK(hasError(errors, "/f/config/rules/0/delay/ms", "out of range"));
  CHECK(hasError(errors, "/f/config/rules/0/delay/percent", "out of range [0, 100]"));
  CHECK(hasError(errors, "/f/config/rules/1/delay", "exactly one of \"ms\" and \"from_header\""));
  CHECK(hasError(errors, "/f/config/rules/1/abort", "exactly one of \"code\" and \"from_header\""));
  CHECK(hasError(errors, "/f/config/rules/1/abort/percent", "out of range"));
  CHECK(hasError(errors, "/f/config/rules/2/delay/max_ms", "only with \"from_header\""));
  CHECK(hasError(errors, "/f/config/rules/2/abort", "exactly one of"));
  CHECK(hasError(errors, "/f/config/rules/2/abort/code", "other than OK"));
  CHECK(hasError(errors, "/f/config/rules/3/abort/code", "\"TEAPOT\" is not a gRPC status name"));
  CHECK(hasError(errors, "/f/config/rules/3/abort/message", "expected a string"));
  CHECK(hasError(errors, "/f/config/rules/4", "needs \"delay\", \"abort\" or both"));
  CHECK(hasError(errors, "/f/config/rules/5/delay/from_header", "expected true or false"));
  CHECK(hasError(errors, "/f/config/rules/5/delay/extra", "unknown key"));
  CHECK(hasError(errors, "/f/config/rules/6", "expected an object"));
  CHECK(hasError(errors, "/f/config/max_active_faults", "non-negative integer"));
  CHECK(hasError(errors, "/f/config/typo", "unknown key"));

  ConfigErrors missing;
  CHECK_FALSE(build(json::object(), missing));
  CHECK(hasError(missing, "/f/config/rules", "required"));
  ConfigErrors empty;
  CHECK_FALSE(build(json::parse(R"({"rules": []})"), empty));
  CHECK(hasError(empty, "/f/config/rules", "at least one rule"));
}

TEST_CASE("fault: a valid config builds", "[fault]") {
  ConfigErrors errors;
  auto factory = build(json::parse(R"({
    "rules": [
      {"match": {"method": "/a.B/C", "headers": [{"name": "x-chaos", "present": true}]},
       "delay": {"from_header": true, "max_ms": 2000}, "abort": {"from_header": true, "percent": 0.5}},
      {"delay": {"ms": 250, "percent": 12.5}, "abort": {"code": "RESOURCE_EXHAUSTED", "message": "chaos"}}
    ],
    "max_active_faults": 0
  })"),
                       errors);
  INFO(errors.format());
  CHECK(factory);
  CHECK(errors.all().empty());
}

}  // namespace
}  // namespace sluice
