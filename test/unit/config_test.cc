// Config loading and validation: every mistake is reported with its JSON path.
#include <catch2/catch.hpp>

#include <tuple>
#include <vector>

#include "core/config.h"
#include "core/config_errors.h"
#include "core/registry.h"
#include "filters/builtin.h"
#include "test/unit/config_helpers.h"

namespace sluice {
namespace {

using test::hasError;

struct Loaded {
  GatewayConfigConstPtr config;
  ConfigErrors errors;
};

Loaded load(const std::string& text) {
  FilterRegistry registry;
  registerBuiltinFilters(registry);
  Loaded out;
  out.config = loadConfig(text, registry, out.errors);
  return out;
}

const char* kValid = R"({
  "listeners": [
    { "name": "grpc", "address": "127.0.0.1:8080", "max_message_bytes": 1048576,
      "filters": [
        { "name": "router", "config": { "routes": [
            { "match": { "service": "shop.v1.Catalog" }, "cluster": "catalog" },
            { "match": { "method": "/shop.v1.Orders/Place" }, "cluster": "orders" },
            { "match": { "prefix": "/" }, "cluster": "catalog" } ] } },
        { "name": "proxy" } ] } ],
  "clusters": [
    { "name": "catalog", "endpoints": ["127.0.0.1:50061", "127.0.0.1:50062"] },
    { "name": "orders", "endpoints": ["[::1]:50061"] } ]
})";

}  // namespace

TEST_CASE("the issue's example config loads", "[config]") {
  auto r = load(kValid);
  INFO(r.errors.format());
  REQUIRE(r.config);
  REQUIRE(r.config->listeners.size() == 1);
  const auto& l = r.config->listeners[0];
  CHECK(l.name == "grpc");
  CHECK(l.address.toString() == "127.0.0.1:8080");
  CHECK(l.max_message_bytes == 1048576);
  REQUIRE(l.filters.size() == 2);
  CHECK(l.filters[0].name == "router");
  CHECK(l.filters[1].name == "proxy");
  REQUIRE(r.config->clusters.size() == 2);
  CHECK(r.config->clusters[0].endpoints.size() == 2);
  CHECK(r.config->clusters[1].endpoints[0].address.ipv6);
  CHECK(r.config->findCluster("orders") != nullptr);
  // No PINGs to backends unless asked: gRPC servers refuse frequent ones.
  CHECK(r.config->clusters[0].keepalive_interval_ms == 0);
}

TEST_CASE("max_message_bytes defaults to 16 MiB", "[config]") {
  auto r = load(R"({"listeners":[{"name":"l","address":"127.0.0.1:0","filters":[
      {"name":"router","config":{"routes":[{"match":{"prefix":"/"},"cluster":"c"}]}},{"name":"proxy"}]}],
      "clusters":[{"name":"c","endpoints":["127.0.0.1:1"]}]})");
  REQUIRE(r.config);
  CHECK(r.config->listeners[0].max_message_bytes == 16u * 1024 * 1024);
}

