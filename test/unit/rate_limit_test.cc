// rate_limit filter: token buckets, the bounded key table, calls and message
// limits per route and per metadata value, the retry hint, config validation.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/config_errors.h"
#include "core/registry.h"
#include "filters/rate_limit/bucket_table.h"
#include "filters/rate_limit/config.h"
#include "filters/rate_limit/filter.h"
#include "test/unit/config_helpers.h"
#include "test/unit/fake_context.h"

namespace sluice {
namespace {

using test::FakeContext;
using test::hasError;
using json = nlohmann::json;
using filters::rate_limit::BucketKind;
using filters::rate_limit::BucketSpec;
using filters::rate_limit::BucketTable;
using namespace std::chrono_literals;

FilterFactorySharedPtr build(const json& config, ConfigErrors& errors) {
  return test::buildFilter(filters::rate_limit::RateLimitConfigFactory(), config, errors);
}

// Starts a call; true if it was let through.
bool call(const FilterFactory& factory, const std::string& path, const std::vector<Header>& headers = {},
          FakeContext** out = nullptr) {
  static std::vector<std::unique_ptr<FakeContext>> keep;  // contexts outlive filters in tests
  keep.push_back(std::make_unique<FakeContext>(path));
  FakeContext& ctx = *keep.back();
  for (const auto& h : headers) ctx.requestHeaders().add(h.name, h.value);
  auto f = factory.createFilter(ctx);
  auto status = f->onRequestHeaders(ctx);
  if (out != nullptr) *out = &ctx;
  return status == FilterStatus::Continue && !ctx.ended();
}

}  // namespace

TEST_CASE("rate_limit: a bucket allows its burst, then refills at its rate", "[rate_limit]") {
  BucketTable table(10);
  BucketSpec spec{3, 2};  // burst 3, 2 per second
  auto t0 = BucketTable::Clock::now();
  for (int i = 0; i < 3; ++i) CHECK(table.take(0, "k", BucketKind::Calls, spec, t0).allowed);
  auto refused = table.take(0, "k", BucketKind::Calls, spec, t0);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after == 500ms);
  CHECK_FALSE(table.take(0, "k", BucketKind::Calls, spec, t0 + 400ms).allowed);
  CHECK(table.take(0, "k", BucketKind::Calls, spec, t0 + 500ms).allowed);
  // Idle for long: the bucket is full again, never fuller.
  for (int i = 0; i < 3; ++i) CHECK(table.take(0, "k", BucketKind::Calls, spec, t0 + 1h).allowed);
  CHECK_FALSE(table.take(0, "k", BucketKind::Calls, spec, t0 + 1h).allowed);
  // Other keys have their own buckets.
  CHECK(table.take(0, "other", BucketKind::Calls, spec, t0).allowed);
}

TEST_CASE("rate_limit: a million distinct keys keep the table at its bound", "[rate_limit]") {
  BucketTable table(1000);
  BucketSpec spec{1, 0.001};
  auto t0 = BucketTable::Clock::now();
  CHECK(table.take(0, "hot", BucketKind::Calls, spec, t0).allowed);
  for (int i = 0; i < 1'000'000; ++i) {
    (void)table.take(0, "key-" + std::to_string(i), BucketKind::Calls, spec, t0);
    if (i % 100 == 0) (void)table.take(0, "hot", BucketKind::Calls, spec, t0);  // recently used: survives eviction
  }
  CHECK(table.size() == 1000);
  CHECK_FALSE(table.take(0, "hot", BucketKind::Calls, spec, t0).allowed);  // still remembered as empty
  CHECK(table.take(0, "key-0", BucketKind::Calls, spec, t0).allowed);       // evicted long ago: starts full
}

TEST_CASE("rate_limit: shared buckets are never evicted by keys", "[rate_limit]") {
  BucketTable table(2, 1, 1);  // room for two keys, one shared bucket
  BucketSpec spec{2, 1.0 / 3600};
  auto t0 = BucketTable::Clock::now();
  CHECK(table.takeShared(0, spec, t0).allowed);
  CHECK(table.takeShared(0, spec, t0).allowed);
  CHECK_FALSE(table.takeShared(0, spec, t0).allowed);
  for (int i = 0; i < 1000; ++i) CHECK(table.take(0, "key-" + std::to_string(i), BucketKind::Calls, spec, t0).allowed);
  CHECK(table.size() == 2);
  CHECK_FALSE(table.takeShared(0, spec, t0).allowed);
}

