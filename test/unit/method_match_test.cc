// MethodMatch: the "match" object shared by router routes and auth and
// rate_limit rules; and the metadata key checks those filters share.
#include <catch2/catch.hpp>

#include <tuple>
#include <vector>

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
  CHECK(service->matches("/shop.Orders/Get", "shop.Orders", HeaderMap{}));
  CHECK_FALSE(service->matches("/shop.OrdersX/Get", "shop.OrdersX", HeaderMap{}));
  CHECK(method->matches("/shop.Orders/Place", "shop.Orders", HeaderMap{}));
  CHECK_FALSE(method->matches("/shop.Orders/PlaceAll", "shop.Orders", HeaderMap{}));
  CHECK(prefix->matches("/shop.Catalog/List", "shop.Catalog", HeaderMap{}));
  CHECK_FALSE(prefix->matches("/other.Svc/Do", "other.Svc", HeaderMap{}));
}

TEST_CASE("method match: absent, required, and every mistake with its path", "[method_match]") {
  ConfigErrors none;
  CHECK_FALSE(read(json::object(), none));
  CHECK(none.empty());

  ConfigErrors errors;
  CHECK_FALSE(read(json::object(), errors, true));
  CHECK(hasError(errors, "/r/match", "required"));
  CHECK_FALSE(read(json::parse(R"({"match": {"service": "a.B", "prefix": "/"}})"), errors));
  CHECK(hasError(errors, "/r/match", "exactly one of \"service\", \"method\", \"prefix\" or \"regex\""));
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
  // Dot segments and third slashes: every call to such a path is refused
  // before the filters, so the match could never hold.
  for (const auto& [form, bad] : std::vector<std::pair<std::string, std::string>>{
           {"service", ".."}, {"service", "."}, {"method", "/./x"}, {"method", "/a.B/.."}}) {
    ConfigErrors e;
    INFO(form << " " << bad);
    CHECK_FALSE(read(json{{"match", {{form, bad}}}}, e));
    CHECK(hasError(e, "/r/match/" + form, form == "service" ? "service name" : "full method name"));
  }
  for (const char* bad : {"/a/b/", "/a.B/C/", "//x", "/../", "/./x"}) {
    ConfigErrors e;
    INFO(bad);
    CHECK_FALSE(read(json{{"match", {{"prefix", bad}}}}, e));
    CHECK(hasError(e, "/r/match/prefix", "can match no call"));
  }
  for (const char* good : {"/", "/a", "/a.B/", "/a.B/C", "/..x", "/a.B/..", "/.x/"}) {
    ConfigErrors e;
    INFO(good << ": " << e.format());
    CHECK(read(json{{"match", {{"prefix", good}}}}, e));
  }
  CHECK_FALSE(read(json::parse(R"({"match": {"prefix": "shop"}})"), errors));
  CHECK(hasError(errors, "/r/match/prefix", "must start with \"/\""));
  CHECK_FALSE(read(json::parse(R"({"match": {"prefix": "/", "typo": 1}})"), errors));
  CHECK(hasError(errors, "/r/match/typo", "unknown key"));
  CHECK_FALSE(read(json::parse(R"({"match": "/shop"})"), errors));
  CHECK(hasError(errors, "/r/match", "expected an object"));
}