TEST_CASE("config mistakes name their JSON path", "[config]") {
  auto with = [](const std::string& listener_extra, const std::string& route, const std::string& cluster) {
    return load(R"({"listeners":[{"name":"l","address":"127.0.0.1:0")" + listener_extra +
                R"(,"filters":[{"name":"router","config":{"routes":[)" + route +
                R"(]}},{"name":"proxy"}]}],"clusters":[)" + cluster + "]}");
  };
  const std::string good_route = R"({"match":{"prefix":"/"},"cluster":"c"})";
  const std::string good_cluster = R"({"name":"c","endpoints":["127.0.0.1:1"]})";

  SECTION("unknown key") {
    auto r = with(R"(,"colour":"blue")", good_route, good_cluster);
    CHECK_FALSE(r.config);
    CHECK(hasError(r.errors, "/listeners/0/colour", "unknown key"));
  }
  SECTION("wrong type") {
    auto r = with(R"(,"max_message_bytes":"big")", good_route, good_cluster);
    CHECK(hasError(r.errors, "/listeners/0/max_message_bytes", "non-negative integer"));
  }
  SECTION("request id keys are booleans") {
    auto r = with(R"(,"generate_request_id":"yes","preserve_external_request_id":1,"always_set_request_id_in_response":"no")",
                  good_route, good_cluster);
    CHECK(hasError(r.errors, "/listeners/0/generate_request_id", "true or false"));
    CHECK(hasError(r.errors, "/listeners/0/preserve_external_request_id", "true or false"));
    CHECK(hasError(r.errors, "/listeners/0/always_set_request_id_in_response", "true or false"));
  }
  SECTION("health_service: service names and their clusters") {
    auto r = with(R"(,"health_service":{"services":{"":["c"],"a.B":["nope"],"bad name":["c"],"x.Y":"c","z.W":[3],
                  "ok.S":["c"]},"extra":1})", good_route, good_cluster);
    CHECK_FALSE(r.config);
    INFO(r.errors.format());
    CHECK(hasError(r.errors, "/listeners/0/health_service/services/a.B/0", "unknown cluster \"nope\""));
    CHECK(hasError(r.errors, "/listeners/0/health_service/services/bad name", "not a service name"));
    CHECK(hasError(r.errors, "/listeners/0/health_service/services/x.Y", "array of cluster names"));
    CHECK(hasError(r.errors, "/listeners/0/health_service/services/z.W/0", "cluster name"));
    CHECK(hasError(r.errors, "/listeners/0/health_service/extra", "unknown key"));
    CHECK(r.errors.size() == 5);
    auto good = with(R"(,"health_service":{"services":{"":["c"],"ok.S":["c","c"]}})", good_route, good_cluster);
    REQUIRE(good.config);
    REQUIRE(good.config->listeners[0].health_service);
    CHECK(good.config->listeners[0].health_service->services.at("ok.S").size() == 2);
    auto off = with("", good_route, good_cluster);
    REQUIRE(off.config);
    CHECK_FALSE(off.config->listeners[0].health_service);
  }
  SECTION("request id keys: defaults and values") {
    auto defaults = with("", good_route, good_cluster);
    REQUIRE(defaults.config);
    CHECK(defaults.config->listeners[0].generate_request_id);
    CHECK(defaults.config->listeners[0].preserve_external_request_id);
    CHECK_FALSE(defaults.config->listeners[0].always_set_request_id_in_response);
    auto r = with(R"(,"generate_request_id":false,"preserve_external_request_id":false,"always_set_request_id_in_response":true)",
                  good_route, good_cluster);
    REQUIRE(r.config);
    CHECK_FALSE(r.config->listeners[0].generate_request_id);
    CHECK_FALSE(r.config->listeners[0].preserve_external_request_id);
    CHECK(r.config->listeners[0].always_set_request_id_in_response);
  }
  SECTION("unknown cluster in a route") {
    auto r = with("", good_route + R"(,{"match":{"service":"a.B"},"cluster":"nope"})", good_cluster);
    CHECK(hasError(r.errors, "/listeners/0/filters/0/config/routes/1/cluster", "unknown cluster \"nope\""));
  }
  SECTION("a match needs exactly one criterion") {
    auto r = with("", R"({"match":{"prefix":"/","service":"a.B"},"cluster":"c"})", good_cluster);
    CHECK(hasError(r.errors, "/listeners/0/filters/0/config/routes/0/match", "exactly one"));
  }
  SECTION("method must be a full method name") {
    auto r = with("", R"({"match":{"method":"Place"},"cluster":"c"})", good_cluster);
    CHECK(hasError(r.errors, "/listeners/0/filters/0/config/routes/0/match/method"));
  }
  SECTION("bad endpoint address") {
    auto r = with("", good_route, R"({"name":"c","endpoints":["127.0.0.1"]})");
    CHECK(hasError(r.errors, "/clusters/0/endpoints/0", "missing :port"));
  }
  SECTION("endpoint port 0 is refused") {
    auto r = with("", good_route, R"({"name":"c","endpoints":["127.0.0.1:0"]})");
    CHECK(hasError(r.errors, "/clusters/0/endpoints/0", "1 to 65535"));
  }
  SECTION("endpoint digits that are not a strict IPv4 literal are not looked up") {
    for (const char* ep : {"010.001.002.003:50051", "1234:80", "127.1:80"}) {
      auto r = with("", good_route, std::string(R"({"name":"c","endpoints":[")") + ep + R"("]})");
      INFO(ep << ": " << r.errors.format());
      CHECK(hasError(r.errors, "/clusters/0/endpoints/0", "neither an IPv4 address as written"));
    }
  }
  SECTION("hash_header: any case means the lower-case name; only ring_hash hashes") {
    auto r = with("", good_route,
                  R"({"name":"c","lb_policy":"ring_hash","hash_header":"X-User-Id","endpoints":["127.0.0.1:1"]})");
    INFO(r.errors.format());
    REQUIRE(r.config);
    CHECK(r.config->clusters[0].hash_header == "x-user-id");
    r = with("", good_route, R"({"name":"c","hash_header":"x-user","endpoints":["127.0.0.1:1"]})");
    CHECK(hasError(r.errors, "/clusters/0/hash_header", "only lb_policy \"ring_hash\""));
    // A header no request can carry would leave every call to the random fallback.
    for (const char* bad : {"bad header", "x-user:1"}) {
      r = with("", good_route, std::string(R"({"name":"c","lb_policy":"ring_hash","hash_header":")") + bad +
                                   R"(","endpoints":["127.0.0.1:1"]})");
      INFO(bad << ": " << r.errors.format());
      CHECK(hasError(r.errors, "/clusters/0/hash_header", "is not a metadata key"));
    }
  }
  SECTION("names: 1 to 128 letters, digits, '_', '.' or '-'") {
    for (const char* bad : {"", "c d", "c\\n", "c: 1", "ümlaut"}) {
      auto r = with("", good_route, std::string(R"({"name":")") + bad + R"(","endpoints":["127.0.0.1:1"]})");
      INFO(bad << ": " << r.errors.format());
      CHECK(hasError(r.errors, "/clusters/0/name", "is not a name"));
    }
    auto r = with("", good_route, R"({"name":"C_1.2-x","endpoints":["127.0.0.1:1"]})");
    CHECK(hasError(r.errors, "/listeners/0/filters/0/config/routes/0/cluster", "unknown cluster"));
    CHECK_FALSE(hasError(r.errors, "/clusters/0/name"));
  }
  SECTION("max_pending_streams is at least 1: with 0 no call could wait for the first connection") {
    auto r = with("", good_route, R"({"name":"c","circuit_breakers":{"max_pending_streams":0},"endpoints":["127.0.0.1:1"]})");
    CHECK(hasError(r.errors, "/clusters/0/circuit_breakers/max_pending_streams", "out of range [1,"));
  }
  SECTION("dns_refresh_ms below 100 ms") {
    auto r = with("", good_route, R"({"name":"c","dns_refresh_ms":5,"endpoints":["127.0.0.1:1"]})");
    CHECK(hasError(r.errors, "/clusters/0/dns_refresh_ms"));
    r = with("", good_route, R"({"name":"c","dns_refresh_ms":100,"endpoints":["127.0.0.1:1"]})");
    CHECK(r.config);
  }
  SECTION("weighted_clusters: known clusters, weights adding up to more than 0, instead of cluster") {
    auto r = with("", R"({"match":{"prefix":"/"},"weighted_clusters":[{"cluster":"c","weight":3},{"cluster":"d","weight":1}]})",
                  good_cluster + R"(,{"name":"d","endpoints":["127.0.0.1:2"]})");
    INFO(r.errors.format());
    REQUIRE(r.config);
    for (const auto& [json_routes, path, says] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {R"({"match":{"prefix":"/"}})", "/listeners/0/filters/0/config/routes/0",
              "exactly one of \"cluster\" or \"weighted_clusters\""},
             {R"({"match":{"prefix":"/"},"cluster":"c","weighted_clusters":[{"cluster":"c","weight":1}]})",
              "/listeners/0/filters/0/config/routes/0", "exactly one of"},
             {R"({"match":{"prefix":"/"},"weighted_clusters":[]})",
              "/listeners/0/filters/0/config/routes/0/weighted_clusters", "at least one"},
             {R"({"match":{"prefix":"/"},"weighted_clusters":[{"cluster":"nope","weight":1}]})",
              "/listeners/0/filters/0/config/routes/0/weighted_clusters/0/cluster", "unknown cluster \"nope\""},
             {R"({"match":{"prefix":"/"},"weighted_clusters":[{"cluster":"c"}]})",
              "/listeners/0/filters/0/config/routes/0/weighted_clusters/0/weight", "required"},
             {R"({"match":{"prefix":"/"},"weighted_clusters":[{"cluster":"c","weight":0}]})",
              "/listeners/0/filters/0/config/routes/0/weighted_clusters", "add up to 0"},
             {R"({"match":{"prefix":"/"},"weighted_clusters":[{"cluster":"c","weight":1},{"cluster":"c","weight":2}]})",
              "/listeners/0/filters/0/config/routes/0/weighted_clusters/1/cluster", "listed twice"},
             {R"({"match":{"prefix":"/"},"cluster":"c","hash_header":"x-user"})",
              "/listeners/0/filters/0/config/routes/0/hash_header", "only a route with weighted_clusters"},
             {R"({"match":{"prefix":"/"},"weighted_clusters":[{"cluster":"c","weight":1}],"hash_header":"x user"})",
              "/listeners/0/filters/0/config/routes/0/hash_header", "not a metadata key"}}) {
      auto bad = with("", json_routes, good_cluster);
      INFO(json_routes << ": " << bad.errors.format());
      CHECK_FALSE(bad.config);
      CHECK(hasError(bad.errors, path, says));
    }
  }
  SECTION("dns_addresses is first or all") {
    auto r = with("", good_route, R"({"name":"c","dns_addresses":"every","endpoints":["127.0.0.1:1"]})");
    CHECK(hasError(r.errors, "/clusters/0/dns_addresses", "unknown value \"every\" (known: first, all)"));
    r = with("", good_route, R"({"name":"c","dns_addresses":"all","endpoints":["127.0.0.1:1"]})");
    REQUIRE(r.config);
    CHECK(r.config->clusters[0].dns_addresses == ClusterConfig::DnsAddresses::All);
    CHECK(r.config->clusters[0].endpoints[0].addresses == std::vector<SocketAddress>{{"127.0.0.1", 1, false}});
  }
  SECTION("a health-check interval alone below the default timeout is reported where it was written") {
    auto r = with("", good_route, R"({"name":"c","health_check":{"interval_ms":500},"endpoints":["127.0.0.1:1"]})");
    CHECK(hasError(r.errors, "/clusters/0/health_check/interval_ms", "(1000, the default): set timeout_ms too"));
    r = with("", good_route,
             R"({"name":"c","health_check":{"interval_ms":500,"timeout_ms":600},"endpoints":["127.0.0.1:1"]})");
    CHECK(hasError(r.errors, "/clusters/0/health_check/timeout_ms", "must not exceed interval_ms (500)"));
  }
  SECTION("retry: a backoff base alone above the default maximum; DEADLINE_EXCEEDED without per-try timeouts") {
    auto retry = [&](const std::string& policy) {
      return with("", R"({"match":{"prefix":"/"},"cluster":"c","retry":)" + policy + "}", good_cluster);
    };
    auto r = retry(R"({"retry_on":["UNAVAILABLE"],"backoff_base_ms":500})");
    CHECK(hasError(r.errors, "/listeners/0/filters/0/config/routes/0/retry/backoff_base_ms",
                   "(250, the default): set backoff_max_ms too"));
    r = retry(R"({"retry_on":["UNAVAILABLE"],"backoff_base_ms":500,"backoff_max_ms":400})");
    CHECK(hasError(r.errors, "/listeners/0/filters/0/config/routes/0/retry/backoff_max_ms"));
    r = retry(R"({"retry_on":[]})");
    CHECK(hasError(r.errors, "/listeners/0/filters/0/config/routes/0/retry/retry_on", "at least one status"));
    r = retry(R"({"retry_on":["DEADLINE_EXCEEDED"]})");
    CHECK(hasError(r.errors, "/listeners/0/filters/0/config/routes/0/retry/retry_on", "set per_try_timeout_ms"));
    r = retry(R"({"retry_on":["DEADLINE_EXCEEDED"],"per_try_timeout_ms":200})");
    INFO(r.errors.format());
    CHECK(r.config);
  }
  SECTION("several mistakes are all reported") {
    auto r = with(R"(,"colour":"blue")", R"({"match":{"prefix":"x"},"cluster":"nope"})",
                  R"({"name":"c","endpoints":[42]})");
    CHECK(hasError(r.errors, "/listeners/0/colour"));
    CHECK(hasError(r.errors, "/listeners/0/filters/0/config/routes/0/match/prefix"));
    CHECK(hasError(r.errors, "/listeners/0/filters/0/config/routes/0/cluster"));
    CHECK(hasError(r.errors, "/clusters/0/endpoints/0", "expected an address string"));
    CHECK(r.errors.size() >= 4);
  }
}

