// MethodMatch: the "match" object shared by router routes and auth and
// rate_limit rules; and the metadata key checks those filters share.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/headers.h"
#include "core/json_reader.h"
#include "core/method_match.h"
#include "test/unit/config_helpers.h"

namespace sluice {
namespace {

using json = nlohmann::json;
using test::hasError;

std::optional<MethodMatch> read(const json& rule, ConfigErrors& errors, bool required = false) {
  JsonObject obj(rule, "/r", errors);
  return readMethodMatch(obj, "match", required);
}

}  // namespace

TEST_CASE("method match: the three forms", "[method_match]") {
  ConfigErrors errors;
  auto service = read(json::parse(R"({"match": {"service": "shop.Orders"}})"), errors);
  auto method = read(json::parse(R"({"match": {"method": "/shop.Orders/Place"}})"), errors);
  auto prefix = read(json::parse(R"({"match": {"prefix": "/shop."}})"), errors);
  INFO(errors.format());
  CHECK(errors.empty());
  REQUIRE((service && method && prefix));
  CHECK(service->kind == MethodMatch::Kind::Service);
  CHECK(service->matches("/shop.Orders/Get", "shop.Orders"));
  CHECK_FALSE(service->matches("/shop.OrdersX/Get", "shop.OrdersX"));
  CHECK(method->matches("/shop.Orders/Place", "shop.Orders"));
  CHECK_FALSE(method->matches("/shop.Orders/PlaceAll", "shop.Orders"));
  CHECK(prefix->matches("/shop.Catalog/List", "shop.Catalog"));
  CHECK_FALSE(prefix->matches("/other.Svc/Do", "other.Svc"));
}

TEST_CASE("method match: absent, required, and every mistake with its path", "[method_match]") {
  ConfigErrors none;
  CHECK_FALSE(read(json::object(), none));
  CHECK(none.empty());

  ConfigErrors errors;
  CHECK_FALSE(read(json::object(), errors, true));
  CHECK(hasError(errors, "/r/match", "required"));
  CHECK_FALSE(read(json::parse(R"({"match": {"service": "a.B", "prefix": "/"}})"), errors));
  CHECK(hasError(errors, "/r/match", "exactly one of \"service\", \"method\" or \"prefix\""));
  CHECK_FALSE(read(json::parse(R"({"match": {"service": "a.B/C"}})"), errors));
  CHECK(hasError(errors, "/r/match/service", "service name"));
  for (const char* bad : {"/a.B", "a.B/C", "/a.B/", "//C", "/a.B/C/D"}) {
    ConfigErrors e;
    CHECK_FALSE(read(json{{"match", {{"method", bad}}}}, e));
    CHECK(hasError(e, "/r/match/method", "full method name"));
  }
  // Characters no gRPC path the gateway lets through has: a match naming
  // them could never match (in an auth rule, a requirement silently gone).
  for (const auto& [form, bad] : std::vector<std::pair<std::string, std::string>>{
           {"service", "shop.v1.*"}, {"service", " shop.v1.Catalog"}, {"method", "/shop.Orders/Place?x"},
           {"prefix", "/shop.Orders/%50"}, {"prefix", "/shop.*"}}) {
    ConfigErrors e;
    INFO(form << " " << bad);
    CHECK_FALSE(read(json{{"match", {{form, bad}}}}, e));
    CHECK(hasError(e, "/r/match/" + form, bad.find('*') != std::string::npos ? "wildcards are not supported"
                                                                             : "letters, digits, '_', '.' and '-'"));
  }
  CHECK_FALSE(read(json::parse(R"({"match": {"prefix": "shop"}})"), errors));
  CHECK(hasError(errors, "/r/match/prefix", "must start with \"/\""));
  CHECK_FALSE(read(json::parse(R"({"match": {"prefix": "/", "typo": 1}})"), errors));
  CHECK(hasError(errors, "/r/match/typo", "unknown key"));
  CHECK_FALSE(read(json::parse(R"({"match": "/shop"})"), errors));
  CHECK(hasError(errors, "/r/match", "expected an object"));
}

TEST_CASE("metadata keys: gRPC syntax, and the keys gRPC/HTTP/2 own", "[method_match]") {
  for (const char* ok : {"x-api-key", "x_tenant.id", "a", "x-data-bin", "0"}) {
    CHECK(isValidMetadataKey(ok));
  }
  for (const char* bad : {"", "X-Upper", ":path", "with space", "x!"}) {
    CHECK_FALSE(isValidMetadataKey(bad));
  }
  for (const char* reserved : {":authority", "grpc-status", "grpc-timeout", "content-type", "te", "host",
                               "connection", "keep-alive", "proxy-connection", "upgrade", "transfer-encoding",
                               "content-length"}) {
    CHECK(isReservedMetadataKey(reserved));
  }
  for (const char* free : {"x-grpc-note", "authorization", "x-api-key", "user-agent"}) {
    CHECK_FALSE(isReservedMetadataKey(free));
  }
}

}  // namespace sluice