TEST_CASE("method match: headers, every one of which must match too", "[method_match]") {
  ConfigErrors errors;
  auto m = read(json::parse(R"({"match": {"prefix": "/", "headers": [
      {"name": "X-Tenant", "exact": "acme"},
      {"name": "x-env", "prefix": "stag", "invert": true},
      {"name": "x-debug", "present": false},
      {"name": ":authority", "prefix": "api."}]}})"),
                errors);
  INFO(errors.format());
  REQUIRE(m);
  REQUIRE(m->headers.size() == 4);
  CHECK(m->headers[0].name == "x-tenant");  // HTTP/2 names are lower case
  auto request = [](std::vector<Header> fields) {
    HeaderMap h;
    h.add(":authority", "api.example.com");
    for (auto& f : fields) h.add(std::move(f.name), std::move(f.value));
    return h;
  };
  CHECK(m->matches("/a.B/C", "a.B", request({{"x-tenant", "acme"}})));
  // A repeated header is its values joined with ",": a second value cannot
  // satisfy, nor slip past, a match on its own.
  CHECK_FALSE(m->matches("/a.B/C", "a.B", request({{"x-tenant", "other"}, {"x-tenant", "acme"}})));
  CHECK_FALSE(m->matches("/a.B/C", "a.B", request({{"x-tenant", "acme"}, {"x-env", "staging"}, {"x-env", "prod"}})));
  CHECK(m->matches("/a.B/C", "a.B", request({{"x-tenant", "acme"}, {"x-env", "prod"}, {"x-env", "staging"}})));
  CHECK(m->matches("/a.B/C", "a.B", request({{"x-tenant", "acme"}, {"x-env", "prod"}})));
  CHECK_FALSE(m->matches("/a.B/C", "a.B", request({{"x-tenant", "acme"}, {"x-env", "staging"}})));
  CHECK_FALSE(m->matches("/a.B/C", "a.B", request({{"x-tenant", "acme"}, {"x-debug", ""}})));
  CHECK_FALSE(m->matches("/a.B/C", "a.B", request({{"x-tenant", "acmex"}})));
  CHECK_FALSE(m->matches("/a.B/C", "a.B", request({})));
  HeaderMap other_authority;
  other_authority.add(":authority", "web.example.com");
  other_authority.add("x-tenant", "acme");
  CHECK_FALSE(m->matches("/a.B/C", "a.B", other_authority));
  auto cookie = read(json::parse(R"({"match": {"prefix": "/", "headers": [{"name": "cookie", "exact": "a=1; b=2"}]}})"),
                     errors);
  REQUIRE(cookie);
  HeaderMap crumbs;  // HTTP/2 may split a cookie into crumbs: they rejoin with "; "
  crumbs.add("cookie", "a=1");
  crumbs.add("cookie", "b=2");
  CHECK(cookie->matches("/a.B/C", "a.B", crumbs));
  HeaderMap host_only;  // no :authority: its host stands in
  host_only.add("host", "api.example.com");
  host_only.add("x-tenant", "acme");
  CHECK(m->matches("/a.B/C", "a.B", host_only));
  // The method still has to match.
  auto by_service = read(json::parse(R"({"match": {"service": "a.B", "headers": [{"name": "x-t", "present": true}]}})"),
                         errors);
  REQUIRE(by_service);
  CHECK_FALSE(by_service->matches("/c.D/E", "c.D", request({{"x-t", "1"}})));
  CHECK(by_service->matches("/a.B/E", "a.B", request({{"x-t", "1"}})));
  // gRPC clients may send values with a leading or trailing space, and the
  // gateway passes them: a match may name one.
  auto padded = read(json::parse(R"({"match": {"prefix": "/", "headers": [{"name": "x-a", "exact": " padded "}]}})"),
                     errors);
  REQUIRE(padded);
  CHECK(padded->matches("/a.B/E", "a.B", request({{"x-a", " padded "}})));
  CHECK_FALSE(padded->matches("/a.B/E", "a.B", request({{"x-a", "padded"}})));

  for (const auto& [bad, path, says] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {R"([{"exact": "a"}])", "/r/match/headers/0/name", "required"},
           {R"([{"name": "x-a"}])", "/r/match/headers/0",
            "exactly one of \"exact\", \"prefix\", \"suffix\", \"contains\", \"regex\" or \"present\""},
           {R"([{"name": "x-a", "suffix": "a", "contains": "b"}])", "/r/match/headers/0", "exactly one of"},
           {R"([{"name": "x-a", "contains": "tab\there"}])", "/r/match/headers/0/contains", "printable ASCII"},
           {R"([{"name": "x-a", "regex": "(unclosed"}])", "/r/match/headers/0/regex", "not a valid regular expression"},
           {R"([{"name": "x-a", "regex": "(a|b|c){1,900}"}])", "/r/match/headers/0/regex", "too complex"},
           {R"([{"name": "x-id-bin", "regex": "A+"}])", "/r/match/headers/0/regex", "\"present\""},
           {R"([{"name": "x-a", "prefix": ""}])", "/r/match/headers/0/prefix", "matches any value"},
           {R"([{"name": "x-a", "suffix": ""}])", "/r/match/headers/0/suffix", "matches any value"},
           {R"([{"name": "x-a", "contains": ""}])", "/r/match/headers/0/contains", "matches any value"},
           {R"([{"name": "x-a", "regex": "caf\u00e9"}])", "/r/match/headers/0/regex", "printable ASCII"},
           {R"([{"name": "x-a", "exact": "a", "present": true}])", "/r/match/headers/0", "exactly one of"},
           {R"([{"name": ":path", "exact": "/a"}])", "/r/match/headers/0/name", "not a metadata key"},
           {R"([{"name": "x a", "exact": "a"}])", "/r/match/headers/0/name", "not a metadata key"},
           {R"([{"name": "x-a", "exact": 1}])", "/r/match/headers/0/exact", ""},
           {R"([{"name": "x-a", "exact": "a", "typo": 1}])", "/r/match/headers/0/typo", "unknown key"},
           {R"([])", "/r/match/headers", "empty"},
           {R"([{"name": "connection", "present": true}])", "/r/match/headers/0/name", "connection header"},
           {R"([{"name": "x-a", "exact": "tab\there"}])", "/r/match/headers/0/exact", "printable ASCII"},
           {R"([{"name": "x-a", "prefix": "caf\u00e9"}])", "/r/match/headers/0/prefix", "printable ASCII"},
           {R"([{"name": "x-id-bin", "exact": "AAE="}])", "/r/match/headers/0/exact", "\"present\""},
           {R"({"name": "x-a"})", "/r/match/headers", ""}}) {
    ConfigErrors e;
    INFO(bad);
    CHECK_FALSE(read(json::parse(R"({"match": {"prefix": "/", "headers": )" + bad + "}}"), e));
    INFO(e.format());
    CHECK(hasError(e, path, says));
  }
}