TEST_CASE("filter chain shape is checked", "[config]") {
  SECTION("unknown filter") {
    auto r = load(R"({"listeners":[{"name":"l","address":"127.0.0.1:0","filters":[{"name":"magic"},{"name":"proxy"}]}],
                    "clusters":[]})");
    CHECK(hasError(r.errors, "/listeners/0/filters/0/name", "unknown filter \"magic\""));
  }
  SECTION("proxy must be last") {
    auto r = load(R"({"listeners":[{"name":"l","address":"127.0.0.1:0","filters":[{"name":"proxy"},
                    {"name":"router","config":{"routes":[]}}]}],"clusters":[]})");
    CHECK(hasError(r.errors, "/listeners/0/filters/0/name", "must be the last"));
    CHECK(hasError(r.errors, "/listeners/0/filters/1/name", "must end the chain"));
    // A router without a route would answer every call "no route".
    CHECK(hasError(r.errors, "/listeners/0/filters/1/config/routes", "at least one route is needed"));
  }
  SECTION("duplicate names") {
    auto r = load(R"({"listeners":[],"clusters":[{"name":"c","endpoints":["127.0.0.1:1"]},
                    {"name":"c","endpoints":["127.0.0.1:2"]}]})");
    CHECK(hasError(r.errors, "/clusters/1/name", "duplicate"));
    CHECK(hasError(r.errors, "/listeners", "at least one listener"));
  }
  SECTION("invalid JSON") {
    auto r = load("{ not json");
    CHECK_FALSE(r.config);
    CHECK(hasError(r.errors, "", "invalid JSON"));
  }
  SECTION("a number no double holds is named by its path") {
    auto r = load(R"({"drain_timeout_ms": 10, "clusters": [{"name": "c", "connect_timeout_ms": 1e400}]})");
    CHECK_FALSE(r.config);
    CHECK(hasError(r.errors, "/clusters/0/connect_timeout_ms", "number overflow parsing '1e400'"));
    auto top = load(R"(1e400)");
    CHECK(hasError(top.errors, "", "number overflow"));
    auto in_array = load(R"({"listeners": [1, -2e999]})");
    CHECK(hasError(in_array.errors, "/listeners/1", "number overflow"));
  }
  SECTION("missing required keys") {
    auto r = load(R"({"clusters":[{"endpoints":["127.0.0.1:1"]}]})");
    CHECK(hasError(r.errors, "/listeners", "required"));
    CHECK(hasError(r.errors, "/clusters/0/name", "required"));
  }
}