TEST_CASE("rate_limit: keys cycled in one rule's partition never evict another rule's", "[rate_limit]") {
  BucketTable table(2, 2);  // two keys in each of two partitions
  BucketSpec spec{1, 1.0 / 3600};
  auto t0 = BucketTable::Clock::now();
  CHECK(table.take(1, "me", BucketKind::Calls, spec, t0).allowed);
  CHECK_FALSE(table.take(1, "me", BucketKind::Calls, spec, t0).allowed);
  for (int i = 0; i < 1000; ++i) CHECK(table.take(0, "key-" + std::to_string(i), BucketKind::Calls, spec, t0).allowed);
  CHECK(table.size(0) == 2);
  CHECK(table.size(1) == 1);
  CHECK_FALSE(table.take(1, "me", BucketKind::Calls, spec, t0).allowed);  // still remembered as empty
  // The same key in another partition is another bucket.
  CHECK(table.take(0, "me", BucketKind::Calls, spec, t0).allowed);
}

TEST_CASE("rate_limit: a caller's calls and messages buckets are one entry, evicted together", "[rate_limit]") {
  BucketTable table(1);  // room for one caller
  BucketSpec calls{2, 1.0 / 3600};
  BucketSpec messages{1000, 1000};
  auto t0 = BucketTable::Clock::now();
  // One caller limited on both kinds: its messages never push out its calls.
  for (int i = 0; i < 2; ++i) {
    CHECK(table.take(0, "me", BucketKind::Calls, calls, t0).allowed);
    CHECK(table.take(0, "me", BucketKind::Messages, messages, t0).allowed);
  }
  CHECK(table.size() == 1);
  CHECK_FALSE(table.take(0, "me", BucketKind::Calls, calls, t0).allowed);
  // The kinds are separate buckets of the entry.
  CHECK(table.take(0, "me", BucketKind::Messages, messages, t0).allowed);
}

TEST_CASE("rate_limit: an entry loaded again unchanged keeps its buckets, a changed one starts full", "[rate_limit]") {
  const json config = json::parse(R"({"rules": [{"calls": {"rate": 2, "per": "hour"}}]})");
  ConfigErrors errors;
  auto first = build(config, errors);
  INFO(errors.format());
  REQUIRE(first);
  CHECK(call(*first, "/a.S/M"));
  CHECK(call(*first, "/a.S/M"));
  CHECK_FALSE(call(*first, "/a.S/M"));
  // A reload: the new config is built while the old one still serves.
  auto reloaded = build(config, errors);
  REQUIRE(reloaded);
  CHECK_FALSE(call(*reloaded, "/a.S/M"));
  json changed = config;
  changed["rules"][0]["calls"]["rate"] = 3;  // a signed 3 in nlohmann's terms: still a count
  auto other = build(changed, errors);
  INFO(errors.format());
  REQUIRE(other);
  CHECK(call(*other, "/a.S/M"));
  // Once no config uses the entry, its buckets are gone.
  first.reset();
  reloaded.reset();
  auto fresh = build(config, errors);
  CHECK(call(*fresh, "/a.S/M"));
}