TEST_CASE("method match: a path regex, and suffix, contains and regex header matches", "[method_match]") {
  ConfigErrors errors;
  auto by_regex = read(json::parse(R"j({"match": {"regex": "/shop\\.v[0-9]+\\.Orders/(Get|List)"}})j"), errors);
  auto headers = read(json::parse(R"({"match": {"prefix": "/", "headers": [
      {"name": "x-user", "suffix": "@acme.com"},
      {"name": "x-class", "contains": "batch"},
      {"name": "x-tenant", "regex": "t-[0-9]{3}"}]}})"),
                      errors);
  INFO(errors.format());
  REQUIRE((by_regex && headers));
  CHECK(by_regex->kind == MethodMatch::Kind::Regex);
  // The whole path must match, not a part of it.
  CHECK(by_regex->matches("/shop.v1.Orders/Get", "shop.v1.Orders", HeaderMap{}));
  CHECK(by_regex->matches("/shop.v12.Orders/List", "shop.v12.Orders", HeaderMap{}));
  CHECK_FALSE(by_regex->matches("/shop.v1.Orders/GetAll", "shop.v1.Orders", HeaderMap{}));
  CHECK_FALSE(by_regex->matches("/x/shop.v1.Orders/Get", "x", HeaderMap{}));
  CHECK_FALSE(by_regex->matches("/shopXv1.Orders/Get", "shopXv1.Orders", HeaderMap{}));
  auto request = [](const std::string& user, const std::string& klass, const std::string& tenant) {
    HeaderMap h;
    h.add("x-user", user);
    h.add("x-class", klass);
    h.add("x-tenant", tenant);
    return h;
  };
  CHECK(headers->matches("/a.B/C", "a.B", request("ann@acme.com", "nightly-batch-7", "t-042")));
  CHECK_FALSE(headers->matches("/a.B/C", "a.B", request("ann@acme.com.evil", "batch", "t-042")));
  CHECK_FALSE(headers->matches("/a.B/C", "a.B", request("ann@acme.com", "interactive", "t-042")));
  CHECK_FALSE(headers->matches("/a.B/C", "a.B", request("ann@acme.com", "batch", "t-0421")));  // whole value
  CHECK_FALSE(headers->matches("/a.B/C", "a.B", request("ann@acme.com", "batch", "xt-042")));
  HeaderMap twice = request("ann@acme.com", "batch", "t-042");
  twice.add("x-tenant", "t-043");  // joined "t-042,t-043": the pattern no longer matches the whole
  CHECK_FALSE(headers->matches("/a.B/C", "a.B", twice));
  // A regex on a client's 64 KiB header takes linear time (RE2): no backtracking blow-up.
  auto nested = read(json::parse(R"({"match": {"prefix": "/", "headers": [{"name": "x-a", "regex": "(a+)+b"}]}})"),
                     errors);
  REQUIRE(nested);
  HeaderMap huge;
  huge.add("x-a", std::string(65536, 'a'));
  CHECK_FALSE(nested->matches("/a.B/C", "a.B", huge));
  // Values are bytes: "." matches 0x80-0xFF too (not only whole UTF-8
  // characters), so an inverted pattern cannot be slipped past with one.
  auto prod = read(json::parse(R"({"match": {"prefix": "/", "headers": [
      {"name": "x-env", "regex": "prod.*", "invert": true},
      {"name": ":authority", "regex": "api\\.example\\.com(:[0-9]+)?"}]}})"),
                   errors);
  INFO(errors.format());
  REQUIRE(prod);
  HeaderMap obs_text;
  obs_text.add(":authority", "api.example.com:8443");
  obs_text.add("x-env", "prod\xff");
  CHECK_FALSE(prod->matches("/a.B/C", "a.B", obs_text));
  HeaderMap staging;
  staging.add("host", "api.example.com");  // no :authority: its host stands in
  staging.add("x-env", "staging");
  CHECK(prod->matches("/a.B/C", "a.B", staging));

  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {R"({"regex": "/shop.(Orders"})", "not a valid regular expression"},
           {R"({"regex": "/(a|b|c|d){500}"})", "too complex"},
           {R"({"regex": "shop\\.v1\\..*"})", "can match no call"},
           {R"({"regex": "/a", "prefix": "/"})", "exactly one of"}}) {
    ConfigErrors e;
    INFO(bad);
    CHECK_FALSE(read(json::parse(R"({"match": )" + bad + "}"), e));
    INFO(e.format());
    CHECK(hasError(e, says == "exactly one of" ? "/r/match" : "/r/match/regex", says));
  }
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