TEST_CASE("error text is one line per error", "[config]") {
  ConfigErrors errors;
  errors.add("/a/0", "first");
  errors.add("", "second");
  CHECK(errors.format() == "config error at /a/0: first\nconfig error at /: second\n");
}


TEST_CASE("connection_balance is exact by default, kernel on request, anything else an error", "[config]") {
  auto withBalance = [](const std::string& value) {
    return std::string(R"({"listeners":[{"name":"l","address":"127.0.0.1:0",)") +
           (value.empty() ? "" : R"("connection_balance":)" + value + ",") +
           R"("filters":[{"name":"proxy"}]}],"clusters":[]})";
  };
  SECTION("default") {
    auto r = load(withBalance(""));
    INFO(r.errors.format());
    REQUIRE(r.config);
    CHECK(r.config->listeners[0].connection_balance == ConnectionBalance::Exact);
  }
  SECTION("exact") {
    auto r = load(withBalance(R"("exact")"));
    INFO(r.errors.format());
    REQUIRE(r.config);
    CHECK(r.config->listeners[0].connection_balance == ConnectionBalance::Exact);
  }
  SECTION("kernel") {
    auto r = load(withBalance(R"("kernel")"));
    INFO(r.errors.format());
    REQUIRE(r.config);
    CHECK(r.config->listeners[0].connection_balance == ConnectionBalance::Kernel);
  }
  SECTION("unknown value") {
    auto r = load(withBalance(R"("round_robin")"));
    INFO(r.errors.format());
    CHECK_FALSE(r.config);
    CHECK(hasError(r.errors, "/listeners/0/connection_balance", "unknown balance \"round_robin\""));
  }
  SECTION("wrong type") {
    auto r = load(withBalance("2"));
    INFO(r.errors.format());
    CHECK_FALSE(r.config);
    CHECK(hasError(r.errors, "/listeners/0/connection_balance", "expected a string"));
  }
}

