// metadata filter: config validation, request/response edits, x-forwarded-for.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/config_errors.h"
#include "core/registry.h"
#include "filters/metadata/config.h"
#include "test/unit/config_helpers.h"
#include "test/unit/fake_context.h"

namespace sluice {
namespace {

using test::FakeContext;
using test::hasError;
using json = nlohmann::json;

using Built = test::BuiltFilter;

Built build(const json& config) { return test::buildFilter(filters::metadata::MetadataConfigFactory(), config); }

std::vector<std::string> values(const HeaderMap& headers, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& h : headers) {
    if (h.name == name) out.push_back(h.value);
  }
  return out;
}

}  // namespace

TEST_CASE("metadata: request edits run remove, set, add in that order", "[metadata]") {
  auto b = build(json::parse(R"({
    "request": {
      "remove": ["x-drop", "x-replace"],
      "set": {"x-tenant": "acme"},
      "add": {"x-replace": "new", "x-multi": ["a", "b"], "x-data-bin": "AP8Q"}
    }})"));
  INFO(b.errors.format());
  REQUIRE(b.factory);
  FakeContext ctx;
  auto& h = ctx.requestHeaders();
  h.add(":path", "/pkg.Svc/Method");
  h.add("x-drop", "1");
  h.add("x-replace", "old");
  h.add("x-tenant", "spoofed");
  h.add("x-tenant", "spoofed-again");
  h.add("x-keep", "k");
  auto f = b.factory->createFilter(ctx);
  CHECK(f->onRequestHeaders(ctx) == FilterStatus::Continue);
  CHECK(h.get("x-drop") == nullptr);
  CHECK(values(h, "x-replace") == std::vector<std::string>{"new"});
  CHECK(values(h, "x-tenant") == std::vector<std::string>{"acme"});
  CHECK(values(h, "x-multi") == std::vector<std::string>{"a", "b"});
  CHECK(values(h, "x-data-bin") == std::vector<std::string>{"AP8Q"});
  CHECK(values(h, "x-keep") == std::vector<std::string>{"k"});
  CHECK(*h.get(":path") == "/pkg.Svc/Method");
}

TEST_CASE("metadata: response headers and trailers", "[metadata]") {
  auto b = build(json::parse(R"({
    "response": {"set": {"x-served-by": "sluice"}, "remove": ["x-internal"]},
    "response_trailers": {"add": {"x-trailer-note": "done"}}
  })"));
  REQUIRE(b.factory);

  SECTION("headers, then trailers") {
    FakeContext ctx;
    auto f = b.factory->createFilter(ctx);
    ctx.responseHeaders().add(":status", "200");
    ctx.responseHeaders().add("x-internal", "secret");
    CHECK(f->onResponseHeaders(ctx) == FilterStatus::Continue);
    CHECK(ctx.responseHeaders().get("x-internal") == nullptr);
    CHECK(*ctx.responseHeaders().get("x-served-by") == "sluice");
    ctx.responseTrailers().add("grpc-status", "0");
    CHECK(f->onResponseTrailers(ctx) == FilterStatus::Continue);
    CHECK(*ctx.responseTrailers().get("x-trailer-note") == "done");
    // Initial-metadata edits do not leak into trailers when headers were sent.
    CHECK(ctx.responseTrailers().get("x-served-by") == nullptr);
  }

  SECTION("trailers-only: initial-metadata edits apply to the single block") {
    FakeContext ctx;
    auto f = b.factory->createFilter(ctx);
    ctx.responseTrailers().add("grpc-status", "5");
    ctx.responseTrailers().add("x-internal", "secret");
    CHECK(f->onResponseTrailers(ctx) == FilterStatus::Continue);
    CHECK(ctx.responseTrailers().get("x-internal") == nullptr);
    CHECK(*ctx.responseTrailers().get("x-served-by") == "sluice");
    CHECK(*ctx.responseTrailers().get("x-trailer-note") == "done");
    CHECK(*ctx.responseTrailers().get("grpc-status") == "5");
  }
}