TEST_CASE("rate_limit: calls per route, RESOURCE_EXHAUSTED with a retry hint", "[rate_limit]") {
  ConfigErrors errors;
  auto factory = build(json::parse(R"({"rules": [
      {"match": {"method": "/shop.Orders/Place"}, "calls": {"rate": 2, "per": "minute"}},
      {"match": {"service": "shop.Orders"}, "calls": {"rate": 1000, "burst": 1000}}
  ]})"),
                       errors);
  INFO(errors.format());
  REQUIRE(factory);
  CHECK(call(*factory, "/shop.Orders/Place"));
  CHECK(call(*factory, "/shop.Orders/Place"));
  FakeContext* ctx = nullptr;
  CHECK_FALSE(call(*factory, "/shop.Orders/Place", {}, &ctx));
  CHECK(ctx->status() == StatusCode::ResourceExhausted);
  CHECK(ctx->statusMessage().find("2 calls per minute") != std::string::npos);
  const std::string* hint = ctx->local_reply_trailers.get("grpc-retry-pushback-ms");
  REQUIRE(hint != nullptr);
  auto ms = std::stoll(*hint);
  CHECK(ms > 25'000);
  CHECK(ms <= 30'000);
  // Another route has its own bucket; unmatched methods are not limited.
  CHECK(call(*factory, "/shop.Orders/Get"));
  for (int i = 0; i < 50; ++i) CHECK(call(*factory, "/other.Svc/Do"));
}

TEST_CASE("rate_limit: one bucket per metadata value", "[rate_limit]") {
  ConfigErrors errors;
  auto factory = build(json::parse(R"({"rules": [{"key": "x-tenant", "calls": {"rate": 1, "per": "hour"}}]})"),
                       errors);
  REQUIRE(factory);
  CHECK(call(*factory, "/a.B/C", {{"x-tenant", "acme"}}));
  CHECK_FALSE(call(*factory, "/a.B/C", {{"x-tenant", "acme"}}));
  CHECK(call(*factory, "/a.B/C", {{"x-tenant", "globex"}}));
  // Callers without the key share one bucket.
  CHECK(call(*factory, "/a.B/C"));
  CHECK_FALSE(call(*factory, "/a.B/C"));
  // Very long values are keyed by digest: still one bucket per value.
  std::string long_a(5000, 'a');
  std::string long_b = long_a + "b";
  CHECK(call(*factory, "/a.B/C", {{"x-tenant", long_a}}));
  CHECK_FALSE(call(*factory, "/a.B/C", {{"x-tenant", long_a}}));
  CHECK(call(*factory, "/a.B/C", {{"x-tenant", long_b}}));
}

TEST_CASE("rate_limit: streamed request messages", "[rate_limit]") {
  ConfigErrors errors;
  auto factory = build(json::parse(R"({"rules": [{"messages": {"rate": 1, "per": "hour", "burst": 3}}]})"), errors);
  REQUIRE(factory);
  FakeContext ctx("/a.B/Stream");
  auto f = factory->createFilter(ctx);
  REQUIRE(f->onRequestHeaders(ctx) == FilterStatus::Continue);
  Message m;
  for (int i = 0; i < 3; ++i) CHECK(f->onRequestMessage(ctx, m) == FilterStatus::Continue);
  CHECK_FALSE(ctx.ended());
  CHECK(f->onRequestMessage(ctx, m) == FilterStatus::StopIteration);
  CHECK(ctx.status() == StatusCode::ResourceExhausted);
  CHECK(ctx.statusMessage().find("1 messages per hour") != std::string::npos);
  CHECK(ctx.local_reply_trailers.get("grpc-retry-pushback-ms") != nullptr);
}

TEST_CASE("rate_limit: config mistakes are all reported with their paths", "[rate_limit]") {
  ConfigErrors errors;
  auto factory = build(json::parse(R"({
    "rules": [
      {"match": {"prefix": "no-slash"}, "calls": {"rate": 0}},
      {"key": "Not A Key", "messages": {"rate": 5, "per": "fortnight", "burst": -1}},
      {"match": {"service": "a.B"}},
      "text",
      {"key": "x-request-id", "calls": {"rate": 1, "per": "hour"}},
      {"key": "grpc-timeout", "calls": {"rate": 1, "per": "hour"}}
    ],
    "max_keys": 0,
    "typo": 1
  })"),
                       errors);
  CHECK_FALSE(factory);
  INFO(errors.format());
  CHECK(hasError(errors, "/f/config/rules/0/match/prefix", "start with"));
  CHECK(hasError(errors, "/f/config/rules/0/calls/rate", "out of range"));
  CHECK(hasError(errors, "/f/config/rules/1/key", "not a metadata key"));
  CHECK(hasError(errors, "/f/config/rules/1/messages/per", "fortnight"));
  CHECK(hasError(errors, "/f/config/rules/1/messages/burst"));
  CHECK(hasError(errors, "/f/config/rules/2", "needs \"calls\", \"messages\" or both"));
  CHECK(hasError(errors, "/f/config/rules/3", "expected an object"));
  CHECK(hasError(errors, "/f/config/rules/4/key", "every call has its own"));
  CHECK(hasError(errors, "/f/config/rules/5/key", "reserved"));
  CHECK(hasError(errors, "/f/config/max_keys", "out of range"));
  CHECK(hasError(errors, "/f/config/typo", "unknown key"));

  // Each keyed rule keeps max_keys buckets: the bound is on them all.
  ConfigErrors too_many;
  CHECK_FALSE(build(json::parse(R"({"rules": [{"key": "x-a", "calls": {"rate": 1}}, {"key": "x-b", "calls": {"rate": 1}}],
                                    "max_keys": 6000000})"),
                    too_many));
  CHECK(hasError(too_many, "/f/config/max_keys", "6000000 per rule with a key, 2 such rules"));

  ConfigErrors missing;
  CHECK_FALSE(build(json::object(), missing));
  CHECK(hasError(missing, "/f/config/rules", "required"));
}

}  // namespace sluice