TEST_CASE("HTTP/2 windows: defaults, configured values, and the protocol's range", "[config]") {
  auto with = [](const std::string& listener_extra, const std::string& cluster_extra) {
    return load(R"({"listeners":[{"name":"l","address":"127.0.0.1:0")" + listener_extra +
                R"(,"filters":[{"name":"proxy"}]}],"clusters":[{"name":"c","endpoints":["127.0.0.1:1"])" +
                cluster_extra + "}]}");
  };
  SECTION("defaults: 1 MiB per stream to clients, 8 MiB to backends, 16 MiB per connection") {
    auto r = with("", "");
    INFO(r.errors.format());
    REQUIRE(r.config);
    CHECK(r.config->listeners[0].initial_stream_window_bytes == 1u << 20);
    CHECK(r.config->listeners[0].initial_connection_window_bytes == 16u << 20);
    CHECK(r.config->clusters[0].initial_stream_window_bytes == 8u << 20);
    CHECK(r.config->clusters[0].initial_connection_window_bytes == 16u << 20);
  }
  SECTION("configured") {
    auto r = with(R"(,"initial_stream_window_bytes":65535,"initial_connection_window_bytes":2147483647)",
                  R"(,"initial_stream_window_bytes":262144,"initial_connection_window_bytes":67108864)");
    INFO(r.errors.format());
    REQUIRE(r.config);
    CHECK(r.config->listeners[0].initial_stream_window_bytes == 65535);
    CHECK(r.config->listeners[0].initial_connection_window_bytes == 2147483647u);
    CHECK(r.config->clusters[0].initial_stream_window_bytes == 262144);
    CHECK(r.config->clusters[0].initial_connection_window_bytes == 64u << 20);
  }
  SECTION("outside 65535 .. 2^31-1 is an error naming the key") {
    auto r = with(R"(,"initial_stream_window_bytes":1024)", R"(,"initial_connection_window_bytes":2147483648)");
    INFO(r.errors.format());
    CHECK_FALSE(r.config);
    CHECK(hasError(r.errors, "/listeners/0/initial_stream_window_bytes"));
    CHECK(hasError(r.errors, "/clusters/0/initial_connection_window_bytes"));
  }
}


TEST_CASE("max_incomplete_request_bytes and _response_bytes: 4 max messages by default, never below one",
          "[config]") {
  auto with = [](const std::string& listener_extra) {
    return load(R"({"listeners":[{"name":"l","address":"127.0.0.1:0")" + listener_extra +
                R"(,"filters":[{"name":"proxy"}]}],"clusters":[{"name":"c","endpoints":["127.0.0.1:1"]}]})");
  };
  for (const std::string key : {"max_incomplete_request_bytes", "max_incomplete_response_bytes"}) {
    INFO(key);
    auto limit = [&](const ListenerConfig& l) {
      return key == "max_incomplete_request_bytes" ? l.incompleteRequestLimit() : l.incompleteResponseLimit();
    };
    auto r = with("");
    REQUIRE(r.config);
    CHECK(limit(r.config->listeners[0]) == 64u << 20);
    r = with(R"(,"max_message_bytes":1048576)");
    REQUIRE(r.config);
    CHECK(limit(r.config->listeners[0]) == 4u << 20);
    r = with(R"(,"max_message_bytes":1048576,")" + key + R"(":1048576)");
    REQUIRE(r.config);
    CHECK(limit(r.config->listeners[0]) == 1u << 20);
    r = with(R"(,"max_message_bytes":1048576,")" + key + R"(":1048575)");
    CHECK_FALSE(r.config);
    CHECK(hasError(r.errors, "/listeners/0/" + key));
  }
}