TEST_CASE("metadata: x-forwarded-for", "[metadata]") {
  SECTION("append to what the client sent") {
    auto b = build(json{{"x_forwarded_for", "append"}});
    REQUIRE(b.factory);
    FakeContext ctx;
    ctx.setPeerAddress("10.0.0.7:41234");
    ctx.requestHeaders().add("x-forwarded-for", "192.0.2.1");
    ctx.requestHeaders().add("x-forwarded-for", "198.51.100.2");
    auto f = b.factory->createFilter(ctx);
    REQUIRE(f->onRequestHeaders(ctx) == FilterStatus::Continue);
    CHECK(values(ctx.requestHeaders(), "x-forwarded-for") ==
          std::vector<std::string>{"192.0.2.1, 198.51.100.2, 10.0.0.7"});
  }
  SECTION("append with nothing before") {
    auto b = build(json{{"x_forwarded_for", "append"}});
    FakeContext ctx;
    ctx.setPeerAddress("[::1]:5000");
    auto f = b.factory->createFilter(ctx);
    REQUIRE(f->onRequestHeaders(ctx) == FilterStatus::Continue);
    CHECK(values(ctx.requestHeaders(), "x-forwarded-for") == std::vector<std::string>{"::1"});
  }
  SECTION("replace ignores what the client claims, in every address header") {
    auto b = build(json{{"x_forwarded_for", "replace"}});
    FakeContext ctx;
    ctx.setPeerAddress("127.0.0.1:9");
    ctx.requestHeaders().add("x-forwarded-for", "6.6.6.6");
    ctx.requestHeaders().add("x-real-ip", "6.6.6.6");
    ctx.requestHeaders().add("forwarded", "for=6.6.6.6");
    auto f = b.factory->createFilter(ctx);
    REQUIRE(f->onRequestHeaders(ctx) == FilterStatus::Continue);
    CHECK(values(ctx.requestHeaders(), "x-forwarded-for") == std::vector<std::string>{"127.0.0.1"});
    CHECK(values(ctx.requestHeaders(), "x-real-ip") == std::vector<std::string>{"127.0.0.1"});
    CHECK(values(ctx.requestHeaders(), "forwarded").empty());
  }
  SECTION("append leaves the other address headers to the proxies it trusts") {
    auto b = build(json{{"x_forwarded_for", "append"}});
    FakeContext ctx;
    ctx.setPeerAddress("10.0.0.7:9");
    ctx.requestHeaders().add("x-real-ip", "192.0.2.1");
    auto f = b.factory->createFilter(ctx);
    REQUIRE(f->onRequestHeaders(ctx) == FilterStatus::Continue);
    CHECK(values(ctx.requestHeaders(), "x-real-ip") == std::vector<std::string>{"192.0.2.1"});
  }
}

TEST_CASE("metadata: peerIp strips the port", "[metadata]") {
  using filters::metadata::peerIp;
  CHECK(peerIp("127.0.0.1:80") == "127.0.0.1");
  CHECK(peerIp("[2001:db8::1]:443") == "2001:db8::1");
  CHECK(peerIp("") == "");
}

TEST_CASE("metadata: config mistakes are all reported with their paths", "[metadata]") {
  auto b = build(json::parse(R"({
    "request": {
      "remove": ["Upper", 7],
      "set": {"grpc-status": "0", "x-ok": "line\nbreak", "x-num": 3, "x-pad": "v ", "content-length": "0",
              "x-request-id": "fixed"},
      "add": {"x-blob-bin": "not base64!", ":path": "/x", "x-list": ["a", 1]},
      "bogus": true
    },
    "response": "nope",
    "x_forwarded_for": "sometimes",
    "extra": 1
  })"));
  CHECK_FALSE(b.factory);
  INFO(b.errors.format());
  CHECK(hasError(b.errors, "/f/config/request/remove/0", "not a valid metadata key"));
  CHECK(hasError(b.errors, "/f/config/request/remove/1", "expected a string"));
  CHECK(hasError(b.errors, "/f/config/request/set/grpc-status", "reserved"));
  CHECK(hasError(b.errors, "/f/config/request/set/x-ok", "printable ASCII"));
  CHECK(hasError(b.errors, "/f/config/request/set/x-num", "expected a string"));
  CHECK(hasError(b.errors, "/f/config/request/set/x-pad", "begin or end with a space"));
  CHECK(hasError(b.errors, "/f/config/request/set/content-length", "reserved"));
  CHECK(hasError(b.errors, "/f/config/request/set/x-request-id", "the listener's to set"));
  CHECK(hasError(b.errors, "/f/config/request/add/x-blob-bin", "base64"));
  CHECK(hasError(b.errors, "/f/config/request/add/:path", "not a valid metadata key"));
  CHECK(hasError(b.errors, "/f/config/request/add/x-list/1", "expected a string"));
  CHECK(hasError(b.errors, "/f/config/request/bogus", "unknown key"));
  CHECK(hasError(b.errors, "/f/config/response", "expected an object"));
  CHECK(hasError(b.errors, "/f/config/x_forwarded_for", "append"));
  CHECK(hasError(b.errors, "/f/config/extra", "unknown key"));
}

}  // namespace sluice