TEST_CASE("max_requests_per_connection: 0 by default (the stream IDs' 2^30), at most 2^30", "[config]") {
  auto with = [](const std::string& cluster_extra) {
    return load(R"({"listeners":[{"name":"l","address":"127.0.0.1:0","filters":[{"name":"proxy"}]}],)"
                R"("clusters":[{"name":"c","endpoints":["127.0.0.1:1"])" + cluster_extra + "}]}");
  };
  auto r = with("");
  REQUIRE(r.config);
  CHECK(r.config->clusters[0].max_requests_per_connection == 0);
  r = with(R"(,"max_requests_per_connection":1000)");
  REQUIRE(r.config);
  CHECK(r.config->clusters[0].max_requests_per_connection == 1000);
  r = with(R"(,"max_requests_per_connection":1073741825)");
  CHECK_FALSE(r.config);
  CHECK(hasError(r.errors, "/clusters/0/max_requests_per_connection"));
  r = with(R"(,"max_requests_per_connection":-1)");
  CHECK_FALSE(r.config);
  CHECK(hasError(r.errors, "/clusters/0/max_requests_per_connection"));
}

// A minimal config with the top-level `key` set to `value` (JSON text); an
// empty value leaves the key out.
namespace {
std::string withTopLevel(const std::string& key, const std::string& value) {
  return std::string("{") + (value.empty() ? "" : "\"" + key + "\":" + value + ",") +
         R"("listeners":[{"name":"l","address":"127.0.0.1:0","filters":[{"name":"proxy"}]}],"clusters":[]})";
}
}  // namespace

TEST_CASE("worker_spin_polls: 8 by default, 0 turns spinning off, past 1024 an error", "[config]") {
  auto withSpin = [](const std::string& value) { return withTopLevel("worker_spin_polls", value); };
  SECTION("default") {
    auto r = load(withSpin(""));
    INFO(r.errors.format());
    REQUIRE(r.config);
    CHECK(r.config->worker_spin_polls == 8);
  }
  SECTION("off and the largest") {
    for (uint32_t v : {0u, 1024u}) {
      auto r = load(withSpin(std::to_string(v)));
      INFO(r.errors.format());
      REQUIRE(r.config);
      CHECK(r.config->worker_spin_polls == v);
    }
  }
  SECTION("out of range or not a count") {
    for (const char* v : {"1025", "-1", "2.5", "\"8\""}) {
      auto r = load(withSpin(v));
      INFO(v << ": " << r.errors.format());
      CHECK_FALSE(r.config);
      CHECK(hasError(r.errors, "/worker_spin_polls"));
    }
  }
}

TEST_CASE("worker_sched_slice_us: 200 by default, 0 or 100 to 100000", "[config]") {
  auto withSlice = [](const std::string& value) { return withTopLevel("worker_sched_slice_us", value); };
  SECTION("default") {
    auto r = load(withSlice(""));
    INFO(r.errors.format());
    REQUIRE(r.config);
    CHECK(r.config->worker_sched_slice_us == 200);
  }
  SECTION("the kernel's default, and the bounds the kernel accepts") {
    for (uint32_t v : {0u, 100u, 100000u}) {
      auto r = load(withSlice(std::to_string(v)));
      INFO(r.errors.format());
      REQUIRE(r.config);
      CHECK(r.config->worker_sched_slice_us == v);
    }
  }
  SECTION("outside what the kernel accepts, or not a count") {
    for (const char* v : {"1", "99", "100001", "-1", "\"200\""}) {
      auto r = load(withSlice(v));
      INFO(v << ": " << r.errors.format());
      CHECK_FALSE(r.config);
      CHECK(hasError(r.errors, "/worker_sched_slice_us"));
    }
  }
}

TEST_CASE("reload_resolve_timeout_ms: 30 s by default, 1 ms to an hour", "[config]") {
  auto r = load(withTopLevel("reload_resolve_timeout_ms", ""));
  INFO(r.errors.format());
  REQUIRE(r.config);
  CHECK(r.config->reload_resolve_timeout_ms == 30000);
  r = load(withTopLevel("reload_resolve_timeout_ms", "250"));
  REQUIRE(r.config);
  CHECK(r.config->reload_resolve_timeout_ms == 250);
  for (const char* v : {"0", "3600001", "-5"}) {
    r = load(withTopLevel("reload_resolve_timeout_ms", v));
    INFO(v);
    CHECK_FALSE(r.config);
    CHECK(hasError(r.errors, "/reload_resolve_timeout_ms"));
  }
}

TEST_CASE("dns_lookup_threads: 16 by default, 1 to 1024", "[config]") {
  auto r = load(withTopLevel("dns_lookup_threads", ""));
  INFO(r.errors.format());
  REQUIRE(r.config);
  CHECK(r.config->dns_lookup_threads == 16);
  r = load(withTopLevel("dns_lookup_threads", "3"));
  REQUIRE(r.config);
  CHECK(r.config->dns_lookup_threads == 3);
  for (const char* v : {"0", "1025", "\"4\""}) {
    r = load(withTopLevel("dns_lookup_threads", v));
    INFO(v);
    CHECK_FALSE(r.config);
    CHECK(hasError(r.errors, "/dns_lookup_threads"));
  }
}

TEST_CASE("admin limits: 32 connections and 5 s by default, 0 is an error", "[config]") {
  auto withAdmin = [](const std::string& extra) {
    return R"({"admin":{"address":"127.0.0.1:0")" + extra +
           R"(},"listeners":[{"name":"l","address":"127.0.0.1:0","filters":[{"name":"proxy"}]}],"clusters":[]})";
  };
  auto r = load(withAdmin(""));
  INFO(r.errors.format());
  REQUIRE(r.config);
  CHECK(r.config->admin_max_connections == 32);
  CHECK(r.config->admin_request_timeout_ms == 5000);
  r = load(withAdmin(R"(,"max_connections":2,"request_timeout_ms":250)"));
  REQUIRE(r.config);
  CHECK(r.config->admin_max_connections == 2);
  CHECK(r.config->admin_request_timeout_ms == 250);
  r = load(withAdmin(R"(,"max_connections":0,"request_timeout_ms":0)"));
  CHECK_FALSE(r.config);
  CHECK(hasError(r.errors, "/admin/max_connections"));
  CHECK(hasError(r.errors, "/admin/request_timeout_ms"));
}

TEST_CASE("two listeners that would share connections are an error at the second's address", "[config]") {
  auto twoListeners = [](const std::string& a, const std::string& b, const std::string& admin = "") {
    std::string admin_json = admin.empty() ? "" : R"("admin":{"address":")" + admin + R"("},)";
    return "{" + admin_json + R"("listeners":[{"name":"public","address":")" + a +
           R"(","filters":[{"name":"proxy"}]},{"name":"internal","address":")" + b +
           R"(","filters":[{"name":"proxy"}]}],"clusters":[]})";
  };
  struct Case {
    std::string a, b, admin;
    bool overlap;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1:8080", "127.0.0.1:8080", "", true},
      {"0.0.0.0:8080", "127.0.0.1:8080", "", true},
      {"127.0.0.1:8080", "0.0.0.0:8080", "", true},
      {"[::]:8080", "127.0.0.1:8080", "", true},
      {"[::1]:8080", "[::1]:8080", "", true},
      {"127.0.0.1:8080", "127.0.0.2:8080", "", false},
      {"127.0.0.1:8080", "127.0.0.1:8081", "", false},
      {"[::1]:8080", "127.0.0.1:8080", "", false},
      {"127.0.0.1:0", "127.0.0.1:0", "", false},  // the kernel picks two ports
      {"127.0.0.1:9901", "127.0.0.1:8080", "0.0.0.0:9901", true},
      // The same address spelled two ways: IPv4-mapped IPv6, or IPv6 with other zeros.
      {"127.0.0.1:8080", "[::ffff:127.0.0.1]:8080", "", true},
      {"[::ffff:0.0.0.0]:8080", "127.0.0.5:8080", "", true},
      {"[::1]:8080", "[0:0::1]:8080", "", true},
      {"[::ffff:127.0.0.1]:8080", "[::1]:8080", "", false},
      {"[::ffff:127.0.0.1]:8080", "127.0.0.2:8080", "", false},
  };
  for (const auto& c : cases) {
    auto r = load(twoListeners(c.a, c.b, c.admin));
    INFO(c.a << " and " << c.b << " (admin " << c.admin << "): " << r.errors.format());
    if (c.overlap) {
      CHECK_FALSE(r.config);
      const std::string at = c.admin.empty() ? "/listeners/1/address" : "/listeners/0/address";
      CHECK(hasError(r.errors, at, "connections would be split"));
    } else {
      CHECK(r.config);
    }
  }
  auto r = load(twoListeners("127.0.0.1:8080", "127.0.0.1:8080"));
  CHECK(hasError(r.errors, "/listeners/1/address", "overlaps listener \"public\" at 127.0.0.1:8080"));
}


TEST_CASE("overload: off by default, max_heap_bytes required, shares 1-100, interval 10 ms to 1 min", "[config]") {
  auto r = load(withTopLevel("overload", ""));
  INFO(r.errors.format());
  REQUIRE(r.config);
  CHECK_FALSE(r.config->overload.enabled());
  r = load(withTopLevel("overload", R"({"max_heap_bytes": 1073741824})"));
  REQUIRE(r.config);
  CHECK(r.config->overload.max_heap_bytes == 1073741824);
  CHECK(r.config->overload.refuse_calls_percent == 95);
  CHECK(r.config->overload.refuse_connections_percent == 98);
  CHECK(r.config->overload.reset_calls_percent == 100);
  CHECK(r.config->overload.check_interval_ms == 100);
  CHECK(r.config->overload.refuseCallsAt() == 1073741824 / 100 * 95);
  r = load(withTopLevel("overload", R"({"max_heap_bytes": 67108864, "refuse_calls_percent": 50,
                                         "refuse_connections_percent": 100, "check_interval_ms": 10})"));
  REQUIRE(r.config);
  CHECK(r.config->overload.refuse_calls_percent == 50);
  CHECK(r.config->overload.refuse_connections_percent == 100);
  CHECK(r.config->overload.check_interval_ms == 10);
  const std::vector<std::pair<const char*, const char*>> mistakes = {
      {R"({})", "/overload/max_heap_bytes"},
      {R"({"max_heap_bytes": 1000})", "/overload/max_heap_bytes"},
      {R"({"max_heap_bytes": "1G"})", "/overload/max_heap_bytes"},
      {R"({"max_heap_bytes": 67108864, "refuse_calls_percent": 0})", "/overload/refuse_calls_percent"},
      {R"({"max_heap_bytes": 67108864, "refuse_connections_percent": 101})", "/overload/refuse_connections_percent"},
      {R"({"max_heap_bytes": 67108864, "check_interval_ms": 5})", "/overload/check_interval_ms"},
      {R"({"max_heap_bytes": 67108864, "reset_calls_percent": 0})", "/overload/reset_calls_percent"},
      {R"({"max_heap_bytes": 67108864, "refuse_streams_percent": 90})", "/overload/refuse_streams_percent"},
      {R"(true)", "/overload"},
  };
  for (const auto& [value, path] : mistakes) {
    r = load(withTopLevel("overload", value));
    INFO(value << ": " << r.errors.format());
    CHECK_FALSE(r.config);
    CHECK(hasError(r.errors, path));
  }
}

TEST_CASE("preface_timeout_ms: 10 s by default, 0 turns it off, past a day an error", "[config]") {
  auto with = [](const std::string& listener_extra) {
    return load(R"({"listeners":[{"name":"l","address":"127.0.0.1:0","filters":[{"name":"proxy"}])" +
                listener_extra + R"(}],"clusters":[]})");
  };
  auto r = with("");
  REQUIRE(r.config);
  CHECK(r.config->listeners[0].preface_timeout_ms == 10000);
  r = with(R"(,"preface_timeout_ms":0)");
  REQUIRE(r.config);
  CHECK(r.config->listeners[0].preface_timeout_ms == 0);
  r = with(R"(,"preface_timeout_ms":86400001)");
  CHECK_FALSE(r.config);
  CHECK(hasError(r.errors, "/listeners/0/preface_timeout_ms"));
}

}  // namespace sluice

namespace sluice {

TEST_CASE("a key given twice in one object is an error at that key: JSON would keep only the last", "[config]") {
  // The second "filters" would silently drop the first chain (its auth filter, say).
  auto r = load(R"({"listeners":[{"name":"a","address":"127.0.0.1:8080",
      "filters":[{"name":"router","config":{"routes":[{"match":{"prefix":"/"},"cluster":"c"}]}},{"name":"proxy"}],
      "filters":[{"name":"proxy"}]}],
    "clusters":[{"name":"c","endpoints":["127.0.0.1:1"]}]})");
  INFO(r.errors.format());
  CHECK_FALSE(r.config);
  CHECK(hasError(r.errors, "/listeners/0/filters", "duplicate key"));
  // Inside arrays too, with the element's index in the path.
  r = load(R"({"listeners":[],"clusters":[{"name":"c","endpoints":["127.0.0.1:1"]},
    {"name":"d","name":"e","endpoints":["127.0.0.1:1"]}]})");
  INFO(r.errors.format());
  CHECK(hasError(r.errors, "/clusters/1/name", "duplicate key"));
  // The same key in two objects is fine.
  r = load(kValid);
  CHECK(r.config);
}

TEST_CASE("a config nested deeper than 64 levels is an error at the first level too deep", "[config]") {
  // Deep values in members nothing checks (a JWK's) would otherwise reach the
  // recursive walks of a loaded config (/config_dump) and overflow the stack.
  std::string deep = R"({"listeners":[],"clusters":[],"x":)";
  for (int i = 0; i < 20000; ++i) deep += "[";
  for (int i = 0; i < 20000; ++i) deep += "]";
  deep += "}";
  auto r = load(deep);
  INFO(r.errors.format().substr(0, 500));
  CHECK_FALSE(r.config);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors.all()[0].message == "nested deeper than 64 levels");
  CHECK(r.errors.all()[0].path.rfind("/x/0/0/", 0) == 0);
  // 64 levels are fine as JSON (then the unknown key "x" is the only error).
  std::string ok = R"({"x":)";
  for (int i = 0; i < 63; ++i) ok += "[";
  for (int i = 0; i < 63; ++i) ok += "]";
  ok += "," + std::string(kValid).substr(1);
  r = load(ok);
  INFO(r.errors.format());
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors.all()[0].path == "/x");
  CHECK(r.errors.all()[0].message == "unknown key");
}

}  // namespace sluice

namespace sluice {

TEST_CASE("max_held_request_header_bytes: 4 MiB by default, at least max_header_list_bytes", "[config]") {
  auto r = load(kValid);
  REQUIRE(r.config);
  CHECK(r.config->listeners[0].max_held_request_header_bytes == 4u << 20);
  std::string text = kValid;
  const std::string at = R"("max_message_bytes": 1048576,)";
  auto with = [&](const std::string& keys) {
    std::string t = text;
    t.insert(t.find(at) + at.size(), keys);
    return load(t);
  };
  r = with(R"("max_header_list_bytes": 8192, "max_held_request_header_bytes": 8192,)");
  INFO(r.errors.format());
  REQUIRE(r.config);
  CHECK(r.config->listeners[0].max_held_request_header_bytes == 8192);
  r = with(R"("max_held_request_header_bytes": 65535,)");
  CHECK(hasError(r.errors, "/listeners/0/max_held_request_header_bytes", "out of range [65536,"));
}

}  // namespace sluice
